//! `POST /capture` (EPCIS 2.0 JSON-LD documents), fed arbitrary bytes: no
//! input may panic; a refusal is a 4xx with a stable code; an accepted
//! document yields events whose canonical fingerprints are stable when the
//! document is captured again, and each event's ledger entry decodes back
//! to it.
//! The check itself is `checks::epcis_document`, which CI replays over the corpus.
#![no_main]

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::epcis_document(data));
