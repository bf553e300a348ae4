//! Every refusal any HTTP surface of the node makes (the write API, the
//! read routes, GraphQL's `extensions.code`): a stable code, an HTTP status, and a
//! message that says what to fix, served as `application/problem+json`
//! (RFC 9457).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// A refusal. The `code` of each variant is part of the API: clients branch on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("the request needs `Authorization: Bearer <token>`; get a token with `coldtrail token issue`")]
    Unauthenticated,
    #[error("the bearer token is unknown or revoked; ask your operator for a new one")]
    BadToken,
    #[error("{0}")]
    Forbidden(String),
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the body does not match the expected shape: {0}")]
    InvalidBody(String),
    #[error(
        "unsupported content type {0:?}; send application/json or application/vnd.coldtrail.batch"
    )]
    UnsupportedMediaType(String),
    #[error("the body is sent with Content-Encoding {0:?}; this API reads bodies as they are: send it uncompressed, without a Content-Encoding header")]
    UnsupportedContentEncoding(String),
    #[error("the body is {got} bytes; the limit is {limit} bytes, split it into smaller requests")]
    PayloadTooLarge { got: usize, limit: usize },
    #[error("device {0:?} is not registered; register it with POST /v1/devices first")]
    UnknownDevice(String),
    #[error("device {device:?} belongs to another organisation than {org:?}")]
    WrongOrganisation { device: String, org: String },
    #[error("device {0:?} is already registered; rotate its key with POST /v1/devices/{{device}}/rotate")]
    DeviceExists(String),
    #[error("organisation {0:?} is not registered; an operator adds it with `coldtrail org add`")]
    UnknownOrganisation(String),
    #[error("the signature of batch {index} (device {device:?}) does not verify under the device key valid at {at_ms}; sign the canonical batch bytes with the device's current key")]
    BadSignature {
        index: usize,
        device: String,
        at_ms: i64,
    },
    #[error("device {device:?} key was revoked at {revoked_at_ms}; readings from {at_ms} cannot be accepted")]
    RevokedKey {
        device: String,
        revoked_at_ms: i64,
        at_ms: i64,
    },
    #[error("device {device:?} has a reading at {at_ms}, before its activation at {active_from_ms}: its key signs readings from then on; to upload a logger's backlog, register the device with an earlier active_from_ms")]
    BeforeActivation {
        device: String,
        at_ms: i64,
        active_from_ms: i64,
    },
    #[error("device {device:?} batch starts at sequence {got}, but {expected} is next: this batch (or part of it) was already accepted, or the device rewound")]
    ReplayedSequence {
        device: String,
        got: u64,
        expected: u64,
    },
    #[error("device {device:?} batch starts at sequence {got}, but {expected} is next: send the readings from {expected} first (a batch that skipped ahead would leave readings that could never arrive)")]
    SequenceGap {
        device: String,
        got: u64,
        expected: u64,
    },
    #[error("a reading is time-stamped {at_ms}, more than {slack_ms} ms ahead of the server clock ({now_ms}); fix the device clock")]
    ClockInFuture {
        at_ms: i64,
        now_ms: i64,
        slack_ms: i64,
    },
    #[error("invalid GTIN {0:?}: the check digit does not match")]
    InvalidGtin(String),
    #[error("unknown EPCIS event type {0:?}; use ObjectEvent, AggregationEvent, TransformationEvent, AssociationEvent or TransactionEvent")]
    UnknownEventType(String),
    #[error("invalid identifier {id:?}: {reason}")]
    InvalidIdentifier { id: String, reason: String },
    /// A resolver request whose path is not a GS1 Digital Link URI: the
    /// GS1-Conformant Resolver standard answers it 400.
    #[error("{path:?} is not a GS1 Digital Link URI: {reason}")]
    InvalidDigitalLink { path: String, reason: String },
    #[error("{0}")]
    InvalidEvent(String),
    #[error(
        "the Idempotency-Key {0:?} was used for a different request; use a new key for new content"
    )]
    IdempotencyKeyReused(String),
    #[error("an event with eventID {0:?} was already captured with other content; send a correction with an `errorDeclaration`, or use a new eventID")]
    DuplicateEvent(String),
    #[error("device {device:?} is suspended: {reason}. Fix the device, then its owner reinstates it with POST /v1/devices/{device}/reinstate")]
    DeviceSuspended { device: String, reason: String },
    #[error("device {0:?} is not suspended; there is nothing to reinstate")]
    NotSuspended(String),
    #[error("lot {0:?} is not in quarantine; there is nothing to release")]
    NotQuarantined(String),
    #[error("{org} records events only at its own locations: {location:?} ({field}) belongs to {owner}, which has not delegated it to {org}; record the event at a location of yours, or ask {owner} to delegate it (POST /v1/locations/delegations)")]
    LocationNotYours {
        org: String,
        location: String,
        field: String,
        owner: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("the query is too large: {0}")]
    QueryTooLarge(String),
    #[error(
        "the query nests {depth} levels deep; at most {limit} are allowed: ask for less at once"
    )]
    QueryTooDeep { depth: usize, limit: usize },
    #[error("the query's complexity is {complexity}; at most {limit} is allowed: ask for fewer fields or smaller pages (`first`)")]
    QueryTooComplex { complexity: usize, limit: usize },
    #[error("{0}")]
    InvalidQuery(String),
    #[error("the query ran longer than {0} ms and was stopped: narrow it (fewer lots, a shorter time range, a wider bucket)")]
    QueryTimeout(u64),
    #[error("recall {0} is closed; open a new one")]
    RecallClosed(String),
    #[error("a query named {0:?} exists already; delete it first or choose another name")]
    QueryExists(String),
    #[error("parameter `{name}`: {message}")]
    InvalidParameter { name: String, message: String },
    #[error("subscription `{field}`: {message}")]
    InvalidSubscription { field: String, message: String },
    #[error("{0}")]
    NotAcceptable(String),
    #[error("no {0}; the API is described at /v1/openapi.json")]
    NoSuchRoute(String),
    #[error("shard {shard} has no head signed at size {size}{}", match .next { Some(n) => format!("; the next signed size is {n}"), None => " or above yet".to_string() })]
    NoSignedHead {
        shard: u32,
        size: u64,
        next: Option<u64>,
    },
    #[error("the server is busy ({0}); retry after the Retry-After delay")]
    Overloaded(String),
    #[error("the ledger cannot accept writes: {0}")]
    Unavailable(String),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
    /// The request parameter at fault, for `invalid_parameter`.
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
}

