//! Every decoder of outside input, fed arbitrary bytes: none may panic, and
//! whatever one accepts must re-encode to exactly the bytes it was given.
//! The check itself is `checks::decoders`, which CI replays over the corpus.
#![no_main]

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::decoders(data));
