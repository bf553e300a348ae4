//! HTTP handlers: parse, authorise, call one library function, map the result.

use std::sync::Arc;

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::wire::{self, BatchesJson, BINARY_BATCH};
use crate::write::Ingest;
use api::body::media_type;
use api::idempotency::Attempt;
use api::problem::ApiError;
use api::{EntryRefJson, WriteResult, Written};

/// Registers the write API on an actix-web app.
pub fn configure(ingest: Arc<Ingest>) -> impl FnOnce(&mut ServiceConfig) {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::from(ingest))
            .route("/v1/batches", web::post().to(post_batches))
            .route("/v1/devices", web::post().to(post_device))
            .route("/v1/devices/{device}", web::get().to(get_device))
            .route("/v1/devices/{device}/rotate", web::post().to(post_rotate))
            .route("/v1/devices/{device}/revoke", web::post().to(post_revoke))
            .route(
                "/v1/devices/{device}/reinstate",
                web::post().to(post_reinstate),
            )
            .route("/v1/quarantine/release", web::post().to(post_release))
            .route("/v1/locations/delegations", web::post().to(post_delegate))
            .route(
                "/v1/locations/delegations/withdraw",
                web::post().to(post_withdraw),
            )
            .route("/v1/capture", web::post().to(post_capture))
            .route("/capture", web::post().to(post_capture))
            .route(
                "/v1/capture",
                web::method(actix_web::http::Method::OPTIONS)
                    .to(|| async { api::discovery::discovery("POST, OPTIONS") }),
            )
            .route(
                "/capture",
                web::method(actix_web::http::Method::OPTIONS)
                    .to(|| async { api::discovery::discovery("POST, OPTIONS") }),
            )
            .route("/v1/capture/{id}", web::get().to(get_capture))
            .route("/capture/{id}", web::get().to(get_capture));
    }
}

/// The answer for any path no route takes.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoSuchRoute(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}

/// Runs every write (POST) to its end even when the caller hangs up: the
/// HTTP server drops a handler's future when its client disconnects, which
/// could cut a write off between its commit and the record of its answer
/// (an idempotent retry would then be refused instead of answered). The
/// write runs as a task of its own; only waiting for it is dropped.
pub async fn detach_writes(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    if req.method() != actix_web::http::Method::POST {
        return next.call(req).await;
    }
    actix_web::rt::spawn(next.call(req)).await.map_err(|e| {
        actix_web::error::ErrorInternalServerError(format!("the write task failed: {e}"))
    })?
}

/// The `{device}` of a device route's path.
fn device_param(req: &HttpRequest) -> String {
    req.match_info().get("device").unwrap_or("").to_string()
}

/// Submit signed device batches (JSON or the binary form).
#[utoipa::path(
    post,
    path = "/v1/batches",
    request_body(content(
        (BatchesJson = "application/json"),
        (Vec<u8> = "application/vnd.coldtrail.batch")
    )),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key returns the first answer")),
    responses(
        (status = 201, description = "Durably committed", body = WriteResult),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "Missing or bad token"),
        (status = 403, description = "Device of another organisation"),
        (status = 404, description = "Unknown device"),
        (status = 409, description = "Replayed sequence or reused idempotency key"),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Unsupported content type"),
        (status = 422, description = "Bad signature, revoked key, clock in the future"),
        (status = 429, description = "Too many requests in flight"),
        (status = 503, description = "The ledger cannot accept writes")
    ),
    security(("bearer" = []))
)]
async fn post_batches(
    ingest: web::Data<Ingest>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let content_type = media_type(&req);
    let binary = match content_type.as_str() {
        "application/json" => false,
        BINARY_BATCH => true,
        other => return Err(ApiError::UnsupportedMediaType(other.to_string())),
    };
    let ingest_ref = ingest.get_ref();
    ingest_ref
        .frame()
        .write(&req, payload, |who, body, attempt| async move {
            let batches = if binary {
                wire::decode_binary_encoded(&body)?
            } else {
                crate::write::encode_batches(wire::decode_json(&body)?)
            };
            match attempt {
                Attempt::First => ingest_ref.submit_encoded(&who, batches).await,
                Attempt::Again => ingest_ref.submit_encoded_again(&who, batches).await,
            }
        })
        .await
}

