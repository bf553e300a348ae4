//! Query subscriptions, as GS1's REST binding describes them: webhooks
//! (`POST /queries/{name}/subscriptions`, delivered by [`Deliveries`]) and
//! WebSockets (`GET /queries/{name}/events` with `Upgrade: websocket`).
//!
//! Both run the same step ([`next_run`]): the named query, for the
//! subscriber (what they may see), over the entries recorded from the
//! subscription's frontier up to what the read model has read. A webhook
//! gets each run as EPCISQueryDocuments POSTed in batches (halved when the
//! subscriber answers 413), signed with its `signatureToken`
//! (`GS1-Signature: sha256=` and the hex HMAC-SHA256 of the body); only
//! when every batch was answered with a 2xx does its frontier move, durably
//! (`readstate::subscriptions`): delivery is at least once, and a failing
//! webhook is retried with a growing pause (1 s doubling to 5 min). A
//! WebSocket gets each run as one text message per batch while it is open;
//! it is the connection's own and ends with it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use analytics::lineage::query::{EventQuery, RecordWindow};
use analytics::lineage::At;
use api::params::QueryParams;
use api::{ApiError, Epcis, Principal, Role};
use readstate::queries::NamedQuery;
use readstate::subscriptions::{Request, Subscription, Trigger};
use readstate::ReadState;
use serde_json::Value;

use crate::epcis::{described, documents, path_id, query_document, query_error, MAX_PER_PAGE};

/// Entries of one shard a run reads at most: a subscription far behind
/// catches up in runs of this size, each delivered before the next.
const RUN_ENTRIES: u64 = 50_000;
/// Events per POST or message, at first.
const BATCH: usize = 100;
/// How often deliveries look for new events and due schedules.
const TICK: Duration = Duration::from_millis(100);
/// The longest pause after failed deliveries.
const MAX_BACKOFF_MS: i64 = 300_000;
/// The most a subscription request may take.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

pub(crate) fn configure(cfg: &mut ServiceConfig) {
    for prefix in ["", "/v1"] {
        cfg.route(
            &format!("{prefix}/queries/{{name}}/subscriptions"),
            web::post().to(subscribe),
        )
        .route(
            &format!("{prefix}/queries/{{name}}/subscriptions"),
            web::get().to(list),
        )
        .route(
            &format!("{prefix}/queries/{{name}}/subscriptions/{{id}}"),
            web::get().to(get),
        )
        .route(
            &format!("{prefix}/queries/{{name}}/subscriptions/{{id}}"),
            web::delete().to(unsubscribe),
        );
    }
}

/// One run of a subscription: the matching events recorded from its
/// frontier up to `upto` (per shard), in eventTime order.
pub(crate) struct Run {
    pub events: Vec<At>,
    pub upto: Vec<u64>,
}

impl Run {
    /// Whether the run read every entry the read model had.
    fn caught_up(&self, state: &ReadState) -> bool {
        let positions = positions(state);
        self.upto.iter().zip(&positions).all(|(u, p)| u >= p)
    }
}

fn positions(state: &ReadState) -> Vec<u64> {
    state
        .lineage
        .read()
        .expect("lineage lock")
        .positions()
        .to_vec()
}

/// Whether the read model has read entries past `frontier`.
fn has_new(state: &ReadState, frontier: &[u64]) -> bool {
    positions(state)
        .iter()
        .enumerate()
        .any(|(s, p)| *p > frontier.get(s).copied().unwrap_or(0))
}

/// Where a run from `frontier` ends, per shard: what the read model has
/// read, at most [`RUN_ENTRIES`] past the frontier, never behind it.
fn run_end(state: &ReadState, frontier: &[u64]) -> Vec<u64> {
    positions(state)
        .iter()
        .enumerate()
        .map(|(s, &p)| {
            let f = frontier.get(s).copied().unwrap_or(0);
            p.min(f + RUN_ENTRIES).max(f)
        })
        .collect()
}

