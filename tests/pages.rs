//! The consumer side over real HTTP: the GS1 Digital Link resolver, the
//! provenance page of a clean, a breached and the recalled lot of the demo
//! world, the linkset, refusals, and QR codes decoded back to their URI.

mod support;

use std::collections::BTreeSet;

use serde_json::{json, Value};
use support::{Reply, Server};

const START_MS: i64 = 1_793_491_200_000;

/// How a breached lot's verdict begins, by the kind of trouble.
const BAD_LEADS: [&str; 7] = [
    "Not kept cold enough",
    "Kept too cold",
    "Cold chain interrupted",
    "Cold chain not recorded",
    "Possibly damaged",
    "Cooling unreliable",
    "Conditions not kept",
];

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// GET without following redirects; the body as bytes and as text.
fn fetch(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut req = agent().get(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.call().expect("the request completes");
    let hs = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = r.body_mut().read_to_vec().unwrap_or_default();
    (r.status().as_u16(), hs, body)
}

fn header<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The page a Digital Link leads a browser to: the resolver's redirect to
/// its default link followed (once, to a page on this node).
fn page(base: &str, path: &str, lang: &str) -> (u16, String) {
    let headers = [("Accept", "text/html"), ("Accept-Language", lang)];
    let (mut status, mut hs, mut body) = fetch(base, path, &headers);
    if status == 307 {
        let to = header(&hs, "location").unwrap().to_string();
        let on_node = to.strip_prefix(base).expect("a page on this node");
        assert!(on_node.starts_with("/provenance/"), "{to}");
        (status, hs, body) = fetch(base, on_node, &headers);
    }
    if status == 200 {
        assert!(header(&hs, "content-type")
            .unwrap()
            .starts_with("text/html"));
    }
    (status, String::from_utf8(body).unwrap())
}

/// The canonical Digital Link path of a lot the world names by LGTIN URN.
fn path_of(urn: &str) -> String {
    gs1::from_epc_urn(urn).unwrap().unwrap().path()
}

fn gql(base: &str, token: &str, query: &str) -> Value {
    let r: Reply = support::post(
        base,
        "/graphql",
        Some(token),
        "application/json",
        json!({ "query": query }).to_string().as_bytes(),
        None,
    );
    r.json()
}

#[test]
fn the_provenance_pages_say_what_the_ledger_says() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let token = support::token(dir.path(), support::ORG, "investigator");
    let server = Server::start(dir.path());
    let base = &server.base;
    let world = fixtures::generate(7, fixtures::Scale::Tiny, START_MS);

    // Which lots the rules found breached, as the investigators' API says.
    let answer = gql(
        base,
        &token,
        "{ breaches(first: 100) { edges { node { lot { id } } } } }",
    );
    let breached: BTreeSet<String> = answer["data"]["breaches"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["node"]["lot"]["id"].as_str().map(str::to_string))
        .collect();
    assert!(!breached.is_empty(), "{answer}");

    let recalled = &world.truth.contaminated_lot;
    let (mut clean, mut bad) = (0, 0);
    for lot in &world.lots {
        let path = path_of(&lot.id);
        let (status, html) = page(base, &path, "en-GB,en;q=0.9");
        assert_eq!(status, 200, "{path}: {html}");
        assert!(html.len() <= 30 * 1024, "{path}: {} bytes", html.len());
        assert!(html.contains("<html lang=\"en\">"));
        let lot_number = lot.id.rsplit('.').next().unwrap();
        assert!(html.contains(lot_number), "{path} names its lot");
        let is_bad = html.contains("class=\"verdict bad\"");
        assert_eq!(
            is_bad,
            breached.contains(&lot.id),
            "{path}: the verdict is the rules'"
        );
        if is_bad {
            bad += 1;
            assert!(
                BAD_LEADS.iter().any(|l| html.contains(&format!("{l}: "))),
                "{html}"
            );
        } else {
            clean += 1;
            assert!(html.contains("for the whole journey"), "{html}");
        }
        assert_eq!(
            html.contains("role=\"alert\""),
            &lot.id == recalled || world.truth.affected_lots.contains(&lot.id),
            "{path}: a recall banner exactly on recalled lots"
        );
        // Every fact names the entry it rests on.
        assert!(html.matches("data-entry=").count() >= 3, "{path}");
        assert!(html.contains("<svg") || html.contains("No temperature readings"));
    }
    assert!(clean > 0 && bad > 0, "{clean} clean, {bad} breached lots");

    // The recalled lot, in German, and its cached copy.
    let path = path_of(recalled);
    let (status, html) = page(base, &path, "de-DE,de;q=0.9,en;q=0.5");
    assert_eq!(status, 200);
    assert!(html.contains("<html lang=\"de\">"));
    assert!(html.contains("Rückruf"), "{html}");
    // `?lang=` over Accept-Language: the page's hreflang alternates.
    let (status, html) = page(base, &format!("/provenance{path}?lang=en"), "de");
    assert_eq!(status, 200);
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    for lang in ["en", "de"] {
        assert!(
            html.contains(&format!(
                "<link rel=\"alternate\" hreflang=\"{lang}\" href=\"{base}/provenance{path}?lang={lang}\">"
            )),
            "{html}"
        );
    }
    let path = format!("/provenance{path}");
    let (_, hs, _) = fetch(base, &path, &[("Accept", "text/html")]);
    let etag = header(&hs, "etag").expect("an ETag").to_string();
    let (status, _, body) = fetch(
        base,
        &path,
        &[("Accept", "text/html"), ("If-None-Match", &etag)],
    );
    assert_eq!((status, body.len()), (304, 0));
}