/// Capture an EPCIS 2.0 document (JSON / JSON-LD): ObjectEvent,
/// AggregationEvent, TransformationEvent, AssociationEvent, TransactionEvent.
#[utoipa::path(
    post,
    path = "/v1/capture",
    request_body(content = Object, content_type = "application/ld+json", description = "An EPCISDocument"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key returns the first answer")),
    responses(
        (status = 202, description = "Durably committed; Location names the capture job", body = WriteResult),
        (status = 400, description = "Not JSON, or not an EPCIS document"),
        (status = 409, description = "eventID already captured with other content"),
        (status = 422, description = "Unknown event type, invalid GTIN or identifier, bad time")
    ),
    security(("bearer" = []))
)]
async fn post_capture(
    ingest: web::Data<Ingest>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let content_type = media_type(&req);
    if content_type != "application/json" && content_type != "application/ld+json" {
        return Err(ApiError::UnsupportedMediaType(content_type));
    }
    let ingest_ref = ingest.get_ref();
    ingest_ref
        .frame()
        .write(&req, payload, |who, body, _| async move {
            let events = crate::epcis::parse_document(&body, &who.org)?;
            ingest_ref.capture(&who, events).await
        })
        .await
}

/// A capture job: it finished (capture answers once everything is durable).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaptureJob {
    #[serde(rename = "captureID")]
    pub capture_id: String,
    pub running: bool,
    pub success: bool,
    pub capture_error_behaviour: String,
    pub errors: Vec<String>,
    pub result: WriteResult,
}

/// The status of a capture job (remembered for the most recent captures),
/// for the organisation that captured it, investigators and the operator.
#[utoipa::path(get, path = "/v1/capture/{id}", params(("id" = String, Path)),
    responses((status = 200, body = CaptureJob), (status = 401, description = "No token"),
        (status = 404, description = "Unknown or forgotten job, or another organisation's")),
    security(("bearer" = [])))]
async fn get_capture(
    ingest: web::Data<Ingest>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let who = ingest.tokens().authenticate_request(&req)?;
    let id = req.match_info().get("id").unwrap_or("");
    let result = ingest.capture_job_for(&who, id)?;
    Ok(HttpResponse::Ok().json(CaptureJob {
        capture_id: id.to_string(),
        running: false,
        success: true,
        capture_error_behaviour: "rollback".into(),
        errors: Vec::new(),
        result,
    }))
}

/// A device and its public key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterDevice {
    pub device: String,
    /// A `did:key` or 64 hex digits.
    pub public_key: String,
    /// From when (Unix ms) the key signs readings; readings older than this
    /// are refused with `reading_before_activation`. Default: the time of
    /// the registration. Give the logger's deployment time to upload a
    /// backlog recorded before it was registered.
    #[serde(default)]
    pub active_from_ms: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    pub public_key: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    pub reason: String,
}

/// Why a suspended device may write again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reinstate {
    pub reason: String,
}

/// Which quarantined lot is released, and why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The lot as the quarantine names it (an EPC class URN or Digital Link URI).
    pub lot: String,
    pub reason: String,
}

fn parse_key(s: &str) -> Result<ed25519_dalek::VerifyingKey, ApiError> {
    if let Some(k) = ledger::keys::parse_did_key(s) {
        return Ok(k);
    }
    let bytes: [u8; 32] = hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            ApiError::InvalidBody("public_key must be a did:key or 64 hex digits".into())
        })?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| ApiError::InvalidBody("public_key is not a valid ed25519 key".into()))
}

/// Register a device of the caller's organisation.
#[utoipa::path(post, path = "/v1/devices", request_body = RegisterDevice,
    responses((status = 201, body = WriteResult), (status = 409, description = "Already registered")),
    security(("bearer" = [])))]
