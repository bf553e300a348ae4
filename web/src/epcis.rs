//! The EPCIS 2.0 query interface, as GS1's REST binding describes it:
//! `GET /events` with SimpleEventQuery parameters, paged with `perPage` and
//! `nextPageToken` (a `Link: <…>; rel="next"` header points at the next page),
//! and the resources that fix one parameter (`/epcs/{epc}/events`,
//! `/bizSteps/{bizStep}/events`, …). Answers are EPCISQueryDocuments; each
//! event names the ledger entry it rests on (`coldtrail:entry`).
//!
//! Partners see the events they captured or that happened at their own
//! location; investigators and operators see all.

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use analytics::lineage::query::{page_token, parse_token, EventQuery, QueryError};
use analytics::lineage::At;
use api::params::{percent_encode, QueryParams};
use api::{ApiError, Epcis, Role};

use crate::ReadState;

/// Events per page when `perPage` is not given, and the most it may ask for.
pub const DEFAULT_PER_PAGE: usize = 100;
pub const MAX_PER_PAGE: usize = 10_000;

/// Each EPCIS query resource and the methods it allows: `OPTIONS` answers
/// with them (the binding's discovery).
const RESOURCES: &[(&str, &str)] = &[
    ("/events", "GET, OPTIONS"),
    ("/events/{eventID:.+}", "GET, OPTIONS"),
    ("/epcs/{fixed:.+}/events", "GET, OPTIONS"),
    ("/bizSteps/{fixed:.+}/events", "GET, OPTIONS"),
    ("/bizLocations/{fixed:.+}/events", "GET, OPTIONS"),
    ("/readPoints/{fixed:.+}/events", "GET, OPTIONS"),
    ("/dispositions/{fixed:.+}/events", "GET, OPTIONS"),
    ("/eventTypes/{fixed:.+}/events", "GET, OPTIONS"),
    ("/queries", "GET, POST, OPTIONS"),
    ("/queries/{name}", "GET, DELETE, OPTIONS"),
    ("/queries/{name}/events", "GET, OPTIONS"),
    ("/queries/{name}/subscriptions", "GET, POST, OPTIONS"),
    ("/queries/{name}/subscriptions/{id}", "GET, DELETE, OPTIONS"),
];

pub(crate) fn configure(cfg: &mut ServiceConfig) {
    for prefix in ["", "/v1"] {
        for (path, allow) in RESOURCES {
            cfg.route(
                &format!("{prefix}{path}"),
                web::method(actix_web::http::Method::OPTIONS)
                    .to(move || async move { api::discovery::discovery(allow) }),
            );
        }
        cfg.route(&format!("{prefix}/events"), web::get().to(get_events))
            .route(
                &format!("{prefix}/events/{{eventID:.+}}"),
                web::get().to(get_event),
            )
            .route(
                &format!("{prefix}/epcs/{{fixed:.+}}/events"),
                web::get().to(by_epc),
            )
            .route(
                &format!("{prefix}/bizSteps/{{fixed:.+}}/events"),
                web::get().to(by_biz_step),
            )
            .route(
                &format!("{prefix}/bizLocations/{{fixed:.+}}/events"),
                web::get().to(by_biz_location),
            )
            .route(
                &format!("{prefix}/readPoints/{{fixed:.+}}/events"),
                web::get().to(by_read_point),
            )
            .route(
                &format!("{prefix}/dispositions/{{fixed:.+}}/events"),
                web::get().to(by_disposition),
            )
            .route(
                &format!("{prefix}/eventTypes/{{fixed:.+}}/events"),
                web::get().to(by_event_type),
            )
            .route(&format!("{prefix}/queries"), web::get().to(list_queries))
            .route(&format!("{prefix}/queries"), web::post().to(create_query))
            .route(
                &format!("{prefix}/queries/{{name}}"),
                web::get().to(get_query),
            )
            .route(
                &format!("{prefix}/queries/{{name}}"),
                web::delete().to(delete_query),
            )
            .route(
                &format!("{prefix}/queries/{{name}}/events"),
                web::get().to(query_events),
            );
    }
}

/// The most a named query's definition may take.
const MAX_QUERY_BYTES: usize = 64 * 1024;

/// A named query as the REST binding writes one.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryDefinition {
    /// 1 to 64 letters, digits, '_', '-' or '.'.
    name: String,
    /// SimpleEventQuery parameters: name to a list of strings, a string, a
    /// number or a boolean.
    #[schema(value_type = Object)]
    query: serde_json::Map<String, serde_json::Value>,
}

