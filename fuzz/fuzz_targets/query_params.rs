//! Query strings of the read routes, fed arbitrary text: the form decoding,
//! typed parameters (numbers, flags, times), the EPCIS query language of
//! `GET /events` and its page tokens. No input may panic; refusals name a
//! parameter; a token this node gives reads back to the same cursor.
#![no_main]

use actix_web::ResponseError;
use analytics::lineage::query::{page_token, parse_token, Cursor, EventQuery};
use api::params::QueryParams;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