/// Whether a subscription runs now: on a schedule (`cron`), when its next
/// time (`next_fire`) has come, which then moves on; as a stream, when the
/// read model has read entries past its frontier.
fn due(
    state: &ReadState,
    cron: Option<&readstate::subscriptions::Cron>,
    next_fire: &mut Option<i64>,
    now: i64,
    frontier: &[u64],
) -> bool {
    match (cron, *next_fire) {
        (None, _) => has_new(state, frontier),
        (Some(c), Some(at)) if now >= at => {
            *next_fire = c.next_after(now);
            true
        }
        (Some(_), _) => false,
    }
}

/// The next run of `query` for `who` from `frontier`: at most
/// [`RUN_ENTRIES`] entries of each shard, never behind the frontier.
pub(crate) fn next_run(
    state: &ReadState,
    query: &NamedQuery,
    who: &Principal,
    frontier: &[u64],
) -> Result<Run, ApiError> {
    let upto = run_end(state, frontier);
    let params = readstate::queries::params_of(&query.query)?;
    let mut q = EventQuery::from_params(&params).map_err(query_error)?;
    q.visible_to = match who.role {
        Role::Investigator | Role::Operator => None,
        Role::Partner => Some(who.org.clone()),
    };
    let mut window = RecordWindow {
        from: frontier.to_vec(),
        to: upto.iter().map(|&u| Some(u)).collect(),
    };
    let (from, to) = q.record_times();
    if from.is_some() || to.is_some() {
        window = window.intersect(&state.reads.record_window(from, to)?);
    }
    q.record_window = Some(window);
    let mut ats = Vec::new();
    {
        let lineage = state.lineage.read().expect("lineage lock");
        let read = |at: &At| state.reads.event_document(at.shard, at.index).ok();
        let mut after = None;
        loop {
            let page = lineage
                .query_reading(&q, after, MAX_PER_PAGE, Some(&read))
                .map_err(query_error)?;
            ats.extend(page.events);
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
    }
    Ok(Run { events: ats, upto })
}

/// The entries recorded at or after `t_ms`, as a frontier; without a time,
/// the entries recorded from now on: all but those committed already (some
/// of which no head covers yet, so by record time alone they would count
/// as recorded later).
fn frontier_at(state: &ReadState, t_ms: Option<i64>) -> Result<Vec<u64>, ApiError> {
    match t_ms {
        Some(t) => Ok(state.reads.record_window(Some(t), None)?.from),
        None => Ok(state.node.shards().iter().map(|s| s.committed()).collect()),
    }
}

fn subscription_document(events: &[Value], subscription: &str) -> Value {
    let mut doc = query_document(events.to_vec());
    doc["epcisBody"]["queryResults"]["subscriptionID"] = subscription.into();
    doc
}

/// The named query `name` as `who` may see it.
fn named(state: &ReadState, who: &Principal, name: &str) -> Result<NamedQuery, ApiError> {
    state.queries.get(who, name)
}

/// Subscribes to a named query: its new events go to `dest` as they are
/// recorded (`stream: true`) or at the times a `schedule` matches.
#[utoipa::path(post, path = "/queries/{name}/subscriptions", params(("name" = String, Path)),
    request_body = Request,
    responses((status = 201, description = "Subscribed; `Location: /queries/{name}/subscriptions/{subscriptionID}`; the subscription without its signatureToken"),
        (status = 400, description = "A bad dest, schedule or time, named (epcisException:SubscriptionControlsException)"),
        (status = 401, description = "No token"), (status = 404, description = "No such query the caller may see")),
    security(("bearer" = [])))]
pub(crate) async fn subscribe(
    state: web::Data<ReadState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Epcis> {
    let who = state.tokens.authenticate_request(&req)?;
    let name = path_id(&req, "name");
    named(&state, &who, &name)?;
    let body = api::body::read_body(&req, payload, MAX_REQUEST_BYTES).await?;
    let request: Request = api::body::json_body(&body).map_err(|e| match e {
        ApiError::InvalidBody(message) => ApiError::InvalidSubscription {
            field: "body".into(),
            message,
        },
        other => other,
    })?;
    state.fresh().await?;
    let now = state.node.clock().now_ms();
    let s = state
        .subscriptions
        .create(&who, &name, request, now, |t| frontier_at(&state, t))?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/queries/{name}/subscriptions/{}", s.subscription_id),
        ))
        .insert_header(("GS1-EPCIS-Version", api::discovery::EPCIS_VERSION))
        .json(s.view()))
}