impl ApiError {
    /// One refusal of each kind (details left empty): the codes a client
    /// can meet, for the API's documentation ([`document_problems`]).
    pub fn kinds() -> Vec<ApiError> {
        let s = String::new;
        vec![
            ApiError::Unauthenticated,
            ApiError::BadToken,
            ApiError::Forbidden(s()),
            ApiError::MalformedJson(s()),
            ApiError::InvalidBody(s()),
            ApiError::UnsupportedMediaType(s()),
            ApiError::UnsupportedContentEncoding(s()),
            ApiError::PayloadTooLarge { got: 0, limit: 0 },
            ApiError::UnknownDevice(s()),
            ApiError::WrongOrganisation {
                device: s(),
                org: s(),
            },
            ApiError::DeviceExists(s()),
            ApiError::UnknownOrganisation(s()),
            ApiError::BadSignature {
                index: 0,
                device: s(),
                at_ms: 0,
            },
            ApiError::RevokedKey {
                device: s(),
                revoked_at_ms: 0,
                at_ms: 0,
            },
            ApiError::BeforeActivation {
                device: s(),
                at_ms: 0,
                active_from_ms: 0,
            },
            ApiError::ReplayedSequence {
                device: s(),
                got: 0,
                expected: 0,
            },
            ApiError::SequenceGap {
                device: s(),
                got: 0,
                expected: 0,
            },
            ApiError::ClockInFuture {
                at_ms: 0,
                now_ms: 0,
                slack_ms: 0,
            },
            ApiError::InvalidGtin(s()),
            ApiError::UnknownEventType(s()),
            ApiError::InvalidIdentifier {
                id: s(),
                reason: s(),
            },
            ApiError::InvalidDigitalLink {
                path: s(),
                reason: s(),
            },
            ApiError::InvalidEvent(s()),
            ApiError::IdempotencyKeyReused(s()),
            ApiError::DuplicateEvent(s()),
            ApiError::DeviceSuspended {
                device: s(),
                reason: s(),
            },
            ApiError::NotSuspended(s()),
            ApiError::NotQuarantined(s()),
            ApiError::LocationNotYours {
                org: s(),
                location: s(),
                field: s(),
                owner: s(),
            },
            ApiError::NotFound(s()),
            ApiError::QueryTooLarge(s()),
            ApiError::QueryTooDeep { depth: 0, limit: 0 },
            ApiError::QueryTooComplex {
                complexity: 0,
                limit: 0,
            },
            ApiError::InvalidQuery(s()),
            ApiError::QueryTimeout(0),
            ApiError::RecallClosed(s()),
            ApiError::QueryExists(s()),
            ApiError::InvalidParameter {
                name: s(),
                message: s(),
            },
            ApiError::InvalidSubscription {
                field: s(),
                message: s(),
            },
            ApiError::NotAcceptable(s()),
            ApiError::NoSuchRoute(s()),
            ApiError::NoSignedHead {
                shard: 0,
                size: 0,
                next: None,
            },
            ApiError::Overloaded(s()),
            ApiError::Unavailable(s()),
        ]
    }