async fn post_device(
    ingest: web::Data<Ingest>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ingest = ingest.get_ref();
    ingest
        .frame()
        .json::<RegisterDevice, _, _>(&req, payload, |who, r, attempt| async move {
            ingest
                .register_device(
                    &who,
                    &r.device,
                    parse_key(&r.public_key)?,
                    r.active_from_ms,
                    attempt,
                )
                .await
        })
        .await
}

/// Rotate a device's key.
#[utoipa::path(post, path = "/v1/devices/{device}/rotate", request_body = RotateKey,
    params(("device" = String, Path)), responses((status = 201, body = WriteResult)), security(("bearer" = [])))]
async fn post_rotate(
    ingest: web::Data<Ingest>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let device = device_param(&req);
    let ingest = ingest.get_ref();
    ingest
        .frame()
        .json::<RotateKey, _, _>(&req, payload, |who, r, attempt| async move {
            ingest
                .rotate_key(&who, &device, parse_key(&r.public_key)?, attempt)
                .await
        })
        .await
}

/// Revoke a device.
#[utoipa::path(post, path = "/v1/devices/{device}/revoke", request_body = Revoke,
    params(("device" = String, Path)), responses((status = 201, body = WriteResult)), security(("bearer" = [])))]
async fn post_revoke(
    ingest: web::Data<Ingest>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let device = device_param(&req);
    let ingest = ingest.get_ref();
    ingest
        .frame()
        .json::<Revoke, _, _>(&req, payload, |who, r, attempt| async move {
            ingest
                .revoke_device(&who, &device, &r.reason, attempt)
                .await
        })
        .await
}

/// Reinstate a device the rules suspended for impossible data (its owner, once it is fixed).
#[utoipa::path(post, path = "/v1/devices/{device}/reinstate", request_body = Reinstate,
    params(("device" = String, Path)), responses((status = 201, body = WriteResult), (status = 409, description = "The device is not suspended")), security(("bearer" = [])))]
async fn post_reinstate(
    ingest: web::Data<Ingest>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let device = device_param(&req);
    let ingest = ingest.get_ref();
    ingest
        .frame()
        .json::<Reinstate, _, _>(&req, payload, |who, r, attempt| async move {
            ingest
                .reinstate_device(&who, &device, &r.reason, attempt)
                .await
        })
        .await
}

/// Release a lot from quarantine (investigator or operator tokens).
#[utoipa::path(post, path = "/v1/quarantine/release", request_body = Release,
    responses((status = 201, body = WriteResult), (status = 403, description = "Partner tokens cannot release"), (status = 409, description = "The lot is not in quarantine")), security(("bearer" = [])))]
async fn post_release(
    ingest: web::Data<Ingest>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ingest = ingest.get_ref();
    ingest
        .frame()
        .json::<Release, _, _>(&req, payload, |who, r, attempt| async move {
            ingest.release_lot(&who, &r.lot, &r.reason, attempt).await
        })
        .await
}

/// A location of the caller's organisation and the organisation it is
/// delegated to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Delegation {
    /// A GLN or an SGLN under it (EPC URN or Digital Link): the whole GLN, or
    /// one place at it (a dock).
    pub location: String,
    /// The organisation that may record events there (its GLN or PGLN).
    pub to: String,
}

/// Let another organisation record events at one of your locations (a
/// carrier at your dock). Capture refuses events at a location of another
/// organisation that has not delegated it (`location_not_yours`).
#[utoipa::path(post, path = "/v1/locations/delegations", request_body = Delegation,
    responses((status = 201, body = WriteResult, description = "Recorded (or already in force: its entry)"), (status = 403, description = "Not a location of the caller's organisation"),
        (status = 404, description = "No such organisation to delegate to")), security(("bearer" = [])))]
async fn post_delegate(
    ingest: web::Data<Ingest>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ingest = ingest.get_ref();
    ingest
        .frame()
        .json::<Delegation, _, _>(&req, payload, |who, d, _| async move {
            ingest
                .delegate_location(&who, &d.location, &d.to, false)
                .await
        })
        .await
}

