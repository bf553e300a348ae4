//! coldtrail's GraphQL API for recall investigators: a lot, its genealogy,
//! every breach on the way, the readings around each, who held it, and a
//! proof for each fact.
//!
//! The schema computes nothing itself: lots, traces, co-exposure, verdicts
//! and recalls come from `analytics::lineage`, readings from
//! `analytics::readings`, proofs and heads from `readstate::verifier`,
//! recall changes go through `readstate::ReadState::change_recall` (the same path
//! as the HTTP routes). Every request is authenticated first (no token, no
//! access); partners see their own organisation's lots, devices and events.
//! Depth, complexity, page size and time are bounded; refusals carry
//! `extensions.code` from the HTTP API's table (`api::ApiError`).
//!
//! ## GraphQL (`graphql`)
//!
//! Each `POST /graphql` is authenticated before anything runs, its body included (no token: 401;
//! the body is then read as the write API reads one, `api::body::read_body`: within the
//! body limit, no content coding), waits until the
//! read model covers what was committed when it began (`ReadState::fresh`), then executes with
//! a fresh `DataLoader` and cost counter. Resolvers compute nothing: lots, traces, co-exposure,
//! verdicts and recalls come from the lineage graph, which now also folds verdict entries
//! (breaches, quarantines, releases); readings come from `analytics::readings`, which reads a
//! device's readings entries on its home shard (the shard lists the entries about each
//! subject) and remembers each entry's time span, so a narrower range reads fewer entries;
//! proofs come from `readstate::verifier::Reads::proof`, one head per shard per batch. Every list is a Relay
//! connection with opaque cursors and a bounded `first`. Loaders batch per kind and level: a
//! hundred lots cost no more trips than one lot (`extensions.cost.tripsBy`: at most one per kind
//! and place in the query; two places of a kind share a trip when their keys meet in one
//! batching window). An extension turns depth and
//! complexity over the limits into refusals with the API's codes; a timeout bounds execution.
//! Mutations go through `readstate::ReadState::change_recall` and the write port's `release_lot`, the same paths as
//! the HTTP routes. Subscriptions read verdict and recall entries from a cursorless feed
//! follower (`graphql::Notices`), so a subscriber sees what the ledger records, in commit
//! order per shard; a subscriber slower than 4,096 notices misses the oldest.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{guard, HttpRequest, HttpResponse, Responder};
use api::ApiError;
use async_graphql::dataloader::DataLoader;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextSubscribe,
    NextValidation,
};
use async_graphql::{Context, Data, Schema, ServerError, ValidationResult};
use async_graphql_actix_web::{GraphQLResponse, GraphQLSubscription};
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use readstate::ReadState;

mod context;
mod model;
pub mod notices;
mod order;
mod page;
mod root;

pub use context::{Caller, Cost};
pub use notices::Notices;
pub use root::{Mutation, Query, Subscription};

use context::{refusal, with_graph, Answer, Graph, PageLimits};
use model::{Direction, Series, Trace, TracedLot};

/// The schema type.
pub type CtSchema = Schema<Query, Mutation, Subscription>;

/// Bounds on what one request may ask.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest selection nesting.
    pub max_depth: usize,
    /// Highest complexity: each field counts 1, a list field `first` times
    /// its selection, a readings series 10 times.
    pub max_complexity: usize,
    /// Largest `first` of a connection.
    pub max_page: usize,
    /// `first` when a query gives none.
    pub default_page: usize,
    /// A query or mutation running longer is stopped.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 15,
            max_complexity: 20_000,
            max_page: 100,
            default_page: 20,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The schema, with the node's read state and notices when serving
/// (without them it still describes itself: [`sdl`]).
pub fn schema(serving: Option<(Arc<ReadState>, Notices)>, limits: Limits) -> CtSchema {
    let mut b = Schema::build(Query, Mutation, Subscription)
        .extension(Refusals(limits))
        .extension(Revalidate)
        .extension(order::SelectionOrder)
        .data(PageLimits {
            max_page: limits.max_page,
            default_page: limits.default_page,
        });
    if let Some((state, notices)) = serving {
        b = b.data(state).data(notices);
    }
    b.finish()
}

/// The schema in SDL: what `coldtrail graphql-schema` prints and
/// `graphql/schema.graphql` holds.
pub fn sdl() -> String {
    schema(None, Limits::default()).sdl()
}

/// Turns depth and complexity over the limits into refusals with the API's
/// codes (the library's own limits give messages without codes).
struct Refusals(Limits);

impl ExtensionFactory for Refusals {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Refusals(self.0))
    }
}

