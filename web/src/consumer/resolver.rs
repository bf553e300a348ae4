//! The GS1-Conformant Resolver: what a Digital Link URI answers.
//!
//! Every answer to a Digital Link carries CORS (any origin; GET, HEAD,
//! OPTIONS), `Vary: Accept, Accept-Language`, and a `Link` header with the
//! linkset, its JSON-LD context and every link the thing has, each with its
//! title, media type and language. A well-formed URI then answers:
//!
//! - `linkType=linkset` (or `all`), or `Accept: application/linkset+json`
//!   without a link type: the RFC 9264 linkset (as JSON or JSON-LD when the
//!   client asks for those instead);
//! - no link type: a 307 to the default link (the provenance page), the
//!   request's query string passed on;
//! - a link type the thing has: a 307 to its target in the language the
//!   client prefers, the query string passed on; one it does not have: 404.
//!
//! An identifier nobody recorded walks up the tree: an unknown lot answers
//! with its product's links (a product in the catalogue); nothing known at
//! any level is 404. A malformed URI is 400; another spelling of a known
//! one is a 301 to the canonical URI (a trailing slash is the same URI).

use actix_web::http::header::{self, HeaderValue};
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use api::ApiError;
use gs1::DigitalLink;
use readstate::ReadState;

use super::{
    base_url, catalogue, is_canonical_path, lang_of, not_a_link, nothing_recorded, product_name,
    refuse, wants, PAGE_PREFIX,
};

/// Where a GS1-Conformant resolver describes itself.
pub const DESCRIPTION_PATH: &str = "/.well-known/gs1resolver";

/// The GS1 Web Vocabulary's link types, as resolvers name them in full.
const GS1_VOC: &str = "https://gs1.org/voc/";

/// The JSON-LD context that turns a GS1 resolver's linkset into JSON-LD.
const LINKSET_CONTEXT: &str = "https://ref.gs1.org/standards/resolver/linkset-context";

/// What a Digital Link names, as far as this node knows it.
#[derive(Debug, Clone)]
pub(crate) enum Subject {
    /// Something events named (a lot, a serialised item, a container…):
    /// its Digital Link, maybe less granular than the one asked for.
    Recorded(DigitalLink),
    /// A product the catalogue names, none of whose recorded things was
    /// asked for: its Digital Link is the bare GTIN.
    Product(DigitalLink),
}

impl Subject {
    pub(crate) fn link(&self) -> &DigitalLink {
        match self {
            Subject::Recorded(l) | Subject::Product(l) => l,
        }
    }
}

/// What `link` names on this node, walking up the tree as the resolver
/// standard asks: the link itself, then with fewer key qualifiers (an
/// unknown serial number falls back to its lot, an unknown lot to its
/// product), then the product if the catalogue names its GTIN. `None`
/// when nothing at any level is known.
pub(crate) fn subject_of(
    state: &ReadState,
    catalogue: Option<&crate::catalogue::Catalogue>,
    link: &DigitalLink,
) -> Option<Subject> {
    let g = state.lineage.read().expect("lineage lock");
    for keep in (0..=link.qualifiers.len()).rev() {
        let candidate = truncated(link, keep);
        if g.knows(&candidate.canonical()) {
            return Some(Subject::Recorded(candidate));
        }
    }
    let gtin = link.gtin()?;
    catalogue
        .is_some_and(|c| c.name(gtin, "en").is_some())
        .then(|| Subject::Product(truncated(link, 0)))
}

/// `link`'s primary key with its first `keep` qualifiers, no attributes or
/// other parameters.
fn truncated(link: &DigitalLink, keep: usize) -> DigitalLink {
    DigitalLink {
        stem: link.stem.clone(),
        key: link.key.clone(),
        qualifiers: link.qualifiers[..keep].to_vec(),
        attributes: Vec::new(),
        extensions: Vec::new(),
    }
}

/// One link of a thing's linkset: its link type (a GS1 Web Vocabulary
/// term), target, title, media type and the languages it is in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Link {
    pub rel: &'static str,
    pub href: String,
    /// ASCII: it is written into the `Link` header as it is.
    pub title: &'static str,
    pub media: &'static str,
    pub langs: &'static [&'static str],
}

const BOTH: &[&str] = &["en", "de"];

/// The provenance page's URL for `link` under `base`: the resolver's
/// default link.
pub(crate) fn page_url(base: &str, link: &DigitalLink) -> String {
    format!("{}{PAGE_PREFIX}{}", base.trim_end_matches('/'), link.path())
}