fn definition(q: &readstate::queries::NamedQuery) -> serde_json::Value {
    serde_json::json!({ "name": q.name, "query": q.query })
}

/// Makes a named query: a view on the events, run at
/// `/queries/{name}/events` for whoever asks, with what they may see. A
/// partner's queries are its organisation's own.
#[utoipa::path(post, path = "/queries", request_body = QueryDefinition,
    responses((status = 201, description = "Made; `Location: /queries/{name}`"),
        (status = 400, description = "A bad name or parameter, named"), (status = 401, description = "No token"),
        (status = 409, description = "A query of that name exists")),
    security(("bearer" = [])))]
pub(crate) async fn create_query(
    state: web::Data<ReadState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Epcis> {
    let who = state.tokens.authenticate_request(&req)?;
    let body = api::body::read_body(&req, payload, MAX_QUERY_BYTES).await?;
    let d: QueryDefinition = api::body::json_body(&body)?;
    let q = state.queries.create(&who, &d.name, d.query)?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/queries/{}", q.name)))
        .insert_header(("GS1-EPCIS-Version", api::discovery::EPCIS_VERSION))
        .json(definition(&q)))
}

/// The named queries the caller may see.
#[utoipa::path(get, path = "/queries",
    responses((status = 200, description = "A list of {name, query}"), (status = 401, description = "No token")),
    security(("bearer" = [])))]
pub(crate) async fn list_queries(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, Epcis> {
    QueryParams::parse(&req, &[])?;
    let who = state.tokens.authenticate_request(&req)?;
    let list: Vec<serde_json::Value> = state.queries.list(&who).iter().map(definition).collect();
    Ok(described(list))
}

/// A named query's definition.
#[utoipa::path(get, path = "/queries/{name}", params(("name" = String, Path)),
    responses((status = 200, description = "{name, query}"), (status = 404, description = "No such query the caller may see")),
    security(("bearer" = [])))]
pub(crate) async fn get_query(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, Epcis> {
    QueryParams::parse(&req, &[])?;
    let who = state.tokens.authenticate_request(&req)?;
    let q = state.queries.get(&who, &path_id(&req, "name"))?;
    Ok(described(definition(&q)))
}

/// Removes a named query, and every subscription to it.
#[utoipa::path(delete, path = "/queries/{name}", params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such query the caller may see")),
    security(("bearer" = [])))]
pub(crate) async fn delete_query(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, Epcis> {
    let who = state.tokens.authenticate_request(&req)?;
    let name = path_id(&req, "name");
    state.queries.delete(&who, &name)?;
    // The REST binding: deleting a query ends its subscriptions.
    state.subscriptions.delete_query(&name)?;
    Ok(HttpResponse::NoContent().finish())
}

/// A named query's events, for the caller: what it may see of them, paged
/// as `GET /events` pages. With `Upgrade: websocket` (and `stream=true`, or
/// a schedule's `second`, `minute`, `hour`, `dayOfMonth`, `month`,
/// `dayOfWeek`; `reportIfEmpty`, `initialRecordTime`), a subscription over
/// the WebSocket: each run's events as EPCISQueryDocument messages.
#[utoipa::path(get, path = "/queries/{name}/events", params(("name" = String, Path),
        ("perPage" = Option<u64>, Query), ("nextPageToken" = Option<String>, Query)),
    responses((status = 200, description = "EPCISQueryDocument; `Link: <…>; rel=\"next\"` when more pages follow"),
        (status = 101, description = "A WebSocket subscription"),
        (status = 404, description = "No such query the caller may see")),
    security(("bearer" = [])))]
pub(crate) async fn query_events(
    state: web::Data<ReadState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Epcis> {
    if crate::subscriptions::is_upgrade(&req) {
        return crate::subscriptions::socket(state, req, payload).await;
    }
    let who = state.tokens.authenticate_request(&req)?;
    let q = state.queries.get(&who, &path_id(&req, "name"))?;
    let params = readstate::queries::params_of(&q.query)?;
    run(&state, &req, &params, true).await
}

/// A 200 with a JSON description (of queries, of subscriptions), in the
/// EPCIS version the interface speaks.
pub(crate) fn described(body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("GS1-EPCIS-Version", api::discovery::EPCIS_VERSION))
        .json(body)
}

