//! The GS1-Conformant Resolver standard's requirements, each a check named
//! after it, over real HTTP against the tiny demo world. The checks follow
//! what GS1's own resolver test suite asks of a resolver (versions 1.1 and
//! 1.2): the default redirect, each link type's redirect in each language,
//! the query string passed on, the linkset and its schema, CORS, 400s.
//!
//! One server serves every check; a failing check is reported by its
//! requirement, and the others still run.

mod support;

use std::panic::AssertUnwindSafe;

use serde_json::Value;
use support::{ask, Reply, Server};

/// 2026-11-01T00:00:00Z: the demo world's start.
const START_MS: i64 = 1_793_491_200_000;

/// A valid GTIN no event and no catalogue entry of the world names.
const UNKNOWN_GTIN: &str = "09506000134352";

struct World {
    base: String,
    /// A lot's canonical Digital Link path (`/01/{gtin}/10/{lot}`).
    lot: String,
    /// The recalled lot's path.
    recalled: String,
    /// The lot's canonical URI (`https://id.gs1.org/…`).
    anchor: String,
    gtin: String,
}

impl World {
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        ask("GET", &self.base, path, headers)
    }

    /// The linkset of `path`, as `application/linkset+json`.
    fn linkset(&self, path: &str) -> Value {
        let r = self.get(&format!("{path}?linkType=linkset"), &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    }
}

/// `url` without its query string (and fragment), as GS1's test suite
/// compares redirect targets.
fn stripped(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The links of a `Link` header: (target, parameters as written).
fn links_of(header: &str) -> Vec<(String, String)> {
    // Titles may hold commas: split where a link ends, at `", <`.
    let mut out = Vec::new();
    let mut rest = header.trim();
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("a closed target") + start;
        let target = rest[start + 1..end].to_string();
        let after = &rest[end + 1..];
        let next = after.find(", <").unwrap_or(after.len());
        out.push((target, after[..next].to_string()));
        rest = &after[next..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    out
}

fn param<'a>(params: &'a str, name: &str) -> Vec<&'a str> {
    params
        .split(';')
        .filter_map(|p| p.trim().strip_prefix(&format!("{name}=")))
        .map(|v| v.trim_matches('"'))
        .collect()
}

fn shall_support_http_get_head_and_options(w: &World) {
    let get = w.get(&w.lot, &[]);
    assert_eq!(get.status, 307, "{}", get.body);
    let head = ask("HEAD", &w.base, &w.lot, &[]);
    assert_eq!(head.status, 307);
    assert_eq!(head.header("location"), get.header("location"));
    assert_eq!(head.header("link"), get.header("link"));
    assert!(head.body.is_empty());
    let options = ask("OPTIONS", &w.base, &w.lot, &[]);
    assert_eq!(options.status, 204);
    assert_eq!(options.header("allow"), Some("GET, HEAD, OPTIONS"));
}

