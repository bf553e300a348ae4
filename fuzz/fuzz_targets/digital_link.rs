//! GS1 identifiers from outside (Digital Link URIs in events and in scanned
//! QR codes, EPC URNs), fed arbitrary text: no input may panic; whatever
//! parses has one canonical form, which parses back to itself, and every
//! spelling of one thing agrees on it.
//! The check itself is `checks::digital_link`, which CI replays over the corpus.
#![no_main]

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::digital_link(data));
