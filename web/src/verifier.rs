//! The verifier's routes: the key document, signed heads, entries by place
//! and by id (canonical bytes and a decoded view), inclusion and consistency
//! proofs. Everything a stranger needs to check a fact the node states
//! (VERIFYING.md); the work is `readstate::verifier::Reads`.

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use api::params::{path_number, QueryParams};
use api::ApiError;
use ledger::entry::Entry;
use readstate::verifier::{
    ConsistencyJson, EntryJson, ForkJson, HeadJson, KeySetJson, KeysDocument, MemberJson,
    MembersJson, MirroredJson, ProofJson, ShardKeyJson, SignedSizesJson, WitnessKeyJson,
    WitnessPolicyJson, WitnessedJson,
};
use readstate::ReadState;
use utoipa::OpenApi;

/// Registers the verifier's routes (the read state is the app's data).
pub(crate) fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/v1/shards/{shard}/head", web::get().to(get_head))
        .route(
            "/v1/shards/{shard}/checkpoint",
            web::get().to(get_checkpoint),
        )
        .route("/v1/shards/{shard}/heads", web::get().to(get_heads))
        .route(
            "/v1/shards/{shard}/heads/{size}",
            web::get().to(get_head_at),
        )
        .route(
            "/v1/shards/{shard}/entries/{index}",
            web::get().to(get_entry),
        )
        .route(
            "/v1/shards/{shard}/entries/{index}/raw",
            web::get().to(get_entry_raw),
        )
        .route("/v1/entries/{id}", web::get().to(get_entry_by_id))
        .route(
            "/v1/shards/{shard}/entries/{index}/proof",
            web::get().to(get_proof),
        )
        .route(
            "/v1/shards/{shard}/consistency",
            web::get().to(get_consistency),
        )
        .route(KEYS_PATH, web::get().to(get_keys))
        .route("/v1/members", web::get().to(get_members))
        .route(
            "/v1/members/{member}/shards/{shard}/head",
            web::get().to(get_member_head),
        )
        .route(
            "/v1/members/{member}/shards/{shard}/entries/{index}",
            web::get().to(get_member_entry),
        )
        .route(
            "/v1/members/{member}/shards/{shard}/entries/{index}/proof",
            web::get().to(get_member_proof),
        );
}

/// Where the node's key document is served.
pub const KEYS_PATH: &str = "/.well-known/coldtrail/keys";

/// The node's log keys: every key set its operator key signed, oldest first.
/// Pin the operator key once; check each shard's heads under the key the newest set names.
#[utoipa::path(get, path = "/.well-known/coldtrail/keys", responses((status = 200, body = KeysDocument)))]
async fn get_keys(state: web::Data<ReadState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    QueryParams::parse(&req, &[])?;
    Ok(HttpResponse::Ok().json(state.reads.keys_document()))
}

/// The shard's newest signed head (signed now if the log grew since).
#[utoipa::path(get, path = "/v1/shards/{shard}/head", params(("shard" = u32, Path)),
    responses((status = 200, body = HeadJson), (status = 404, description = "No such shard")))]
async fn get_head(state: web::Data<ReadState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    QueryParams::parse(&req, &[])?;
    let shard = path_number(&req, "shard")?;
    Ok(HttpResponse::Ok().json(state.reads.latest_head(shard).await?))
}

/// The shard's head as a transparency-log checkpoint (C2SP `tlog-checkpoint`
/// as a `signed-note`: origin, size, base64 root, the log key's signature
/// line; VERIFYING.md §6): the newest, or the one signed at exactly `size`.
/// What a witness is sent and a tlog client reads.
#[utoipa::path(get, path = "/v1/shards/{shard}/checkpoint",
    params(("shard" = u32, Path), ("size" = Option<u64>, Query, description = "The size of a head the log signed (default: the newest)"),
        ("cosigned" = Option<usize>, Query, description = "Instead of `size`: the newest checkpoint with at least this many witness cosignatures")),
    responses((status = 200, content_type = "text/plain", body = String, description = "The signed checkpoint"),
        (status = 404, description = "No such shard, or no head signed at that size (`no_signed_head` names the next)")))]
async fn get_checkpoint(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req, &["size", "cosigned"])?;
    let shard = path_number(&req, "shard")?;
    let text = state
        .reads
        .checkpoint(shard, q.get("size")?, q.get("cosigned")?)
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text))
}

/// Most sizes listed in one answer.
const MAX_SIZES: usize = 10_000;

/// The sizes at which the shard's log signed heads (every head it signed is
/// kept), oldest first, from `from` (default 0), at most `limit` (default and
/// most 10,000); `next` continues the listing.
#[utoipa::path(get, path = "/v1/shards/{shard}/heads",
    params(("shard" = u32, Path), ("from" = Option<u64>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = SignedSizesJson), (status = 404, description = "No such shard")))]
