//! coldtrail's HTTP read edge: what recall investigators ask of the node,
//! and what a verifier fetches (`verifier.rs`: entries, heads, proofs, the
//! key document).
//!
//! Handlers parse, authorise and call one library function (`analytics`
//! computes; this crate only shapes answers). Refusals are the same
//! `application/problem+json` with stable codes as the write API's.
//!
//! ## Identifiers, the resolver and the consumer page (`gs1`, `web::consumer`)
//!
//! `gs1::DigitalLink::parse` reads a GS1 Digital Link URI from the right, as the standard does:
//! qualifier pairs, then the primary key, then whatever path the host adds; every value is checked
//! against its AI's format (`gs1/src/ai.rs`, in the GS1 Syntax Dictionary's notation), check
//! digits included; qualifiers must follow the key's one order. `gs1::canonical_id` maps EPC URNs
//! of GS1 keys and Digital Links on any host to `https://id.gs1.org/{ai}/{value}…`; the lineage
//! graph interns a thing's canonical form beside its first spelling, so every lookup (traces,
//! lots, EPCIS `MATCH_`/`EQ_` parameters, recalls) finds it however it is written, and answers
//! name it as events first did.
//!
//! The resolver (`consumer::resolver`) is the last route `web` registers, guarded to paths whose
//! first segment is a primary key's AI or short name. It parses (400 with the reason), redirects
//! non-canonical spellings (301), walks up to what this node knows (an unknown lot to its
//! product), then answers from `readstate` as a GS1-Conformant resolver: the linkset, or a 307 to
//! the link asked for, by default the provenance page (`/provenance/{digital link path}`).
//! `consumer::facts::lot_facts` gathers what the page says from the graph (lot view, events,
//! breach verdicts, open recalls, the product profile's temperature limits), each fact with its
//! entry; `ReadState::lot_series` reads the loggers' readings (shared with GraphQL);
//! `consumer::render` writes the HTML (maud) and the SVG chart. Nothing is computed here that
//! analytics does not already hold. Product names are master data, not ledger facts: they come
//! from `products.json` in the data directory (`web::catalogue`), loaded at start.
//!
//! The page works without JavaScript; its one script is the verifier, a module (deferred: it
//! runs after the page is parsed). Every fact carries `data-entry="shard/index/id"` and
//! `data-kind` (the entry kind it rests on). `assets/proof.js` holds the checks as pure
//! functions (VERIFYING.md §2–§7: domain hashing, RFC 9162 audit paths, head bytes and
//! signatures, the key-set chain), `assets/verify.js` the fetching and the words. Both, with the
//! vendored noble libraries, are compiled into the binary (`web::assets`, served under
//! `/assets/coldtrail/`). Trust: the operator key is pinned on first visit (localStorage) and a
//! later key document must reach it by endorsed rotations; the page's Content-Security-Policy
//! lets it load nothing from elsewhere.
//!
//! The investigators' GraphQL console (`GET /graphql` from a browser) is GraphiQL 3 with React
//! 18, vendored the same way (`assets/vendor/graphiql`, pinned in `refresh.sh`) and started by
//! `assets/console.js`; `web::console` writes the page and its policy (this origin only), and
//! the binary hands them to `graphql::Endpoint`, whose route serves them.

use std::sync::Arc;

pub mod assets;
mod cache;
pub mod catalogue;
pub mod console;
pub mod consumer;
mod epcis;
pub mod subscriptions;
mod verifier;

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use analytics::lineage::{At, Direction, Limits, Lineage};
use analytics::recall::{Ask, RecallError};
use api::idempotency::Attempt;
use api::params::QueryParams;
use api::{ApiError, Role};
use readstate::verifier::ProofJson;
use readstate::{recall_error, Plan, ReadState};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

pub use verifier::KEYS_PATH;

/// How the read edge presents itself to the world.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The public base URL (scheme, host, optional path prefix; no trailing
    /// slash) that Digital Links, linksets and QR codes are written under, as
    /// printed on packs. `None`: the request's own scheme and host.
    pub public_url: Option<String>,
    /// Product names for the pages (master data, beside the ledger).
    pub catalogue: Arc<catalogue::Catalogue>,
}

