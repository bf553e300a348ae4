//! What a shopper's phone reaches: the GS1 Digital Link resolver, the
//! provenance page it serves, and the QR codes that point at it.
//!
//! The resolver answers any GS1 Digital Link path (`/01/{gtin}/10/{lot}`,
//! other primary keys, short names, data attributes): a malformed one gets
//! a 400 that says what is wrong; a non-canonical one a 301 to the
//! canonical path; a known one the page (browsers), its RFC 9264 linkset
//! (`?linkType=linkset`, `Accept: application/linkset+json`) or a redirect to
//! the link type asked for (`gs1:epcis`, `gs1:traceability`); a link type it
//! does not have a 404. Every answer carries the GS1-Conformant Resolver's
//! CORS and `Link` headers; `/.well-known/gs1resolver` describes it.

pub mod facts;
pub mod render;

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::web::{self, ServiceConfig};
use actix_web::{guard, HttpRequest, HttpResponse};
use api::ApiError;
use gs1::DigitalLink;
use readstate::ReadState;

use render::Lang;

/// Whether `path` starts like a Digital Link path: its first segment is the
/// AI (or short name) of a primary key.
fn is_link_path(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.split('/').next())
        .and_then(gs1::ai::lookup)
        .is_some_and(|ai| ai.role == gs1::Role::PrimaryKey)
}

pub(crate) fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/qr/{path:.*}", web::get().to(get_qr))
        .service(
            web::resource(DESCRIPTION_PATH)
                .route(web::get().to(description))
                .route(web::head().to(description))
                .route(web::method(Method::OPTIONS).to(preflight)),
        )
        .service(
            web::resource("/{path:.*}")
                .guard(guard::fn_guard(|ctx| is_link_path(ctx.head().uri.path())))
                .route(web::get().to(resolve))
                .route(web::head().to(resolve))
                .route(web::method(Method::OPTIONS).to(preflight)),
        );
}

/// Where a GS1-Conformant resolver describes itself.
pub const DESCRIPTION_PATH: &str = "/.well-known/gs1resolver";

/// The GS1 Web Vocabulary's link types, as resolvers name them in full.
const GS1_VOC: &str = "https://gs1.org/voc/";

/// The JSON-LD context that turns a GS1 resolver's linkset into JSON-LD.
const LINKSET_CONTEXT: &str = "https://ref.gs1.org/standards/resolver/linkset-context";

/// The link types this resolver answers, besides the linkset itself: each
/// with its title and media type (the provenance page is the default).
const LINK_TYPES: &[(&str, &str, &str)] = &[
    ("defaultLink", "Provenance page", "text/html"),
    ("pip", "Provenance page", "text/html"),
    (
        "recallStatus",
        "Recall status on the provenance page",
        "text/html",
    ),
    (
        "epcis",
        "EPCIS events (token required)",
        "application/ld+json",
    ),
    (
        "traceability",
        "Trace (investigator token required)",
        "application/json",
    ),
];

/// Headers every resolver answer carries (the standard's CORS): any origin
/// may read them with GET, HEAD or OPTIONS, and see the links and redirects.
fn cors(res: &mut HttpResponse) {
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Link, Location, Content-Language, ETag"),
    );
}

/// `OPTIONS` on a Digital Link or the description file: a CORS preflight.
async fn preflight() -> HttpResponse {
    let mut res = HttpResponse::NoContent()
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Accept, Accept-Language",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .insert_header((header::ALLOW, "GET, HEAD, OPTIONS"))
        .finish();
    cors(&mut res);
    res
}

/// `GET /.well-known/gs1resolver`: the resolver description file (GS1-
/// Conformant Resolver standard): its root, the primary keys and link types
/// it resolves, and that `linkType=linkset` gives the linkset.
async fn description(req: HttpRequest) -> HttpResponse {
    let primary_keys: Vec<&str> = gs1::ai::TABLE
        .iter()
        .filter(|ai| ai.role == gs1::Role::PrimaryKey)
        .map(|ai| ai.code)
        .collect();
    let mut res = HttpResponse::Ok().json(serde_json::json!({
        "name": "coldtrail",
        "resolverRoot": base_url(&req),
        "supportedPrimaryKeys": primary_keys,
        "supportedLinkType": [{ "namespace": GS1_VOC, "prefix": "gs1:" }],
        "linkTypeDefaultCanBeLinkset": false,
    }));
    cors(&mut res);
    res
}