async fn get_heads(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req, &["from", "limit"])?;
    let shard = path_number(&req, "shard")?;
    let limit: usize = q.get("limit")?.unwrap_or(MAX_SIZES);
    if limit == 0 || limit > MAX_SIZES {
        return Err(ApiError::InvalidParameter {
            name: "limit".into(),
            message: format!("{limit}: give 1 to {MAX_SIZES}"),
        });
    }
    let from = q.get("from")?.unwrap_or(0);
    Ok(HttpResponse::Ok().json(state.reads.signed_sizes(shard, from, limit)?))
}

/// The head the shard's log signed at exactly `size` entries (every head it
/// signed is kept): fetch the head an old proof or a saved state refers to.
#[utoipa::path(get, path = "/v1/shards/{shard}/heads/{size}", params(("shard" = u32, Path), ("size" = u64, Path)),
    responses((status = 200, body = HeadJson), (status = 404, description = "No head was signed at that size (`no_signed_head` names the next signed size)")))]
async fn get_head_at(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    QueryParams::parse(&req, &[])?;
    let shard = path_number(&req, "shard")?;
    let size = path_number(&req, "size")?;
    Ok(HttpResponse::Ok().json(state.reads.head_at(shard, size)?))
}

/// Entry `index` of a shard: its canonical bytes (base64), id and decoded view.
#[utoipa::path(get, path = "/v1/shards/{shard}/entries/{index}",
    params(("shard" = u32, Path), ("index" = u64, Path),
        ("grant" = Option<String>, Query, description = "A consumer page's grant for this entry, in place of a token")),
    responses((status = 200, body = EntryJson), (status = 401, description = "No token (the content is not public)"),
        (status = 403, description = "The entry concerns other organisations"), (status = 404, description = "No such entry")),
    security((), ("bearer" = [])))]
async fn get_entry(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (shard, index, entry, bytes) = readable_at(&state, &req).await?;
    Ok(HttpResponse::Ok().json(state.reads.entry_json(shard, index, &entry, &bytes)))
}

/// The entry the path names (`{shard}/entries/{index}`, `?grant=`), decoded
/// and as bytes, if the caller (or the grant) may read it.
async fn readable_at(
    state: &ReadState,
    req: &HttpRequest,
) -> Result<(u32, u64, Entry, Vec<u8>), ApiError> {
    let q = QueryParams::parse(req, &["grant"])?;
    let shard = path_number(req, "shard")?;
    let index = path_number(req, "index")?;
    let grant: Option<String> = q.get("grant")?;
    let who = state.tokens.caller(req)?;
    let (entry, bytes) = state
        .readable_entry(who.as_ref(), grant.as_deref(), shard, index)
        .await?;
    Ok((shard, index, entry, bytes))
}

/// Entry `index` of a shard: exactly its canonical bytes.
#[utoipa::path(get, path = "/v1/shards/{shard}/entries/{index}/raw",
    params(("shard" = u32, Path), ("index" = u64, Path),
        ("grant" = Option<String>, Query, description = "A consumer page's grant for this entry, in place of a token")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>, description = "The canonical bytes"),
        (status = 401, description = "No token (the content is not public)"),
        (status = 403, description = "The entry concerns other organisations"), (status = 404, description = "No such entry")),
    security((), ("bearer" = [])))]
async fn get_entry_raw(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (_, _, _, bytes) = readable_at(&state, &req).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(bytes))
}

/// The entry with this id (64 hex digits), wherever it is on this node.
#[utoipa::path(get, path = "/v1/entries/{id}", params(("id" = String, Path)),
    responses((status = 200, body = EntryJson), (status = 400, description = "Not an entry id"),
        (status = 401, description = "No token (the content is not public)"),
        (status = 403, description = "The entry concerns other organisations"), (status = 404, description = "No such entry")),
    security((), ("bearer" = [])))]
async fn get_entry_by_id(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    QueryParams::parse(&req, &[])?;
    let id = req.match_info().get("id").unwrap_or("");
    let (shard, index) = state.reads.locate(id)?;
    let who = state.tokens.caller(&req)?;
    let (entry, bytes) = state
        .readable_entry(who.as_ref(), None, shard, index)
        .await?;
    Ok(HttpResponse::Ok().json(state.reads.entry_json(shard, index, &entry, &bytes)))
}

/// Inclusion proof of entry `index` with the signed head it leads to.
#[utoipa::path(get, path = "/v1/shards/{shard}/entries/{index}/proof",
    params(("shard" = u32, Path), ("index" = u64, Path),
        ("size" = Option<u64>, Query, description = "Prove against the head signed at this size (default: a current head)")),
    responses((status = 200, body = ProofJson), (status = 404, description = "No such entry, or no head signed at `size`")))]