/// Every answer is gzipped for a client that says it accepts gzip, and
/// only for it: the same bytes once decompressed, marked `Vary:
/// Accept-Encoding` so caches keep the two apart; a cached copy's ETag
/// still gets a 304.
#[test]
fn answers_are_gzipped_for_clients_that_accept_it() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let token = support::token(dir.path(), support::ORG, "investigator");
    let server = Server::start(dir.path());
    let base = &server.base;
    let world = fixtures::generate(7, fixtures::Scale::Tiny, START_MS);
    let lot = &world.truth.contaminated_lot;
    let auth = format!("Bearer {token}");
    let trace = format!("/v1/trace?lot={lot}&direction=forward");
    for (path, accept) in [
        (format!("/provenance{}", path_of(lot)), "text/html"),
        (trace, "application/json"),
        ("/v1/openapi.json".to_string(), "application/json"),
        ("/graphql".to_string(), "text/html"),
        (
            "/assets/coldtrail/vendor/graphiql/graphiql.min.js".to_string(),
            "*/*",
        ),
    ] {
        let ask = |gzip: bool| {
            let mut hs = vec![("Accept", accept), ("Authorization", auth.as_str())];
            if gzip {
                hs.push(("Accept-Encoding", "gzip"));
            }
            fetch(base, &path, &hs)
        };
        let (status, hs, plain) = ask(false);
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&hs, "content-encoding"), None, "{path}");
        let (status, hs, gz) = ask(true);
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&hs, "content-encoding"), Some("gzip"), "{path}");
        assert!(
            hs.iter().any(|(k, v)| k.eq_ignore_ascii_case("vary")
                && v.to_lowercase().contains("accept-encoding")),
            "{path}: {hs:?}"
        );
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped)
            .unwrap();
        assert!(
            unzipped == plain,
            "{path}: the same bytes once decompressed"
        );
        assert!(
            gz.len() < plain.len(),
            "{path}: {} bytes gzipped, {} plain",
            gz.len(),
            plain.len()
        );
    }
    let asset = "/assets/coldtrail/vendor/graphiql/graphiql.min.js";
    let (_, hs, _) = fetch(base, asset, &[("Accept-Encoding", "gzip")]);
    let etag = header(&hs, "etag").expect("an ETag").to_string();
    let (status, _, body) = fetch(
        base,
        asset,
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &etag)],
    );
    assert_eq!((status, body.len()), (304, 0));
}