pub(crate) fn query_error(e: QueryError) -> ApiError {
    if e.too_large {
        ApiError::QueryTooLarge(e.message)
    } else {
        ApiError::InvalidParameter {
            name: e.parameter,
            message: e.message,
        }
    }
}

/// Who may see what: `None` for everything.
fn visible_to(state: &ReadState, req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let who = state.tokens.authenticate_request(req)?;
    Ok(match who.role {
        Role::Investigator | Role::Operator => None,
        Role::Partner => Some(who.org),
    })
}

pub(crate) fn query_document(events: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld", {"coldtrail": readstate::view::NAMESPACE}],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "epcisBody": {"queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": events}}}
    })
}

/// How EPCs are written in an answer (the REST binding's `GS1-EPC-Format`
/// request header).
///
/// Deliberately unlike the binding, an answer without the header keeps
/// every event as captured (`Never_Translates`) rather than rewriting EPC
/// URNs as Digital Links: an event is the ledger's signed record, and a
/// client checks it against its entry (`coldtrail:entry`) byte for byte.
/// `Always_GS1_Digital_Link` rewrites EPC URNs of GS1 keys as canonical
/// Digital Links. `Always_EPC_URN` is served only when every EPC of the
/// answer is a URN already: writing a Digital Link as a URN needs its GS1
/// Company Prefix's length, which a Digital Link does not carry (406).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpcFormat {
    AsCaptured,
    DigitalLink,
    Urn,
}

/// The fields of an EPCIS 2.0 event that hold EPCs (or EPC classes and
/// locations), as (list, field within each item; `None`: the list's items
/// are the EPCs themselves).
const EPC_FIELDS: &[(&str, Option<&str>)] = &[
    ("epcList", None),
    ("childEPCs", None),
    ("inputEPCList", None),
    ("outputEPCList", None),
    ("quantityList", Some("epcClass")),
    ("childQuantityList", Some("epcClass")),
    ("inputQuantityList", Some("epcClass")),
    ("outputQuantityList", Some("epcClass")),
    ("sourceList", Some("source")),
    ("destinationList", Some("destination")),
];

impl EpcFormat {
    /// The format a request asks for.
    pub(crate) fn of(req: &HttpRequest) -> Result<EpcFormat, ApiError> {
        let Some(v) = req.headers().get("GS1-EPC-Format") else {
            return Ok(EpcFormat::AsCaptured);
        };
        match v.to_str().unwrap_or("").trim() {
            "Never_Translates" | "No_Preference" => Ok(EpcFormat::AsCaptured),
            "Always_GS1_Digital_Link" => Ok(EpcFormat::DigitalLink),
            "Always_EPC_URN" => Ok(EpcFormat::Urn),
            other => Err(ApiError::InvalidParameter {
                name: "GS1-EPC-Format".into(),
                message: format!("{other:?}: give No_Preference, Always_GS1_Digital_Link, Always_EPC_URN or Never_Translates"),
            }),
        }
    }

    /// The value the answer's `GS1-EPC-Format` header announces.
    fn header(self) -> &'static str {
        match self {
            EpcFormat::AsCaptured => "Never_Translates",
            EpcFormat::DigitalLink => "Always_GS1_Digital_Link",
            EpcFormat::Urn => "Always_EPC_URN",
        }
    }

    /// Writes `event`'s EPCs in this format.
    pub(crate) fn apply(self, event: &mut serde_json::Value) -> Result<(), ApiError> {
        if self == EpcFormat::AsCaptured {
            return Ok(());
        }
        let mut failed = None;
        let mut rewrite = |v: &mut serde_json::Value| {
            let Some(id) = v.as_str() else { return };
            match self {
                EpcFormat::DigitalLink => {
                    if let Ok(Some(link)) = gs1::from_epc_urn(id) {
                        *v = link.canonical().into();
                    }
                }
                _ => {
                    if !gs1::is_epc_urn(id) && gs1::DigitalLink::parse(id).is_ok() {
                        failed.get_or_insert_with(|| id.to_string());
                    }
                }
            }
        };
        for place in ["readPoint", "bizLocation"] {
            if let Some(id) = event.get_mut(place).and_then(|p| p.get_mut("id")) {
                rewrite(id);
            }
        }
        if let Some(parent) = event.get_mut("parentID") {
            rewrite(parent);
        }
        for (list, field) in EPC_FIELDS {
            let Some(items) = event.get_mut(*list).and_then(|l| l.as_array_mut()) else {
                continue;
            };
            for item in items {
                match field {
                    None => rewrite(item),
                    Some(f) => {
                        if let Some(v) = item.get_mut(*f) {
                            rewrite(v)
                        }
                    }
                }
            }
        }
        match failed {
            None => Ok(()),
            Some(id) => Err(ApiError::NotAcceptable(format!(
                "{id} was captured as a Digital Link, and writing it as an EPC URN needs its GS1 Company Prefix's length, which this node does not know; ask with GS1-EPC-Format: Never_Translates (as captured) or Always_GS1_Digital_Link"
            ))),
        }
    }
}

