//! HTTP validators for what the consumer side serves: one content-addressed
//! ETag and one `If-None-Match` check, for pages and files alike.

use actix_web::http::header;
use actix_web::HttpRequest;

/// A strong ETag over the body's bytes (BLAKE3, 128 bits).
pub fn etag(body: &[u8]) -> String {
    format!("\"{}\"", &blake3::hash(body).to_hex()[..32])
}

/// Whether the client's `If-None-Match` holds `etag` (or `*`): answer 304.
pub fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}
