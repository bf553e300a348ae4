//! Compressed GS1 Digital Link URIs (GS1 Digital Link: Compression, the
//! format GS1's resolver standard requires a conformant resolver to read):
//! the path's element strings packed as bits and written in the URI-safe
//! base64 alphabet, whole (`https://id.gs1.org/AQnYUc1gmiCNV4JG`) or after an
//! uncompressed primary key (`/01/05412345000013/CNV4JG…`, "partially
//! compressed").
//!
//! The bit stream is a sequence of elements, each introduced by two hex
//! nibbles: `00`–`99` start a numeric AI (its length follows from its first
//! two digits, the further digits follow as nibbles), `0A`–`EF` name a
//! sequence of AIs from the optimisation table, and `F` starts a key=value
//! pair that is not a GS1 AI (7 bits of key length, the key in base64
//! characters, then a value). A value is coded per component of its AI's
//! format: a fixed-length number as a binary integer of just enough bits, a
//! variable-length number with its digit count first; an alphanumeric
//! component with a 3-bit encoding (digits, lower or upper hex, base64
//! characters, 7-bit ASCII), its character count (variable length) and its
//! characters. Fewer than 9 bits left are padding.
//!
//! Components come from this crate's AI table (the GS1 Barcode Syntax
//! Dictionary's notation), read as the compression's table F reads the
//! General Specifications: adjacent fixed-length numeric components are one
//! number (8003's `N1 N13` is an N14), adjacent alphanumeric ones one string
//! (7230's `X2 X..28` is an X..30), an optional component is variable
//! length (7007's `[N6]` is an N..6), `Y` (CSET 39) characters are
//! alphanumeric. Where the current Syntax Dictionary changed a maximum
//! length since the compression tables were written (8007 X..34, 8013
//! X..25), the current one is used: a compressor built on the old table
//! writes those two AIs with one length bit fewer.

use crate::{ai, Gs1Error};

/// The URI-safe base64 alphabet the compressed form is written in.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The optimisation table: a code for a common sequence of AIs.
const SEQUENCES: &[(&str, &[&str])] = &[
    ("0A", &["01", "22"]),
    ("0B", &["01", "10"]),
    ("0C", &["01", "21"]),
    ("0D", &["01", "17"]),
    ("0E", &["01", "7003"]),
    ("0F", &["01", "30"]),
    ("1A", &["01", "10", "21", "17"]),
    ("1B", &["01", "15"]),
    ("1C", &["01", "11"]),
    ("1D", &["01", "16"]),
    ("1E", &["01", "91"]),
    ("1F", &["01", "10", "15"]),
    ("2A", &["01", "3100"]),
    ("2B", &["01", "3101"]),
    ("2C", &["01", "3102"]),
    ("2D", &["01", "3103"]),
    ("2E", &["01", "3104"]),
    ("2F", &["01", "3105"]),
    ("3A", &["01", "3200"]),
    ("3B", &["01", "3201"]),
    ("3C", &["01", "3202"]),
    ("3D", &["01", "3203"]),
    ("3E", &["01", "3204"]),
    ("3F", &["01", "3205"]),
    ("9A", &["8010", "8011"]),
    ("9B", &["8017", "8019"]),
    ("9C", &["8018", "8019"]),
    ("9D", &["414", "254"]),
    ("A0", &["01", "3920"]),
    ("A1", &["01", "3921"]),
    ("A2", &["01", "3922"]),
    ("A3", &["01", "3923"]),
    ("A4", &["01", "3924"]),
    ("A5", &["01", "3925"]),
    ("A6", &["01", "3926"]),
    ("A7", &["01", "3927"]),
    ("A8", &["01", "3928"]),
    ("A9", &["01", "3929"]),
    ("C0", &["255", "3900"]),
    ("C1", &["255", "3901"]),
    ("C2", &["255", "3902"]),
    ("C3", &["255", "3903"]),
    ("C4", &["255", "3904"]),
    ("C5", &["255", "3905"]),
    ("C6", &["255", "3906"]),
    ("C7", &["255", "3907"]),
    ("C8", &["255", "3908"]),
    ("C9", &["255", "3909"]),
    ("CA", &["255", "3940"]),
    ("CB", &["255", "3941"]),
    ("CC", &["255", "3942"]),
    ("CD", &["255", "3943"]),
];