/// The links `subject` has, the default link first. A recorded thing has
/// its page (the default, the product information page in each language,
/// its recall status), its EPCIS events and its trace (for partners and
/// investigators with a token); a product only its page.
pub(crate) fn links(base: &str, subject: &Subject) -> Vec<Link> {
    let link = subject.link();
    let page = page_url(base, link);
    let mut out = vec![
        Link {
            rel: "defaultLink",
            href: page.clone(),
            title: "Provenance page",
            media: "text/html",
            langs: BOTH,
        },
        Link {
            rel: "pip",
            href: format!("{page}?lang=en"),
            title: "Provenance page",
            media: "text/html",
            langs: &["en"],
        },
        Link {
            rel: "pip",
            href: format!("{page}?lang=de"),
            title: "Herkunftsseite",
            media: "text/html",
            langs: &["de"],
        },
    ];
    if let Subject::Recorded(_) = subject {
        let canonical = gs1::encode(&link.canonical());
        let base = base.trim_end_matches('/');
        out.extend([
            Link {
                rel: "recallStatus",
                href: format!("{page}#recall"),
                title: "Recall status on the provenance page",
                media: "text/html",
                langs: BOTH,
            },
            Link {
                rel: "epcis",
                href: format!("{base}/events?MATCH_anything={canonical}"),
                title: "EPCIS events (partner token required)",
                media: "application/ld+json",
                langs: &["en"],
            },
            Link {
                rel: "traceability",
                href: format!("{base}/v1/trace?lot={canonical}"),
                title: "Trace (investigator token required)",
                media: "application/json",
                langs: &["en"],
            },
        ]);
    }
    out
}

/// The RFC 9264 linkset of `subject` as GS1's linkset schema has it: the
/// anchor (its canonical Digital Link), the item's description, and per
/// link type its targets, each with href, title, type and languages.
pub(crate) fn linkset(subject: &Subject, links: &[Link], description: &str) -> serde_json::Value {
    let mut item = serde_json::Map::new();
    item.insert("anchor".into(), subject.link().canonical().into());
    item.insert("itemDescription".into(), description.into());
    for l in links {
        let targets = item
            .entry(format!("{GS1_VOC}{}", l.rel))
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(a) = targets {
            a.push(serde_json::json!({
                "href": l.href,
                "title": l.title,
                "type": l.media,
                "hreflang": l.langs,
            }));
        }
    }
    serde_json::json!({ "linkset": [item] })
}

/// The `Link` header of an answer about the thing at `here`: its linkset,
/// the linkset's JSON-LD context, then each of its links.
fn link_header(here: &str, links: &[Link]) -> String {
    let mut parts = vec![
        format!(
            "<{here}?linkType=linkset>; rel=\"linkset\"; type=\"application/linkset+json\"; title=\"Links for this item\""
        ),
        format!(
            "<{LINKSET_CONTEXT}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\""
        ),
    ];
    for l in links {
        let mut s = format!(
            "<{}>; rel=\"{GS1_VOC}{}\"; type=\"{}\"",
            l.href, l.rel, l.media
        );
        for lang in l.langs {
            s.push_str(&format!("; hreflang=\"{lang}\""));
        }
        s.push_str(&format!("; title=\"{}\"", l.title));
        parts.push(s);
    }
    parts.join(", ")
}

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
pub(crate) async fn preflight() -> HttpResponse {
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
pub(crate) async fn description(req: HttpRequest) -> HttpResponse {
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

/// `GET /{digital link path}` (and `HEAD`): every answer, redirects and
/// refusals included, carries CORS and `Vary`; once the path is a Digital
/// Link, the `Link` header too.
pub(crate) async fn resolve(state: web::Data<ReadState>, req: HttpRequest) -> HttpResponse {
    let (mut res, link_header) = answer(&state, &req).await;
    cors(&mut res);
    res.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Language"),
    );
    if let Some(v) = link_header.and_then(|l| HeaderValue::from_str(&l).ok()) {
        res.headers_mut().insert(header::LINK, v);
    }
    res
}

/// The query pairs `raw` holds, percent-decoded, in order.
fn decoded(raw: &str) -> Vec<(String, String)> {
    raw.split(['&', ';'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                gs1::decode(k).unwrap_or_default(),
                gs1::decode(v).unwrap_or_default(),
            )
        })
        .collect()
}