/// A refusal of the whole request (limits, a timeout, a revoked token): it
/// names no place in the query, so it carries no location (a default `Pos`
/// would read as line 0, column 0, where lines and columns count from 1).
fn server_error(e: ApiError) -> ServerError {
    let mut error = refusal(e).into_server_error(async_graphql::Pos::default());
    error.locations.clear();
    error
}

#[async_graphql::async_trait::async_trait]
impl Extension for Refusals {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let r = next.run(ctx).await?;
        if r.depth > self.0.max_depth {
            return Err(vec![server_error(ApiError::QueryTooDeep {
                depth: r.depth,
                limit: self.0.max_depth,
            })]);
        }
        if r.complexity > self.0.max_complexity {
            return Err(vec![server_error(ApiError::QueryTooComplex {
                complexity: r.complexity,
                limit: self.0.max_complexity,
            })]);
        }
        Ok(r)
    }
}

/// The `Authorization` a WebSocket connection was opened with: every
/// operation on the socket, and every notice a subscription sends, checks it
/// again, so revoking the token ends what it opened.
struct SocketToken(String);

impl SocketToken {
    /// Whether the socket's token still stands (from the schema's read state).
    fn check(&self, tokens: &api::TokenStore) -> Result<(), ApiError> {
        tokens.authenticate_header(Some(&self.0)).map(|_| ())
    }
}

/// The socket's token and the node's tokens, when `ctx` is a socket's.
fn socket(ctx: &ExtensionContext<'_>) -> Option<(Arc<api::TokenStore>, String)> {
    let token = ctx.data_opt::<SocketToken>()?;
    let state = ctx.data_opt::<Arc<ReadState>>()?;
    Some((Arc::clone(&state.tokens), token.0.clone()))
}

/// Re-checks a WebSocket's token on every operation and every notice.
struct Revalidate;

impl ExtensionFactory for Revalidate {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Revalidate)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for Revalidate {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> async_graphql::ServerResult<async_graphql::Request> {
        if let Some((tokens, token)) = socket(ctx) {
            SocketToken(token).check(&tokens).map_err(server_error)?;
        }
        next.run(ctx, request).await
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, async_graphql::Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, async_graphql::Response> {
        use futures_util::StreamExt;
        let stream = next.run(ctx, stream);
        let Some((tokens, token)) = socket(ctx) else {
            return stream;
        };
        let token = SocketToken(token);
        // Each answer goes out only while the token stands; a revoked token
        // gets its refusal instead, and the subscription ends.
        futures_util::stream::unfold(
            (stream, Some((tokens, token))),
            |(mut stream, check)| async move {
                let (tokens, token) = check?;
                let answer = stream.next().await?;
                match token.check(&tokens) {
                    Ok(()) => Some((answer, (stream, Some((tokens, token))))),
                    Err(e) => Some((
                        async_graphql::Response::from_errors(vec![server_error(e)]),
                        (stream, None),
                    )),
                }
            },
        )
        .boxed()
    }
}

pub(crate) fn unknown_lot(lot: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no event names {lot:?}; give the lot exactly as its events name it (e.g. urn:epc:class:lgtin:…), or `gtin` and `lot`"
    ))
}

/// A trace, its lots paged, cut to `depth` transformations.
pub(crate) fn trace(
    ctx: &Context<'_>,
    lot: &str,
    direction: Direction,
    depth: Option<i32>,
    first: Option<i32>,
    after: Option<String>,
) -> Answer<Trace> {
    use analytics::lineage::{self, Cut};
    let dir = match direction {
        Direction::Forward => lineage::Direction::Forward,
        Direction::Backward => lineage::Direction::Backward,
    };
    if depth.is_some_and(|d| d < 0) {
        return Err(refusal(ApiError::InvalidParameter {
            name: "depth".into(),
            message: "give 0 or more transformations".into(),
        }));
    }
    let t = with_graph(ctx, |g| g.trace(lot, dir, lineage::Limits::default()))
        .ok_or_else(|| refusal(unknown_lot(lot)))?;
    let cuts = t
        .cut
        .iter()
        .map(|c| match c {
            Cut::Cycle { lot, back_to, event } => format!(
                "{lot} leads back to {back_to}, already on the path (event at shard {} index {}): not followed",
                event.shard, event.index
            ),
            Cut::FanOut { lot, kept, total } => {
                format!("{lot} links {total} lots; the first {kept} were followed")
            }
            Cut::Budget { lots } => format!("the trace stopped after {lots} lots"),
        })
        .collect();
    let lots = t
        .lots
        .into_iter()
        .filter(|l| depth.is_none_or(|d| l.depth <= d as u32))
        .map(|l| TracedLot(Arc::new(l)))
        .collect();
    Ok(Trace {
        root: t.root,
        direction,
        lots: page::page(ctx, lots, first, after)?,
        cuts,
    })
}

