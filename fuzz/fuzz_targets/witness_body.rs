//! `coldtrail witness`'s `POST /add-checkpoint` body, fed arbitrary bytes to a
//! fresh witness watching one log: no input may panic, a refusal is a 4xx,
//! and what it cosigns is a checkpoint its log signed, with a cosignature
//! that verifies. The check itself is `checks::witness_body`, which CI
//! replays over the corpus.
#![no_main]

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::witness_body(data));
