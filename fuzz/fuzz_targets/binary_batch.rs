//! `POST /v1/batches` with a binary body, fed arbitrary bytes: no input may
//! panic; a refusal is a 4xx with a stable code; whatever is accepted is
//! canonical (it encodes back to the very bytes received), so one batch has
//! one signed form.
#![no_main]

use actix_web::ResponseError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match ingest::wire::decode_binary(data) {
        Ok(batches) => {
            assert_eq!(ingest::wire::encode_binary(&batches), data);
            // The same batches in the other wire form decode alike.
            let json = ingest::wire::decode_json(&ingest::wire::encode_json(&batches))
                .expect("accepted batches also pass as JSON");
            assert_eq!(json, batches);
        }
        Err(e) => {
            assert!(e.status_code().is_client_error(), "{e}: {}", e.status_code());
            assert!(!e.code().is_empty());
        }
    }
});