/// What a compressed path holds: its elements, in the order packed, and
/// the key=value pairs that are not GS1 AIs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decompressed {
    pub elements: Vec<(String, String)>,
    pub others: Vec<(String, String)>,
}

/// One component of an AI's value as the compression codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// A number of exactly this many digits.
    Digits(usize),
    /// A number of up to this many digits.
    UpToDigits(usize),
    /// Exactly this many characters.
    Chars(usize),
    /// Up to this many characters.
    UpToChars(usize),
}

/// The components of AI `code`'s value, from its format (see the module's
/// documentation for how they are merged).
fn parts(code: &str) -> Option<Vec<Part>> {
    let format = ai::lookup(code)?.format;
    let mut out: Vec<Part> = Vec::new();
    for component in format.split_whitespace() {
        let optional = component.starts_with('[');
        let spec = component
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .next()?;
        let (kind, len) = spec.split_at(1);
        let (variable, n) = match len.strip_prefix("..") {
            Some(n) => (true, n.parse::<usize>().ok()?),
            None => (optional, len.parse::<usize>().ok()?),
        };
        let numeric = kind == "N";
        let part = match (numeric, variable) {
            (true, false) => Part::Digits(n),
            (true, true) => Part::UpToDigits(n),
            (false, false) => Part::Chars(n),
            (false, true) => Part::UpToChars(n),
        };
        let merged = match (out.last().copied(), part) {
            (Some(Part::Digits(a)), Part::Digits(b)) => Some(Part::Digits(a + b)),
            (Some(Part::Chars(a)), Part::Chars(b)) => Some(Part::Chars(a + b)),
            (Some(Part::Chars(a) | Part::UpToChars(a)), Part::UpToChars(b) | Part::Chars(b)) => {
                Some(Part::UpToChars(a + b))
            }
            _ => None,
        };
        match merged {
            Some(m) => *out.last_mut()? = m,
            None => out.push(part),
        }
    }
    Some(out)
}

/// The length in digits of the AIs that start with `prefix` (two digits).
fn ai_length(prefix: &str) -> Option<usize> {
    if matches!(prefix, "31" | "32" | "33" | "34" | "35" | "36" | "39") {
        return Some(4);
    }
    ai::TABLE
        .iter()
        .find(|a| a.code.starts_with(prefix))
        .map(|a| a.code.len())
}

/// Bits for a number of `digits` decimal digits (the compression's
/// rounding: ceil(digits × log2 10 + 0.01), so an empty number takes one).
fn value_bits(digits: usize) -> usize {
    (digits as f64 * std::f64::consts::LOG2_10 + 0.01).ceil() as usize
}

/// Bits for a length of at most `max` (ceil(log2 max + 0.01)).
fn length_bits(max: usize) -> usize {
    ((max as f64).log2() + 0.01).ceil() as usize
}

struct Bits<'a> {
    bits: &'a [bool],
    at: usize,
    uri: &'a str,
}