/// The public base URL links and QR codes are written under: the
/// configured one, else the request's own scheme and host (as a proxy
/// passes them on).
fn base_url(req: &HttpRequest) -> String {
    if let Some(url) = req
        .app_data::<web::Data<crate::Options>>()
        .and_then(|o| o.public_url.clone())
    {
        return url;
    }
    let c = req.connection_info();
    format!("{}://{}", c.scheme(), c.host())
}

/// What a consumer page may load: its own inline style, its own scripts and
/// answers from this node; nothing from elsewhere, no framing.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
    style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The policy of what the resolver serves without a script: the not-found
/// page and the QR code SVG (inline styles only, nothing loaded, not framed).
const STATIC_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// Browsers take each answer as the type it says, never a guessed one.
const NOSNIFF: (&str, &str) = ("X-Content-Type-Options", "nosniff");

fn lang_of(req: &HttpRequest) -> Lang {
    Lang::from_accept(
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

fn wants(req: &HttpRequest, media: &str) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').any(|m| m.trim().starts_with(media)))
}

/// A refusal as a page for browsers, else as the API's problem document.
fn refuse(req: &HttpRequest, e: ApiError, heading: (&str, &str)) -> HttpResponse {
    use actix_web::ResponseError;
    if wants(req, "text/html") {
        let status = e.status_code();
        let lang = lang_of(req);
        let h = if lang == Lang::De {
            heading.1
        } else {
            heading.0
        };
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CONTENT_LANGUAGE, lang.code()))
            .insert_header((header::CONTENT_SECURITY_POLICY, STATIC_POLICY))
            .insert_header(NOSNIFF)
            .body(render::not_found_page(lang, h, &e.to_string()))
    } else {
        actix_web::ResponseError::error_response(&e)
    }
}

/// A path that is not a Digital Link: 400, as the resolver standard says
/// (not the 422 the write API gives an invalid identifier in a body).
fn link_error(path: &str, e: gs1::Gs1Error) -> ApiError {
    ApiError::InvalidDigitalLink {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

/// `GET /{digital link path}` (and `HEAD`): every answer, redirects and
/// refusals included, carries CORS and, once the path is a Digital Link,
/// the `Link` to its linkset and the linkset's JSON-LD context.
async fn resolve(state: web::Data<ReadState>, req: HttpRequest) -> HttpResponse {
    let (mut res, here) = answer(state, &req).await;
    cors(&mut res);
    if let Some(here) = here {
        let links = format!(
            "<{here}?linkType=linkset>; rel=\"linkset\"; type=\"application/linkset+json\", \
             <{LINKSET_CONTEXT}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\""
        );
        if let Ok(v) = HeaderValue::from_str(&links) {
            res.headers_mut().insert(header::LINK, v);
        }
    }
    res
}

/// What `resolve` answers, and the thing's URI under this node (`None`
/// when the path is not a Digital Link).
async fn answer(state: web::Data<ReadState>, req: &HttpRequest) -> (HttpResponse, Option<String>) {
    let path = req.uri().path().to_string();
    let query = req.uri().query();
    let base = base_url(req);
    let link = match DigitalLink::from_parts(&base, &path, query) {
        Ok(l) => l,
        Err(e) => {
            let refusal = refuse(
                req,
                link_error(&path, e),
                (
                    "This code is not a valid product code",
                    "Dieser Code ist kein gültiger Produktcode",
                ),
            );
            return (refusal, None);
        }
    };
    let here = link.under(&base);
    // One URI per thing: other spellings are sent to the canonical one.
    // The query is compared decoded: `gs1:epcis` and `gs1%3Aepcis` are one.
    let canonical_query = link.query();
    let decoded = |q: &str| -> Vec<(String, String)> {
        q.split(['&', ';'])
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (
                    gs1::decode(k).unwrap_or_default(),
                    gs1::decode(v).unwrap_or_default(),
                )
            })
            .collect()
    };
    if link.path() != path || decoded(query.unwrap_or("")) != decoded(&canonical_query) {
        let mut to = link.path();
        if !canonical_query.is_empty() {
            to.push('?');
            to.push_str(&canonical_query);
        }
        let moved = HttpResponse::MovedPermanently()
            .insert_header((header::LOCATION, to))
            .finish();
        return (moved, Some(here));
    }
    let res = resolved(state, req, &link, &here).await;
    (res, Some(here))
}