async fn get_proof(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req, &["size"])?;
    let shard = path_number(&req, "shard")?;
    let index = path_number(&req, "index")?;
    Ok(HttpResponse::Ok().json(state.reads.proof(shard, index, q.get("size")?).await?))
}

/// Consistency proof between the trees of `first` and `second` entries, with
/// the heads signed at those sizes.
#[utoipa::path(get, path = "/v1/shards/{shard}/consistency",
    params(("shard" = u32, Path),
        ("first" = u64, Query, description = "The older size (at least 1)"),
        ("second" = u64, Query, description = "The newer size (at most the log's size)")),
    responses((status = 200, body = ConsistencyJson), (status = 400, description = "Sizes out of order"), (status = 404, description = "The log is not that large")))]
async fn get_consistency(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req, &["first", "second"])?;
    let shard = path_number(&req, "shard")?;
    Ok(HttpResponse::Ok().json(state.reads.consistency(
        shard,
        q.require("first")?,
        q.require("second")?,
    )?))
}

/// The network member the path names.
fn path_member(req: &HttpRequest) -> &str {
    req.match_info().get("member").unwrap_or("")
}

/// The other network members whose logs this node mirrors: per shard, the
/// entries held, the newest head verified and any fork caught (empty on a
/// node on its own).
#[utoipa::path(get, path = "/v1/members", responses((status = 200, body = MembersJson)))]
async fn get_members(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    QueryParams::parse(&req, &[])?;
    Ok(HttpResponse::Ok().json(state.reads.members()))
}

/// The newest head of another network member's shard log that this node's
/// mirror of it verified (signed by that member's log key: check it under
/// the key that member's key document names).
#[utoipa::path(get, path = "/v1/members/{member}/shards/{shard}/head",
    params(("member" = String, Path), ("shard" = u32, Path)),
    responses((status = 200, body = HeadJson), (status = 404, description = "No mirror of that member's shard here, or no head of it verified yet")))]
async fn get_member_head(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    QueryParams::parse(&req, &[])?;
    let shard = path_number(&req, "shard")?;
    Ok(HttpResponse::Ok().json(state.reads.member_head(path_member(&req), shard)?))
}

/// Entry `index` of another network member's shard log, from this node's
/// verified mirror of it: readable here while that member's node is down.
#[utoipa::path(get, path = "/v1/members/{member}/shards/{shard}/entries/{index}",
    params(("member" = String, Path), ("shard" = u32, Path), ("index" = u64, Path)),
    responses((status = 200, body = EntryJson), (status = 401, description = "No token (the content is not public)"),
        (status = 403, description = "The entry concerns other organisations"), (status = 404, description = "No such entry in this node's mirror")),
    security((), ("bearer" = [])))]
async fn get_member_entry(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    QueryParams::parse(&req, &[])?;
    let member = path_member(&req);
    let shard = path_number(&req, "shard")?;
    let index = path_number(&req, "index")?;
    let who = state.tokens.caller(&req)?;
    let (entry, bytes) = state
        .readable_member_entry(who.as_ref(), member, shard, index)
        .await?;
    Ok(HttpResponse::Ok().json(
        state
            .reads
            .member_entry_json(member, shard, index, &entry, &bytes),
    ))
}

/// Inclusion proof of entry `index` of another network member's shard log
/// under the newest head of it this node's mirror verified.
#[utoipa::path(get, path = "/v1/members/{member}/shards/{shard}/entries/{index}/proof",
    params(("member" = String, Path), ("shard" = u32, Path), ("index" = u64, Path)),
    responses((status = 200, body = ProofJson), (status = 404, description = "No such entry in this node's mirror, or no verified head holds it yet")))]
async fn get_member_proof(
    state: web::Data<ReadState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    QueryParams::parse(&req, &[])?;
    let shard = path_number(&req, "shard")?;
    let index = path_number(&req, "index")?;
    Ok(HttpResponse::Ok().json(state.reads.member_proof(path_member(&req), shard, index)?))
}

/// The verifier routes' part of the node's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        get_keys,
        get_head,
        get_checkpoint,
        get_heads,
        get_head_at,
        get_entry,
        get_entry_raw,
        get_entry_by_id,
        get_proof,
        get_consistency,
        get_members,
        get_member_head,
        get_member_entry,
        get_member_proof
    ),
    components(schemas(
        HeadJson,
        SignedSizesJson,
        ProofJson,
        ConsistencyJson,
        EntryJson,
        KeysDocument,
        KeySetJson,
        ShardKeyJson,
        WitnessedJson,
        WitnessPolicyJson,
        WitnessKeyJson,
        MembersJson,
        MemberJson,
        MirroredJson,
        ForkJson
    ))
)]
pub(crate) struct VerifierApi;
