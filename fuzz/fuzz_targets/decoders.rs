//! Every decoder of outside input, fed arbitrary bytes: none may panic, and
//! whatever one accepts must re-encode to exactly the bytes it was given.
#![no_main]

use ledger::reading::DeviceBatch;
use ledger::store::format::{FrameHeader, FRAME_HEADER_LEN};
use ledger::{Entry, SignedTreeHead};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Entry::from_bytes(data) {
        assert_eq!(e.to_bytes(), data, "accepted entry bytes are canonical");
    }
    if let Ok(b) = DeviceBatch::from_bytes(data) {
        assert_eq!(b.to_bytes(), data, "accepted batch bytes are canonical");
    }
    if let Ok(h) = SignedTreeHead::from_bytes(data) {
        assert_eq!(h.to_bytes(), data, "accepted head bytes are canonical");
    }
    if let Ok(h) = FrameHeader::parse(data) {
        let payload = &data[FRAME_HEADER_LEN.min(data.len())..];
        if h.check(payload) {
            let _ = ledger::store::format::unpack_block(&h, payload);
        }
    }
});