impl Bits<'_> {
    fn err(&self, why: impl Into<String>) -> Gs1Error {
        Gs1Error::NotDigitalLink(
            self.uri.to_string(),
            format!("its compressed part does not decode: {}", why.into()),
        )
    }

    fn left(&self) -> usize {
        self.bits.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<u128, Gs1Error> {
        if n > 127 || self.left() < n {
            return Err(self.err(format!("{n} more bits were expected at bit {}", self.at)));
        }
        let v = self.bits[self.at..self.at + n]
            .iter()
            .fold(0u128, |v, &b| v << 1 | b as u128);
        self.at += n;
        Ok(v)
    }

    fn nibble(&mut self) -> Result<u8, Gs1Error> {
        Ok(self.take(4)? as u8)
    }

    /// A number of `digits` digits (leading zeroes kept).
    fn number(&mut self, digits: usize) -> Result<String, Gs1Error> {
        let v = self.take(value_bits(digits))?;
        let s = format!("{v:0digits$}");
        if s.len() > digits {
            return Err(self.err(format!("{v} has more than {digits} digits")));
        }
        Ok(s)
    }

    /// `count` characters in the encoding the next 3 bits name.
    fn chars(&mut self, encoding: u128, count: usize) -> Result<String, Gs1Error> {
        let per = |bits: usize, this: &mut Self| -> Result<Vec<u8>, Gs1Error> {
            (0..count)
                .map(|_| this.take(bits).map(|v| v as u8))
                .collect()
        };
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let bytes: Vec<u8> = match encoding {
            0 => return self.number(count),
            1 => per(4, self)?
                .iter()
                .map(|&i| HEX[i as usize].to_ascii_lowercase())
                .collect(),
            2 => per(4, self)?.iter().map(|&i| HEX[i as usize]).collect(),
            3 => per(6, self)?
                .iter()
                .map(|&i| ALPHABET[i as usize])
                .collect(),
            4 => per(7, self)?,
            other => return Err(self.err(format!("character encoding {other} is not defined"))),
        };
        String::from_utf8(bytes).map_err(|_| self.err("a character is not ASCII"))
    }

    /// The value of AI `code`.
    fn value(&mut self, code: &str) -> Result<String, Gs1Error> {
        let parts = parts(code)
            .ok_or_else(|| self.err(format!("AI ({code}) is not one this resolver knows")))?;
        let mut value = String::new();
        for part in parts {
            value.push_str(&match part {
                Part::Digits(n) => self.number(n)?,
                Part::UpToDigits(max) => {
                    let n = self.take(length_bits(max))? as usize;
                    if n > max {
                        return Err(
                            self.err(format!("({code}) has {n} digits, at most {max} allowed"))
                        );
                    }
                    self.number(n)?
                }
                Part::Chars(n) => {
                    let encoding = self.take(3)?;
                    self.chars(encoding, n)?
                }
                Part::UpToChars(max) => {
                    let encoding = self.take(3)?;
                    let n = self.take(length_bits(max))? as usize;
                    if n > max {
                        return Err(self.err(format!(
                            "({code}) has {n} characters, at most {max} allowed"
                        )));
                    }
                    self.chars(encoding, n)?
                }
            });
        }
        Ok(value)
    }
}

/// The bits a compressed segment writes, or `None` if it has a character
/// outside the URI-safe base64 alphabet.
fn bits_of(segment: &str) -> Option<Vec<bool>> {
    let mut bits = Vec::with_capacity(segment.len() * 6);
    for c in segment.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)?;
        bits.extend((0..6).rev().map(|i| v >> i & 1 == 1));
    }
    Some(bits)
}

/// Decompresses one compressed segment (`uri` names the whole URI in
/// errors).
pub fn decompress(segment: &str, uri: &str) -> Result<Decompressed, Gs1Error> {
    let bits = bits_of(segment).ok_or_else(|| {
        Gs1Error::NotDigitalLink(
            uri.to_string(),
            "a compressed part is written in A-Z, a-z, 0-9, '-' and '_' only".into(),
        )
    })?;
    let mut b = Bits {
        bits: &bits,
        at: 0,
        uri,
    };
    let mut out = Decompressed::default();
    while b.left() > 8 {
        let (h1, h2) = (b.nibble()?, b.nibble()?);
        if h1 <= 9 && h2 <= 9 {
            let prefix = format!("{h1}{h2}");
            let len =
                ai_length(&prefix).ok_or_else(|| b.err(format!("no AI starts with {prefix}")))?;
            let mut code = prefix;
            for _ in 2..len {
                let d = b.nibble()?;
                if d > 9 {
                    return Err(b.err(format!("AI {code}… continues with a non-digit")));
                }
                code.push(char::from(b'0' + d));
            }
            let value = b.value(&code)?;
            out.elements.push((code, value));
        } else if let Some((_, seq)) = SEQUENCES
            .iter()
            .find(|(hex, _)| *hex == format!("{h1:X}{h2:X}"))
        {
            for code in *seq {
                let value = b.value(code)?;
                out.elements.push((code.to_string(), value));
            }
        } else if h1 == 0xF {
            // The key's length: h2 and 3 more bits.
            let len = ((h2 as usize) << 3) | b.take(3)? as usize;
            let key = b.chars(3, len)?;
            let encoding = b.take(3)?;
            let count = b.take(7)? as usize;
            let value = b.chars(encoding, count)?;
            out.others.push((key, value));
        } else {
            return Err(b.err(format!(
                "{h1:X}{h2:X} is not an AI nor an optimisation code"
            )));
        }
    }
    if out.elements.is_empty() {
        return Err(b.err("it holds no GS1 element"));
    }
    Ok(out)
}

