//! The frame every write over HTTP shares, in every edge crate: admission
//! (bounded in-flight requests), authentication, the body within its limit,
//! and `Idempotency-Key`. The write path owns one [`WriteFrame`]; the node
//! hands the same one to every edge that writes (recall changes on the read
//! edge), so admission and the idempotency journal are one per node.

use std::path::Path;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use crate::answer::WriteResult;
use crate::body::{json_body, read_body};
use crate::idempotency::{Answer, Attempt, IdempotencyStore};
use crate::problem::ApiError;
use crate::tokens::{Principal, TokenStore};

pub struct WriteFrame {
    tokens: Arc<TokenStore>,
    in_flight: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
    max_body_bytes: usize,
    idempotency: IdempotencyStore,
}

impl WriteFrame {
    /// The frame over the node's tokens, with its idempotency journal in
    /// `data_dir`: at most `max_in_flight` writes at once (429 above), bodies
    /// of at most `max_body_bytes` (413 above).
    pub fn open(
        data_dir: &Path,
        tokens: Arc<TokenStore>,
        max_in_flight: usize,
        max_body_bytes: usize,
    ) -> std::io::Result<WriteFrame> {
        Ok(WriteFrame {
            tokens,
            in_flight: Arc::new(tokio::sync::Semaphore::new(max_in_flight)),
            max_in_flight,
            max_body_bytes,
            idempotency: IdempotencyStore::open(data_dir)?,
        })
    }

    /// The node's bearer tokens.
    pub fn tokens(&self) -> &Arc<TokenStore> {
        &self.tokens
    }

    /// The largest body a request may carry.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Runs `write` inside the frame: `write` gets the caller, the body as
    /// sent, and whether this is a retry of an attempt whose answer was lost.
    /// A result with a capture id is answered 202 with its job's location (as
    /// the EPCIS REST binding does), any other 201.
    pub async fn write<F, Fut>(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        write: F,
    ) -> Result<HttpResponse, ApiError>
    where
        F: FnOnce(Principal, Bytes, Attempt) -> Fut,
        Fut: std::future::Future<Output = Result<WriteResult, ApiError>>,
    {
        let started = std::time::Instant::now();
        let _permit = self.in_flight.clone().try_acquire_owned().map_err(|_| {
            ApiError::Overloaded(format!("{} write requests in flight", self.max_in_flight))
        })?;
        let who = self.tokens.authenticate_request(req)?;
        let body = read_body(req, payload, self.max_body_bytes).await?;
        let run = |who: Principal, body: Bytes, attempt: Attempt| async move {
            let result = write(who, body, attempt).await?;
            let location = result
                .capture_id
                .as_ref()
                .map(|id| format!("/capture/{id}"));
            Ok::<_, ApiError>(Answer {
                fingerprint: String::new(),
                status: if location.is_some() { 202 } else { 201 },
                body: serde_json::to_string(&result).expect("results serialise"),
                location,
            })
        };
        let key = req
            .headers()
            .get("Idempotency-Key")
            .map(|v| v.to_str().map(str::to_string))
            .transpose()
            .map_err(|_| ApiError::InvalidBody("Idempotency-Key must be visible ASCII".into()))?;
        let (answer, replayed) = match key {
            None => (run(who, body, Attempt::First).await?, false),
            Some(key) => {
                let fingerprint = ledger::Domain::Idempotency
                    .hash_parts(&[
                        req.method().as_str().as_bytes(),
                        req.path().as_bytes(),
                        &body,
                    ])
                    .to_hex();
                let org = who.org.clone();
                let ran = std::cell::Cell::new(false);
                let answer = self
                    .idempotency
                    .once(&org, &key, fingerprint.clone(), |attempt| {
                        ran.set(true);
                        async move {
                            let mut a = run(who, body, attempt).await?;
                            a.fingerprint = fingerprint;
                            Ok(a)
                        }
                    })
                    .await?;
                (answer, !ran.get())
            }
        };
        let mut resp = HttpResponse::build(
            actix_web::http::StatusCode::from_u16(answer.status)
                .expect("stored statuses are valid"),
        );
        resp.content_type("application/json");
        if replayed {
            resp.insert_header(("Idempotent-Replayed", "true"));
        }
        if let Some(location) = &answer.location {
            resp.insert_header((header::LOCATION, location.as_str()));
        }
        // Acknowledged: durable (or replayed) and answered.
        metrics::histogram!(crate::observe::ACK_SECONDS, "route" => req.match_pattern().unwrap_or_default(), "replayed" => if replayed { "true" } else { "false" })
            .record(started.elapsed().as_secs_f64());
        Ok(resp.body(answer.body))
    }

    /// [`WriteFrame::write`] for a JSON body of type `B`: `write` gets the
    /// caller, the parsed body and the attempt.
    pub async fn json<B, F, Fut>(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        write: F,
    ) -> Result<HttpResponse, ApiError>
    where
        B: serde::de::DeserializeOwned,
        F: FnOnce(Principal, B, Attempt) -> Fut,
        Fut: std::future::Future<Output = Result<WriteResult, ApiError>>,
    {
        self.write(req, payload, |who, body, attempt| async move {
            write(who, json_body(&body)?, attempt).await
        })
        .await
    }
}