/// Checks a public base URL: `http(s)://host[:port][/prefix]`, nothing after.
pub fn parse_public_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("{s:?}: start the public URL with https:// or http://"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || rest.contains(['?', '#', ' ']) {
        return Err(format!(
            "{s:?}: write the public URL as https://host[:port][/prefix], without a query or fragment"
        ));
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// Registers the read routes and the node's whole OpenAPI document: the
/// write API's half (`write_api`, which the node hands over) and this one's.
pub fn configure(
    state: Arc<ReadState>,
    options: Options,
    write_api: utoipa::openapi::OpenApi,
) -> impl FnOnce(&mut ServiceConfig) {
    let doc = ApiDocument(
        serde_json::to_string(&openapi(write_api)).expect("the API document serialises"),
    );
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::from(state))
            .app_data(web::Data::new(options))
            .app_data(web::Data::new(doc))
            .route("/v1/trace", web::get().to(get_trace))
            .route("/v1/co-exposure", web::get().to(get_co_exposure))
            .route("/v1/fsma204", web::get().to(get_fsma204))
            .route("/v1/search", web::get().to(get_search))
            .route("/v1/recalls", web::post().to(post_recall))
            .route("/v1/recalls", web::get().to(get_recalls))
            .route("/v1/recalls/{id}", web::get().to(get_recall))
            .route("/v1/recalls/{id}/widen", web::post().to(post_widen))
            .route("/v1/recalls/{id}/close", web::post().to(post_close))
            .route(
                "/v1/devices/{device}/readings",
                web::get().to(get_device_readings),
            )
            .route("/v1/openapi.json", web::get().to(get_openapi))
            .configure(assets::configure)
            .configure(epcis::configure)
            .configure(subscriptions::configure)
            .configure(verifier::configure)
            // Last: its guard takes only Digital Link paths.
            .configure(consumer::configure);
    }
}

/// The node's API document, served as built once at start.
struct ApiDocument(String);

/// The node's API: the write API (`write_api`) and the read routes in one
/// document.
pub fn openapi(write_api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut doc = write_api;
    doc.merge(ReadApi::openapi());
    doc.merge(verifier::VerifierApi::openapi());
    doc.info.title = "coldtrail API".into();
    api::problem::document_problems(&mut doc);
    doc
}

async fn get_openapi(doc: web::Data<ApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}

/// Traces cross organisations: investigators and operators only.
fn investigator(state: &ReadState, req: &HttpRequest) -> Result<(), ApiError> {
    let who = state.tokens.authenticate_request(req)?;
    match who.role {
        Role::Investigator | Role::Operator => Ok(()),
        Role::Partner => Err(ApiError::Forbidden(
            "traces cross organisations: use an investigator token (`coldtrail token issue --role investigator`)".into(),
        )),
    }
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
    state.fresh().await?;
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
            proofs.push(state.reads.proof(a.shard, a.index, None).await?);
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
    state.fresh().await?;
    let lot: String = q.require("lot")?;
    let from = q.time("from")?.unwrap_or(i64::MIN);
    let to = q.time("to")?.unwrap_or(i64::MAX);
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

/// FSMA 204's sortable spreadsheet (21 CFR 1.1455(c)(3)(ii)) as CSV: one row
/// per Critical Tracking Event with its Key Data Elements, for a traceability
/// lot and its whole chain (`lot`), or for a product over a time range
/// (`gtin`, `from`, `to`). Each row names its EPCIS event and ledger entry.
#[utoipa::path(get, path = "/v1/fsma204",
    params(
        ("lot" = Option<String>, Query, description = "A traceability lot: its chain's CTEs"),
        ("gtin" = Option<String>, Query, description = "A product (GTIN-14): the CTEs of its lots in [from, to]"),
        ("from" = Option<String>, Query, description = "With gtin: Unix ms or RFC 3339 (default: the beginning)"),
        ("to" = Option<String>, Query, description = "With gtin: Unix ms or RFC 3339 (default: the end)")),
    responses((status = 200, content_type = "text/csv", description = "The spreadsheet"),
        (status = 400, description = "Neither or both of lot and gtin"),
        (status = 404, description = "No event names the lot")),
    security(("bearer" = [])))]