/// The events at `ats` as captured, each naming its entry, with its
/// record time (a head covering it is waited for where none does yet).
pub(crate) async fn documents(
    state: &ReadState,
    ats: &[At],
) -> Result<Vec<serde_json::Value>, ApiError> {
    state.reads.cover(ats).await?;
    state.reads.event_documents(ats)
}

fn answer(doc: serde_json::Value, link: Option<String>, format: EpcFormat) -> HttpResponse {
    let mut r = HttpResponse::Ok();
    r.content_type("application/ld+json")
        .insert_header(("GS1-EPCIS-Version", api::discovery::EPCIS_VERSION))
        .insert_header(("GS1-CBV-Version", api::discovery::EPCIS_VERSION))
        .insert_header(("GS1-EPC-Format", format.header()));
    if let Some(l) = link {
        r.insert_header((header::LINK, l));
    }
    r.json(doc)
}

/// Runs a query given as parameters (plus those a resource fixes: one its
/// path names, or a named query's) and answers one page. With `fixed_only`
/// the request may give only `perPage` and `nextPageToken`.
async fn run(
    state: &ReadState,
    req: &HttpRequest,
    fixed: &[(String, String)],
    fixed_only: bool,
) -> Result<HttpResponse, Epcis> {
    let visible = visible_to(state, req)?;
    let format = EpcFormat::of(req)?;
    state.fresh().await?;
    let params = QueryParams::parse_any(req)?;
    let mut per_page = DEFAULT_PER_PAGE;
    let mut token = None;
    let mut query_params: Vec<(String, String)> = Vec::new();
    for (name, value) in params.pairs() {
        match name.as_str() {
            "perPage" => {
                per_page = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PER_PAGE).contains(n))
                    .ok_or_else(|| ApiError::InvalidParameter {
                        name: "perPage".into(),
                        message: format!("{value:?}: give a number from 1 to {MAX_PER_PAGE}"),
                    })?
            }
            "nextPageToken" => token = Some(value.clone()),
            _ if fixed_only => {
                return Err(ApiError::InvalidParameter {
                    name: name.clone(),
                    message: "a named query's parameters are its own; give only perPage and nextPageToken, or POST /queries a new one".into(),
                }
                .into())
            }
            // The older single-event lookup.
            "eventID" => query_params.push(("EQ_eventID".into(), value.clone())),
            _ => query_params.push((name.clone(), value.clone())),
        }
    }
    query_params.extend(fixed.iter().cloned());
    let mut q = EventQuery::from_params(&query_params).map_err(query_error)?;
    q.visible_to = visible;
    let (from, to) = q.record_times();
    if from.is_some() || to.is_some() {
        q.record_window = Some(state.reads.record_window(from, to)?);
    }
    let after = token
        .as_deref()
        .map(|t| parse_token(&q, t))
        .transpose()
        .map_err(query_error)?;
    let read = |at: &At| state.reads.event_document(at.shard, at.index).ok();
    let page = state
        .lineage
        .read()
        .expect("lineage lock")
        .query_reading(&q, after, per_page, Some(&read))
        .map_err(query_error)?;
    let mut events = documents(state, &page.events).await?;
    for e in &mut events {
        format.apply(e)?;
    }
    let link = page.next.map(|c| {
        let mut qs: Vec<String> = params
            .pairs()
            .iter()
            .filter(|(n, _)| n != "nextPageToken")
            .map(|(n, v)| format!("{}={}", percent_encode(n), percent_encode(v)))
            .collect();
        qs.push(format!(
            "nextPageToken={}",
            percent_encode(&page_token(&q, c))
        ));
        format!("<{}?{}>; rel=\"next\"", req.path(), qs.join("&"))
    });
    Ok(answer(query_document(events), link, format))
}