    /// The stable code, also the last part of the problem `type`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::BadToken => "bad_token",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::UnsupportedContentEncoding(_) => "unsupported_content_encoding",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnknownDevice(_) => "unknown_device",
            ApiError::WrongOrganisation { .. } => "wrong_organisation",
            ApiError::DeviceExists(_) => "device_exists",
            ApiError::UnknownOrganisation(_) => "unknown_organisation",
            ApiError::BadSignature { .. } => "bad_signature",
            ApiError::RevokedKey { .. } => "revoked_key",
            ApiError::BeforeActivation { .. } => "reading_before_activation",
            ApiError::ReplayedSequence { .. } => "replayed_sequence",
            ApiError::SequenceGap { .. } => "sequence_gap",
            ApiError::ClockInFuture { .. } => "clock_in_future",
            ApiError::InvalidGtin(_) => "invalid_gtin",
            ApiError::UnknownEventType(_) => "unknown_event_type",
            ApiError::InvalidIdentifier { .. } => "invalid_identifier",
            ApiError::InvalidDigitalLink { .. } => "invalid_digital_link",
            ApiError::InvalidEvent(_) => "invalid_event",
            ApiError::IdempotencyKeyReused(_) => "idempotency_key_reused",
            ApiError::DuplicateEvent(_) => "duplicate_event",
            ApiError::DeviceSuspended { .. } => "device_suspended",
            ApiError::NotSuspended(_) => "not_suspended",
            ApiError::LocationNotYours { .. } => "location_not_yours",
            ApiError::NotQuarantined(_) => "not_quarantined",
            ApiError::NotFound(_) => "not_found",
            ApiError::InvalidParameter { .. } => "invalid_parameter",
            ApiError::RecallClosed(_) => "recall_closed",
            ApiError::QueryExists(_) => "query_exists",
            ApiError::InvalidSubscription { .. } => "invalid_subscription",
            ApiError::NotAcceptable(_) => "not_acceptable",
            ApiError::QueryTooLarge(_) => "query_too_large",
            ApiError::QueryTooDeep { .. } => "query_too_deep",
            ApiError::QueryTooComplex { .. } => "query_too_complex",
            ApiError::QueryTimeout(_) => "query_timeout",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::NoSuchRoute(_) => "no_such_route",
            ApiError::NoSignedHead { .. } => "no_signed_head",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::Unavailable(_) => "unavailable",
        }
    }

    fn title(&self) -> &'static str {
        match self.status_code() {
            StatusCode::UNAUTHORIZED => "Unauthorized",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::NOT_FOUND => "Not Found",
            StatusCode::CONFLICT => "Conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "Payload Too Large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported Media Type",
            StatusCode::NOT_ACCEPTABLE => "Not Acceptable",
            StatusCode::UNPROCESSABLE_ENTITY => "Unprocessable Content",
            StatusCode::TOO_MANY_REQUESTS => "Too Many Requests",
            StatusCode::SERVICE_UNAVAILABLE => "Service Unavailable",
            _ => "Bad Request",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::BadToken => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_)
            | ApiError::WrongOrganisation { .. }
            | ApiError::LocationNotYours { .. }
            | ApiError::DeviceSuspended { .. } => StatusCode::FORBIDDEN,
            ApiError::MalformedJson(_)
            | ApiError::InvalidBody(_)
            | ApiError::InvalidParameter { .. }
            | ApiError::InvalidSubscription { .. }
            | ApiError::InvalidDigitalLink { .. }
            | ApiError::InvalidQuery(_)
            | ApiError::QueryTooDeep { .. }
            | ApiError::QueryTooComplex { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) | ApiError::UnsupportedContentEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::PayloadTooLarge { .. } | ApiError::QueryTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::NotFound(_)
            | ApiError::NoSuchRoute(_)
            | ApiError::NoSignedHead { .. }
            | ApiError::UnknownDevice(_)
            | ApiError::UnknownOrganisation(_) => StatusCode::NOT_FOUND,
            ApiError::DeviceExists(_)
            | ApiError::ReplayedSequence { .. }
            | ApiError::SequenceGap { .. }
            | ApiError::IdempotencyKeyReused(_)
            | ApiError::DuplicateEvent(_)
            | ApiError::NotSuspended(_)
            | ApiError::NotQuarantined(_)
            | ApiError::RecallClosed(_)
            | ApiError::QueryExists(_) => StatusCode::CONFLICT,
            ApiError::BadSignature { .. }
            | ApiError::RevokedKey { .. }
            | ApiError::BeforeActivation { .. }
            | ApiError::ClockInFuture { .. }
            | ApiError::InvalidGtin(_)
            | ApiError::UnknownEventType(_)
            | ApiError::InvalidIdentifier { .. }
            | ApiError::InvalidEvent(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::QueryTimeout(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.problem(format!("urn:coldtrail:problem:{}", self.code()))
    }
}