/// Whether `segment` could be a compressed Digital Link (URI-safe base64
/// that decodes into at least one element).
pub fn is_compressed(segment: &str) -> bool {
    !segment.is_empty() && decompress(segment, segment).is_ok()
}

/// The uncompressed path and query of a compressed or partially compressed
/// Digital Link path (from its first `/`), or `None` when `path` is not one
/// (an ordinary Digital Link path, or nothing that decodes). `uri` names
/// the request in errors.
pub fn uncompressed(path: &str, uri: &str) -> Option<Result<(String, String), Gs1Error>> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    // Whole: one segment that is not an AI. Partial: a key and its value,
    // then one segment.
    let (written, compressed) = match segments[..] {
        [one] if ai::lookup(one).is_none() => (Vec::new(), one),
        [key, value, last]
            if ai::lookup(key).is_some_and(|a| a.role == crate::Role::PrimaryKey) =>
        {
            (vec![(key, value)], last)
        }
        _ => return None,
    };
    let mut d = match decompress(compressed, uri) {
        Ok(d) => d,
        Err(_) if !written.is_empty() => return None,
        Err(e) => return Some(Err(e)),
    };
    for (key, value) in written {
        let code = ai::lookup(key)?.code;
        d.elements.insert(0, (code.to_string(), value.to_string()));
    }
    Some(Ok(layout(&d)))
}

