//! What each fuzz target checks, one function per target, shared by the
//! libFuzzer binaries (`fuzz_targets/*.rs`, campaigns) and the workspace's
//! corpus replay (`tests/fuzz_corpora.rs`, every CI run): each function
//! panics exactly when the property its target stands for is broken.
//!
//! Plain Rust with no fuzzer in it, so the workspace's tests can include it
//! (`#[path]`) without building libFuzzer.

use actix_web::ResponseError;

/// A refusal of outside input is the client's fault and names a code.
fn refused_as_client_error(e: &api::ApiError) {
    assert!(
        e.status_code().is_client_error(),
        "{e}: {}",
        e.status_code()
    );
    assert!(!e.code().is_empty());
}

/// Every decoder of outside input, fed arbitrary bytes: none may panic, and
/// whatever one accepts must re-encode to exactly the bytes it was given.
pub fn decoders(data: &[u8]) {
    use ledger::reading::DeviceBatch;
    use ledger::store::format::{FrameHeader, FRAME_HEADER_LEN};
    use ledger::{Entry, SignedTreeHead};
    if let Ok(e) = Entry::from_bytes(data) {
        assert_eq!(e.to_bytes(), data, "accepted entry bytes are canonical");
    }
    if let Ok(b) = DeviceBatch::from_bytes(data) {
        assert_eq!(b.to_bytes(), data, "accepted batch bytes are canonical");
    }
    if let Ok(h) = SignedTreeHead::from_bytes(data) {
        assert_eq!(h.to_bytes(), data, "accepted head bytes are canonical");
    }
    if let Ok(s) = ledger::keyset::SignedKeySet::from_bytes(data) {
        assert_eq!(s.to_bytes(), data, "accepted key set bytes are canonical");
    }
    if let Ok(h) = FrameHeader::parse(data) {
        let payload = &data[FRAME_HEADER_LEN.min(data.len())..];
        if h.check(payload) {
            let _ = ledger::store::format::unpack_block(&h, payload);
        }
    }
}

/// `POST /v1/batches` with a binary body: no input may panic; a refusal is
/// a 4xx with a stable code; whatever is accepted is canonical (it encodes
/// back to the very bytes received), so one batch has one signed form.
pub fn binary_batch(data: &[u8]) {
    match ingest::wire::decode_binary(data) {
        Ok(batches) => {
            assert_eq!(ingest::wire::encode_binary(&batches), data);
            // The same batches in the other wire form decode alike.
            let json = ingest::wire::decode_json(&ingest::wire::encode_json(&batches))
                .expect("accepted batches also pass as JSON");
            assert_eq!(json, batches);
        }
        Err(e) => refused_as_client_error(&e),
    }
}

/// `POST /v1/batches` with a JSON body: no input may panic; a refusal is a
/// 4xx with a stable code; whatever is accepted encodes back to JSON that
/// decodes to the same batches.
pub fn json_batch(data: &[u8]) {
    match ingest::wire::decode_json(data) {
        Ok(batches) => {
            let again = ingest::wire::decode_json(&ingest::wire::encode_json(&batches))
                .expect("what was accepted, re-encoded, is accepted");
            assert_eq!(again, batches);
        }
        Err(e) => refused_as_client_error(&e),
    }
}

/// GS1 identifiers from outside (Digital Link URIs in events and in scanned
/// QR codes, EPC URNs): no input may panic; whatever parses has one
/// canonical form, which parses back to itself, and every spelling of one
/// thing agrees on it.
pub fn digital_link(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(link) = gs1::DigitalLink::parse(text) {
        let canonical = link.canonical();
        let again = gs1::DigitalLink::parse(&canonical).expect("the canonical form parses");
        assert_eq!(
            again.canonical(),
            canonical,
            "canonical forms are fixed points"
        );
        assert_eq!(gs1::canonical_id(text).as_deref(), Some(canonical.as_str()));
        let _ = link.query();
    }
    // The resolver's entry point: a path and a query under some host.
    let (path, query) = text
        .split_once('?')
        .map_or((text, None), |(p, q)| (p, Some(q)));
    if let Ok(link) = gs1::DigitalLink::from_parts("https://example.com", path, query) {
        let _ = gs1::DigitalLink::parse(&link.canonical()).expect("the canonical form parses");
    }
    if let Ok(Some(link)) = gs1::from_epc_urn(text) {
        let _ = gs1::DigitalLink::parse(&link.canonical()).expect("an EPC URN's link parses");
    }
    let _ = gs1::check_identifier(text);
    let _ = gs1::decode(text);
}