/// SimpleEventQuery over every captured event the caller may see, with the
/// REST binding's parameters: list values pipe-delimited (`EQ_bizStep=
/// shipping|receiving`) or the parameter repeated. From the graph's indexes:
/// eventType, GE_/LT_eventTime, EQ_action, EQ_bizStep, EQ_disposition,
/// EQ_/WD_readPoint, EQ_/WD_bizLocation, the MATCH_ family, EQ_/GT_/GE_/
/// LT_/LE_quantity, EQ_eventID, EXISTS_errorDeclaration. From the captured
/// event: EQ_transformationID, EQ_persistentDisposition_set/_unset,
/// EQ_errorReason, EQ_correctiveEventID, GE_/LT_errorDeclarationTime,
/// `EQ_source_{type}`, `EQ_destination_{type}`, `EQ_bizTransaction_{type}`,
/// and the sensor parameters, which one reading must meet together:
/// EXISTS_sensorElement, GE_/LT_time, GE_/LT_startTime, GE_/LT_endTime,
/// EQ_type, EQ_deviceID, EQ_dataProcessingMethod, EQ_microorganism,
/// EQ_chemicalSubstance, EQ_bizRules, EQ_stringValue, EQ_hexBinaryValue,
/// EQ_uriValue, EQ_booleanValue, and `{EQ|GT|GE|LT|LE}_{field}[_{uom}]` for
/// value, minValue, maxValue, meanValue, sDev, percRank, percValue (compared
/// across units of one dimension: `GE_value_KEL` matches a report in CEL).
/// Extension fields by their full IRI, whatever prefix the event's context
/// gave them: `EQ_|GT_|GE_|LT_|LE_|EXISTS_` then `[INNER_]`, an optional
/// element (`ILMD_`, `readPoint_`, `bizLocation_`, `ERROR_DECLARATION_`,
/// `SENSORELEMENT_`, `SENSORMETADATA_`, `SENSORREPORT_`) and the IRI.
/// Record times: GE_/LT_recordTime, an event's record time being the time
/// of the first signed head of its log that covers its entry (each answer's
/// `recordTime`). Ordering and limits: orderBy (eventTime from the
/// indexes; recordTime or an extension field's full IRI by reading and
/// sorting every match), orderDirection, eventCountLimit, maxEventCount;
/// paging: `perPage`, `nextPageToken`.
#[utoipa::path(get, path = "/events",
    params(
        ("eventType" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false, description = "Event types, pipe-delimited"),
        ("GE_eventTime" = Option<String>, Query), ("LT_eventTime" = Option<String>, Query),
        ("GE_recordTime" = Option<String>, Query), ("LT_recordTime" = Option<String>, Query),
        ("EQ_action" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_bizStep" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_disposition" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_persistentDisposition_set" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_persistentDisposition_unset" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_readPoint" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("WD_readPoint" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_bizLocation" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("WD_bizLocation" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_transformationID" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("MATCH_epc" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("MATCH_parentID" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("MATCH_inputEPC" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("MATCH_outputEPC" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("MATCH_anyEPC" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("MATCH_epcClass" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("MATCH_inputEPCClass" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("MATCH_outputEPCClass" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("MATCH_anyEPCClass" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_quantity" = Option<f64>, Query), ("GT_quantity" = Option<f64>, Query),
        ("GE_quantity" = Option<f64>, Query), ("LT_quantity" = Option<f64>, Query),
        ("LE_quantity" = Option<f64>, Query),
        ("EQ_eventID" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EXISTS_errorDeclaration" = Option<String>, Query),
        ("GE_errorDeclarationTime" = Option<String>, Query), ("LT_errorDeclarationTime" = Option<String>, Query),
        ("EQ_errorReason" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_correctiveEventID" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EXISTS_sensorElement" = Option<String>, Query),
        ("GE_time" = Option<String>, Query), ("LT_time" = Option<String>, Query),
        ("GE_startTime" = Option<String>, Query), ("LT_startTime" = Option<String>, Query),
        ("GE_endTime" = Option<String>, Query), ("LT_endTime" = Option<String>, Query),
        ("EQ_type" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_deviceID" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_dataProcessingMethod" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_microorganism" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_chemicalSubstance" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_bizRules" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_stringValue" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_hexBinaryValue" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_uriValue" = Option<Vec<String>>, Query, style = PipeDelimited, explode = false),
        ("EQ_booleanValue" = Option<bool>, Query),
        ("orderBy" = Option<String>, Query),
        ("orderDirection" = Option<String>, Query), ("eventCountLimit" = Option<u64>, Query),
        ("maxEventCount" = Option<u64>, Query), ("perPage" = Option<u64>, Query),
        ("nextPageToken" = Option<String>, Query),
        ("GS1-EPC-Format" = Option<String>, Header, description = "Never_Translates or No_Preference (the default here: as captured), Always_GS1_Digital_Link, or Always_EPC_URN (406 where an EPC was captured as a Digital Link)")),
    responses((status = 200, description = "EPCISQueryDocument; `Link: <…>; rel=\"next\"` when more pages follow"),
        (status = 400, description = "A bad parameter, named"), (status = 401, description = "No token"),
        (status = 413, description = "More events than maxEventCount")),
    security(("bearer" = [])))]
