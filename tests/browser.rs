//! The consumer pages in a real browser: Debian's chromium, driven over
//! WebDriver by its chromedriver (`.ci/run` installs both when missing).
//! For the clean, the breached and the recalled lot of the demo world, what
//! a shopper reads, and every fact turning "verified" by the page's own
//! verifier script; then, through a proxy that alters one entry's bytes or
//! one proof's signed head on the way, that fact and only that one failing.
//! No console errors. Screenshots land in the target directory (and in
//! `docs/` with `COLDTRAIL_DOCS_SCREENSHOTS=1`).

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};
use support::Server;

const START_MS: i64 = 1_793_491_200_000;
/// VERIFYING.md V5's second key set (version 2, a witness policy), hex.
const V5_WITNESSED_SET: &str = "0201015fa381c99696c19287cd0f95a04c8b226e42a49eae0ce7f4cfd022a357d7e45ad0afbfe9d666ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d102008139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b39401ca93ac1705187071d67b83c7ff0efe8108e8ec4530575d7726879333dbdabe7c0202127769746e6573732e6578616d706c652f77316e7a1cdd29b0b78fd13af4c5598feff4ef2a97166e3ca6f2e4fbfccd80505bf1127769746e6573732e6578616d706c652f77328a875fff1eb38451577acd5afee405456568dd7c89e090863a0557bc7af49f17";
/// VERIFYING.md V6's cosigned checkpoint.
const V6_COSIGNED: &str = "coldtrail/blake3/5883d57e3cf8c9de4a3b9c10484e7abef9a5c8fb15d06aa58cacdbeffecb8f51\n7\ne97KxDYcYrsgw0i71jkapGemeBf++dD2vdy4JnmaCY4=\n\n— coldtrail/blake3/5883d57e3cf8c9de4a3b9c10484e7abef9a5c8fb15d06aa58cacdbeffecb8f51 vfacCxahKJAZCwx3w4Q9nkypWki3eqYtKbcE1gBd1RxAlWu7l2WoWMxBNH0XqqXMz2+PKgpECMvEvxV8y6c07KV7TAM=\n— witness.example/w1 VnzeCQAAAABpJIE8laKB/ar68Hq0SHCnEW6xiVYz/M7iqndYMO4hfxh+tcVFXixAUiLYtgFHF68Aqm/TZ+K4Ge4rRjZ6554ZADj5AA==\n";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install Debian's chromium and chromium-driver \
                 (`apt-get install chromium chromium-driver`; .ci/run does it)"
            );
        }
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                l.split("started successfully on port ")
                    .nth(1)
                    .map(|p| p.trim_end_matches('.').to_string())
            })
            .expect("chromedriver says its port");
        std::thread::spawn(move || for _ in lines {});
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A headless session the size of a phone, reading `lang` first.
    async fn session(&self, lang: &str) -> Client {
        // A phone: desktop windows cannot be narrower than 500 px.
        let phone = json!({ "deviceMetrics": { "width": 412, "height": 1400, "pixelRatio": 1 } });
        self.session_with(lang, json!({ "mobileEmulation": phone }))
            .await
    }

    /// A headless session with a desktop's window (an investigator's).
    async fn desktop(&self) -> Client {
        self.session_with("en", json!({ "args": ["--window-size=1400,900"] }))
            .await
    }

    /// A headless session with `options` added to chromium's.
    async fn session_with(&self, lang: &str, options: Value) -> Client {
        let mut chrome = json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"],
            "prefs": { "intl.accept_languages": lang },
        });
        for (k, v) in options.as_object().unwrap() {
            match (&mut chrome[k], v) {
                (Value::Array(a), Value::Array(more)) => a.extend(more.iter().cloned()),
                (slot, v) => *slot = v.clone(),
            }
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": chrome,
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver's log of the browser console (`goog:loggingPrefs`), which
/// WebDriver proper does not cover.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// Console messages at SEVERE (errors, failed loads, refused policies).
async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("the browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].to_string())
        .collect()
}

/// What the proxy changes on the way to the browser.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    None,
    /// One byte of this entry's raw bytes.
    EntryBytes {
        shard: u32,
        index: u64,
    },
    /// The root of the head in this entry's proof answer.
    ProofHead {
        shard: u32,
        index: u64,
    },
    /// Every proof answer without its `witnessed` object.
    NoWitnessed,
    /// Every witnessed checkpoint with only its first `n` cosignature lines.
    CosignaturesKept(usize),
}