/// The request's query pairs a redirect passes on, as written: all but
/// `linkType`, which chose the target.
fn passed_on(raw: Option<&str>) -> Vec<&str> {
    raw.unwrap_or("")
        .split(['&', ';'])
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let k = p.split_once('=').map_or(*p, |(k, _)| k);
            gs1::decode(k).map_or(true, |k| k != "linkType")
        })
        .collect()
}

/// `target` with `pairs` added to its query (before any fragment).
fn with_query(target: &str, pairs: &[&str]) -> String {
    if pairs.is_empty() {
        return target.to_string();
    }
    let (url, fragment) = match target.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (target, None),
    };
    let joiner = if url.contains('?') { '&' } else { '?' };
    let mut s = format!("{url}{joiner}{}", pairs.join("&"));
    if let Some(f) = fragment {
        s.push('#');
        s.push_str(f);
    }
    s
}

/// What `resolve` answers, and the `Link` header it carries (`None` when
/// the path is not a Digital Link). A compressed Digital Link (GS1 Digital
/// Link: Compression, whole or after its primary key) is answered as the
/// Digital Link it stands for, not redirected to it, and its `Link` header
/// names that one as `owl:sameAs`, as the resolver standard asks.
async fn answer(state: &ReadState, req: &HttpRequest) -> (HttpResponse, Option<String>) {
    let raw = req.uri().path();
    let base = base_url(req);
    match gs1::compression::uncompressed(raw, &format!("{base}{raw}")) {
        None => answer_for(state, req, raw, req.uri().query(), false).await,
        Some(Err(e)) => (not_a_link(req, raw, e), None),
        Some(Ok((path, packed_query))) => {
            let query: Vec<&str> = [packed_query.as_str(), req.uri().query().unwrap_or("")]
                .into_iter()
                .filter(|q| !q.is_empty())
                .collect();
            let query = query.join("&");
            let query = (!query.is_empty()).then_some(query.as_str());
            let (res, header) = answer_for(state, req, &path, query, true).await;
            let same_as = match DigitalLink::from_parts(&base, &path, query) {
                Ok(link) => {
                    let q = link.query();
                    let uri = link.under(&base);
                    if q.is_empty() {
                        uri
                    } else {
                        format!("{uri}?{q}")
                    }
                }
                Err(_) => return (res, header),
            };
            let same_as = format!("<{same_as}>; rel=\"owl:sameAs\"");
            let header = match header {
                Some(h) => format!("{h}, {same_as}"),
                None => same_as,
            };
            (res, Some(header))
        }
    }
}

/// [`answer`] for the Digital Link `path` and `query` (the request's, or
/// what its compressed form stands for: then never redirected to a
/// canonical spelling).
async fn answer_for(
    state: &ReadState,
    req: &HttpRequest,
    path: &str,
    query: Option<&str>,
    compressed: bool,
) -> (HttpResponse, Option<String>) {
    let base = base_url(req);
    let link = match DigitalLink::from_parts(&base, path, query) {
        Ok(l) => l,
        Err(e) => return (not_a_link(req, path, e), None),
    };
    let here = link.under(&base);
    // One URI per thing: other spellings are sent to the canonical one (a
    // trailing slash is the same URI). The query is compared decoded:
    // `gs1:epcis` and `gs1%3Aepcis` are one.
    let canonical_query = link.query();
    if !compressed
        && (!is_canonical_path(&link, path)
            || decoded(query.unwrap_or("")) != decoded(&canonical_query))
    {
        let mut to = link.path();
        if !canonical_query.is_empty() {
            to.push('?');
            to.push_str(&canonical_query);
        }
        let moved = HttpResponse::MovedPermanently()
            .insert_header((header::LOCATION, to))
            .finish();
        return (moved, Some(link_header(&here, &[])));
    }
    if let Err(e) = state.fresh().await {
        return (
            actix_web::ResponseError::error_response(&e),
            Some(link_header(&here, &[])),
        );
    }
    let Some(subject) = subject_of(state, catalogue(req).as_deref(), &link) else {
        return (nothing_recorded(req, &link), Some(link_header(&here, &[])));
    };
    let links = links(&base, &subject);
    let header = link_header(&here, &links);
    (chosen(req, &link, &subject, &links), Some(header))
}

