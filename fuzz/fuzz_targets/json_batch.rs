//! `POST /v1/batches` with a JSON body, fed arbitrary bytes: no input may
//! panic; a refusal is a 4xx with a stable code; whatever is accepted
//! encodes back to JSON that decodes to the same batches.
//! The check itself is `checks::json_batch`, which CI replays over the corpus.
#![no_main]

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::json_batch(data));