async fn get_fsma204(
    state: web::Data<ReadState>,
    options: web::Data<Options>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req, &["lot", "gtin", "from", "to"])?;
    investigator(&state, &req)?;
    state.fresh().await?;
    let (from, to) = (q.time("from")?, q.time("to")?);
    let master = options.catalogue.master_data();
    let g = state.lineage.read().expect("lineage lock");
    let (rows, name) = match (q.get::<String>("lot")?, q.get::<String>("gtin")?) {
        (Some(lot), None) => {
            let chain = g.chain(&lot).ok_or_else(|| unknown_lot(&lot))?;
            (g.cte_rows(&chain, &master), lot)
        }
        (None, Some(gtin)) => {
            if gtin.len() != 14 || !gtin.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::InvalidParameter {
                    name: "gtin".into(),
                    message: format!("{gtin:?} is not a GTIN-14 (14 digits)"),
                });
            }
            let rows = g.cte_rows_for_product(
                &gtin,
                (from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX)),
                &master,
            );
            (rows, gtin)
        }
        _ => {
            return Err(ApiError::InvalidParameter {
                name: "lot".into(),
                message: "give either `lot` (a traceability lot) or `gtin` with `from` and `to`"
                    .into(),
            })
        }
    };
    let file: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"fsma204-{file}.csv\""),
        ))
        .body(analytics::lineage::fsma204::to_csv(&rows)))
}

/// Organisations, products (GTIN), lots, locations, devices and events, by
/// identifier or words, tolerant of typos: the best matches first.
#[utoipa::path(get, path = "/v1/search",
    params(("q" = String, Query, description = "An identifier or words, e.g. `L00010` or `salinas farm`"),
        ("limit" = Option<u64>, Query, description = "At most this many hits (default 20, at most 200)")),
    responses((status = 200, description = "{hits: [{kind, id, label, score}]}"),
        (status = 403, description = "Not an investigator or operator token")),
    security(("bearer" = [])))]
async fn get_search(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req, &["q", "limit"])?;
    investigator(&state, &req)?;
    state.fresh().await?;
    let text: String = q.require("q")?;
    let limit: usize = q.get("limit")?.unwrap_or(20);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::InvalidParameter {
            name: "limit".into(),
            message: format!("{limit}: give 1 to 200"),
        });
    }
    let index = state.search_index()?;
    let hits = index
        .search(&text, limit)
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "q": text, "hits": hits })))
}

/// An interval in Unix epoch milliseconds.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Open a recall of a lot.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRecall {
    /// The lot as events name it.
    pub lot: String,
    pub reason: String,
    /// Also recall the lots that shared a container or logger with it in
    /// this interval (such as a breach's), and their descendants.
    #[serde(default)]
    pub co_exposure: Option<Interval>,
}

/// Add a lot (and its descendants) to a recall.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidenRecall {
    pub lot: String,
    pub reason: String,
}

/// Close a recall.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRecall {
    pub reason: String,
}

/// The frame every recall change over HTTP shares: the node's write frame
/// (admission, token, idempotency), then [`ReadState::change_recall`].
async fn change_recall<B, A, F>(
    st: &ReadState,
    req: &HttpRequest,
    payload: web::Payload,
    ask: A,
    plan: F,
) -> Result<HttpResponse, ApiError>
where
    B: serde::de::DeserializeOwned,
    A: FnOnce(&B) -> Ask,
    F: FnOnce(&Lineage, &api::Principal, &B, i64) -> Result<Plan, RecallError>,
{
    st.frame
        .json(req, payload, |who, body: B, attempt| async move {
            // A retry after a lost answer is answered with the change its
            // earlier attempt made, if it made one.
            let again = (attempt == Attempt::Again).then(|| ask(&body));
            st.change_recall(&who, again, |g, who, now| plan(g, who, &body, now))
                .await
        })
        .await
}

/// Open a recall: the lot, every lot made from it and, with `co_exposure`,
/// the lots that shared its containers then and their descendants. Recorded
/// on the ledger; the answer's `recall.recall.id` names it.
#[utoipa::path(post, path = "/v1/recalls", request_body = OpenRecall,
    responses((status = 201, body = api::WriteResult), (status = 403, description = "Not an investigator or operator token"),
        (status = 404, description = "No event names the lot")),
    security(("bearer" = [])))]
