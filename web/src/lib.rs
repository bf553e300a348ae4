//! coldtrail's HTTP read edge: what recall investigators ask of the node.
//!
//! Handlers parse, authorise and call one library function (`analytics`
//! computes; this crate only shapes answers). Refusals are the same
//! `application/problem+json` with stable codes as the write API's.

use std::sync::{Arc, RwLock};

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use analytics::lineage::{At, Direction, Limits, Lineage};
use ingest::params::QueryParams;
use ingest::read::ProofJson;
use ingest::{ApiError, Ingest, Role};
use serde::Serialize;
use utoipa::OpenApi;

/// What the read routes share.
pub struct ReadState {
    pub ingest: Arc<Ingest>,
    /// Kept up to date by `analytics::lineage::follow`.
    pub lineage: Arc<RwLock<Lineage>>,
}

/// Registers the read routes and the node's whole OpenAPI document.
pub fn configure(state: Arc<ReadState>) -> impl FnOnce(&mut ServiceConfig) {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::from(state))
            .route("/v1/trace", web::get().to(get_trace))
            .route("/v1/co-exposure", web::get().to(get_co_exposure))
            .route("/v1/openapi.json", web::get().to(get_openapi));
    }
}

/// The node's API: the write API and the read routes in one document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ingest::ApiDoc::openapi();
    doc.merge(ReadApi::openapi());
    doc.info.title = "coldtrail API".into();
    doc
}

async fn get_openapi() -> HttpResponse {
    HttpResponse::Ok().json(openapi())
}

/// Traces cross organisations: investigators and operators only.
fn investigator(state: &ReadState, req: &HttpRequest) -> Result<(), ApiError> {
    let who = state.ingest.authenticate(
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )?;
    match who.role {
        Role::Investigator | Role::Operator => Ok(()),
        Role::Partner => Err(ApiError::Forbidden(
            "traces cross organisations: use an investigator token (`coldtrail token issue --role investigator`)".into(),
        )),
    }
}

/// A time as Unix epoch milliseconds or RFC 3339.
fn time_param(q: &QueryParams, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(raw) = q.get::<String>(name)? else {
        return Ok(None);
    };
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(Some(ms));
    }
    chrono::DateTime::parse_from_rfc3339(&raw)
        .map(|t| Some(t.timestamp_millis()))
        .map_err(|_| ApiError::InvalidParameter {
            name: name.into(),
            message: format!(
                "{raw:?} is neither Unix epoch milliseconds nor an RFC 3339 time like 2026-11-02T00:00:00Z"
            ),
        })
}

/// Most entries one answer proves inline; ask for the rest one by one.
const MAX_PROOFS: usize = 2_000;

#[derive(Serialize)]
struct TraceAnswer<'a> {
    #[serde(flatten)]
    trace: &'a analytics::lineage::Trace,
    /// With `proofs=true`: each entry the trace rests on, with its inclusion
    /// proof under a signed head (the first `MAX_PROOFS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    proofs: Option<Vec<ProofJson>>,
}

/// A lot's genealogy: `forward` (every lot made from it, where each is now
/// and who holds it) or `backward` (every lot it was made from, with the
/// farms, locations and events). Every item names the ledger entries it rests
/// on; `proofs=true` adds their inclusion proofs.
#[utoipa::path(get, path = "/v1/trace",
    params(
        ("lot" = String, Query, description = "The lot as events name it (EPC class URN or GS1 Digital Link URI)"),
        ("direction" = Option<String>, Query, description = "forward (default) or backward"),
        ("proofs" = Option<bool>, Query, description = "Add each entry's inclusion proof"),
        ("max_lots" = Option<u64>, Query, description = "Stop after this many lots; the answer's `cut` says what was left out")),
    responses((status = 200, description = "The trace: root, direction, lots (depth, links, events, whereabouts), cut"),
        (status = 403, description = "Not an investigator or operator token"),
        (status = 404, description = "No event names the lot")),
    security(("bearer" = [])))]
async fn get_trace(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req, &["lot", "direction", "proofs", "max_lots"])?;
    investigator(&state, &req)?;
    let lot: String = q.require("lot")?;
    let direction = match q.get::<String>("direction")?.as_deref() {
        None | Some("forward") => Direction::Forward,
        Some("backward") => Direction::Backward,
        Some(other) => {
            return Err(ApiError::InvalidParameter {
                name: "direction".into(),
                message: format!("{other:?}: give forward or backward"),
            })
        }
    };
    let limits = Limits {
        max_lots: q
            .get("max_lots")?
            .unwrap_or(Limits::default().max_lots)
            .max(1),
        ..Limits::default()
    };
    let with_proofs = q.get("proofs")?.unwrap_or(false);
    let trace = state
        .lineage
        .read()
        .expect("lineage lock")
        .trace(&lot, direction, limits)
        .ok_or_else(|| unknown_lot(&lot))?;
    let proofs = if with_proofs {
        let mut entries: Vec<At> = trace
            .lots
            .iter()
            .flat_map(|l| {
                l.events
                    .iter()
                    .map(|e| e.entry)
                    .chain(l.links.iter().map(|k| k.event.entry))
            })
            .collect();
        entries.sort_by_key(|a| (a.shard, a.index));
        entries.dedup();
        let mut proofs = Vec::with_capacity(entries.len().min(MAX_PROOFS));
        for a in entries.iter().take(MAX_PROOFS) {
            proofs.push(state.ingest.proof(a.shard, a.index, None).await?);
        }
        Some(proofs)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(TraceAnswer {
        trace: &trace,
        proofs,
    }))
}

fn unknown_lot(lot: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no event names {lot:?}; give the lot exactly as its events name it (e.g. urn:epc:class:lgtin:…)"
    ))
}

/// Lots that shared a container, pallet, reefer or logger with `lot` during
/// `[from, to]` (such as a breach's interval), each with the entries that put
/// both there.
#[utoipa::path(get, path = "/v1/co-exposure",
    params(
        ("lot" = String, Query, description = "The lot as events name it"),
        ("from" = Option<String>, Query, description = "Start: Unix ms or RFC 3339 (default: the beginning)"),
        ("to" = Option<String>, Query, description = "End: Unix ms or RFC 3339 (default: the end)")),
    responses((status = 200, description = "lot, from_ms, to_ms, exposures (subject, shared, how, interval, entries)"),
        (status = 403, description = "Not an investigator or operator token"),
        (status = 404, description = "No event names the lot")),
    security(("bearer" = [])))]
async fn get_co_exposure(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req, &["lot", "from", "to"])?;
    investigator(&state, &req)?;
    let lot: String = q.require("lot")?;
    let from = time_param(&q, "from")?.unwrap_or(i64::MIN);
    let to = time_param(&q, "to")?.unwrap_or(i64::MAX);
    if from > to {
        return Err(ApiError::InvalidParameter {
            name: "from".into(),
            message: "`from` is after `to`".into(),
        });
    }
    let answer = state
        .lineage
        .read()
        .expect("lineage lock")
        .co_exposure(&lot, from, to)
        .ok_or_else(|| unknown_lot(&lot))?;
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(OpenApi)]
#[openapi(paths(get_trace, get_co_exposure))]
struct ReadApi;
