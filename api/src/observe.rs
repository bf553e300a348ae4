//! What an operator sees of the HTTP edge: one log line per request (its
//! id, route, status, latency and the caller's organisation; never a token
//! or a key), and the request and refusal counters and latency histograms
//! behind `GET /metrics`.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;

use crate::problem::Refusal;
use crate::tokens::Principal;

/// The header carrying a request's id, taken from the caller when it sends a
/// sane one (so a gateway's id follows the request), else made here.
pub const REQUEST_ID: &str = "x-request-id";

/// Request metric names, with their units, as Prometheus names them.
pub const REQUESTS: &str = "coldtrail_http_requests_total";
pub const REFUSALS: &str = "coldtrail_http_refusals_total";
pub const REQUEST_SECONDS: &str = "coldtrail_http_request_duration_seconds";
/// Time from a write's arrival to its acknowledgement (entries durable).
pub const ACK_SECONDS: &str = "coldtrail_ingest_ack_duration_seconds";

/// An id a caller may choose: short, and nothing a log line could be
/// forged with.
fn acceptable_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The refusal of a path no route serves.
const NO_SUCH_ROUTE: &str = "no_such_route";

fn new_request_id() -> String {
    let mut bytes = [0u8; 8];
    // The id only tells requests apart in the log: a failing random source
    // leaves zeros rather than failing the request.
    let _ = getrandom::getrandom(&mut bytes);
    hex::encode(bytes)
}

/// The middleware (`actix_web::middleware::from_fn(observe::requests)`).
pub async fn requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable_id(id))
        .map_or_else(new_request_id, str::to_string);
    let method = req.method().to_string();
    let mut res = next.call(req).await?;
    let elapsed = started.elapsed();
    let refusal = res.response().extensions().get::<Refusal>().map(|r| r.0);
    // The route's pattern, never the raw path: labels stay few whatever
    // paths callers try (a catch-all route's misses included).
    let route = match res.request().match_pattern() {
        Some(pattern) if refusal != Some(NO_SUCH_ROUTE) => pattern,
        _ => "unmatched".to_string(),
    };
    let status = res.status().as_u16();
    let org = res
        .request()
        .extensions()
        .get::<Principal>()
        .map(|p| p.org.clone());

    metrics::counter!(REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(REQUEST_SECONDS, "route" => route.clone()).record(elapsed.as_secs_f64());
    if let Some(code) = refusal {
        metrics::counter!(REFUSALS, "code" => code).increment(1);
    }
    tracing::info!(
        target: "coldtrail::http",
        request_id = %id,
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1e3,
        org = org.as_deref().unwrap_or("-"),
        refusal = refusal.unwrap_or("-"),
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_ids_are_taken_from_callers() {
        assert!(acceptable_id("gw-01.req_7"));
        assert!(!acceptable_id(""));
        assert!(!acceptable_id(&"a".repeat(65)));
        assert!(!acceptable_id("a b"));
        assert!(!acceptable_id("x\nfake=line"));
        assert_eq!(new_request_id().len(), 16);
    }
}
