//! What orchestrators and operators ask a running node: `/healthz` (the
//! process answers), `/readyz` (logs open, relay running, derived state
//! caught up), `/metrics` (Prometheus text), and what the edge answers while
//! the logs are still opening.
//!
//! ## Start-up and what operators see (`src/ops.rs`, `api::observe`)
//!
//! `run_server` binds the address before anything opens and serves `/healthz` (200) and
//! `/readyz` (503) from a small first server while the node, ingest's identity state and the
//! lineage graph open on a blocking thread; then it stops that server and hands the same
//! socket to the full edge (connections arriving meanwhile wait in the backlog). Every
//! request passes `api::observe::requests` (a `from_fn` middleware): a request id (the
//! caller's if sane), one `tracing` line, request/refusal counters and a latency histogram
//! labelled by route *pattern*. The refusal code reaches it as a `Refusal` extension that
//! `ApiError::error_response` leaves on the response; the caller's organisation as the
//! `Principal` that `TokenStore::authenticate_request` leaves on the request. Stores record group
//! sizes and fsync times through the `metrics` facade; gauges (shard sizes, queue depths,
//! receipts pending, consumer lag) are read from live state when `/metrics` is scraped. One
//! global Prometheus recorder per process (`ops::metrics`). Outermost of all, actix's
//! `Compress` gzips every answer for a client that accepts gzip (after the log and counters
//! have seen it); request bodies are read as sent, and a coded one is refused (415).

use std::sync::{Arc, OnceLock, RwLock};

use actix_web::{web, HttpResponse};
use anyhow::{Context, Result};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use shards::Node;

/// Derived state further behind the ledger than this (entries, all shards
/// together) is not ready: reads would wait or answer stale.
pub const MAX_READY_LAG: u64 = 10_000;

/// Latency buckets (seconds) for every `_seconds` histogram: from a quarter
/// of a millisecond (an fsync on a good disk) to ten seconds (a stalled
/// request), finest around the 5 ms an acknowledgement should stay under.
const SECONDS_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const GROUP_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's metrics recorder, installed on first use (the `metrics`
/// facade has one global recorder; every crate records into it).
pub fn metrics() -> Result<&'static PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h);
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(ledger::store::GROUP_ENTRIES.into()),
            GROUP_BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    // Only the first caller installs; a racing second keeps the first.
    if HANDLE.set(handle).is_ok() {
        metrics::set_global_recorder(recorder).context("installing the metrics recorder")?;
        describe();
    }
    Ok(HANDLE.get().expect("set above"))
}

/// Help texts, shown by `/metrics` (the README lists the same).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    use GAUGES as G;
    describe_counter!(
        api::observe::REQUESTS,
        "HTTP requests answered, by method, route pattern and status"
    );
    describe_counter!(
        api::observe::REFUSALS,
        "HTTP requests refused, by the problem's stable code"
    );
    describe_histogram!(
        api::observe::REQUEST_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request, by route pattern"
    );
    describe_histogram!(
        api::observe::ACK_SECONDS,
        Unit::Seconds,
        "Time from a write's arrival to its acknowledgement (entries durable), by route"
    );
    describe_histogram!(
        ledger::store::GROUP_ENTRIES,
        Unit::Count,
        "Entries written per group commit (one fsync each)"
    );
    describe_histogram!(
        ledger::store::FSYNC_SECONDS,
        Unit::Seconds,
        "Time a group commit's fsync took"
    );
    describe_histogram!(
        ledger::store::QUEUE_WAIT_SECONDS,
        Unit::Seconds,
        "Time an append waited on its log's queue before the writer took it"
    );
    describe_histogram!(
        ledger::store::HEAD_SECONDS,
        Unit::Seconds,
        "Time signing a tree head took, its fsync (or insert) included"
    );
    describe_histogram!(
        ledger::store::ROLL_SECONDS,
        Unit::Seconds,
        "Time sealing a full segment and starting the next took (embedded store)"
    );
    describe_gauge!(
        G.entries,
        Unit::Count,
        "Durable entries in each shard's log"
    );
    describe_gauge!(
        G.queued,
        Unit::Count,
        "Requests waiting for each shard log's writer"
    );
    describe_gauge!(
        G.receipts,
        Unit::Count,
        "Cross-shard receipts committed by their sender and not yet by their receiver"
    );
    describe_gauge!(
        G.lag,
        Unit::Count,
        "Committed entries a consumer of the ledger has not yet taken in (rules: not yet judged)"
    );
    describe_gauge!(
        G.mirrored,
        Unit::Count,
        "Entries of another member's log this node holds, verified, by member and shard"
    );
    describe_gauge!(
        G.mirror_head,
        Unit::Count,
        "Size of the newest signed head of another member's log this node verified, by member and shard"
    );
    describe_gauge!(
        G.mirror_fork,
        Unit::Count,
        "1 once a member signed two contradicting histories of this log (both heads kept), by member and shard"
    );
}