/// `POST /capture` (EPCIS 2.0 JSON-LD documents): no input may panic; a
/// refusal is a 4xx with a stable code; an accepted document yields events
/// whose canonical fingerprints are stable when the document is captured
/// again, and each event's ledger entry decodes back to it.
pub fn epcis_document(data: &[u8]) {
    const BY: &str = "urn:epc:id:sgln:0614141.00001.0";
    match ingest::epcis::parse_document(data, BY) {
        Ok(captured) => {
            assert!(!captured.is_empty());
            let again = ingest::epcis::parse_document(data, BY).expect("parsing is pure");
            let prints = |c: &[ingest::epcis::Captured]| {
                c.iter().map(|e| e.fingerprint.clone()).collect::<Vec<_>>()
            };
            assert_eq!(prints(&captured), prints(&again));
            for c in &captured {
                let entry = ledger::Entry::Custody(c.event.clone());
                let bytes = entry.to_bytes();
                assert_eq!(
                    ledger::Entry::from_bytes(&bytes).expect("entry decodes"),
                    entry
                );
            }
        }
        Err(e) => refused_as_client_error(&e),
    }
}

/// Query strings of the read routes: the form decoding, typed parameters
/// (numbers, flags, times), the EPCIS query language of `GET /events` and
/// its page tokens. No input may panic; refusals name a parameter; a token
/// this node gives reads back to the same cursor.
pub fn query_params(data: &[u8]) {
    use analytics::lineage::query::{page_token, parse_token, Cursor, EventQuery};
    use api::params::QueryParams;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = QueryParams::from_query_string(text, &["lot", "from", "to", "size"]) {
        assert!(e.status_code().is_client_error());
    }
    let q = match QueryParams::any_from_query_string(text) {
        Ok(q) => q,
        Err(e) => {
            assert!(e.status_code().is_client_error());
            return;
        }
    };
    for (name, value) in q.pairs() {
        let _ = q.get::<u64>(name);
        let _ = q.get::<bool>(name);
        let _ = q.get::<usize>(name);
        let _ = q.time(name);
        let _ = ingest::epcis::parse_offset(value, name);
    }
    match EventQuery::from_params(q.pairs()) {
        Ok(eq) => {
            for (_, value) in q.pairs() {
                let _ = parse_token(&eq, value);
            }
            let cursor = Cursor {
                time_ms: text.len() as i64 - 7,
                shard: 3,
                index: u64::MAX,
            };
            assert_eq!(parse_token(&eq, &page_token(&eq, cursor)), Ok(cursor));
        }
        Err(e) => assert!(!e.parameter.is_empty(), "{e}"),
    }
}

/// A target's check.
pub type Check = fn(&[u8]);

/// Every target by name, as the corpus directories are named.
/// The log key the witness target watches (its seed; the corpus's valid
/// checkpoints are signed by it).
pub const WITNESSED_LOG_SEED: [u8; 32] = [0x57; 32];

/// `coldtrail witness`'s `POST /add-checkpoint` body, fed arbitrary bytes to
/// a fresh witness that watches one log: no input may panic; a refusal is a
/// 4xx (never the 503 of a storage failure); a body it cosigns carries a
/// checkpoint its log's key signed, and the line it answers is a
/// cosignature of exactly that checkpoint that verifies under its key.
pub fn witness_body(data: &[u8]) {
    use actix_web::ResponseError;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = ed25519_dalek::SigningKey::from_bytes(&WITNESSED_LOG_SEED).verifying_key();
    let w = witness::Witness::open(
        dir.path(),
        "fuzz.example/w",
        &[log],
        ledger::clock::system(),
    )
    .expect("a witness opens in a fresh directory");
    match w.add_checkpoint_bytes(data) {
        Ok(line) => {
            let body = std::str::from_utf8(data).expect("a cosigned body is UTF-8");
            // No line before the checkpoint is empty: the first blank line
            // ends the proof lines.
            let (_, checkpoint) = body
                .split_once("\n\n")
                .expect("a cosigned body holds a checkpoint after its proof lines");
            let cosigned = ledger::note::Note::parse(&format!("{checkpoint}{line}"))
                .expect("the checkpoint and its cosignature line parse as a note");
            let origin = ledger::note::origin(&ledger::head::log_id(&log));
            cosigned
                .verify_signature(&origin, &log)
                .expect("what is cosigned is signed by the log");
            cosigned
                .verify_cosignature("fuzz.example/w", &w.public_key())
                .expect("the answer is a cosignature that verifies");
        }
        Err(e) => {
            let status = e.status_code();
            assert!(status.is_client_error(), "{e}: {status}");
        }
    }
}

pub const TARGETS: &[(&str, Check)] = &[
    ("decoders", decoders),
    ("binary_batch", binary_batch),
    ("json_batch", json_batch),
    ("digital_link", digital_link),
    ("epcis_document", epcis_document),
    ("query_params", query_params),
    ("witness_body", witness_body),
];