/// A canonical Digital Link's answer: the linkset, a redirect to the link
/// type asked for, the page, or why not.
async fn resolved(
    state: web::Data<ReadState>,
    req: &HttpRequest,
    link: &DigitalLink,
    here: &str,
) -> HttpResponse {
    if let Err(e) = state.fresh().await {
        return actix_web::ResponseError::error_response(&e);
    }
    let canonical = link.canonical();
    let known = state
        .lineage
        .read()
        .expect("lineage lock")
        .knows(&canonical);
    if !known {
        return refuse(
            req,
            ApiError::NotFound(format!(
                "nothing is recorded about {canonical}: no event names it on this node"
            )),
            (
                "We have no record of this product",
                "Zu diesem Produkt liegen uns keine Angaben vor",
            ),
        );
    }
    let link_type = link
        .extensions
        .iter()
        .find(|(k, _)| k == "linkType")
        .map(|(_, v)| v.as_str());
    // `all` is this node's older spelling of the standard's `linkset`.
    if matches!(link_type, Some("linkset" | "all"))
        || (link_type.is_none() && wants(req, "application/linkset+json"))
    {
        return HttpResponse::Ok()
            .content_type("application/linkset+json")
            .json(linkset(here, &canonical));
    }
    // A link type by its CURIE (`gs1:epcis`) or its full URI.
    let named = link_type.map(|t| {
        t.strip_prefix("gs1:")
            .or_else(|| t.strip_prefix(GS1_VOC))
            .or_else(|| t.strip_prefix("https://ref.gs1.org/voc/"))
            .unwrap_or(t)
    });
    match named {
        None | Some("defaultLink" | "pip" | "recallStatus") => {
            page(&state.into_inner(), req, &canonical, here).await
        }
        Some("epcis") => redirect(&format!(
            "/events?MATCH_anything={}",
            gs1::encode(&canonical)
        )),
        Some("traceability") => redirect(&format!("/v1/trace?lot={}", gs1::encode(&canonical))),
        Some(other) => refuse(
            req,
            ApiError::NotFound(format!(
                "this resolver has no {other:?} link for {canonical}; it has {}, and the linkset (linkType=linkset)",
                LINK_TYPES
                    .iter()
                    .map(|(t, _, _)| format!("gs1:{t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            (
                "We have no such information about this product",
                "Zu diesem Produkt liegen uns solche Angaben nicht vor",
            ),
        ),
    }
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::TemporaryRedirect()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// The RFC 9264 linkset of a thing: the provenance page (default, and as
/// the product information and recall status links), its EPCIS events and
/// trace (for partners and investigators with a token).
fn linkset(here: &str, canonical: &str) -> serde_json::Value {
    let mut item = serde_json::Map::new();
    item.insert("anchor".into(), canonical.into());
    for (t, title, media) in LINK_TYPES {
        let target = match *t {
            "defaultLink" => here.to_string(),
            "recallStatus" => format!("{here}?linkType=gs1:pip#recall"),
            t => format!("{here}?linkType=gs1:{t}"),
        };
        item.insert(
            format!("{GS1_VOC}{t}"),
            serde_json::json!([{
                "href": target,
                "title": title,
                "type": media,
                "hreflang": ["en", "de"],
            }]),
        );
    }
    serde_json::json!({ "linkset": [item] })
}

/// The provenance page, with an ETag over its bytes.
async fn page(
    state: &Arc<ReadState>,
    req: &HttpRequest,
    canonical: &str,
    here: &str,
) -> HttpResponse {
    let started = std::time::Instant::now();
    let lang = lang_of(req);
    let facts = {
        let g = state.lineage.read().expect("lineage lock");
        facts::lot_facts(&g, state.rules.as_deref(), canonical)
    };
    let Some(facts) = facts else {
        return refuse(
            req,
            ApiError::NotFound(format!("nothing is recorded about {canonical}")),
            (
                "We have no record of this product",
                "Zu diesem Produkt liegen uns keine Angaben vor",
            ),
        );
    };
    let catalogue = req
        .app_data::<web::Data<crate::Options>>()
        .map(|o| Arc::clone(&o.catalogue));
    let product = facts.gtin.as_deref().and_then(|g| {
        catalogue
            .as_deref()
            .and_then(|c| c.name(g, lang.code()))
            .map(str::to_string)
    });
    let disclosed = facts
        .gtin
        .as_deref()
        .is_some_and(|g| catalogue.as_deref().is_some_and(|c| c.discloses(g)));
    if !disclosed {
        let body = render::withheld_page(&facts, product.as_deref(), lang, here, &state.grant);
        return respond(req, body, lang, started);
    }
    // Hourly buckets over the journey (and a day after its last step).
    let (from, to) = (facts.first_ms, facts.last_ms + 86_400_000);
    let bucket = (((to - from) / 200).max(60_000) / 60_000) * 60_000;
    let st = Arc::clone(state);
    let lot = facts.lot.clone();
    let series =
        match tokio::task::spawn_blocking(move || st.lot_series(&lot, from, to, bucket, "bucket"))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return actix_web::ResponseError::error_response(&e),
            Err(e) => {
                return actix_web::ResponseError::error_response(&ApiError::Unavailable(
                    e.to_string(),
                ))
            }
        };
    let body = render::lot_page(
        &facts,
        product.as_deref(),
        &series,
        lang,
        here,
        &state.grant,
    );
    respond(req, body, lang, started)
}

/// A page's answer: cached by its ETag, with the page's headers.
fn respond(
    req: &HttpRequest,
    body: String,
    lang: Lang,
    started: std::time::Instant,
) -> HttpResponse {
    let etag = crate::cache::etag(body.as_bytes());
    let matches = crate::cache::not_modified(req, &etag);
    let mut res = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .insert_header((header::VARY, "Accept, Accept-Language"))
        .insert_header((header::CONTENT_LANGUAGE, lang.code()))
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY))
        .insert_header(NOSNIFF)
        // What building the page took, for operators' dashboards and the bench.
        .insert_header((
            "Server-Timing",
            format!("page;dur={:.3}", started.elapsed().as_secs_f64() * 1e3),
        ));
    if matches {
        res.finish()
    } else {
        res.content_type("text/html; charset=utf-8").body(body)
    }
}

/// `GET /qr/{digital link path}.svg|.png`: a QR code of the canonical
/// Digital Link URI under this node's public URL.
async fn get_qr(req: HttpRequest) -> HttpResponse {
    let raw = req.uri().path().strip_prefix("/qr").unwrap_or("");
    let (path, format) = match raw.rsplit_once('.') {
        Some((p, f @ ("svg" | "png"))) => (p, f),
        _ => {
            return actix_web::ResponseError::error_response(&ApiError::InvalidParameter {
                name: "format".into(),
                message: "end the path with .svg or .png, as in /qr/01/{gtin}/10/{lot}.svg".into(),
            })
        }
    };
    let base = base_url(&req);
    let link = match DigitalLink::from_parts(&base, path, None) {
        Ok(l) => l,
        Err(e) => return actix_web::ResponseError::error_response(&link_error(path, e)),
    };
    match qr(&link.under(&base), format) {
        Ok((media, bytes)) => HttpResponse::Ok()
            .content_type(media)
            .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
            .insert_header((header::CONTENT_SECURITY_POLICY, STATIC_POLICY))
            .insert_header(NOSNIFF)
            .body(bytes),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

/// The QR code of `uri` as SVG, PNG or text for a terminal (`txt`, two
/// modules per character); medium error correction, a four-module quiet zone.
pub fn qr(uri: &str, format: &str) -> Result<(&'static str, Vec<u8>), ApiError> {
    let code =
        qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M).map_err(|e| {
            ApiError::InvalidParameter {
                name: "path".into(),
                message: format!("{uri} does not fit in a QR code: {e}"),
            }
        })?;
    if format == "svg" {
        let svg = code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build();
        return Ok(("image/svg+xml", svg.into_bytes()));
    }
    if format == "txt" {
        let text = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build();
        return Ok(("text/plain; charset=utf-8", text.into_bytes()));
    }
    let width = code.width();
    let (scale, quiet) = (8usize, 4usize);
    let side = (width + 2 * quiet) * scale;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (mx, my) = (i % width + quiet, i / width + quiet);
            for dy in 0..scale {
                let row = (my * scale + dy) * side;
                pixels[row + mx * scale..row + mx * scale + scale].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, side as u32, side as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        w.write_image_data(&pixels)
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    }
    Ok(("image/png", out))
}