/// A forwarding proxy in front of the node, as an attacker on the path
/// (or a compromised cache) would sit.
struct Proxy {
    base: String,
    tamper: Arc<Mutex<Tamper>>,
    handle: actix_web::dev::ServerHandle,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
        let tamper = Arc::new(Mutex::new(Tamper::None));
        let (tx, rx) = std::sync::mpsc::channel();
        let (up, rule) = (upstream.to_string(), Arc::clone(&tamper));
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let (up, rule) = (up.clone(), Arc::clone(&rule));
                    App::new().default_service(web::to(move |req: HttpRequest| {
                        let (up, rule) = (up.clone(), *rule.lock().unwrap());
                        let parts = req_parts(&req);
                        async move {
                            let reply = web::block(move || forward(&up, &parts, rule))
                                .await
                                .expect("the proxy's worker");
                            let mut res = HttpResponse::build(
                                actix_web::http::StatusCode::from_u16(reply.0).unwrap(),
                            );
                            for (k, v) in reply.1 {
                                res.insert_header((k, v));
                            }
                            res.body(reply.2)
                        }
                    }))
                })
                .workers(2)
                .bind("127.0.0.1:0")
                .unwrap();
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).unwrap();
                server.await.unwrap();
            });
        });
        let (addr, handle) = rx.recv().unwrap();
        Proxy {
            base: format!("http://{addr}"),
            tamper,
            handle,
        }
    }

    fn set(&self, t: Tamper) {
        *self.tamper.lock().unwrap() = t;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let h = self.handle.clone();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(h.stop(false)));
    }
}

struct Parts {
    path_and_query: String,
    headers: Vec<(String, String)>,
}

fn req_parts(req: &actix_web::HttpRequest) -> Parts {
    Parts {
        path_and_query: req
            .uri()
            .path_and_query()
            .map_or("/".into(), |p| p.to_string()),
        headers: req
            .headers()
            .iter()
            .filter(|(k, _)| {
                ["accept", "accept-language", "if-none-match", "host"].contains(&k.as_str())
            })
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
    }
}

/// One GET upstream; the answer, altered as `rule` says.
fn forward(up: &str, req: &Parts, rule: Tamper) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut r = agent.get(format!("{up}{}", req.path_and_query));
    for (k, v) in &req.headers {
        r = r.header(k, v);
    }
    let mut res = r.call().expect("the node answers the proxy");
    let headers: Vec<(String, String)> = res
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "content-length" && k.as_str() != "transfer-encoding")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let mut body = res
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    let path = req.path_and_query.split('?').next().unwrap_or("");
    match rule {
        Tamper::EntryBytes { shard, index }
            if path == format!("/v1/shards/{shard}/entries/{index}/raw") =>
        {
            let last = body.len() - 1;
            body[last] ^= 1;
        }
        Tamper::ProofHead { shard, index }
            if path == format!("/v1/shards/{shard}/entries/{index}/proof") =>
        {
            let mut v: Value = serde_json::from_slice(&body).unwrap();
            let root = v["head"]["root"].as_str().unwrap().to_string();
            let flipped = if root.starts_with('0') { "1" } else { "0" };
            v["head"]["root"] = json!(format!("{flipped}{}", &root[1..]));
            body = serde_json::to_vec(&v).unwrap();
        }
        Tamper::NoWitnessed | Tamper::CosignaturesKept(_)
            if path.ends_with("/proof") && path.starts_with("/v1/shards/") =>
        {
            let mut v: Value = serde_json::from_slice(&body).unwrap();
            let map = v.as_object_mut().unwrap();
            match rule {
                Tamper::CosignaturesKept(n) => {
                    let text = map["witnessed"]["checkpoint"].as_str().unwrap();
                    // The log's own line, then the first n cosignatures.
                    let (note, sigs) = text.split_once("\n\n").unwrap();
                    let kept: Vec<&str> = sigs.lines().take(1 + n).collect();
                    map["witnessed"]["checkpoint"] =
                        json!(format!("{note}\n\n{}\n", kept.join("\n")));
                }
                _ => {
                    map.remove("witnessed");
                }
            }
            body = serde_json::to_vec(&v).unwrap();
        }
        _ => {}
    }
    (res.status().as_u16(), headers, body)
}