impl ApiError {
    /// The EPCIS exception GS1's REST binding names for this refusal, as a
    /// problem `type` (`epcisException:QueryParameterException`, …).
    pub fn epcis_type(&self) -> String {
        let exception = match self {
            ApiError::InvalidSubscription { .. } => "SubscriptionControlsException",
            ApiError::MalformedJson(_) | ApiError::InvalidBody(_) => "ValidationException",
            ApiError::QueryTooLarge(_) => "QueryTooLargeException",
            ApiError::QueryTooComplex { .. } | ApiError::QueryTooDeep { .. } => {
                "QueryTooComplexException"
            }
            e => match e.status_code() {
                StatusCode::BAD_REQUEST => "QueryParameterException",
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "SecurityException",
                StatusCode::NOT_FOUND => "NoSuchNameException",
                StatusCode::CONFLICT => "ResourceAlreadyExistsException",
                StatusCode::NOT_ACCEPTABLE => "NotAcceptableException",
                StatusCode::PAYLOAD_TOO_LARGE => "QueryTooLargeException",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaTypeException",
                _ => "ImplementationException",
            },
        };
        format!("epcisException:{exception}")
    }

    /// The problem+json body with `kind` as its `type`.
    pub fn problem_body(&self, kind: String) -> serde_json::Value {
        serde_json::to_value(self.problem_of(kind)).expect("a problem serialises")
    }

