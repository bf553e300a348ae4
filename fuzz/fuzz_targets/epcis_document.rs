//! `POST /capture` (EPCIS 2.0 JSON-LD documents), fed arbitrary bytes: no
//! input may panic; a refusal is a 4xx with a stable code; an accepted
//! document yields events whose canonical fingerprints are stable when the
//! document is captured again, and each event's ledger entry decodes back
//! to it.
#![no_main]

use actix_web::ResponseError;
use libfuzzer_sys::fuzz_target;

const BY: &str = "urn:epc:id:sgln:0614141.00001.0";

fuzz_target!(|data: &[u8]| {
    match ingest::epcis::parse_document(data, BY) {
        Ok(captured) => {
            assert!(!captured.is_empty());
            let again = ingest::epcis::parse_document(data, BY).expect("parsing is pure");
            let prints = |c: &[ingest::epcis::Captured]| {
                c.iter().map(|e| e.fingerprint.clone()).collect::<Vec<_>>()
            };
            assert_eq!(prints(&captured), prints(&again));
            // Each event becomes a ledger entry that decodes back to itself.
            for c in &captured {
                let entry = ledger::Entry::Custody(c.event.clone());
                let bytes = entry.to_bytes();
                assert_eq!(ledger::Entry::from_bytes(&bytes).expect("entry decodes"), entry);
            }
        }
        Err(e) => {
            assert!(e.status_code().is_client_error(), "{e}: {}", e.status_code());
            assert!(!e.code().is_empty());
        }
    }
});