#[test]
fn the_resolver_follows_the_digital_link_standard() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let server = Server::start(dir.path());
    let base = &server.base;
    let world = fixtures::generate(7, fixtures::Scale::Tiny, START_MS);
    let urn = &world.lots[0].id;
    let link = gs1::from_epc_urn(urn).unwrap().unwrap();
    let (gtin, lot) = (
        link.gtin().unwrap().to_string(),
        link.get("10").unwrap().to_string(),
    );
    let canonical = link.path();

    // Other spellings move to the canonical path, keeping what the query says.
    for (from, to) in [
        (format!("/gtin/{gtin}/lot/{lot}"), canonical.clone()),
        (
            format!("/01/{gtin}/10/{lot}?exp=261231"),
            format!("{canonical}?17=261231"),
        ),
        (format!("/01/{}/10/{lot}", &gtin[1..]), canonical.clone()),
    ] {
        let (status, hs, _) = fetch(base, &from, &[]);
        assert_eq!(status, 301, "{from}");
        assert_eq!(header(&hs, "location"), Some(to.as_str()), "{from}");
    }

    // The linkset (RFC 9264), asked either way.
    for (path, accept) in [
        (format!("{canonical}?linkType=all"), "*/*"),
        (canonical.clone(), "application/linkset+json"),
    ] {
        let (status, hs, body) = fetch(base, &path, &[("Accept", accept)]);
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            header(&hs, "content-type"),
            Some("application/linkset+json")
        );
        let set: Value = serde_json::from_slice(&body).unwrap();
        let item = &set["linkset"][0];
        assert_eq!(item["anchor"], link.canonical());
        for rel in ["defaultLink", "pip", "epcis", "traceability"] {
            let targets = item[format!("https://gs1.org/voc/{rel}")]
                .as_array()
                .unwrap();
            assert!(
                targets
                    .iter()
                    .all(|t| t["href"].as_str().unwrap().starts_with(base)),
                "{rel}"
            );
        }
    }
    // A link type the node serves elsewhere is a redirect to it.
    let (status, hs, _) = fetch(base, &format!("{canonical}?linkType=gs1:epcis"), &[]);
    assert_eq!(status, 307);
    assert!(header(&hs, "location")
        .unwrap()
        .starts_with(&format!("{base}/events?MATCH_anything=")));

    // Refusals: a wrong check digit, a malformed path, an unknown lot.
    let bad_gtin = format!("{}{}", &gtin[..13], (gtin.as_bytes()[13] - b'0' + 1) % 10);
    // A malformed Digital Link is a 400 (GS1-Conformant Resolver), saying
    // what is wrong with it.
    let (status, _, body) = fetch(base, &format!("/01/{bad_gtin}/10/{lot}"), &[]);
    assert_eq!(status, 400);
    let problem = serde_json::from_slice::<Value>(&body).unwrap();
    assert_eq!(problem["code"], "invalid_digital_link");
    assert!(
        problem["detail"].as_str().unwrap().contains("check digit"),
        "{problem}"
    );
    let (status, html) = page(base, &format!("/01/{bad_gtin}/10/{lot}"), "en");
    assert_eq!(status, 400);
    assert!(html.contains("not a valid product code"), "{html}");
    let (status, _, body) = fetch(base, &format!("/01/{gtin}/21/S/10/{lot}"), &[]);
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["code"],
        "invalid_digital_link"
    );
    // An unknown lot of a known product walks up to the product.
    let (status, html) = page(base, &format!("/01/{gtin}/10/NO-SUCH-LOT"), "de");
    assert_eq!(status, 200);
    assert!(html.contains("data-fact=\"product\""), "{html}");
    assert!(!html.contains("data-entry="), "no ledger fact: {html}");
    // A product nobody recorded or catalogued: 404.
    let unknown = "/01/09506000134352/10/NO-SUCH-LOT";
    let (status, html) = page(base, unknown, "de");
    assert_eq!(status, 404);
    assert!(html.contains("keine Angaben"), "{html}");
    let (_, hs, _) = fetch(base, unknown, &[("Accept", "text/html")]);
    assert_eq!(header(&hs, "x-content-type-options"), Some("nosniff"));
    assert!(
        header(&hs, "content-security-policy").is_some_and(|p| !p.contains("script-src")),
        "the not-found page runs no script: {hs:?}"
    );
    let (status, _, body) = fetch(base, unknown, &[]);
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["code"],
        "not_found"
    );
    // The API's own routes are not taken for links.
    assert_eq!(fetch(base, "/v1/shards/0/head", &[]).0, 200);
}