pub(crate) async fn get_events(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, Epcis> {
    run(&state, &req, &[], false).await
}

/// One event by its eventID (and any corrections of it).
#[utoipa::path(get, path = "/events/{eventID}", params(("eventID" = String, Path)),
    responses((status = 200, description = "EPCISQueryDocument"), (status = 404, description = "Never captured, or not visible to the caller")),
    security(("bearer" = [])))]
pub(crate) async fn get_event(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, Epcis> {
    QueryParams::parse(&req, &[])?;
    let id = path_id(&req, "eventID");
    let visible = visible_to(&state, &req)?;
    let format = EpcFormat::of(&req)?;
    state.fresh().await?;
    let mut q =
        EventQuery::from_params(&[("EQ_eventID".into(), id.clone())]).map_err(query_error)?;
    q.visible_to = visible;
    let page = state
        .lineage
        .read()
        .expect("lineage lock")
        .query(&q, None, MAX_PER_PAGE)
        .map_err(query_error)?;
    if page.events.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no event with eventID {id:?} that you may see was captured"
        ))
        .into());
    }
    let mut events = documents(&state, &page.events).await?;
    for e in &mut events {
        format.apply(e)?;
    }
    Ok(answer(query_document(events), None, format))
}

/// A path segment holding an identifier, fully percent-decoded (the router
/// leaves reserved characters such as `%2F` encoded).
pub(crate) fn path_id(req: &HttpRequest, name: &str) -> String {
    let raw = req.match_info().get(name).unwrap_or("");
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

fn fixed(req: &HttpRequest) -> String {
    path_id(req, "fixed")
}

/// Events about an EPC (instance) or EPC class (lot), in any role.
#[utoipa::path(get, path = "/epcs/{epc}/events", params(("epc" = String, Path)),
    responses((status = 200, description = "EPCISQueryDocument")), security(("bearer" = [])))]
pub(crate) async fn by_epc(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, Epcis> {
    let epc = fixed(&req);
    let class =
        epc.starts_with("urn:epc:class:") || (epc.contains("/10/") && !epc.contains("/21/"));
    let name = if class {
        "MATCH_anyEPCClass"
    } else {
        "MATCH_anyEPC"
    };
    run(&state, &req, &[(name.to_string(), epc)], false).await
}

macro_rules! fixed_resource {
    ($fn:ident, $path:literal, $param:literal, $what:literal) => {
        #[doc = concat!("Events with this ", $what, ".")]
        #[utoipa::path(get, path = $path, params(("value" = String, Path)),
            responses((status = 200, description = "EPCISQueryDocument")), security(("bearer" = [])))]
        pub(crate) async fn $fn(state: web::Data<ReadState>, req: HttpRequest) -> Result<HttpResponse, Epcis> {
            run(&state, &req, &[($param.to_string(), fixed(&req))], false).await
        }
    };
}

fixed_resource!(
    by_biz_step,
    "/bizSteps/{value}/events",
    "EQ_bizStep",
    "business step"
);
fixed_resource!(
    by_biz_location,
    "/bizLocations/{value}/events",
    "EQ_bizLocation",
    "business location"
);
fixed_resource!(
    by_read_point,
    "/readPoints/{value}/events",
    "EQ_readPoint",
    "read point"
);
fixed_resource!(
    by_disposition,
    "/dispositions/{value}/events",
    "EQ_disposition",
    "disposition"
);
fixed_resource!(
    by_event_type,
    "/eventTypes/{value}/events",
    "eventType",
    "event type"
);