async fn post_recall(
    state: web::Data<ReadState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    change_recall(
        &state,
        &req,
        payload,
        |r: &OpenRecall| Ask::Open {
            lot: r.lot.clone(),
            reason: r.reason.clone(),
        },
        |g, who, r, now| {
            let co = r.co_exposure.as_ref().map(|i| (i.from_ms, i.to_ms));
            let (change, set) = analytics::recall::open(g, &r.lot, &r.reason, &who.org, now, co)?;
            Ok((change, r.lot.clone(), Some(set)))
        },
    )
    .await
}

/// Add a lot and its descendants to an open recall.
#[utoipa::path(post, path = "/v1/recalls/{id}/widen", request_body = WidenRecall, params(("id" = String, Path)),
    responses((status = 201, body = api::WriteResult), (status = 404, description = "No such recall or lot"), (status = 409, description = "The recall is closed")),
    security(("bearer" = [])))]
async fn post_widen(
    state: web::Data<ReadState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = req.match_info().get("id").unwrap_or("").to_string();
    change_recall(
        &state,
        &req,
        payload,
        |r: &WidenRecall| Ask::Widen {
            id: id.clone(),
            lot: r.lot.clone(),
            reason: r.reason.clone(),
        },
        |g, who, r, now| {
            let (change, home, set) =
                analytics::recall::widen(g, &id, &r.lot, &r.reason, &who.org, now)?;
            Ok((change, home, Some(set)))
        },
    )
    .await
}

/// Close an open recall.
#[utoipa::path(post, path = "/v1/recalls/{id}/close", request_body = CloseRecall, params(("id" = String, Path)),
    responses((status = 201, body = api::WriteResult), (status = 404, description = "No such recall"), (status = 409, description = "Already closed")),
    security(("bearer" = [])))]
async fn post_close(
    state: web::Data<ReadState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = req.match_info().get("id").unwrap_or("").to_string();
    change_recall(
        &state,
        &req,
        payload,
        |r: &CloseRecall| Ask::Close {
            id: id.clone(),
            reason: r.reason.clone(),
        },
        |g, who, r, now| {
            let (change, home) = analytics::recall::close(g, &id, &r.reason, &who.org, now)?;
            Ok((change, home, None))
        },
    )
    .await
}

/// A recall: its lot, whether it is open, every lot it names, and its history
/// (each change with its ledger entry).
#[utoipa::path(get, path = "/v1/recalls/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "The recall"), (status = 404, description = "No such recall")),
    security(("bearer" = [])))]
async fn get_recall(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    QueryParams::parse(&req, &[])?;
    investigator(&state, &req)?;
    state.fresh().await?;
    let id = req.match_info().get("id").unwrap_or("");
    let g = state.lineage.read().expect("lineage lock");
    let r = g
        .recalls()
        .get(id)
        .ok_or_else(|| recall_error(RecallError::UnknownRecall(id.to_string())))?;
    Ok(HttpResponse::Ok().json(r))
}

/// Every recall, or those that name `lot`.
#[utoipa::path(get, path = "/v1/recalls", params(("lot" = Option<String>, Query, description = "Only recalls that name this lot")),
    responses((status = 200, description = "{recalls: [...]}")),
    security(("bearer" = [])))]
async fn get_recalls(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req, &["lot"])?;
    investigator(&state, &req)?;
    state.fresh().await?;
    let g = state.lineage.read().expect("lineage lock");
    let recalls: Vec<&analytics::recall::Recall> = match q.get::<String>("lot")? {
        Some(lot) => g.recalls().of_lot(&lot),
        None => g.recalls().all().collect(),
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({ "recalls": recalls })))
}

/// Readings per page unless `limit` says otherwise.
const DEFAULT_READINGS_PAGE: usize = 100;