/// The query's subscriptions the caller may see.
#[utoipa::path(get, path = "/queries/{name}/subscriptions", params(("name" = String, Path)),
    responses((status = 200, description = "A list of subscriptions (without their signature tokens)"),
        (status = 404, description = "No such query the caller may see")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, Epcis> {
    QueryParams::parse(&req, &[])?;
    let who = state.tokens.authenticate_request(&req)?;
    let name = path_id(&req, "name");
    named(&state, &who, &name)?;
    let list: Vec<Value> = state
        .subscriptions
        .of_query(&who, &name)
        .iter()
        .map(Subscription::view)
        .collect();
    Ok(described(list))
}

/// One subscription: whether it is active, when it last delivered.
#[utoipa::path(get, path = "/queries/{name}/subscriptions/{id}", params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "The subscription (without its signature token)"),
        (status = 404, description = "No such subscription the caller may see")),
    security(("bearer" = [])))]
pub(crate) async fn get(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, Epcis> {
    QueryParams::parse(&req, &[])?;
    let who = state.tokens.authenticate_request(&req)?;
    let s = state
        .subscriptions
        .get(&who, &path_id(&req, "name"), &path_id(&req, "id"))?;
    Ok(described(s.view()))
}

/// Unsubscribes.
#[utoipa::path(delete, path = "/queries/{name}/subscriptions/{id}", params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "Unsubscribed"), (status = 404, description = "No such subscription the caller may see")),
    security(("bearer" = [])))]
pub(crate) async fn unsubscribe(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, Epcis> {
    let who = state.tokens.authenticate_request(&req)?;
    state
        .subscriptions
        .delete(&who, &path_id(&req, "name"), &path_id(&req, "id"))?;
    Ok(HttpResponse::NoContent().finish())
}

/// Whether `req` asks to open a WebSocket.
pub(crate) fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// `GET /queries/{name}/events` opening a WebSocket: the query's events
/// recorded from `initialRecordTime` (now when omitted) on, as they are
/// recorded (`stream=true`) or at the times the schedule's parameters
/// match, each run one EPCISQueryDocument message per batch.
pub(crate) async fn socket(
    state: web::Data<ReadState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Epcis> {
    let who = state.tokens.authenticate_request(&req)?;
    let name = path_id(&req, "name");
    let query = named(&state, &who, &name)?;
    let params = QueryParams::parse_any(&req)?;
    let (trigger, report_if_empty, initial) =
        readstate::subscriptions::socket_controls(params.pairs())?;
    state.fresh().await?;
    let now = state.node.clock().now_ms();
    let frontier = frontier_at(&state, initial)?;
    let cron = match &trigger {
        Trigger::Schedule(s) => Some(s.cron()?),
        Trigger::Stream => None,
    };
    let (response, mut session, mut messages) =
        actix_ws::handle(&req, payload).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        let mut frontier = frontier;
        let mut next_fire = cron.and_then(|c| c.next_after(now));
        let mut tick = actix_web::rt::time::interval(TICK);
        loop {
            tokio::select! {
                m = messages.recv() => match m {
                    Some(Ok(actix_ws::Message::Ping(b))) => {
                        if session.pong(&b).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(actix_ws::Message::Close(_))) | Some(Err(_)) | None => {
                        let _ = session.close(None).await;
                        return;
                    }
                    Some(Ok(_)) => {}
                },
                _ = tick.tick() => {
                    let now = state.node.clock().now_ms();
                    if !due(&state, cron.as_ref(), &mut next_fire, now, &frontier) {
                        continue;
                    }
                    // A query deleted meanwhile ends the subscription.
                    let Ok(query) = named(&state, &who, &query.name) else {
                        let _ = session.close(Some(actix_ws::CloseCode::Normal.into())).await;
                        return;
                    };
                    loop {
                        let run = match next_run(&state, &query, &who, &frontier) {
                            Ok(r) => r,
                            Err(e) => {
                                let problem = e.problem_body(e.epcis_type());
                                let _ = session.text(problem.to_string()).await;
                                break;
                            }
                        };
                        let events = match documents(&state, &run.events).await {
                            Ok(e) => e,
                            Err(e) => {
                                let _ = session.text(e.problem_body(e.epcis_type()).to_string()).await;
                                break;
                            }
                        };
                        let mut batches: Vec<&[Value]> = events.chunks(BATCH).collect();
                        if batches.is_empty() && cron.is_some() && report_if_empty {
                            batches.push(&[]);
                        }
                        for b in batches {
                            let doc = subscription_document(b, "websocket");
                            if session.text(doc.to_string()).await.is_err() {
                                return;
                            }
                        }
                        let caught_up = run.caught_up(&state);
                        frontier = run.upto;
                        if caught_up {
                            break;
                        }
                    }
                }
            }
        }
    });
    Ok(response)
}