/// The text of the one QR code in a greyscale PNG.
fn decode_qr(png_bytes: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1);
    grids[0].decode().unwrap().1
}

/// With a public URL configured, links and QR codes are written under it,
/// over HTTP and by `coldtrail qr`, from any spelling of the lot.
#[test]
fn codes_and_links_use_the_configured_public_url() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let public = "https://fresh.example/p";
    let server = Server::start_with(dir.path(), &["--public-url", public]);
    let base = &server.base;
    let world = fixtures::generate(7, fixtures::Scale::Tiny, START_MS);
    let urn = &world.lots[1].id;
    let path = path_of(urn);

    let (status, _, png_bytes) = fetch(base, &format!("/qr{path}.png"), &[]);
    assert_eq!(status, 200);
    assert_eq!(decode_qr(&png_bytes), format!("{public}{path}"));
    let (_, _, body) = fetch(base, &format!("{path}?linkType=all"), &[]);
    let set: Value = serde_json::from_slice(&body).unwrap();
    let href = set["linkset"][0]["https://gs1.org/voc/defaultLink"][0]["href"]
        .as_str()
        .unwrap();
    assert_eq!(href, format!("{public}/provenance{path}"));
    assert_eq!(
        set["linkset"][0]["anchor"],
        format!("https://id.gs1.org{path}")
    );

    // `coldtrail qr` from the EPC URN, from a non-canonical Digital Link, to files.
    let out = dir.path().join("code.png");
    let gtin_path = path.replace("/01/", "/gtin/").replace("/10/", "/lot/");
    for id in [urn.clone(), format!("HTTPS://id.gs1.org{gtin_path}")] {
        let o = support::coldtrail(&[
            "qr",
            &id,
            "--public-url",
            public,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(support::text(&o).contains(&format!("{public}{path}")));
        assert_eq!(
            decode_qr(&std::fs::read(&out).unwrap()),
            format!("{public}{path}")
        );
    }
    // In a terminal: the code as text, the link under it.
    let o = support::coldtrail(&["qr", &path, "--public-url", public]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains('█') && text.trim_end().ends_with(&format!("{public}{path}")));
    // Refusals say what to fix.
    for (args, says) in [
        (
            vec!["qr", "/01/09506000134353/10/L1", "--public-url", public],
            "check digit",
        ),
        (vec!["qr", &path, "--public-url", "ftp://x"], "https://"),
        (
            vec!["qr", &path, "--public-url", public, "--format", "gif"],
            "svg, png or txt",
        ),
    ] {
        let o = support::run(&args);
        assert!(!o.status.success(), "{args:?}");
        assert!(
            support::text(&o).contains(says),
            "{args:?}: {}",
            support::text(&o)
        );
    }
}

#[test]
fn qr_codes_decode_to_the_canonical_link() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let server = Server::start(dir.path());
    let base = &server.base;
    let world = fixtures::generate(7, fixtures::Scale::Tiny, START_MS);
    let path = path_of(&world.lots[1].id);

    let (status, hs, png_bytes) = fetch(base, &format!("/qr{path}.png"), &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&hs, "content-type"), Some("image/png"));
    assert_eq!(decode_qr(&png_bytes), format!("{base}{path}"));

    let (status, hs, svg) = fetch(base, &format!("/qr{path}.svg"), &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&hs, "content-type"), Some("image/svg+xml"));
    // An SVG is a document: it runs nothing and loads nothing.
    assert_eq!(header(&hs, "x-content-type-options"), Some("nosniff"));
    assert!(
        header(&hs, "content-security-policy").is_some_and(|p| p.starts_with("default-src 'none'")),
        "{hs:?}"
    );
    assert!(String::from_utf8(svg).unwrap().contains("<svg"));

    let (status, _, _) = fetch(base, &format!("/qr{path}.gif"), &[]);
    assert_eq!(status, 400);
    let (status, _, body) = fetch(base, "/qr/01/09506000134353/10/L1.svg", &[]);
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["code"],
        "invalid_digital_link"
    );
}