fn window(from: DateTime<Utc>, to: DateTime<Utc>, bucket_minutes: i32) -> Answer<(i64, i64, i64)> {
    if bucket_minutes < 1 {
        return Err(refusal(ApiError::InvalidParameter {
            name: "bucketMinutes".into(),
            message: format!("{bucket_minutes}: give 1 or more minutes"),
        }));
    }
    let (a, b) = (from.timestamp_millis(), to.timestamp_millis());
    if a > b {
        return Err(refusal(ApiError::InvalidParameter {
            name: "from".into(),
            message: "`from` is after `to`".into(),
        }));
    }
    Ok((a, b, i64::from(bucket_minutes) * 60_000))
}

/// One device's series, read from the ledger off the async threads.
async fn read_series(
    ctx: &Context<'_>,
    device: &str,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
) -> Answer<analytics::readings::Series> {
    let st = Arc::clone(context::state(ctx));
    let device = device.to_string();
    let s = tokio::task::spawn_blocking(move || {
        st.device_series(&device, from_ms, to_ms, bucket_ms, "bucketMinutes")
    })
    .await
    .map_err(|e| refusal(ApiError::Unavailable(e.to_string())))?
    .map_err(refusal)?;
    context::cost(ctx).trip("readings", s.entries_read);
    Ok(s)
}

/// A device's readings in `[from, to)`: for a partner, when they concern
/// it then (its device, or a logger while it watched a lot of the
/// partner's: the entry routes' rule), wherever the device was reached from.
pub(crate) async fn series(
    ctx: &Context<'_>,
    device: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket_minutes: i32,
) -> Answer<Series> {
    let (a, b, bucket) = window(from, to, bucket_minutes)?;
    let who = context::caller(ctx);
    if !who.sees_all() && !with_graph(ctx, |g| g.readings_concern(device, a, b, &who.0.org)) {
        return Err(refusal(ApiError::Forbidden(format!(
            "the readings of {device} from {from} to {to} concern organisations other than {}: ask for the times it watched your lots",
            who.0.org
        ))));
    }
    Ok(Series(read_series(ctx, device, a, b, bucket).await?))
}

/// A lot's readings: each logger that watched it, over the part of
/// `[from, to)` it watched it.
pub(crate) async fn lot_readings(
    ctx: &Context<'_>,
    lot: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket_minutes: i32,
) -> Answer<Vec<Series>> {
    let (a, b, bucket) = window(from, to, bucket_minutes)?;
    let st = Arc::clone(context::state(ctx));
    let lot = lot.to_string();
    let all =
        tokio::task::spawn_blocking(move || st.lot_series(&lot, a, b, bucket, "bucketMinutes"))
            .await
            .map_err(|e| refusal(ApiError::Unavailable(e.to_string())))?
            .map_err(refusal)?;
    let cost = context::cost(ctx);
    cost.trip("graph", 0);
    for s in &all {
        cost.trip("readings", s.entries_read);
    }
    Ok(all.into_iter().map(Series).collect())
}

/// What the server mounts: the schema, the state it answers from, and the
/// console page browsers get.
#[derive(Clone)]
pub struct Endpoint {
    pub schema: CtSchema,
    pub state: Arc<ReadState>,
    pub limits: Limits,
    pub console: Console,
}

/// The page `GET /graphql` answers a browser with (GraphiQL; the binary
/// passes `web::console`'s, which serves its scripts), and the
/// Content-Security-Policy it runs under.
#[derive(Clone)]
pub struct Console {
    pub html: Arc<str>,
    pub policy: &'static str,
}

/// Registers `POST /graphql` (queries, mutations), `GET /graphql`
/// (GraphiQL in a browser; subscriptions over WebSocket, graphql-transport-ws).
pub fn configure(endpoint: Endpoint) -> impl FnOnce(&mut ServiceConfig) {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(endpoint)).service(
            web::resource("/graphql")
                .route(web::post().to(post_graphql))
                .route(
                    web::get()
                        .guard(guard::Header("upgrade", "websocket"))
                        .to(subscribe),
                )
                .route(web::get().to(graphiql)),
        );
    }
}