fn shall_support_cors(w: &World) {
    for (path, status) in [
        (w.lot.clone(), 307),
        (format!("{}?linkType=linkset", w.lot), 200),
        (format!("{}?linkType=gs1:epcis", w.lot), 307),
        (format!("/gtin/{}/lot/{}", w.gtin, lot_code(w)), 301),
        (format!("/01/{}/10/NO-SUCH-LOT", w.gtin), 307),
        (format!("/01/{UNKNOWN_GTIN}/10/X"), 404),
        (format!("{}?linkType=gs1:nutritionalInfo", w.lot), 404),
        ("/01/123/10/X".to_string(), 400),
    ] {
        let r = w.get(&path, &[]);
        assert_eq!(r.status, status, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
        let methods = r.header("access-control-allow-methods").unwrap_or("");
        for m in ["GET", "HEAD", "OPTIONS"] {
            assert!(methods.contains(m), "{path}: {methods}");
        }
    }
    for path in [w.lot.as_str(), "/.well-known/gs1resolver"] {
        let r = ask(
            "OPTIONS",
            &w.base,
            path,
            &[
                ("Origin", "https://shop.example"),
                ("Access-Control-Request-Method", "GET"),
            ],
        );
        assert_eq!(r.status, 204, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }
}

fn lot_code(w: &World) -> String {
    w.lot.rsplit('/').next().unwrap().to_string()
}

fn shall_extract_and_validate_the_uri_and_report_errors_with_400(w: &World) {
    let gtin = &w.gtin;
    let bad_check = format!("{}{}", &gtin[..13], (gtin.as_bytes()[13] - b'0' + 1) % 10);
    for (path, says) in [
        // GS1's test suite appends a segment to a valid URI.
        (format!("{}/foo", w.lot), "Application Identifier"),
        (format!("/01/{bad_check}/10/X"), "check digit"),
        (format!("/01/{gtin}/21/S/10/X"), "(10) cannot qualify"),
        (format!("/01/{gtin}/10/"), "(10)"),
    ] {
        let r = w.get(&path, &[]);
        r.assert_problem(400, "invalid_digital_link");
        assert!(
            r.json()["detail"].as_str().unwrap().contains(says),
            "{path}: {}",
            r.body
        );
        // Browsers get a page saying so, with the same status.
        let page = w.get(&path, &[("Accept", "text/html")]);
        assert_eq!(page.status, 400, "{path}");
        assert!(
            page.body.contains("not a valid product code"),
            "{}",
            page.body
        );
    }
}

fn shall_not_use_200_ok_for_an_error(w: &World) {
    for path in [
        format!("{}/foo", w.lot),
        format!("/01/{UNKNOWN_GTIN}"),
        format!("{}?linkType=gs1:nutritionalInfo", w.lot),
    ] {
        for accept in ["*/*", "text/html", "application/json"] {
            let r = w.get(&path, &[("Accept", accept)]);
            assert!(r.status >= 400, "{path} ({accept}): {}", r.status);
        }
    }
}

fn shall_provide_a_resolver_description_file(w: &World) {
    let r = w.get(
        "/.well-known/gs1resolver",
        &[("Accept", "application/json")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let d = r.json();
    assert_eq!(d["resolverRoot"], w.base.as_str());
    let keys: Vec<&str> = d["supportedPrimaryKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for key in ["01", "00", "414", "8003", "8004"] {
        assert!(keys.contains(&key), "{d}");
    }
    assert!(!keys.contains(&"10"), "a lot is a qualifier: {d}");
    assert_eq!(d["supportedLinkType"][0]["prefix"], "gs1:");
    assert_eq!(
        d["supportedLinkType"][0]["namespace"],
        "https://gs1.org/voc/"
    );
}

fn shall_recognise_one_default_link_and_redirect_to_it(w: &World) {
    for path in [w.lot.clone(), format!("/01/{}", w.gtin)] {
        let set = w.linkset(&path);
        let defaults = set["linkset"][0]["https://gs1.org/voc/defaultLink"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: no default link: {set}"));
        assert_eq!(defaults.len(), 1, "{path}");
        let r = w.get(&path, &[]);
        assert_eq!(r.status, 307, "{path}");
        assert_eq!(r.header("location"), defaults[0]["href"].as_str(), "{path}");
    }
}

fn shall_redirect_to_the_requested_link_type(w: &World) {
    let set = w.linkset(&w.lot);
    let item = set["linkset"][0].as_object().unwrap();
    let mut asked = 0;
    for (rel, targets) in item.iter().filter(|(k, _)| k.starts_with("https://")) {
        if rel.ends_with("/defaultLink") {
            continue;
        }
        let curie = rel.replace("https://gs1.org/voc/", "gs1:");
        for t in targets.as_array().unwrap() {
            let href = t["href"].as_str().unwrap();
            for lang in t["hreflang"].as_array().unwrap() {
                let lang = lang.as_str().unwrap();
                let accept = t["type"].as_str().unwrap();
                // By CURIE and by the full URI, as the 1.1 suite asks it.
                for link_type in [curie.clone(), gs1::encode(rel)] {
                    let path = format!("{}?linkType={link_type}", w.lot);
                    let r = w.get(&path, &[("Accept", accept), ("Accept-Language", lang)]);
                    assert_eq!(r.status, 307, "{path} ({lang})");
                    let location = r.header("location").unwrap();
                    assert_eq!(stripped(location), stripped(href), "{path} ({lang})");
                    asked += 1;
                }
            }
        }
    }
    assert!(asked >= 10, "{asked} link types asked");
}

fn shall_pass_on_all_key_value_pairs_in_the_query_string_when_redirecting(w: &World) {
    for path in [
        format!("{}?foo=bar", w.lot),
        format!("{}?linkType=gs1:pip&foo=bar", w.lot),
        format!("{}?foo=bar&17=261231", w.lot),
    ] {
        let r = w.get(&path, &[]);
        let r = if r.status == 301 {
            w.get(r.header("location").unwrap(), &[])
        } else {
            r
        };
        assert_eq!(r.status, 307, "{path}");
        let location = r.header("location").unwrap();
        assert!(location.contains("foo=bar"), "{path}: {location}");
        assert!(!location.contains("linkType"), "{path}: {location}");
        if path.contains("17=") {
            assert!(location.contains("17=261231"), "{path}: {location}");
        }
    }
    // The page takes what it is passed and still shows the lot.
    let r = w.get(&format!("{}?foo=bar", w.lot), &[]);
    let page = w.get(
        r.header("location").unwrap().strip_prefix(&w.base).unwrap(),
        &[("Accept", "text/html")],
    );
    assert_eq!(page.status, 200, "{}", page.body);
}

fn all_links_shall_include_the_target_url_the_link_type_and_a_title(w: &World) {
    let r = w.get(&w.lot, &[]);
    let links = links_of(r.header("link").expect("a Link header"));
    assert!(links.len() >= 6, "{links:?}");
    for (target, params) in &links {
        let rel = param(params, "rel");
        assert_eq!(rel.len(), 1, "{target}: {params}");
        assert!(target.starts_with("http"), "{target}");
        if rel[0] != "http://www.w3.org/ns/json-ld#context" {
            assert_eq!(param(params, "title").len(), 1, "{target}: {params}");
        }
    }
    let set = w.linkset(&w.lot);
    for (rel, targets) in set["linkset"][0].as_object().unwrap() {
        if let Some(targets) = targets.as_array() {
            for t in targets {
                for field in ["href", "title", "type"] {
                    assert!(
                        t[field].as_str().is_some_and(|v| !v.is_empty()),
                        "{rel}: {t}"
                    );
                }
                assert!(!t["hreflang"].as_array().unwrap().is_empty(), "{rel}: {t}");
            }
        }
    }
}

fn should_expose_the_full_list_of_links_in_the_link_header_when_redirecting(w: &World) {
    let r = w.get(&w.lot, &[]);
    assert_eq!(r.status, 307);
    let header = r.header("link").unwrap();
    let links = links_of(header);
    let set = w.linkset(&w.lot);
    for (rel, targets) in set["linkset"][0].as_object().unwrap() {
        for t in targets.as_array().into_iter().flatten() {
            let href = t["href"].as_str().unwrap();
            assert!(
                links
                    .iter()
                    .any(|(target, p)| target == href && param(p, "rel") == [rel.as_str()]),
                "{rel} {href} is not in the Link header: {header}"
            );
        }
    }
    assert!(
        links.iter().any(
            |(t, p)| *t == format!("{}{}?linkType=linkset", w.base, w.lot)
                && param(p, "rel") == ["linkset"]
        ),
        "{header}"
    );
    assert!(
        links
            .iter()
            .any(|(_, p)| param(p, "rel") == ["http://www.w3.org/ns/json-ld#context"]),
        "{header}"
    );
}

fn shall_respond_to_linktype_linkset_with_the_list_of_links_by_content_negotiation(w: &World) {
    for (path, accept, media) in [
        (
            format!("{}?linkType=linkset", w.lot),
            "*/*",
            "application/linkset+json",
        ),
        (
            format!("{}?linkType=all", w.lot),
            "application/linkset+json",
            "application/linkset+json",
        ),
        (
            w.lot.clone(),
            "application/linkset+json",
            "application/linkset+json",
        ),
        (
            format!("{}?linkType=all", w.lot),
            "application/json",
            "application/json",
        ),
        (
            format!("{}?linkType=all", w.lot),
            "application/ld+json",
            "application/ld+json",
        ),
    ] {
        let r = w.get(&path, &[("Accept", accept)]);
        assert_eq!(r.status, 200, "{path} ({accept})");
        assert_eq!(r.content_type, media, "{path} ({accept})");
        assert!(
            r.header("vary").is_some_and(|v| v.contains("Accept")),
            "{path}"
        );
        let set = r.json();
        let members: Vec<&String> = set.as_object().unwrap().keys().collect();
        let expected: &[&str] = if media == "application/ld+json" {
            &["@context", "linkset"]
        } else {
            &["linkset"]
        };
        assert_eq!(members, expected, "{path} ({accept})");
        let item = &set["linkset"][0];
        assert_eq!(item["anchor"], w.anchor.as_str());
        assert!(item["itemDescription"]
            .as_str()
            .is_some_and(|d| d.contains(&lot_code(w))));
    }
}

fn the_linkset_validates_against_gs1_linkset_schema(w: &World) {
    let dir = tempfile::tempdir().unwrap();
    let tools = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools");
    let mut args = vec![tools.join("gs1-linkset-schema.json")];
    for (i, path) in [
        w.lot.clone(),
        w.recalled.clone(),
        format!("/01/{}", w.gtin),
        format!("/01/{}/10/NO-SUCH-LOT", w.gtin),
    ]
    .iter()
    .enumerate()
    {
        let p = dir.path().join(format!("linkset-{i}.json"));
        std::fs::write(&p, w.linkset(path).to_string()).unwrap();
        args.push(p);
    }
    support::python_check(
        "validate_json.py",
        &args,
        "linksets do not validate against GS1's linkset schema",
    );
}

fn a_link_type_the_resolver_does_not_have_is_404(w: &World) {
    let r = w.get(&format!("{}?linkType=gs1:nutritionalInfo", w.lot), &[]);
    r.assert_problem(404, "not_found");
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("gs1:traceability"));
}

fn an_unknown_qualifier_value_walks_up_the_tree(w: &World) {
    let product = format!("/01/{}", w.gtin);
    let product_page = format!("{}/provenance{product}", w.base);
    for path in [format!("{product}/10/NO-SUCH-LOT"), product.clone()] {
        let r = w.get(&path, &[]);
        assert_eq!(r.status, 307, "{path}: {}", r.body);
        assert_eq!(r.header("location"), Some(product_page.as_str()), "{path}");
        let set = w.linkset(&path);
        let item = set["linkset"][0].as_object().unwrap();
        assert_eq!(item["anchor"], format!("https://id.gs1.org{product}"));
        assert!(item.contains_key("https://gs1.org/voc/pip"), "{set}");
        assert!(!item.contains_key("https://gs1.org/voc/epcis"), "{set}");
    }
    let page = w.get(
        &format!("/provenance{product}/10/NO-SUCH-LOT"),
        &[("Accept", "text/html")],
    );
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("data-fact=\"unknown-lot\""),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("data-entry="),
        "no ledger fact: {}",
        page.body
    );
    let r = w.get(&format!("/01/{UNKNOWN_GTIN}/10/X"), &[]);
    r.assert_problem(404, "not_found");
}

fn lots_keep_their_recall_traceability_and_epcis_link_types(w: &World) {
    let set = w.linkset(&w.recalled);
    let item = &set["linkset"][0];
    for rel in [
        "recallStatus",
        "traceability",
        "epcis",
        "pip",
        "defaultLink",
    ] {
        assert!(
            item[format!("https://gs1.org/voc/{rel}")].is_array(),
            "{rel}: {set}"
        );
    }
    let r = w.get(&format!("{}?linkType=gs1:recallStatus", w.recalled), &[]);
    assert_eq!(r.status, 307);
    let location = r.header("location").unwrap();
    let (page, fragment) = location.split_once('#').unwrap();
    let page = w.get(
        page.strip_prefix(&w.base).unwrap(),
        &[("Accept", "text/html")],
    );
    assert!(
        page.body.contains(&format!("id=\"{fragment}\"")),
        "{}",
        page.body
    );
    assert!(page.body.contains("role=\"alert\""));
}

fn should_tolerate_trailing_slashes(w: &World) {
    for path in [w.lot.clone(), format!("/01/{}", w.gtin)] {
        let plain = w.get(&path, &[]);
        let slash = w.get(&format!("{path}/"), &[]);
        assert_eq!(plain.status, slash.status, "{path}");
        assert_eq!(plain.header("location"), slash.header("location"), "{path}");
    }
}

fn language_negotiation_with_hreflang_alternates(w: &World) {
    for (accept, lang) in [("de-DE,de;q=0.9", "de"), ("en-GB", "en"), ("fr", "en")] {
        let r = w.get(
            &format!("{}?linkType=gs1:pip", w.lot),
            &[("Accept-Language", accept)],
        );
        let location = r.header("location").unwrap();
        assert!(
            location.ends_with(&format!("?lang={lang}")),
            "{accept}: {location}"
        );
        let page = w.get(
            location.strip_prefix(&w.base).unwrap(),
            &[("Accept-Language", "de")],
        );
        assert!(
            page.body.contains(&format!("<html lang=\"{lang}\">")),
            "{location}"
        );
        assert!(page.body.contains("hreflang=\"x-default\""));
    }
    // The default link negotiates at the page.
    let r = w.get(&w.lot, &[]);
    let page_path = r
        .header("location")
        .unwrap()
        .strip_prefix(&w.base)
        .unwrap()
        .to_string();
    let page = w.get(&page_path, &[("Accept-Language", "de")]);
    assert!(page.body.contains("<html lang=\"de\">"));
    assert_eq!(page.header("content-language"), Some("de"));
}

/// Compresses GS1 element strings as GS1 Digital Link: Compression writes
/// them, in Python (a second, independent implementation): each AI as its
/// digits' nibbles, fixed-length numbers as binary integers, alphanumeric
/// values as 7-bit ASCII with their length, padded to whole base64
/// characters.
fn compress(elements: &[(&str, &str)]) -> String {
    let script = r#"
import math, sys
A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
FIXED = {"00": 18, "01": 14, "414": 13, "8006": 18, "17": 6}
MAX = {"10": 20, "21": 20, "22": 20}
vbits = lambda n: math.ceil(n * math.log2(10) + 0.01)
lbits = lambda m: math.ceil(math.log2(m) + 0.01)
bits = ""
args = sys.argv[1:]
for ai, value in zip(args[0::2], args[1::2]):
    bits += "".join(format(int(d), "04b") for d in ai)
    if ai in FIXED:
        bits += format(int(value), "0%db" % vbits(FIXED[ai]))
    else:
        bits += "100" + format(len(value), "0%db" % lbits(MAX[ai]))
        bits += "".join(format(ord(c), "07b") for c in value)
bits += "0" * (-len(bits) % 6)
print("".join(A[int(bits[i:i + 6], 2)] for i in range(0, len(bits), 6)))
"#;
    let args: Vec<&str> = elements.iter().flat_map(|(a, v)| [*a, *v]).collect();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn shall_decompress_and_expose_the_uncompressed_uri_as_owl_same_as(w: &World) {
    // The compressor agrees with GS1's own example first.
    assert_eq!(compress(&[("01", "05412345000013")]), "AQnYUc1gmg");
    let lot = w.lot.rsplit('/').next().unwrap();
    let lot = gs1::decode(lot).unwrap();
    let uncompressed = w.get(&w.lot, &[]);
    assert_eq!(uncompressed.status, 307);
    for path in [
        format!("/{}", compress(&[("01", &w.gtin), ("10", &lot)])),
        format!("/01/{}/{}", w.gtin, compress(&[("10", &lot)])),
    ] {
        // Answered as the Digital Link it stands for, not redirected to it.
        let r = w.get(&path, &[]);
        assert_eq!(r.status, 307, "{path}: {}", r.body);
        assert_eq!(
            r.header("location"),
            uncompressed.header("location"),
            "{path}"
        );
        let same_as: Vec<String> = links_of(r.header("link").unwrap_or(""))
            .into_iter()
            .filter(|(_, params)| param(params, "rel") == ["owl:sameAs"])
            .map(|(href, _)| href)
            .collect();
        assert_eq!(same_as, [format!("{}{}", w.base, w.lot)], "{path}");
        let set = w.get(&format!("{path}?linkType=linkset"), &[]);
        assert_eq!(set.status, 200, "{path}");
        assert_eq!(set.json(), w.linkset(&w.lot), "{path}");
    }
    // A compressed GTIN with a wrong check digit is a malformed URI.
    let bad = w.get(&format!("/{}", compress(&[("01", "05412345000014")])), &[]);
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[test]
fn the_resolver_meets_the_gs1_conformant_resolver_standard() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let server = Server::start(dir.path());
    let world = fixtures::generate(7, fixtures::Scale::Tiny, START_MS);
    let link = gs1::from_epc_urn(&world.lots[0].id).unwrap().unwrap();
    let recalled = gs1::from_epc_urn(&world.truth.contaminated_lot)
        .unwrap()
        .unwrap();
    let w = World {
        base: server.base.clone(),
        lot: link.path(),
        recalled: recalled.path(),
        anchor: link.canonical(),
        gtin: link.gtin().unwrap().to_string(),
    };
    type Check = fn(&World);
    let checks: &[(&str, Check)] = &[
        (
            "SHALL support HTTP 1.1 GET, HEAD and OPTIONS",
            shall_support_http_get_head_and_options,
        ),
        ("SHALL support CORS", shall_support_cors),
        (
            "SHALL extract and syntactically validate the URI and report errors with 400",
            shall_extract_and_validate_the_uri_and_report_errors_with_400,
        ),
        (
            "SHALL NOT use 200 OK for an error",
            shall_not_use_200_ok_for_an_error,
        ),
        (
            "SHALL provide a resolver description file",
            shall_provide_a_resolver_description_file,
        ),
        (
            "SHALL recognise one default link and redirect to it",
            shall_recognise_one_default_link_and_redirect_to_it,
        ),
        (
            "SHALL redirect to the requested link type",
            shall_redirect_to_the_requested_link_type,
        ),
        (
            "SHALL pass on all key=value pairs of the query string when redirecting",
            shall_pass_on_all_key_value_pairs_in_the_query_string_when_redirecting,
        ),
        (
            "All links SHALL include the target URL, the link type and a title",
            all_links_shall_include_the_target_url_the_link_type_and_a_title,
        ),
        (
            "SHOULD expose the full list of links in the Link header when redirecting",
            should_expose_the_full_list_of_links_in_the_link_header_when_redirecting,
        ),
        (
            "SHALL respond to linkType=linkset with the list of links, by content negotiation",
            shall_respond_to_linktype_linkset_with_the_list_of_links_by_content_negotiation,
        ),
        (
            "The linkset validates against GS1's linkset schema",
            the_linkset_validates_against_gs1_linkset_schema,
        ),
        (
            "A link type the resolver does not have is 404",
            a_link_type_the_resolver_does_not_have_is_404,
        ),
        (
            "An unknown qualifier value walks up the tree",
            an_unknown_qualifier_value_walks_up_the_tree,
        ),
        (
            "Lots keep their recall, traceability and EPCIS link types",
            lots_keep_their_recall_traceability_and_epcis_link_types,
        ),
        (
            "SHOULD tolerate trailing slashes",
            should_tolerate_trailing_slashes,
        ),
        (
            "SHALL decompress a compressed URI and expose the uncompressed one as owl:sameAs",
            shall_decompress_and_expose_the_uncompressed_uri_as_owl_same_as,
        ),
        (
            "Language negotiation with hreflang alternates",
            language_negotiation_with_hreflang_alternates,
        ),
    ];
    let failed: Vec<String> = checks
        .iter()
        .filter_map(|(requirement, check)| {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| check(&w)));
            outcome.err().map(|e| {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("{requirement}: {why}")
            })
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requirements not met:\n{}",
        failed.len(),
        checks.len(),
        failed.join("\n")
    );
}