    fn problem_of(&self, kind: String) -> Problem<'_> {
        Problem {
            kind,
            title: self.title(),
            status: self.status_code().as_u16(),
            detail: self.to_string(),
            code: self.code(),
            parameter: match self {
                ApiError::InvalidParameter { name, .. } => Some(name),
                ApiError::InvalidSubscription { field, .. } => Some(field),
                _ => None,
            },
        }
    }

    /// The refusal as problem+json with `kind` as its `type`.
    fn problem(&self, kind: String) -> HttpResponse {
        let body = self.problem_of(kind);
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if matches!(self, ApiError::Overloaded(_) | ApiError::Unavailable(_)) {
            resp.insert_header((header::RETRY_AFTER, "1"));
        }
        if matches!(self, ApiError::UnsupportedContentEncoding(_)) {
            // The codings it takes (RFC 9110, 12.5.3): none.
            resp.insert_header((header::ACCEPT_ENCODING, "identity"));
        }
        let mut resp = resp.body(serde_json::to_vec(&body).expect("a problem serialises"));
        resp.extensions_mut().insert(Refusal(self.code()));
        resp
    }
}

/// A refusal on the EPCIS query interface: the same problem (status,
/// stable `code`, `detail`), its `type` the EPCIS exception GS1's REST
/// binding names for it (`epcisException:QueryParameterException`, …), which
/// EPCIS clients branch on. Handlers there return `Result<_, Epcis>`; `?`
/// turns any `ApiError` into one.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Epcis(#[from] pub ApiError);

impl ResponseError for Epcis {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.0.problem(self.0.epcis_type())
    }
}

/// Adds the `Problem` schema to an OpenAPI document, its `code` an enum of
/// every stable code (with each one's status), and makes it every
/// operation's `default` response: what a client generated from the
/// document parses a refusal into. Called on the node's whole document,
/// once every API's paths are in it.
pub fn document_problems(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    let kinds = ApiError::kinds();
    let codes = kinds
        .iter()
        .map(|e| format!("- `{}`: {}", e.code(), e.status_code().as_u16()))
        .collect::<Vec<_>>()
        .join("\n");
    let text = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
    };
    let problem = ObjectBuilder::new()
        .description(Some(
            "A refusal (RFC 9457, application/problem+json). Branch on `code`; `detail` says what to fix.",
        ))
        .property("type", text("`urn:coldtrail:problem:` and the code; on the EPCIS query interface (`/events`, `/queries`, …) the exception GS1's REST binding names, such as `epcisException:QueryParameterException`"))
        .property("title", text("The HTTP status's reason phrase"))
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .description(Some("The HTTP status")),
        )
        .property("detail", text("What is wrong, and what to do about it"))
        .property(
            "code",
            text(&format!(
                "The stable code; each with the status it comes with:\n{codes}"
            ))
            .enum_values(Some(kinds.iter().map(|e| e.code()))),
        )
        .property(
            "parameter",
            text("For `invalid_parameter`: the request parameter at fault"),
        )
        .required("type")
        .required("title")
        .required("status")
        .required("detail")
        .required("code")
        .build();
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .insert("Problem".into(), problem.into());
    let refusal = ResponseBuilder::new()
        .description("A refusal: see the `Problem` schema for every code")
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in ops.into_iter().flatten() {
            op.responses
                .responses
                .entry("default".into())
                .or_insert_with(|| refusal.clone().into());
        }
    }
}

