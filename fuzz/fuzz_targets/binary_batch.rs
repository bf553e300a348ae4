//! `POST /v1/batches` with a binary body, fed arbitrary bytes: no input may
//! panic; a refusal is a 4xx with a stable code; whatever is accepted is
//! canonical (it encodes back to the very bytes received), so one batch has
//! one signed form.
//! The check itself is `checks::binary_batch`, which CI replays over the corpus.
#![no_main]

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::binary_batch(data));