/// The answer a known thing gives: its linkset, or a redirect to the
/// link asked for (the default link when none is), or 404 for a link type
/// it does not have.
fn chosen(
    req: &HttpRequest,
    link: &DigitalLink,
    subject: &Subject,
    links: &[Link],
) -> HttpResponse {
    let link_type = link
        .extensions
        .iter()
        .find(|(k, _)| k == "linkType")
        .map(|(_, v)| v.as_str());
    // `all` is the 1.1 standard's name for what 1.2 calls `linkset`.
    if matches!(link_type, Some("linkset" | "all"))
        || (link_type.is_none() && wants(req, "application/linkset+json"))
    {
        return linkset_answer(req, subject, links);
    }
    // A link type by its CURIE (`gs1:pip`) or its full URI.
    let named = link_type.map_or("defaultLink", |t| {
        t.strip_prefix("gs1:")
            .or_else(|| t.strip_prefix(GS1_VOC))
            .or_else(|| t.strip_prefix("https://ref.gs1.org/voc/"))
            .or_else(|| t.strip_prefix("http://gs1.org/voc/"))
            .unwrap_or(t)
    });
    let targets: Vec<&Link> = links.iter().filter(|l| l.rel == named).collect();
    let lang = lang_of(req).code();
    let Some(target) = targets
        .iter()
        .find(|l| l.langs.contains(&lang))
        .or(targets.first())
    else {
        let mut have: Vec<String> = links.iter().map(|l| format!("gs1:{}", l.rel)).collect();
        have.dedup();
        return refuse(
            req,
            ApiError::NotFound(format!(
                "this resolver has no {named:?} link for {}; it has {}, and the linkset (linkType=linkset)",
                subject.link().canonical(),
                have.join(", ")
            )),
            (
                "We have no such information about this product",
                "Zu diesem Produkt liegen uns solche Angaben nicht vor",
            ),
        );
    };
    let to = with_query(&target.href, &passed_on(req.uri().query()));
    HttpResponse::TemporaryRedirect()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// The linkset in the media type the client prefers: JSON-LD (the context
/// embedded), plain JSON, or RFC 9264's `application/linkset+json`.
fn linkset_answer(req: &HttpRequest, subject: &Subject, links: &[Link]) -> HttpResponse {
    let lang = lang_of(req);
    let link = subject.link();
    let product = product_name(catalogue(req).as_deref(), link.gtin(), lang);
    let description = match (product, link.get("10")) {
        (Some(p), Some(lot)) => format!("{p}, lot {lot}"),
        (Some(p), None) => p,
        (None, _) => link.canonical(),
    };
    let mut set = linkset(subject, links, &description);
    let media = if wants(req, "application/ld+json") {
        set["@context"] = LINKSET_CONTEXT.into();
        "application/ld+json"
    } else if wants(req, "application/json") && !wants(req, "application/linkset+json") {
        "application/json"
    } else {
        "application/linkset+json"
    };
    HttpResponse::Ok()
        .content_type(media)
        .insert_header((header::CONTENT_LANGUAGE, lang.code()))
        .json(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lot() -> DigitalLink {
        DigitalLink::parse("https://example.com/01/09506000134352/10/ABC?foo=bar").unwrap()
    }

    #[test]
    fn a_redirect_passes_on_every_pair_but_the_link_type() {
        assert_eq!(
            passed_on(Some("foo=bar&linkType=gs1%3Apip&17=261231")),
            ["foo=bar", "17=261231"]
        );
        assert_eq!(
            with_query("https://n/provenance/01/1#recall", &["foo=bar"]),
            "https://n/provenance/01/1?foo=bar#recall"
        );
        assert_eq!(
            with_query("https://n/p?lang=de", &["a=b", "c=d"]),
            "https://n/p?lang=de&a=b&c=d"
        );
        assert_eq!(with_query("https://n/p", &[]), "https://n/p");
    }

    #[test]
    fn every_link_has_an_ascii_title_and_an_absolute_target() {
        for subject in [
            Subject::Recorded(truncated(&lot(), 1)),
            Subject::Product(truncated(&lot(), 0)),
        ] {
            let links = links("https://n.example", &subject);
            assert_eq!(links[0].rel, "defaultLink");
            assert_eq!(links.iter().filter(|l| l.rel == "defaultLink").count(), 1);
            for l in &links {
                assert!(l.title.is_ascii() && !l.title.contains('"'), "{l:?}");
                assert!(l.href.starts_with("https://n.example/"), "{l:?}");
            }
            assert!(HeaderValue::from_str(&link_header("https://n.example/01/1", &links)).is_ok());
        }
    }
}