/// Withdraw a delegation: from now on the organisation records no events at
/// the location.
#[utoipa::path(post, path = "/v1/locations/delegations/withdraw", request_body = Delegation,
    responses((status = 201, body = WriteResult), (status = 403, description = "Not a location of the caller's organisation"),
        (status = 404, description = "No such delegation in force")), security(("bearer" = [])))]
async fn post_withdraw(
    ingest: web::Data<Ingest>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ingest = ingest.get_ref();
    ingest
        .frame()
        .json::<Delegation, _, _>(&req, payload, |who, d, _| async move {
            ingest
                .delegate_location(&who, &d.location, &d.to, true)
                .await
        })
        .await
}

/// One of a device's keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceKeyJson {
    /// Signs readings taken from this time on (the first key also covers earlier ones).
    pub valid_from_ms: i64,
    pub public_key: String,
    /// The same key as a W3C `did:key`.
    pub did: String,
}

/// A device as the ledger's identity entries define it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceJson {
    pub device: String,
    pub org: String,
    pub keys: Vec<DeviceKeyJson>,
    pub revoked_at_ms: Option<i64>,
    /// The sequence number its next batch must start at.
    pub next_seq: u64,
    /// Why the rules suspended it (its batches are refused until reinstated).
    pub suspended: Option<String>,
    /// The ledger entries this answer rests on.
    pub entries: Vec<EntryRefJson>,
}

/// A device of the caller's organisation: keys, revocation, next sequence number.
#[utoipa::path(get, path = "/v1/devices/{device}", params(("device" = String, Path)),
    responses((status = 200, body = DeviceJson), (status = 404, description = "Unknown device")), security(("bearer" = [])))]
async fn get_device(ingest: web::Data<Ingest>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let who = ingest.tokens().authenticate_request(&req)?;
    let device = req.match_info().get("device").unwrap_or("");
    let id = ingest.identity.read().expect("identity lock");
    let d = id.device_of(&who.org, device)?;
    Ok(HttpResponse::Ok().json(DeviceJson {
        device: device.to_string(),
        org: d.org.clone(),
        keys: d
            .keys
            .iter()
            .map(|(from, k)| DeviceKeyJson {
                valid_from_ms: *from,
                public_key: hex::encode(k.as_bytes()),
                did: ledger::keys::did_key(k),
            })
            .collect(),
        revoked_at_ms: d.revoked_at_ms,
        next_seq: d.next_seq,
        suspended: d.suspended.clone(),
        entries: d.entries.iter().map(EntryRefJson::from).collect(),
    }))
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The write API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "coldtrail write API", description = "Signed cold-chain sensor batches, device identities and proofs. Every refusal is application/problem+json with a stable `code`."),
    paths(post_batches, post_device, get_device, post_rotate, post_revoke, post_reinstate, post_release, post_delegate, post_withdraw, post_capture, get_capture),
    components(schemas(BatchesJson, wire::BatchJson, wire::ReadingJson, WriteResult, Written, RegisterDevice, RotateKey, Revoke, Reinstate, Release, Delegation, EntryRefJson, CaptureJob, DeviceJson, DeviceKeyJson)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The write API's half of the node's OpenAPI document (the read edge adds
/// its own and serves the whole).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    // The EPCIS 2.0 REST binding names capture `/capture` (relative to the
    // EPCIS base); both spellings are served, so both are documented, each
    // operation under its own id.
    for (alias, path) in [
        ("/capture", "/v1/capture"),
        ("/capture/{id}", "/v1/capture/{id}"),
    ] {
        let Some(mut item) = doc.paths.paths.get(path).cloned() else {
            continue;
        };
        for op in [item.post.as_mut(), item.get.as_mut()]
            .into_iter()
            .flatten()
        {
            op.operation_id = op.operation_id.take().map(|id| format!("{id}_epcis"));
            op.description = Some(format!(
                "{} The EPCIS 2.0 REST binding's path for `{path}`: the same operation.",
                op.description.take().unwrap_or_default()
            ));
        }
        doc.paths.paths.insert(alias.to_string(), item);
    }
    doc
}
