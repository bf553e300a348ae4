//! Query strings of the read routes, fed arbitrary text: the form decoding,
//! typed parameters (numbers, flags, times), the EPCIS query language of
//! `GET /events` and its page tokens. No input may panic; refusals name a
//! parameter; a token this node gives reads back to the same cursor.
//! The check itself is `checks::query_params`, which CI replays over the corpus.
#![no_main]

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::query_params(data));