/// One reading of a device as `GET /v1/devices/{device}/readings` lists it.
#[derive(Serialize, ToSchema)]
struct ListedReading {
    /// The device's sequence number of this reading.
    seq: u64,
    #[serde(flatten)]
    reading: api::wire::ReadingJson,
    /// The readings entry it is in (its bytes, device signature and proof
    /// are at `/v1/shards/{shard}/entries/{index}`).
    #[schema(value_type = api::EntryRefJson)]
    entry: At,
}

/// A page of a device's readings.
#[derive(Serialize, ToSchema)]
struct ReadingsPage {
    device: String,
    from_ms: i64,
    to_ms: i64,
    /// How many readings the range holds that the caller may read, over all pages.
    count: u64,
    readings: Vec<ListedReading>,
    /// Give it as `after` for the next page; `null` on the last.
    next_after: Option<u64>,
}

/// A device's readings, oldest sequence first, with the entries they are
/// in: a partner's own devices', and a logger's while it watched lots of
/// the partner's; investigators and the operator read all.
#[utoipa::path(get, path = "/v1/devices/{device}/readings",
    params(("device" = String, Path),
        ("from_ms" = Option<i64>, Query, description = "Readings taken at or after (Unix ms); default: all"),
        ("to_ms" = Option<i64>, Query, description = "Readings taken before (Unix ms); default: all"),
        ("after" = Option<u64>, Query, description = "Only readings with a sequence number above this: the previous page's next_after"),
        ("limit" = Option<usize>, Query, description = "Readings per page, 1 to 1000 (default 100)")),
    responses((status = 200, body = ReadingsPage), (status = 401, description = "No token"),
        (status = 403, description = "The device's readings concern other organisations"),
        (status = 404, description = "No such device")),
    security(("bearer" = [])))]
async fn get_device_readings(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req, &["from_ms", "to_ms", "after", "limit"])?;
    let who = state.tokens.authenticate_request(&req)?;
    let device = epcis::path_id(&req, "device");
    let from_ms: i64 = q.get("from_ms")?.unwrap_or(i64::MIN);
    let to_ms: i64 = q.get("to_ms")?.unwrap_or(i64::MAX);
    if to_ms < from_ms {
        return Err(ApiError::InvalidParameter {
            name: "to_ms".into(),
            message: format!("{to_ms} is before from_ms ({from_ms})"),
        });
    }
    let after: Option<u64> = q.get("after")?;
    let limit: usize = q.get("limit")?.unwrap_or(DEFAULT_READINGS_PAGE);
    if !(1..=analytics::readings::MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidParameter {
            name: "limit".into(),
            message: format!(
                "{limit}: give 1 to {} readings per page",
                analytics::readings::MAX_PAGE
            ),
        });
    }
    state.fresh().await?;
    let st = state.into_inner();
    let page = tokio::task::spawn_blocking(move || {
        st.device_readings(&who, &device, (from_ms, to_ms), after, limit)
    })
    .await
    .map_err(|e| ApiError::Unavailable(e.to_string()))??;
    Ok(HttpResponse::Ok().json(ReadingsPage {
        device: page.device,
        from_ms: page.from_ms,
        to_ms: page.to_ms,
        count: page.count,
        readings: page
            .readings
            .iter()
            .map(|l| ListedReading {
                seq: l.seq,
                reading: (&l.reading).into(),
                entry: l.entry,
            })
            .collect(),
        next_after: page.next_after,
    }))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        get_trace,
        get_co_exposure,
        get_fsma204,
        get_search,
        post_recall,
        get_recalls,
        get_recall,
        post_widen,
        post_close,
        get_device_readings,
        epcis::get_events,
        epcis::get_event,
        epcis::by_epc,
        epcis::by_biz_step,
        epcis::by_biz_location,
        epcis::by_read_point,
        epcis::by_disposition,
        epcis::by_event_type,
        epcis::create_query,
        epcis::list_queries,
        epcis::get_query,
        epcis::delete_query,
        epcis::query_events,
        subscriptions::subscribe,
        subscriptions::list,
        subscriptions::get,
        subscriptions::unsubscribe
    ),
    components(schemas(
        epcis::QueryDefinition,
        readstate::subscriptions::Request,
        OpenRecall,
        WidenRecall,
        CloseRecall,
        Interval,
        ReadingsPage,
        ListedReading
    ))
)]
struct ReadApi;
