//! The canonical binary encoding's primitives.
//!
//! Canonical means: one value has exactly one encoding, and the decoder
//! accepts nothing else (non-minimal varints, booleans other than 0/1, unknown
//! tags, invalid UTF-8, trailing bytes are all refused). Therefore
//! `encode(decode(b)?) == b` for every accepted `b`, which is what lets a
//! device's signature over the encoded bytes stay checkable forever.
//!
//! The decoder never panics and never allocates more than the input could
//! describe: every length is checked against the bytes that remain first.

use crate::hash::Digest;

/// Why bytes were refused by a decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("input ends early while reading {what}")]
    UnexpectedEnd { what: &'static str },
    #[error("{what}: varint is longer than its value needs or overflows 64 bits")]
    BadVarint { what: &'static str },
    #[error("{what}: unknown tag {tag}")]
    UnknownTag { what: &'static str, tag: u64 },
    #[error("{what}: value {value} is out of range")]
    OutOfRange { what: &'static str, value: u64 },
    #[error("{what}: not valid UTF-8")]
    BadUtf8 { what: &'static str },
    #[error("{count} bytes left over after the value")]
    TrailingBytes { count: usize },
    #[error("unsupported encoding version {version} (this build reads version {supported})")]
    UnsupportedVersion { version: u8, supported: u8 },
    #[error("{what}: {reason}")]
    Invalid {
        what: &'static str,
        reason: &'static str,
    },
}

/// Appends canonical encodings to a byte buffer.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    /// LEB128, minimal length.
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// Zig-zag then LEB128: small magnitudes of either sign stay short.
    pub fn svarint(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn fixed<const N: usize>(&mut self, v: &[u8; N]) {
        self.buf.extend_from_slice(v);
    }

    pub fn digest(&mut self, d: &Digest) {
        self.fixed(&d.0);
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.varint(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    pub fn option<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) {
        match v {
            None => self.u8(0),
            Some(x) => {
                self.u8(1);
                f(self, x);
            }
        }
    }

    pub fn seq<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.varint(items.len() as u64);
        for x in items {
            f(self, x);
        }
    }
}

/// Reads canonical encodings from a byte slice.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Refuses leftover bytes: a value followed by anything is not canonical.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                count: self.buf.len(),
            })
        }
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::UnexpectedEnd { what });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::UnknownTag {
                what,
                tag: u64::from(tag),
            }),
        }
    }

    pub fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8(what)?;
            let part = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(DecodeError::BadVarint { what });
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                // A final zero byte after the first is a padded, non-minimal form.
                if b == 0 && i > 0 {
                    return Err(DecodeError::BadVarint { what });
                }
                return Ok(v);
            }
        }
        Err(DecodeError::BadVarint { what })
    }

    pub fn svarint(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let u = self.varint(what)?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A varint that must fit `T` (u32, u16, ...).
    pub fn varint_as<T: TryFrom<u64>>(&mut self, what: &'static str) -> Result<T, DecodeError> {
        let v = self.varint(what)?;
        T::try_from(v).map_err(|_| DecodeError::OutOfRange { what, value: v })
    }

    pub fn svarint_as<T: TryFrom<i64>>(&mut self, what: &'static str) -> Result<T, DecodeError> {
        let v = self.svarint(what)?;
        T::try_from(v).map_err(|_| DecodeError::OutOfRange {
            what,
            value: v as u64,
        })
    }

    pub fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, what)?;
        Ok(<[u8; N]>::try_from(s).expect("take returned N bytes"))
    }

    pub fn digest(&mut self, what: &'static str) -> Result<Digest, DecodeError> {
        Ok(Digest(self.fixed(what)?))
    }

    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.varint(what)?;
        let n = usize::try_from(n).map_err(|_| DecodeError::OutOfRange { what, value: n })?;
        self.take(n, what)
    }

    pub fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes(what)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::BadUtf8 { what })
    }

    pub fn option<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if self.bool(what)? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A length-prefixed sequence. `min_item_len` is the smallest encoding of
    /// one item; it bounds the count by the bytes left, so a forged count can
    /// never make the decoder reserve more memory than the input justifies.
    pub fn seq<T>(
        &mut self,
        what: &'static str,
        min_item_len: usize,
        mut f: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.varint(what)?;
        if n.saturating_mul(min_item_len.max(1) as u64) > self.buf.len() as u64 {
            return Err(DecodeError::UnexpectedEnd { what });
        }
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            out.push(f(self)?);
        }
        Ok(out)
    }
}

/// For decoder properties over mutated or arbitrary bytes: a property that
/// checks only what decodes proves nothing when nothing decodes.
#[cfg(test)]
pub(crate) mod counting {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use proptest::strategy::Strategy;
    use proptest::test_runner::{TestCaseError, TestRunner};

    /// Runs `property` over `strategy`'s cases (proptest's defaults, with
    /// shrinking); `property` answers whether its input decoded. Fails when
    /// fewer than `min_share` of the cases decoded.
    pub(crate) fn decoded_share<S: Strategy>(
        what: &str,
        strategy: S,
        min_share: f64,
        property: impl Fn(S::Value) -> Result<bool, TestCaseError>,
    ) {
        let (cases, decoded) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let mut runner = TestRunner::default();
        let result = runner.run(&strategy, |v| {
            cases.fetch_add(1, Ordering::Relaxed);
            if property(v)? {
                decoded.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{what}: {e}");
        }
        let (cases, decoded) = (cases.into_inner(), decoded.into_inner());
        assert!(
            decoded as f64 >= min_share * cases as f64,
            "{what}: only {decoded} of {cases} inputs decoded, so the property was checked on too few"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(v: u64, s: i64) {
            let mut w = Writer::new();
            w.varint(v);
            w.svarint(s);
            let bytes = w.into_bytes();
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(r.varint("v").unwrap(), v);
            prop_assert_eq!(r.svarint("s").unwrap(), s);
            r.finish().unwrap();
        }

    }

    #[test]
    fn accepted_varints_are_minimal() {
        super::counting::decoded_share(
            "accepted_varints_are_minimal",
            proptest::collection::vec(any::<u8>(), 0..12),
            0.5,
            |bytes| {
                let mut r = Reader::new(&bytes);
                let Ok(v) = r.varint("v") else {
                    return Ok(false);
                };
                let used = bytes.len() - r.remaining();
                let mut w = Writer::new();
                w.varint(v);
                prop_assert_eq!(&w.buf[..], &bytes[..used]);
                Ok(true)
            },
        );
    }

    #[test]
    fn padded_and_overflowing_varints_are_refused() {
        assert!(Reader::new(&[0x80, 0x00]).varint("x").is_err());
        assert!(Reader::new(&[0xff; 10]).varint("x").is_err());
        assert!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])
                .varint("x")
                .is_err()
        );
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).varint("x"),
            Ok(u64::MAX)
        );
    }

    #[test]
    fn forged_sequence_count_does_not_allocate() {
        let mut w = Writer::new();
        w.varint(u64::MAX);
        assert!(Reader::new(&w.buf)
            .seq("items", 1, |r| r.u8("item"))
            .is_err());
    }
}