/// A refusal before the query runs (no valid token, a body that is not a
/// GraphQL request, a node not ready), as a GraphQL answer.
fn refused(e: ApiError) -> HttpResponse {
    use actix_web::ResponseError;
    let status = e.status_code();
    HttpResponse::build(status).json(serde_json::json!({
        "errors": [{
            "message": e.to_string(),
            "extensions": {"code": e.code(), "status": status.as_u16()},
        }]
    }))
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// The token is checked before the body is read, and the body is read as
/// the write API reads one (bounded by the node's body limit, no content
/// coding): a caller without a token cannot make the node buffer a body.
async fn post_graphql(
    ep: web::Data<Endpoint>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let who = match ep.state.tokens.authenticate_request(&req) {
        Ok(w) => w,
        Err(e) => return refused(e),
    };
    let body = match api::body::read_body(&req, payload, ep.state.frame.max_body_bytes()).await {
        Ok(b) => b,
        Err(e) => return refused(e),
    };
    let request: async_graphql::Request = match api::body::json_body(&body) {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    if let Err(e) = ep.state.fresh().await {
        return refused(e);
    }
    let cost = Arc::new(Cost::default());
    let loader = DataLoader::new(
        Graph {
            state: Arc::clone(&ep.state),
            cost: Arc::clone(&cost),
        },
        tokio::spawn,
    );
    let request = request
        .data(Caller(who))
        .data(Arc::clone(&cost))
        .data(loader);
    // A budget of zero is spent before the query starts: `timeout` polls
    // the query once first, and one that finishes on that poll would pass.
    let executed = if ep.limits.timeout.is_zero() {
        None
    } else {
        tokio::time::timeout(ep.limits.timeout, ep.schema.execute(request))
            .await
            .ok()
    };
    let mut response = executed.unwrap_or_else(|| {
        async_graphql::Response::from_errors(vec![server_error(ApiError::QueryTimeout(
            ep.limits.timeout.as_millis() as u64,
        ))])
    });
    // Parse and validation errors (and argument coercion) come from the
    // library without a code: they are the query's fault.
    for e in &mut response.errors {
        let has_code = e
            .extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some());
        if !has_code {
            let ext = e.extensions.get_or_insert_with(Default::default);
            ext.set("code", ApiError::InvalidQuery(String::new()).code());
            ext.set("status", 400);
        }
    }
    response.extensions.insert(
        "cost".into(),
        async_graphql::Value::from_json(cost.to_json()).unwrap_or_default(),
    );
    GraphQLResponse::from(response).respond_to(&req)
}

/// The console (GraphiQL): it asks for the investigator's token, then sends
/// it as `Authorization: Bearer …` from its Headers tab.
async fn graphiql(ep: web::Data<Endpoint>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, ep.console.policy))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(ep.console.html.to_string())
}

/// Subscriptions over WebSocket. The token comes as the upgrade request's
/// `Authorization` header or, from browsers, in `connection_init`'s payload
/// (`{"Authorization": "Bearer …"}`).
async fn subscribe(
    ep: web::Data<Endpoint>,
    req: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let state = Arc::clone(&ep.state);
    let from_header = bearer(&req).map(str::to_string);
    GraphQLSubscription::new(ep.schema.clone())
        .on_connection_init(move |init: serde_json::Value| async move {
            let token = from_header.or_else(|| {
                init.get("Authorization")
                    .or_else(|| init.get("authorization"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            });
            let who = state
                .tokens
                .authenticate_header(token.as_deref())
                .map_err(refusal)?;
            let cost = Arc::new(Cost::default());
            let mut data = Data::default();
            data.insert(Caller(who));
            data.insert(SocketToken(token.unwrap_or_default()));
            data.insert(DataLoader::new(
                Graph {
                    state,
                    cost: Arc::clone(&cost),
                },
                tokio::spawn,
            ));
            data.insert(cost);
            Ok(data)
        })
        .start(&req, payload)
}

#[cfg(test)]
mod tests {
    /// Fields of the library's own connection types are described by Relay.
    fn ours(type_name: &str) -> bool {
        !(type_name.ends_with("Connection")
            || type_name.ends_with("Edge")
            || type_name == "PageInfo")
    }

    #[test]
    fn every_field_says_what_it_means() {
        let sdl = super::sdl();
        let mut current: Option<String> = None;
        let mut described = false;
        let mut missing = Vec::new();
        let mut in_doc = false;
        for line in sdl.lines() {
            let t = line.trim();
            if !line.starts_with('\t') {
                current = ["type ", "input "]
                    .iter()
                    .find_map(|k| t.strip_prefix(k))
                    .and_then(|r| r.split([' ', '{']).next())
                    .map(str::to_string);
                described = false;
                continue;
            }
            let argument = line.starts_with("\t\t") || t.starts_with(')');
            if t.starts_with("\"\"\"") {
                let one_line = t.len() >= 6 && t.ends_with("\"\"\"");
                if !one_line {
                    in_doc = !in_doc;
                }
                described |= !argument;
                continue;
            }
            if in_doc || t.is_empty() || argument {
                continue;
            }
            if let Some(ty) = current.as_deref().filter(|ty| ours(ty)) {
                if !described {
                    missing.push(format!("{ty}.{}", t.split([':', '(']).next().unwrap_or(t)));
                }
            }
            described = false;
        }
        assert!(
            missing.is_empty(),
            "fields without a description: {missing:?}"
        );
    }
}