/// A fact on the page as the browser shows it.
#[derive(Debug, serde::Deserialize)]
struct Fact {
    entry: String,
    kind: String,
    state: String,
    text: String,
    fact: String,
}

/// Opens `url` and waits until the verifier has judged every fact.
async fn open_verified(c: &Client, url: &str) -> (Vec<Fact>, Value) {
    c.goto(url).await.expect("the page opens");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = c
            .execute(
                "return document.documentElement.dataset.verification || null",
                vec![],
            )
            .await
            .unwrap();
        if !done.is_null() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: the verifier did not finish within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = c
        .execute(
            "return {
                facts: [...document.querySelectorAll('a.proof[data-entry]')].map(a => ({
                    entry: a.dataset.entry, kind: a.dataset.kind, state: a.dataset.state,
                    text: a.textContent, fact: a.closest('[data-fact], section.recall')?.innerText ?? '' })),
                title: document.querySelector('h1')?.innerText,
                verdict: document.querySelector('[data-fact=verdict]')?.innerText,
                verdictBad: document.querySelector('[data-fact=verdict]')?.classList.contains('bad'),
                recall: document.querySelector('section.recall')?.innerText ?? null,
                summary: document.getElementById('proof-summary')?.innerText,
                summaryHidden: document.getElementById('proof-summary')?.hidden,
                lang: document.documentElement.lang,
                chart: document.querySelector('svg[role=img] desc')?.textContent ?? null,
                width: document.documentElement.scrollWidth,
                viewport: window.innerWidth,
            }",
            vec![],
        )
        .await
        .unwrap();
    let facts = serde_json::from_value(page["facts"].clone()).unwrap();
    (facts, page)
}

fn artefacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(artefacts().join(format!("{name}.png")), &png).unwrap();
    if std::env::var_os("COLDTRAIL_DOCS_SCREENSHOTS").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(format!("page-{name}.png")), &png).unwrap();
    }
}