/// A brand owner discloses its products' records by choice (`products.json`,
/// per GTIN): a lot of a product it has not disclosed gets a page with the
/// product and lot as the pack prints them, an open recall's notice, and no
/// ledger fact, so nothing of its supply chain to prove or fetch.
#[test]
fn a_product_its_brand_owner_has_not_disclosed_shows_no_ledger_facts() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let world = fixtures::generate(7, fixtures::Scale::Tiny, START_MS);
    let recalled = world.truth.contaminated_lot.clone();
    let gtin = analytics::watches::gtin_of(&recalled).unwrap();
    // The recalled lot's brand owner withdraws its product's disclosure.
    let path = dir.path().join("products.json");
    let mut products: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(products[&gtin]["disclose"], json!(true), "{products}");
    products[&gtin]["disclose"] = json!(false);
    std::fs::write(&path, products.to_string()).unwrap();
    let server = Server::start(dir.path());
    let base = &server.base;

    let same_product: Vec<&str> = world
        .lots
        .iter()
        .map(|l| l.id.as_str())
        .filter(|id| analytics::watches::gtin_of(id).as_deref() == Some(gtin.as_str()))
        .collect();
    assert!(same_product.len() > 1, "{same_product:?}");
    let name = products[&gtin]["names"]["en"].as_str().unwrap();
    for lot in &same_product {
        let (status, html) = page(base, &path_of(lot), "en");
        assert_eq!(status, 200, "{lot}: {html}");
        assert!(html.contains(name), "{lot}: the product's name: {html}");
        assert!(
            html.contains(lot.rsplit('.').next().unwrap()),
            "{lot}: its lot number"
        );
        assert!(html.contains("has not published"), "{lot}: {html}");
        for fact in [
            "data-fact=\"origin\"",
            "data-fact=\"verdict\"",
            "data-fact=\"step\"",
            "<svg",
        ] {
            assert!(!html.contains(fact), "{lot} shows {fact}: {html}");
        }
        // A recall is a public notice: the one proof such a page offers.
        let recall = *lot == recalled || world.truth.affected_lots.contains(&lot.to_string());
        assert_eq!(html.contains("role=\"alert\""), recall, "{lot}: {html}");
        assert_eq!(
            html.matches("data-entry=").count(),
            usize::from(recall),
            "{lot}: {html}"
        );
    }
    // Other products' records are still disclosed.
    let other = world
        .lots
        .iter()
        .find(|l| !same_product.contains(&l.id.as_str()))
        .unwrap();
    let (_, html) = page(base, &path_of(&other.id), "en");
    assert!(html.contains("data-fact=\"step\""), "{html}");
    assert!(!html.contains("has not published"), "{html}");
}
