//! GS1 identifiers from outside (Digital Link URIs in events and in scanned
//! QR codes, EPC URNs), fed arbitrary text: no input may panic; whatever
//! parses has one canonical form, which parses back to itself, and every
//! spelling of one thing agrees on it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(link) = gs1::DigitalLink::parse(text) {
        let canonical = link.canonical();
        let again = gs1::DigitalLink::parse(&canonical).expect("the canonical form parses");
        assert_eq!(again.canonical(), canonical, "canonical forms are fixed points");
        assert_eq!(gs1::canonical_id(text).as_deref(), Some(canonical.as_str()));
        let _ = link.query();
    }
    // The resolver's entry point: a path and a query under some host.
    let (path, query) = text.split_once('?').map_or((text, None), |(p, q)| (p, Some(q)));
    if let Ok(link) = gs1::DigitalLink::from_parts("https://example.com", path, query) {
        let _ = gs1::DigitalLink::parse(&link.canonical()).expect("the canonical form parses");
    }
    if let Ok(Some(link)) = gs1::from_epc_urn(text) {
        let _ = gs1::DigitalLink::parse(&link.canonical()).expect("an EPC URN's link parses");
    }
    let _ = gs1::check_identifier(text);
    let _ = gs1::decode(text);
});