/// Gauges set when `/metrics` is scraped (from state read then).
struct Gauges {
    entries: &'static str,
    queued: &'static str,
    receipts: &'static str,
    lag: &'static str,
    mirrored: &'static str,
    mirror_head: &'static str,
    mirror_fork: &'static str,
}

const GAUGES: Gauges = Gauges {
    entries: "coldtrail_shard_entries",
    queued: "coldtrail_store_queue_depth",
    receipts: "coldtrail_receipts_pending",
    lag: "coldtrail_feed_lag_entries",
    mirrored: "coldtrail_mirror_entries",
    mirror_head: "coldtrail_mirror_head_size",
    mirror_fork: "coldtrail_mirror_fork",
};

/// What readiness and the scrape-time gauges read.
#[derive(Clone)]
pub struct Running {
    pub node: Arc<Node>,
    pub relay: tokio::task::AbortHandle,
    pub rules: Arc<analytics::consumer::Status>,
    pub lineage: Arc<RwLock<analytics::lineage::Lineage>>,
    /// A witness's sign that the log is not the one it cosigned.
    pub witness_alarm: crate::witnessing::Alarm,
    /// The other members' logs the node mirrors (none on its own).
    pub followed: crate::networking::Followed,
}

/// Entries committed on each shard that `positions` has not reached, summed.
fn lag(committed: &[u64], positions: &[u64]) -> u64 {
    committed
        .iter()
        .enumerate()
        .map(|(i, c)| c.saturating_sub(positions.get(i).copied().unwrap_or(0)))
        .sum()
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Running {
    fn committed(&self) -> Vec<u64> {
        self.node.shards().iter().map(|s| s.committed()).collect()
    }

    fn lags(&self) -> [(&'static str, u64); 2] {
        let committed = self.committed();
        let lineage = self
            .lineage
            .read()
            .expect("lineage lock")
            .positions()
            .to_vec();
        [
            ("rules", lag(&committed, &self.rules.applied())),
            ("lineage", lag(&committed, &lineage)),
        ]
    }

    /// Each readiness condition, met or not, and why.
    pub fn checks(&self) -> Vec<Check> {
        let mut checks = vec![
            Check {
                name: "logs",
                ok: true,
                detail: format!("{} shard logs open", self.node.shards().len()),
            },
            Check {
                name: "relay",
                ok: !self.relay.is_finished(),
                detail: if self.relay.is_finished() {
                    "the receipt relay has stopped".into()
                } else {
                    format!("{} receipts pending", self.node.pending_receipts())
                },
            },
        ];
        if let Some(why) = self.witness_alarm.lock().expect("alarm lock").clone() {
            checks.push(Check {
                name: "witnesses",
                ok: false,
                detail: why,
            });
        }
        if let Some(check) = self.mirrors_check() {
            checks.push(check);
        }
        if let Some(why) = self.rules.failed() {
            checks.push(Check {
                name: "rules",
                ok: false,
                detail: format!("the rules consumer stopped: {why}"),
            });
        }
        for (name, behind) in self.lags() {
            if name == "rules" && self.rules.failed().is_some() {
                continue;
            }
            checks.push(Check {
                name,
                ok: behind <= MAX_READY_LAG,
                detail: format!(
                    "{behind} entries behind the ledger (ready within {MAX_READY_LAG})"
                ),
            });
        }
        checks
    }

    /// The mirrors of the other members' logs, as one check (none for a node
    /// on its own). A member not followed yet (not up, NATS away) leaves the
    /// node ready; a fork does not: the network's history then holds two
    /// signed versions of one log, and the answers the node gives from it
    /// are in doubt until an operator looks.
    fn mirrors_check(&self) -> Option<Check> {
        use crate::networking::Following;
        let members = self.followed.members();
        if members.is_empty() {
            return None;
        }
        let mut forks = Vec::new();
        let mut waiting = Vec::new();
        let (mut logs, mut entries) = (0, 0);
        for (member, following) in &members {
            match following {
                Following::Waiting(why) => waiting.push(format!("{member} ({why})")),
                Following::Mirrors(mirrors) => {
                    for m in mirrors {
                        logs += 1;
                        entries += m.len();
                        if let Some(fork) = m.fork() {
                            forks.push(format!(
                                "FORK in {}: its key signed heads of sizes {} and {} that contradict each other (both kept)",
                                m.name(),
                                fork.held.head.size,
                                fork.conflicting.head.size
                            ));
                        }
                    }
                }
            }
        }
        let mut detail = format!(
            "{} of {} members followed: {logs} logs, {entries} entries mirrored",
            members.len() - waiting.len(),
            members.len()
        );
        if !waiting.is_empty() {
            detail.push_str(&format!("; not yet: {}", waiting.join(", ")));
        }
        for f in &forks {
            detail.push_str("; ");
            detail.push_str(f);
        }
        Some(Check {
            name: "mirrors",
            ok: forks.is_empty(),
            detail,
        })
    }

    /// Sets the gauges read at scrape time.
    fn set_gauges(&self) {
        for shard in self.node.shards() {
            let label = shard.id().to_string();
            metrics::gauge!(GAUGES.entries, "shard" => label.clone()).set(shard.committed() as f64);
            metrics::gauge!(GAUGES.queued, "shard" => label).set(shard.store().queued() as f64);
        }
        metrics::gauge!(GAUGES.receipts).set(self.node.pending_receipts() as f64);
        for (consumer, behind) in self.lags() {
            metrics::gauge!(GAUGES.lag, "consumer" => consumer).set(behind as f64);
        }
        for (member, mirrors) in self.followed.mirrors().members() {
            for (shard, m) in mirrors.iter().enumerate() {
                let labels = [("member", member.clone()), ("shard", shard.to_string())];
                metrics::gauge!(GAUGES.mirrored, &labels).set(m.len() as f64);
                metrics::gauge!(GAUGES.mirror_head, &labels)
                    .set(m.head().map_or(0, |h| h.head.size) as f64);
                metrics::gauge!(GAUGES.mirror_fork, &labels).set(if m.fork().is_some() {
                    1.0
                } else {
                    0.0
                });
            }
        }
    }
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    checks: Vec<Check>,
}

fn readiness(checks: Vec<Check>) -> HttpResponse {
    let ready = checks.iter().all(|c| c.ok);
    let mut resp = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    resp.insert_header(("Cache-Control", "no-store"))
        .json(Readiness { ready, checks })
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(running: web::Data<Running>) -> HttpResponse {
    readiness(running.checks())
}

async fn render(running: web::Data<Running>) -> HttpResponse {
    running.set_gauges();
    match HANDLE.get() {
        Some(h) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(h.render()),
        None => HttpResponse::NotFound()
            .body("metrics are off on this node (`metrics = true` in its config turns them on)"),
    }
}

/// The operator routes of a running node.
pub fn configure(running: Running) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(running))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(render));
    }
}

/// The routes while the logs open: alive, not ready, everything else 503
/// `unavailable` with `Retry-After` (a client retries; nothing is taken in).
pub fn configure_starting(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route(
            "/readyz",
            web::get().to(|| async {
                readiness(vec![Check {
                    name: "logs",
                    ok: false,
                    detail: "the node is opening its logs".into(),
                }])
            }),
        )
        .default_service(web::to(|| async {
            actix_web::ResponseError::error_response(&api::ApiError::Unavailable(
                "the node is starting: its logs are opening; retry shortly".into(),
            ))
        }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_sums_what_each_shard_has_not_reached() {
        assert_eq!(lag(&[10, 5], &[10, 5]), 0);
        assert_eq!(lag(&[10, 5], &[7, 1]), 7);
        // A consumer that has not started a shard is behind by all of it.
        assert_eq!(lag(&[10, 5], &[10]), 5);
        // Never negative, even if a position ran ahead of a stale read.
        assert_eq!(lag(&[3], &[4]), 0);
    }
}