/// The demo world's lots the way the demo picks them: clean, breached (by
/// the rules' verdicts, asked of GraphQL), and the recalled one.
fn lots(base: &str, token: &str) -> [(String, String, String); 3] {
    let world = fixtures::generate(7, fixtures::Scale::Tiny, START_MS);
    let answer = support::post_json(
        base,
        "/graphql",
        token,
        &json!({ "query": "{ breaches(first: 100) { edges { node { lot { id } } } } }" }),
    )
    .json();
    let breached: BTreeSet<&str> = answer["data"]["breaches"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["node"]["lot"]["id"].as_str())
        .collect();
    let recalled = world.truth.contaminated_lot.clone();
    let in_recall = |id: &String| *id == recalled || world.truth.affected_lots.contains(id);
    let pick = |bad: bool| {
        world
            .lots
            .iter()
            .find(|l| breached.contains(l.id.as_str()) == bad && !in_recall(&l.id))
            .expect("the tiny world has such a lot")
    };
    let recalled = world.lots.iter().find(|l| l.id == recalled).unwrap();
    let named = |what: &str, lot: &fixtures::Lot| {
        (
            what.to_string(),
            gs1::from_epc_urn(&lot.id).unwrap().unwrap().path(),
            world.products[lot.product].name.to_string(),
        )
    };
    [
        named("clean", pick(false)),
        named("breached", pick(true)),
        named("recalled", recalled),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fact_verifies_in_chromium_and_an_altered_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let token = support::token(dir.path(), support::ORG, "investigator");
    let server = Server::start(dir.path());
    let proxy = Proxy::start(&server.base);
    let lots = lots(&server.base, &token);
    let driver = Driver::start();
    let c = driver.session("en-GB,en").await;

    for (name, path, product) in &lots {
        let (facts, page) = open_verified(&c, &format!("{}{path}", proxy.base)).await;
        screenshot(&c, name).await;
        assert_eq!(page["lang"], "en", "{page}");
        assert_eq!(
            page["title"],
            product.as_str(),
            "{name}: the product's name"
        );
        assert!(
            facts.len() >= 3,
            "{name}: origin, verdict and steps: {facts:?}"
        );
        for f in &facts {
            assert!(
                !f.fact.trim().is_empty(),
                "{name}: every proof sits in a fact: {f:?}"
            );
            assert_eq!(f.state, "verified", "{name}: {f:?}");
            assert!(f.text.contains("verified"), "{f:?}");
        }
        let n = facts.len();
        let summary = page["summary"].as_str().unwrap();
        assert!(
            summary.starts_with(&format!("{n} of {n} facts verified")),
            "{name}: {summary}"
        );
        assert_eq!(page["summaryHidden"], false);
        let verdict = page["verdict"].as_str().unwrap();
        match name.as_str() {
            "clean" => {
                assert!(verdict.contains("for the whole journey"), "{verdict}");
                assert_eq!(page["verdictBad"], false);
            }
            "breached" => {
                assert!(!verdict.contains("whole journey"), "{verdict}");
                assert!(verdict.contains(" on "), "says when: {verdict}");
                assert_eq!(page["verdictBad"], true);
                assert!(facts.iter().any(|f| f.kind == "verdict"), "{facts:?}");
            }
            _ => {}
        }
        if name == "recalled" {
            let banner = page["recall"].as_str().expect("a recall banner");
            assert!(banner.contains("Recalled: do not eat or use"), "{banner}");
            assert!(facts
                .iter()
                .any(|f| f.kind == "recall" && f.state == "verified"));
        } else {
            assert!(page["recall"].is_null(), "{name}: no banner: {page}");
        }
        assert!(page["chart"]
            .as_str()
            .is_some_and(|d| d.contains("readings")));
        // Mobile first: nothing wider than the phone's screen.
        assert_eq!(page["viewport"], 412, "{name}: a phone's viewport");
        assert!(page["width"].as_u64().unwrap() <= 412, "{name}: {page}");
        assert_eq!(console_errors(&c).await, Vec::<String>::new(), "{name}");
    }

    // A journey step's bytes altered on the way: that fact fails, the rest hold.
    let (_, breached_path, _) = &lots[1];
    let (facts, _) = open_verified(&c, &format!("{}{breached_path}", proxy.base)).await;
    let step = facts
        .iter()
        .find(|f| f.kind == "custody")
        .unwrap()
        .entry
        .clone();
    let at = |e: &str| {
        let mut p = e.split('/');
        (
            p.next().unwrap().parse().unwrap(),
            p.next().unwrap().parse().unwrap(),
        )
    };
    let (shard, index) = at(&step);
    proxy.set(Tamper::EntryBytes { shard, index });
    let (facts, page) = open_verified(&c, &format!("{}{breached_path}", proxy.base)).await;
    screenshot(&c, "breached-altered-entry").await;
    for f in &facts {
        if f.entry == step {
            assert_eq!(f.state, "failed", "{f:?}");
            assert!(f.text.contains("the record was altered"), "{f:?}");
        } else {
            assert_eq!(f.state, "verified", "only the altered entry fails: {f:?}");
        }
    }
    assert!(page["summary"]
        .as_str()
        .unwrap()
        .contains("could not be verified"));

    // The signed head in the verdict's proof altered: that fact fails.
    let verdict = facts
        .iter()
        .find(|f| f.kind == "verdict")
        .unwrap()
        .entry
        .clone();
    let (shard, index) = at(&verdict);
    proxy.set(Tamper::ProofHead { shard, index });
    let (facts, _) = open_verified(&c, &format!("{}{breached_path}", proxy.base)).await;
    for f in &facts {
        let expected = if f.entry == verdict {
            "failed"
        } else {
            "verified"
        };
        assert_eq!(f.state, expected, "{f:?}");
        if f.entry == verdict {
            assert!(f.text.contains("signature does not check"), "{f:?}");
        }
    }
    assert_eq!(console_errors(&c).await, Vec::<String>::new());
    proxy.set(Tamper::None);

    // In German, the recalled lot: the banner and the verdicts in German.
    c.close().await.unwrap();
    let de = driver.session("de-DE,de").await;
    let (facts, page) = open_verified(&de, &format!("{}{}", proxy.base, lots[2].1)).await;
    screenshot(&de, "recalled-de").await;
    assert_eq!(page["lang"], "de");
    assert!(
        page["recall"].as_str().unwrap().contains("Rückruf"),
        "{page}"
    );
    assert!(facts
        .iter()
        .all(|f| f.state == "verified" && f.text.contains("geprüft")));
    de.close().await.unwrap();
}

/// With three witnesses and a 2-of-3 policy in the node's key set, a page's
/// facts are "verified" only with a checkpoint two of them cosigned, and the
/// page names who vouched; a proof answer without one, or a checkpoint
/// left with one cosignature, is not taken as verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_are_verified_only_when_a_quorum_of_witnesses_vouches_for_them() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let token = support::token(dir.path(), support::ORG, "investigator");
    let keys = {
        let server = Server::start(dir.path());
        let keys = support::witnesses::shard_keys(&server.base);
        server.stop();
        keys
    };
    let witness_dirs: Vec<tempfile::TempDir> =
        (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let witnesses: Vec<support::witnesses::Witness> = ["w.example/a", "w.example/b", "w.example/c"]
        .iter()
        .zip(&witness_dirs)
        .map(|(name, d)| support::witnesses::Witness::named(d.path(), &keys, name))
        .collect();
    let config_dir = tempfile::tempdir().unwrap();
    let config = support::witnesses::config(
        config_dir.path(),
        &witnesses.iter().collect::<Vec<_>>(),
        Some(2),
    );
    let server = Server::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    // Every shard's newest head cosigned by all three before the pages open.
    let deadline = Instant::now() + Duration::from_secs(30);
    for shard in 0..keys.len() {
        loop {
            let size = support::get(&server.base, &format!("/v1/shards/{shard}/head")).json()
                ["size"]
                .as_u64()
                .unwrap();
            let r = support::get(
                &server.base,
                &format!("/v1/shards/{shard}/checkpoint?cosigned=3"),
            );
            if r.status == 200 && r.body.lines().nth(1) == Some(size.to_string().as_str()) {
                break;
            }
            assert!(Instant::now() < deadline, "shard {shard} not cosigned");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let proxy = Proxy::start(&server.base);
    let lots = lots(&server.base, &token);
    let driver = Driver::start();
    let c = driver.session("en-GB,en").await;
    let (_, path, _) = &lots[1];
    let url = format!("{}{path}", proxy.base);

    let (facts, page) = open_verified(&c, &url).await;
    screenshot(&c, "breached-witnessed").await;
    assert!(!facts.is_empty());
    for f in &facts {
        assert_eq!(f.state, "verified", "{f:?}");
    }
    let summary = page["summary"].as_str().unwrap();
    assert!(
        summary.contains("Vouched for by the independent witnesses w.example/a, w.example/b, w.example/c (2 of 3 needed)"),
        "{summary}"
    );

    // The node (or the path) withholds the witnesses' checkpoint: signed,
    // but not verified.
    proxy.set(Tamper::NoWitnessed);
    let (facts, page) = open_verified(&c, &url).await;
    screenshot(&c, "breached-unwitnessed").await;
    for f in &facts {
        assert_eq!(f.state, "unwitnessed", "{f:?}");
        assert!(f.text.contains("not yet vouched for"), "{f:?}");
        assert!(!f.text.contains("✓"), "{f:?}");
    }
    let summary = page["summary"].as_str().unwrap();
    assert!(
        summary.contains("not yet vouched for by 2 of its 3 witnesses"),
        "{summary}"
    );
    assert!(!summary.contains("facts verified"), "{summary}");
    let state = c
        .execute(
            "return document.documentElement.dataset.verification",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(state, "unwitnessed");

    // One cosignature left on the checkpoint: below the quorum, refused.
    proxy.set(Tamper::CosignaturesKept(1));
    let (facts, page) = open_verified(&c, &url).await;
    for f in &facts {
        assert_eq!(f.state, "failed", "{f:?}");
        assert!(f.text.contains("too few witnesses vouch for it"), "{f:?}");
    }
    assert!(page["summary"]
        .as_str()
        .unwrap()
        .contains("could not be verified"));
    // Two left: the quorum holds.
    proxy.set(Tamper::CosignaturesKept(2));
    let (facts, _) = open_verified(&c, &url).await;
    assert!(facts.iter().all(|f| f.state == "verified"), "{facts:?}");
    assert_eq!(console_errors(&c).await, Vec::<String>::new());
    proxy.set(Tamper::None);
    c.close().await.unwrap();
    server.stop();
}

/// The verifier's primitives in the browser against VERIFYING.md's vectors
/// (produced by the Rust code), including refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_verifier_agrees_with_the_published_vectors() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let server = Server::start(dir.path());
    let driver = Driver::start();
    let c = driver.session("en").await;
    // Any page of the node gives the module its origin.
    c.goto(&format!("{}/v1/openapi.json", server.base))
        .await
        .unwrap();
    let out = c
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
            import('/assets/coldtrail/proof.js').then((p) => {
              const e = new TextEncoder();
              const h = (x) => p.fromHex(x, 32, 'vector');
              const leaf = (i) => p.leafHash(e.encode(`entry ${i}`));
              const r = {};
              r.leaf0 = p.toHex(leaf(0));
              r.incl0 = p.toHex(p.rootFromInclusion(0, 7, leaf(0), [
                '2a74a7e0c56bdd5dc2a8419e7892c04ad2da55dbd7b3f1f7c2fddc794722e947',
                '4ff78b5a5ca868d70f02b115a8940a091db4466dd7e2e2969d4f633a5792a9bd',
                '25412d9ec961711d81149d32f65e986fa54e4ef119667271adf38b0c0786a1ba'].map(h)));
              r.incl6 = p.toHex(p.rootFromInclusion(6, 7, leaf(6), [
                'a8f135b517fa15cadbfadad758c6ba2e41dabebad9df3d520fa7005c04c5ae1d',
                'a6174c127bb7141208edeff5e238d4df008ab4348f243b95d041c8b95bcae3d7'].map(h)));
              r.incl4of5 = p.toHex(p.rootFromInclusion(4, 5, leaf(4), [
                'a6174c127bb7141208edeff5e238d4df008ab4348f243b95d041c8b95bcae3d7'].map(h)));
              const refused = (f) => { try { f(); return null; } catch (x) { return x.code; } };
              r.tooLong = refused(() => p.rootFromInclusion(4, 5, leaf(4), [h('00'.repeat(32)), h('00'.repeat(32))]));
              r.pastEnd = refused(() => p.rootFromInclusion(7, 7, leaf(0), []));
              const head = { shard: 0, log_id: '5883d57e3cf8c9de4a3b9c10484e7abef9a5c8fb15d06aa58cacdbeffecb8f51', size: 7,
                root: '7bdecac4361c62bb20c348bbd6391aa467a67817fef9d0f6bddcb826799a098e', timestamp_ms: 1764000000000,
                signature: 'ed3fd778323e133aa14f7c5f186f751b5e260e63049a7153d7d9d3c188f867239e032b36206fef8fa3821b2d27b2352e20382ae6ac49a88cfefb348a1a7ee005' };
              const key = h('8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394');
              r.headBytes = p.toHex(p.headBytes(head));
              r.head = refused(() => p.verifyHead(head, 0, key));
              r.otherSize = refused(() => p.verifyHead({ ...head, size: 8 }, 0, key));
              r.otherKey = refused(() => p.verifyHead(head, 0, h('ca93ac1705187071d67b83c7ff0efe8108e8ec4530575d7726879333dbdabe7c')));
              // V5's second set: version 2, a witness policy.
              const set = p.decodeKeySet(p.fromHex(arguments[0]));
              r.policy = { quorum: set.witnesses.quorum, names: set.witnesses.witnesses.map((w) => w.name),
                keys: set.witnesses.witnesses.map((w) => p.toHex(w.key)) };
              // V6: the V4 head's checkpoint, cosigned by witness.example/w1.
              const w1 = { name: 'witness.example/w1', key: h('6e7a1cdd29b0b78fd13af4c5598feff4ef2a97166e3ca6f2e4fbfccd80505bf1') };
              const w2 = { name: 'witness.example/w2', key: set.witnesses.witnesses[1].key };
              r.keyId = p.toHex(p.keyId(w1.name, 4, w1.key));
              const witnessed = { checkpoint: arguments[1], size: 7, proof: [
                '2a74a7e0c56bdd5dc2a8419e7892c04ad2da55dbd7b3f1f7c2fddc794722e947',
                '4ff78b5a5ca868d70f02b115a8940a091db4466dd7e2e2969d4f633a5792a9bd',
                '25412d9ec961711d81149d32f65e986fa54e4ef119667271adf38b0c0786a1ba'] };
              const fact = { index: 0, id: r.leaf0 };
              r.witnessed = p.verifyWitnessed(fact, witnessed, key, { quorum: 1, witnesses: [w1, w2] });
              r.twoNeeded = refused(() => p.verifyWitnessed(fact, witnessed, key, { quorum: 2, witnesses: [w1, w2] }));
              r.otherEntry = refused(() => p.verifyWitnessed({ index: 1, id: r.leaf0 }, witnessed, key, { quorum: 1, witnesses: [w1] }));
              r.otherLog = refused(() => p.verifyWitnessed(fact, witnessed, w1.key, { quorum: 1, witnesses: [w1] }));
              r.forged = refused(() => p.verifyWitnessed(fact, { ...witnessed, checkpoint: arguments[1].replace('\n7\n', '\n8\n') }, key, { quorum: 1, witnesses: [w1] }));
              done(r);
            }).catch((x) => done({ error: String(x) }));"#,
            vec![json!(V5_WITNESSED_SET), json!(V6_COSIGNED)],
        )
        .await
        .unwrap();
    assert_eq!(out["error"], Value::Null, "{out}");
    let root7 = "7bdecac4361c62bb20c348bbd6391aa467a67817fef9d0f6bddcb826799a098e";
    assert_eq!(
        out["leaf0"],
        "bfcf58477aec861c90ea7c20594c85541ce7afa05f790e8b322cdb02633911a6"
    );
    assert_eq!(out["incl0"], root7);
    assert_eq!(out["incl6"], root7);
    assert_eq!(
        out["incl4of5"],
        "761ae52c5f72687b8b94d6053be434715308bfa8eaf33b10e9f4dd23adb503bf"
    );
    assert_eq!(out["tooLong"], "inclusion");
    assert_eq!(out["pastEnd"], "inclusion");
    assert_eq!(out["headBytes"], "5883d57e3cf8c9de4a3b9c10484e7abef9a5c8fb15d06aa58cacdbeffecb8f51077bdecac4361c62bb20c348bbd6391aa467a67817fef9d0f6bddcb826799a098e80a0bfe9d666");
    assert_eq!(out["head"], Value::Null, "the vector's head checks: {out}");
    assert_eq!(out["otherSize"], "head");
    assert_eq!(out["otherKey"], "head");
    assert_eq!(out["policy"]["quorum"], 2, "{out}");
    assert_eq!(
        out["policy"]["names"],
        json!(["witness.example/w1", "witness.example/w2"])
    );
    assert_eq!(
        out["policy"]["keys"][0],
        "6e7a1cdd29b0b78fd13af4c5598feff4ef2a97166e3ca6f2e4fbfccd80505bf1"
    );
    assert_eq!(out["keyId"], "567cde09");
    assert_eq!(
        out["witnessed"],
        json!({"size": "7", "vouched": ["witness.example/w1"]})
    );
    assert_eq!(out["twoNeeded"], "quorum");
    assert_eq!(out["otherEntry"], "witness");
    assert_eq!(out["otherLog"], "witness");
    assert_eq!(out["forged"], "witness");
    c.close().await.unwrap();
}

/// Not a test: the time in Chromium from navigation until every fact is
/// verified, against first contentful paint in the same loads (the page is
/// readable before the verifier runs). Prints figures for BENCHMARKS.md:
/// Waits until `script` returns something other than null, and returns it.
async fn wait_for(c: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = c.execute(script, vec![]).await.unwrap();
        if !v.is_null() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An investigator opens /graphql, gives their token in the form the page
/// asks with, and runs the query the console starts with: the answer is the
/// API's own. The console comes from the node alone (GraphiQL and React are
/// its assets; no other origin is asked for anything) and runs under its
/// Content-Security-Policy without a console error (its schema introspection
/// was authorised, or it would have logged a 401). Without a token, the
/// answer says how to give one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_console_runs_a_query_from_the_node_alone() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let token = support::token(dir.path(), support::ORG, "investigator");
    let server = Server::start(dir.path());
    let driver = Driver::start();
    let c = driver.desktop().await;

    c.goto(&format!("{}/graphql", server.base)).await.unwrap();
    let input = c
        .find(fantoccini::Locator::Css("form#token input[name=token]"))
        .await
        .expect("the page asks for a token");
    input.send_keys(&token).await.unwrap();
    c.find(fantoccini::Locator::Css("form#token button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &c,
        "GraphiQL's editors",
        "return document.querySelector('.graphiql-query-editor .CodeMirror') ? true : null",
    )
    .await;
    let query = c
        .execute(
            "return document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue()",
            vec![],
        )
        .await
        .unwrap();
    let query = query.as_str().unwrap().to_string();
    assert!(query.contains("breaches"), "the starting query: {query}");

    // Runs the query in the editor, with `headers` put in the Headers tab
    // first if given, and returns the result pane's JSON once it changes.
    async fn run(c: &Client, headers: Option<&str>) -> Value {
        c.execute(
            "const tool = document.querySelector('section.graphiql-editor-tool');
             const open = tool.getAttribute('aria-label');
             if (open !== 'Headers') throw new Error(`the ${open} tab is open: the Headers tab should be`);
             const shown = [...tool.querySelectorAll('.graphiql-editor')].filter(e => !e.classList.contains('hidden'));
             if (shown.length !== 1) throw new Error(`${shown.length} editors shown in the Headers tab`);
             const editor = shown[0].querySelector('.CodeMirror').CodeMirror;
             if (arguments[0] !== null) editor.setValue(arguments[0]);
             const result = document.querySelector('.result-window .CodeMirror');
             if (result) result.CodeMirror.setValue('');
             document.querySelector('.graphiql-execute-button').click();",
            vec![json!(headers)],
        )
        .await
        .unwrap();
        let text = wait_for(
            c,
            "the query's answer",
            "const r = document.querySelector('.result-window .CodeMirror');
             const t = r && r.CodeMirror.getValue();
             return t && t.trim().startsWith('{') ? t : null;",
        )
        .await;
        serde_json::from_str(text.as_str().unwrap()).unwrap()
    }

    let headers = c
        .execute(
            "return document.querySelector('section.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror').CodeMirror.getValue()",
            vec![],
        )
        .await
        .unwrap();
    let headers: Value = serde_json::from_str(headers.as_str().unwrap()).unwrap();
    assert_eq!(
        headers,
        json!({ "Authorization": format!("Bearer {token}") }),
        "the Headers tab holds the token given"
    );
    let answer = run(&c, None).await;
    screenshot(&c, "graphql-console").await;
    let direct =
        support::post_json(&server.base, "/graphql", &token, &json!({ "query": query })).json();
    assert!(answer["errors"].is_null(), "the console's answer: {answer}");
    assert!(
        answer["data"]["breaches"]["totalCount"].as_u64().unwrap() > 0,
        "the tiny world has breaches: {answer}"
    );
    assert_eq!(answer, direct, "the console shows the API's answer");
    // Before the refusal below, which the browser logs as a failed load (401).
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");

    let refused = run(&c, Some(r#"{"Authorization": "Bearer "}"#)).await;
    let message = refused["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.to_lowercase().contains("token"),
        "without a token the answer says to give one: {refused}"
    );

    let loaded = c
        .execute(
            "return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)]",
            vec![],
        )
        .await
        .unwrap();
    let loaded: Vec<String> = serde_json::from_value(loaded).unwrap();
    assert!(loaded.len() >= 6, "the page and its scripts: {loaded:?}");
    for url in &loaded {
        assert!(
            url.starts_with(&format!("{}/", server.base)),
            "the console loads only from the node: {url}"
        );
    }
    c.close().await.unwrap();
}

/// `cargo test --release --test browser -- --ignored --nocapture time_to_verified`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; prints figures"]
async fn time_to_verified() {
    let dir = tempfile::tempdir().unwrap();
    support::tiny_demo(dir.path());
    let token = support::token(dir.path(), support::ORG, "investigator");
    let server = Server::start(dir.path());
    let lots = lots(&server.base, &token);
    let driver = Driver::start();
    let runs = 20;
    for (name, path, _) in &lots {
        let (mut paint, mut verified, mut facts) = (Vec::new(), Vec::new(), 0);
        for i in 0..runs {
            // A fresh session each time: nothing cached, as a first scan.
            let c = driver.session("en").await;
            let (f, _) = open_verified(&c, &format!("{}{path}", server.base)).await;
            facts = f.len();
            let t = c
                .execute(
                    "return [performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null,
                             performance.getEntriesByName('coldtrail:verified')[0]?.startTime ?? null]",
                    vec![],
                )
                .await
                .unwrap();
            c.close().await.unwrap();
            if i == 0 {
                continue; // the first load warms the server's caches
            }
            paint.push(t[0].as_f64().unwrap());
            verified.push(t[1].as_f64().unwrap());
        }
        let p = |v: &mut Vec<f64>, q: f64| {
            v.sort_by(f64::total_cmp);
            v[((v.len() - 1) as f64 * q).round() as usize]
        };
        println!(
            "{name:<9} {facts:>2} facts: verified p50 {:.0} ms, p90 {:.0} ms; first paint p50 {:.0} ms ({} loads)",
            p(&mut verified, 0.5),
            p(&mut verified, 0.9),
            p(&mut paint, 0.5),
            runs - 1
        );
    }
}
