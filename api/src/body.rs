//! Reading a request's body: within a limit, as sent (no content coding),
//! and as JSON of an expected shape, each failure a refusal with its code.

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::HttpRequest;
use futures_util::StreamExt;

use crate::problem::ApiError;

/// Reads the body up to the limit, refusing larger ones before reading them.
/// A body under a content coding (gzip, …) is refused rather than read as
/// it came: parsed as it is, it would be refused as garbled JSON or a
/// broken batch, which does not say what is wrong.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if let Some(coding) = req.headers().get(header::CONTENT_ENCODING) {
        let coding = String::from_utf8_lossy(coding.as_bytes());
        let coded = coding
            .split(',')
            .map(str::trim)
            .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
        if coded {
            return Err(ApiError::UnsupportedContentEncoding(coding.into_owned()));
        }
    }
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(ApiError::PayloadTooLarge { got: len, limit });
        }
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::InvalidBody(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge {
                got: body.len() + chunk.len(),
                limit,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The request's media type, lower case, without parameters.
pub fn media_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The body as JSON of type `T`, or a refusal that says what is wrong with it.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::MalformedJson(e.to_string())
        } else {
            ApiError::InvalidBody(e.to_string())
        }
    })
}