/// The Digital Link path and query of decompressed elements: the primary
/// key, its qualifiers in their order, the rest as query attributes, then
/// the other pairs.
fn layout(d: &Decompressed) -> (String, String) {
    let role = |code: &str| ai::lookup(code).map(|a| a.role);
    let mut path = String::new();
    let key = d
        .elements
        .iter()
        .find(|(c, _)| role(c) == Some(crate::Role::PrimaryKey));
    let mut in_path: Vec<&str> = Vec::new();
    if let Some((k, v)) = key {
        path.push_str(&format!("/{k}/{}", crate::encode(v)));
        in_path.push(k);
        let order = ai::qualifier_paths(k)
            .iter()
            .find(|list| {
                d.elements
                    .iter()
                    .filter(|(c, _)| role(c) == Some(crate::Role::Qualifier))
                    .all(|(c, _)| list.contains(&c.as_str()))
            })
            .copied()
            .unwrap_or(&[]);
        for q in order {
            if let Some((c, v)) = d.elements.iter().find(|(c, _)| c == q) {
                path.push_str(&format!("/{c}/{}", crate::encode(v)));
                in_path.push(c);
            }
        }
    }
    let query: Vec<String> = d
        .elements
        .iter()
        .filter(|(c, _)| !in_path.contains(&c.as_str()))
        .chain(&d.others)
        .map(|(k, v)| format!("{}={}", crate::encode(k), crate::encode(v)))
        .collect();
    (path, query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GS1's own examples: each compressed path and what it holds.
    #[test]
    fn gs1_examples_decompress_to_their_element_strings() {
        for (compressed, expected) in [
            ("AN2yxDhfaiaw", &[("00", "998440410914660971")][..]),
            ("AQnYUc1gmg", &[("01", "05412345000013")][..]),
            (
                "AQnYUc1gmiCNV4JG",
                &[("01", "05412345000013"), ("10", "ABC123")][..],
            ),
            (
                "AQnYUc1gmiCNV4JGQhcNT6K6c",
                &[
                    ("01", "05412345000013"),
                    ("10", "ABC123"),
                    ("21", "72292641703"),
                ][..],
            ),
            (
                "AQnYUc1gmiCNV4JGQhcNT6K6cibQCWN9Pee9tT-PQ",
                &[
                    ("01", "05412345000013"),
                    ("10", "ABC123"),
                    ("21", "72292641703"),
                    ("22", "AJY3095721P49"),
                ][..],
            ),
            (
                "AQnYUc1gmkax7ipGrOHDPC5YNI8hMz",
                &[("01", "05412345000013"), ("235", "8TFV883a904GH&3")][..],
            ),
            ("QVSaVjC_dA", &[("415", "5060917510004")][..]),
            (
                "EEarwSOABgwEj9s0bAmQ",
                &[("10", "ABC123"), ("8006", "054123450000130201")][..],
            ),
            (
                "Im0AljfT3nvbU_j2ABgwEj9s0bAmQ",
                &[("22", "AJY3095721P49"), ("8006", "054123450000130201")][..],
            ),
            (
                "gASXYNWjFkzaNWbdk5YQWjFNHkcODNm",
                &[("8004", "0541234537290A41&GHpp33")][..],
            ),
            (
                "gBCVYNWjFkzaNWbdk5YQWjFHHkM2cAI0xdvpGo",
                &[("8010", "0541234537290A41#GH33"), ("8011", "6639047221")][..],
            ),
            ("QWSaVjC_dA", &[("416", "5060917510004")][..]),
            ("gBhbV6rzBENPk", &[("8018", "411369833821910265")][..]),
            (
                "gBe1ajAd9ATDmAGXPRfk",
                &[("8017", "817019610850151481"), ("8019", "4003812")][..],
            ),
        ] {
            let d =
                decompress(compressed, compressed).unwrap_or_else(|e| panic!("{compressed}: {e}"));
            let mut got = d.elements.clone();
            got.sort();
            let mut want: Vec<(String, String)> = expected
                .iter()
                .map(|(a, v)| (a.to_string(), v.to_string()))
                .collect();
            want.sort();
            assert_eq!(got, want, "{compressed}");
        }
    }

    #[test]
    fn paths_come_out_in_the_standard_order() {
        assert_eq!(
            uncompressed("/AQnYUc1gmiCNV4JGQhcNT6K6cibQCWN9Pee9tT-PQ", "x")
                .unwrap()
                .unwrap(),
            (
                "/01/05412345000013/22/AJY3095721P49/10/ABC123/21/72292641703".to_string(),
                String::new()
            )
        );
        // Partially compressed: the key as written, the rest packed.
        let whole = decompress("AQnYUc1gmiCNV4JG", "x").unwrap();
        assert_eq!(whole.elements[1], ("10".into(), "ABC123".into()));
        assert_eq!(uncompressed("/01/05412345000013/10/ABC123", "x"), None);
        assert_eq!(uncompressed("/01/05412345000013", "x"), None);
        assert!(uncompressed("/hello!", "x").unwrap().is_err());
        assert!(uncompressed("/AAAA", "x").unwrap().is_err(), "no element");
    }

    #[test]
    fn formats_read_as_the_compression_reads_them() {
        assert_eq!(parts("01"), Some(vec![Part::Digits(14)]));
        assert_eq!(
            parts("8003"),
            Some(vec![Part::Digits(14), Part::UpToChars(16)])
        );
        assert_eq!(
            parts("255"),
            Some(vec![Part::Digits(13), Part::UpToDigits(12)])
        );
        assert_eq!(
            parts("7007"),
            Some(vec![Part::Digits(6), Part::UpToDigits(6)])
        );
        assert_eq!(parts("7230"), Some(vec![Part::UpToChars(30)]));
        assert_eq!(parts("8006"), Some(vec![Part::Digits(18)]));
        assert_eq!(parts("3103"), Some(vec![Part::Digits(6)]));
        assert_eq!(ai_length("80"), Some(4));
        assert_eq!(ai_length("25"), Some(3));
        assert_eq!(
            (
                value_bits(14),
                value_bits(0),
                length_bits(20),
                length_bits(8)
            ),
            (47, 1, 5, 4)
        );
    }

    #[test]
    fn no_input_panics() {
        for s in [
            "",
            "_",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "____________",
            "8888888888888",
            "-",
            "9",
        ] {
            let _ = decompress(s, s);
            let _ = uncompressed(&format!("/{s}"), s);
        }
    }
}
