//! `POST /v1/batches` with a JSON body, fed arbitrary bytes: no input may
//! panic; a refusal is a 4xx with a stable code; whatever is accepted
//! encodes back to JSON that decodes to the same batches.
#![no_main]

use actix_web::ResponseError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match ingest::wire::decode_json(data) {
        Ok(batches) => {
            let again = ingest::wire::decode_json(&ingest::wire::encode_json(&batches))
                .expect("what was accepted, re-encoded, is accepted");
            assert_eq!(again, batches);
        }
        Err(e) => {
            assert!(e.status_code().is_client_error(), "{e}: {}", e.status_code());
            assert!(!e.code().is_empty());
        }
    }
});
