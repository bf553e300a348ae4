//! What a shopper's phone reaches: the GS1 Digital Link resolver
//! ([`resolver`]), the provenance page it redirects to (its default link,
//! under [`PAGE_PREFIX`]), and the QR codes that point at it.

pub mod facts;
pub mod render;
mod resolver;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::http::Method;
use actix_web::web::{self, ServiceConfig};
use actix_web::{guard, HttpRequest, HttpResponse};
use api::ApiError;
use gs1::DigitalLink;
use readstate::ReadState;

use render::Lang;
use resolver::Subject;
pub use resolver::DESCRIPTION_PATH;

/// Where the provenance page of a Digital Link path is served
/// (`/provenance/01/{gtin}/10/{lot}`): the resolver's default link. The
/// page is a resource of its own, not a resolver answer, so the resolver
/// can redirect to it as the standard asks.
pub const PAGE_PREFIX: &str = "/provenance";

/// Whether `path` starts like a Digital Link path: its first segment is the
/// AI (or short name) of a primary key.
fn is_link_path(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.split('/').next())
        .and_then(gs1::ai::lookup)
        .is_some_and(|ai| ai.role == gs1::Role::PrimaryKey)
        || gs1::compression::uncompressed(path, path).is_some_and(|d| d.is_ok())
}

pub(crate) fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/qr/{path:.*}", web::get().to(get_qr))
        .service(
            web::resource(format!("{PAGE_PREFIX}/{{path:.*}}"))
                .route(web::get().to(get_page))
                .route(web::head().to(get_page)),
        )
        .service(
            web::resource(DESCRIPTION_PATH)
                .route(web::get().to(resolver::description))
                .route(web::head().to(resolver::description))
                .route(web::method(Method::OPTIONS).to(resolver::preflight)),
        )
        .service(
            web::resource("/{path:.*}")
                .guard(guard::fn_guard(|ctx| is_link_path(ctx.head().uri.path())))
                .route(web::get().to(resolver::resolve))
                .route(web::head().to(resolver::resolve))
                .route(web::method(Method::OPTIONS).to(resolver::preflight)),
        );
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

/// The product master data pages and linksets name products from.
fn catalogue(req: &HttpRequest) -> Option<Arc<crate::catalogue::Catalogue>> {
    req.app_data::<web::Data<crate::Options>>()
        .map(|o| Arc::clone(&o.catalogue))
}

/// The name of the product `gtin` in `lang`, as the catalogue has it.
fn product_name(
    catalogue: Option<&crate::catalogue::Catalogue>,
    gtin: Option<&str>,
    lang: Lang,
) -> Option<String> {
    gtin.and_then(|g| catalogue?.name(g, lang.code()))
        .map(str::to_string)
}

/// Whether a request's `path` is `link`'s canonical path: exactly, or with
/// one trailing slash (the same URI, as resolvers treat it).
fn is_canonical_path(link: &DigitalLink, path: &str) -> bool {
    let canonical = link.path();
    path == canonical || path.strip_suffix('/') == Some(canonical.as_str())
}

/// The answer to a path that is not a Digital Link: 400, as a page or a
/// problem.
fn not_a_link(req: &HttpRequest, path: &str, e: gs1::Gs1Error) -> HttpResponse {
    refuse(
        req,
        link_error(path, e),
        (
            "This code is not a valid product code",
            "Dieser Code ist kein gültiger Produktcode",
        ),
    )
}

/// The answer when nothing is known of `link` at any level: 404.
fn nothing_recorded(req: &HttpRequest, link: &DigitalLink) -> HttpResponse {
    refuse(
        req,
        ApiError::NotFound(format!(
            "nothing is recorded about {}: no event names it, nor its product, on this node",
            link.canonical()
        )),
        (
            "We have no record of this product",
            "Zu diesem Produkt liegen uns keine Angaben vor",
        ),
    )
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

/// `GET /provenance/{digital link path}` (and `HEAD`): the provenance page
/// of what the path names, walking up as the resolver does (an unknown lot
/// shows its product); `?lang=en|de` picks the language over
/// `Accept-Language` (the pages' `hreflang` alternates).
async fn get_page(state: web::Data<ReadState>, req: HttpRequest) -> HttpResponse {
    let full = req.uri().path();
    let path = full.strip_prefix(PAGE_PREFIX).unwrap_or(full);
    let base = base_url(&req);
    let link = match DigitalLink::from_parts(&base, path, req.uri().query()) {
        Ok(l) => l,
        Err(e) => return not_a_link(&req, path, e),
    };
    if !is_canonical_path(&link, path) {
        let mut to = format!("{PAGE_PREFIX}{}", link.path());
        if let Some(q) = req.uri().query() {
            to.push('?');
            to.push_str(q);
        }
        return HttpResponse::MovedPermanently()
            .insert_header((header::LOCATION, to))
            .finish();
    }
    if let Err(e) = state.fresh().await {
        return actix_web::ResponseError::error_response(&e);
    }
    let lang = link
        .extensions
        .iter()
        .find(|(k, _)| k == "lang")
        .and_then(|(_, v)| Lang::from_code(v))
        .unwrap_or_else(|| lang_of(&req));
    let catalogue = catalogue(&req);
    let Some(subject) = resolver::subject_of(&state, catalogue.as_deref(), &link) else {
        return nothing_recorded(&req, &link);
    };
    let urls = render::Urls {
        page: resolver::page_url(&base, subject.link()),
        linkset: format!("{}?linkType=linkset", subject.link().under(&base)),
    };
    match subject {
        Subject::Recorded(l) => {
            page(
                &state.into_inner(),
                &req,
                &l.canonical(),
                &urls,
                lang,
                catalogue.as_deref(),
            )
            .await
        }
        Subject::Product(l) => {
            let started = std::time::Instant::now();
            let gtin = l.gtin().unwrap_or_default();
            let body = render::product_page(
                gtin,
                product_name(catalogue.as_deref(), Some(gtin), lang).as_deref(),
                link.get("10"),
                lang,
                &urls,
            );
            respond(&req, body, lang, started)
        }
    }
}

/// The provenance page of a recorded thing, with an ETag over its bytes.
async fn page(
    state: &Arc<ReadState>,
    req: &HttpRequest,
    canonical: &str,
    urls: &render::Urls,
    lang: Lang,
    catalogue: Option<&crate::catalogue::Catalogue>,
) -> HttpResponse {
    let started = std::time::Instant::now();
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
    let product = product_name(catalogue, facts.gtin.as_deref(), lang);
    let disclosed = facts
        .gtin
        .as_deref()
        .is_some_and(|g| catalogue.is_some_and(|c| c.discloses(g)));
    if !disclosed {
        let body = render::withheld_page(&facts, product.as_deref(), lang, urls, &state.grant);
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
        urls,
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