/// The webhook deliveries: a thread that runs every subscription when it
/// is due and POSTs its results; [`Deliveries::stop`] ends it.
pub struct Deliveries {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Deliveries {
    /// Starts delivering the subscriptions in `state`.
    pub fn spawn(state: Arc<ReadState>) -> std::io::Result<Deliveries> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("subscriptions".into())
            .spawn(move || deliver_until(&state, &flag))?;
        Ok(Deliveries { stop, thread })
    }

    /// Stops, after the POST in progress, and returns once the thread has
    /// let go of the read state (and with it the node, whose logs close
    /// when the last holder lets go).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// What the deliveries keep per subscription between runs (lost at a
/// restart, which the persisted frontier makes harmless).
#[derive(Default)]
struct Pace {
    /// Past the persisted frontier: runs that matched nothing move it here
    /// without a write.
    frontier: Option<Vec<u64>>,
    next_fire: Option<i64>,
    failures: u32,
    retry_at: i64,
    /// Events per POST (halved when the subscriber answers 413).
    batch: usize,
}

fn deliver_until(state: &ReadState, stop: &AtomicBool) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut paces: HashMap<String, Pace> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        let subscriptions = state.subscriptions.all();
        paces.retain(|id, _| subscriptions.iter().any(|s| &s.subscription_id == id));
        for s in subscriptions {
            let now = state.node.clock().now_ms();
            let pace = paces
                .entry(s.subscription_id.clone())
                .or_insert_with(|| Pace {
                    batch: BATCH,
                    ..Pace::default()
                });
            let frontier = pace.frontier.clone().unwrap_or_else(|| s.frontier.clone());
            if now < pace.retry_at {
                continue;
            }
            let cron = match &s.trigger {
                Trigger::Stream => None,
                Trigger::Schedule(schedule) => {
                    let Ok(cron) = schedule.cron() else { continue };
                    // From the last run, so a time missed while the node
                    // was down is run at once.
                    pace.next_fire.get_or_insert_with(|| {
                        cron.next_after(s.min_record_time_ms.max(s.created_at_ms))
                            .unwrap_or(i64::MAX)
                    });
                    Some(cron)
                }
            };
            if due(state, cron.as_ref(), &mut pace.next_fire, now, &frontier) {
                run_webhook(state, &agent, &s, frontier, pace, now, stop);
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
    }
}

/// Runs `s` from `frontier` until it has caught up (or a delivery failed).
fn run_webhook(
    state: &ReadState,
    agent: &ureq::Agent,
    s: &Subscription,
    mut frontier: Vec<u64>,
    pace: &mut Pace,
    started: i64,
    stop: &AtomicBool,
) {
    let who = s.subscriber();
    let query = match named(state, &who, &s.query_name) {
        Ok(q) => q,
        Err(_) => {
            // The query is gone, or no longer the subscriber's to see.
            let _ = state.subscriptions.delete_query(&s.query_name);
            return;
        }
    };
    let scheduled = matches!(s.trigger, Trigger::Schedule(_));
    loop {
        let outcome = match next_run(state, &query, &who, &frontier) {
            Ok(run) => {
                let empty = run.events.is_empty();
                let delivered = if empty && !(scheduled && s.report_if_empty) {
                    Ok(None)
                } else {
                    blocking_documents(state, &run.events)
                        .map_err(|e| e.to_string())
                        .and_then(|events| post_all(agent, s, &events, pace))
                        .map(Some)
                };
                delivered.map(|answered| (run, answered, empty))
            }
            Err(e) if actix_web::ResponseError::status_code(&e).is_client_error() => {
                // The query itself is refused for these entries (more events
                // than its maxEventCount): the subscriber is told, as the
                // binding says, and the run moves past them, so the refusal
                // is sent once, not on every tick.
                let upto = run_end(state, &frontier);
                post_problem(agent, s, &e).map(|answered| {
                    (
                        Run {
                            events: Vec::new(),
                            upto,
                        },
                        Some(answered),
                        false,
                    )
                })
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok((run, answered, empty)) => {
                pace.failures = 0;
                let caught_up = run.caught_up(state) || run.upto == frontier;
                frontier = run.upto;
                if answered.is_some() || !empty {
                    if let Err(e) = state.subscriptions.delivered(
                        &s.subscription_id,
                        frontier.clone(),
                        started,
                        answered,
                    ) {
                        tracing::warn!(subscription = %s.subscription_id, error = %e, "recording a delivery");
                    }
                    metrics::counter!("coldtrail_subscription_deliveries_total", "outcome" => "delivered")
                        .increment(1);
                }
                pace.frontier = Some(frontier.clone());
                if caught_up || stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            Err(why) => {
                pace.failures += 1;
                let pause = (1000i64 << (pace.failures - 1).min(20)).min(MAX_BACKOFF_MS);
                pace.retry_at = state.node.clock().now_ms() + pause;
                metrics::counter!("coldtrail_subscription_deliveries_total", "outcome" => "failed")
                    .increment(1);
                tracing::warn!(subscription = %s.subscription_id, dest = %s.dest, failures = pace.failures, retry_in_ms = pause, error = %why, "a subscription's delivery failed");
                return;
            }
        }
    }
}

/// [`documents`] on the deliveries' thread.
fn blocking_documents(state: &ReadState, ats: &[At]) -> Result<Vec<Value>, ApiError> {
    state.reads.cover_blocking(ats)?;
    state.reads.event_documents(ats)
}

/// POSTs `events` to the subscriber in batches; the time the last batch
/// was answered, or why it failed.
fn post_all(
    agent: &ureq::Agent,
    s: &Subscription,
    events: &[Value],
    pace: &mut Pace,
) -> Result<i64, String> {
    let mut rest = events;
    loop {
        let n = pace.batch.min(rest.len());
        let doc = subscription_document(&rest[..n], &s.subscription_id);
        match post(agent, s, &doc)? {
            413 if n > 1 => {
                pace.batch = (n / 2).max(1);
                continue;
            }
            status if (200..300).contains(&status) => {}
            status => return Err(format!("{} answered {status}", s.dest)),
        }
        rest = &rest[n..];
        if rest.is_empty() {
            return Ok(chrono::Utc::now().timestamp_millis());
        }
    }
}

/// POSTs a refusal of the subscription's query as problem+json.
fn post_problem(agent: &ureq::Agent, s: &Subscription, e: &ApiError) -> Result<i64, String> {
    let mut doc = e.problem_body(e.epcis_type());
    doc["subscriptionID"] = s.subscription_id.clone().into();
    match post(agent, s, &doc)? {
        status if (200..300).contains(&status) => Ok(chrono::Utc::now().timestamp_millis()),
        status => Err(format!("{} answered {status}", s.dest)),
    }
}

/// The `GS1-Signature` of `body` under `token`.
pub fn signature(token: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One POST of `doc` to the subscriber: its status, or why none came.
fn post(agent: &ureq::Agent, s: &Subscription, doc: &Value) -> Result<u16, String> {
    let body = serde_json::to_vec(doc).expect("a document serialises");
    let mut request = agent
        .post(&s.dest)
        .header("Content-Type", "application/json")
        .header("GS1-EPCIS-Version", api::discovery::EPCIS_VERSION);
    if let Some(token) = &s.signature_token {
        request = request.header("GS1-Signature", signature(token, &body));
    }
    let response = request
        .send(&body[..])
        .map_err(|e| format!("{}: {e}", s.dest))?;
    Ok(response.status().as_u16())
}