/// The stable code of a refused request, left on its response for the
/// request log and the refusal counter ([`crate::observe`]).
#[derive(Debug, Clone, Copy)]
pub struct Refusal(pub &'static str);

/// What the ledger's store refuses, as the API says it. (Shard errors are
/// mapped above this crate, by the crates that reach shards.)
impl From<ledger::store::StoreError> for ApiError {
    fn from(e: ledger::store::StoreError) -> ApiError {
        use ledger::store::StoreError;
        match e {
            StoreError::QueueFull(n) => {
                ApiError::Overloaded(format!("the ledger's append queue is full ({n} waiting)"))
            }
            StoreError::NoSuchEntry { index, size } => ApiError::NotFound(format!(
                "entry {index} does not exist (the shard has {size} entries)"
            )),
            StoreError::Proof(p) => ApiError::InvalidBody(p.to_string()),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

#[cfg(test)]
mod kinds_tests {
    use super::*;

    /// `kinds` holds each variant once (the match below must name every
    /// variant, so a new one cannot be forgotten here), and codes are unique.
    #[test]
    fn kinds_lists_every_variant_once() {
        let slot = |e: &ApiError| match e {
            ApiError::Unauthenticated => 0,
            ApiError::BadToken => 1,
            ApiError::Forbidden(_) => 2,
            ApiError::MalformedJson(_) => 3,
            ApiError::InvalidBody(_) => 4,
            ApiError::UnsupportedMediaType(_) => 5,
            ApiError::UnsupportedContentEncoding(_) => 6,
            ApiError::PayloadTooLarge { .. } => 7,
            ApiError::UnknownDevice(_) => 8,
            ApiError::WrongOrganisation { .. } => 9,
            ApiError::DeviceExists(_) => 10,
            ApiError::UnknownOrganisation(_) => 11,
            ApiError::BadSignature { .. } => 12,
            ApiError::RevokedKey { .. } => 13,
            ApiError::BeforeActivation { .. } => 14,
            ApiError::ReplayedSequence { .. } => 15,
            ApiError::ClockInFuture { .. } => 16,
            ApiError::InvalidGtin(_) => 17,
            ApiError::UnknownEventType(_) => 18,
            ApiError::InvalidIdentifier { .. } => 19,
            ApiError::InvalidEvent(_) => 20,
            ApiError::IdempotencyKeyReused(_) => 21,
            ApiError::DuplicateEvent(_) => 22,
            ApiError::DeviceSuspended { .. } => 23,
            ApiError::NotSuspended(_) => 24,
            ApiError::NotQuarantined(_) => 25,
            ApiError::NotFound(_) => 26,
            ApiError::QueryTooLarge(_) => 27,
            ApiError::QueryTooDeep { .. } => 28,
            ApiError::QueryTooComplex { .. } => 29,
            ApiError::InvalidQuery(_) => 30,
            ApiError::QueryTimeout(_) => 31,
            ApiError::RecallClosed(_) => 32,
            ApiError::InvalidParameter { .. } => 33,
            ApiError::NoSuchRoute(_) => 34,
            ApiError::NoSignedHead { .. } => 35,
            ApiError::Overloaded(_) => 36,
            ApiError::Unavailable(_) => 37,
            ApiError::LocationNotYours { .. } => 38,
            ApiError::SequenceGap { .. } => 39,
            ApiError::InvalidDigitalLink { .. } => 40,
            ApiError::QueryExists(_) => 41,
            ApiError::InvalidSubscription { .. } => 42,
            ApiError::NotAcceptable(_) => 43,
        };
        const VARIANTS: usize = 44;
        let kinds = ApiError::kinds();
        let mut seen = [false; VARIANTS];
        for e in &kinds {
            assert!(!std::mem::replace(&mut seen[slot(e)], true), "{e:?} twice");
        }
        assert_eq!(kinds.len(), VARIANTS, "every variant is in kinds()");
        let codes: std::collections::BTreeSet<_> = kinds.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), VARIANTS, "codes are unique");
    }
}
