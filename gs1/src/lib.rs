//! GS1 identifiers as coldtrail meets them: in captured EPCIS events (EPC
//! URNs and GS1 Digital Link URIs), in the fixtures' worlds, and in the
//! resolver a consumer's QR code opens.
//!
//! One module, so that capture, the lineage graph and the resolver agree on
//! what an identifier is and which spellings name the same thing:
//! [`DigitalLink::parse`] follows the GS1 Digital Link URI Syntax (primary
//! key, key qualifiers in their order, data attributes in the query string,
//! check digits and value syntax of every Application Identifier), and
//! [`canonical_id`] maps every GS1 spelling of a thing (EPC URN, any host,
//! GTIN-13 or GTIN-14, deprecated short names, percent-encoding) to one
//! canonical Digital Link URI.

pub mod ai;
pub mod compression;
mod epc;

use std::fmt::Write as _;

pub use ai::{Ai, Role};
pub use epc::{from_epc_urn, is_epc_urn};

/// The domain of canonical GS1 Digital Link URIs.
pub const CANONICAL_STEM: &str = "https://id.gs1.org";

/// Why a string is not a valid GS1 identifier. Each message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Gs1Error {
    #[error("{0:?} is not a GS1 Digital Link URI: {1}")]
    NotDigitalLink(String, String),
    #[error("{0:?} is not a known GS1 Application Identifier")]
    UnknownAi(String),
    #[error("AI ({ai}) {title}: {value:?} {reason}")]
    Syntax {
        ai: &'static str,
        title: &'static str,
        value: String,
        reason: String,
    },
    #[error("AI ({ai}) {title}: {value:?} has a wrong check digit (expected {expected})")]
    CheckDigit {
        ai: &'static str,
        title: &'static str,
        value: String,
        expected: String,
    },
    #[error("AI ({0}) appears twice: give each Application Identifier once")]
    Duplicate(&'static str),
    #[error("AI ({qualifier}) cannot qualify ({key}) here: {allowed}")]
    Qualifier {
        key: &'static str,
        qualifier: &'static str,
        allowed: String,
    },
    #[error("{0:?} is not a valid EPC URN: {1}")]
    Epc(String, String),
}

impl Gs1Error {
    /// The AI whose value failed its check digit, if that is the fault.
    pub fn check_digit_of(&self) -> Option<(&'static str, &str)> {
        match self {
            Gs1Error::CheckDigit { ai, value, .. } => Some((ai, value)),
            _ => None,
        }
    }
}

/// The GS1 mod-10 check digit of `data` (all digits, the check digit not
/// included): weights 3, 1, 3, … from the right.
pub fn check_digit(data: &str) -> Option<u8> {
    let mut sum = 0u32;
    for (i, b) in data.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        let d = u32::from(b - b'0');
        sum += if i % 2 == 0 { 3 * d } else { d };
    }
    Some(((10 - sum % 10) % 10) as u8)
}

/// Whether the last digit of `digits` is the GS1 check digit of the rest.
pub fn check_digit_ok(digits: &str) -> bool {
    match digits.len().checked_sub(1) {
        Some(n) if n > 0 => {
            check_digit(&digits[..n]).map(|c| b'0' + c) == Some(digits.as_bytes()[n])
        }
        _ => false,
    }
}

/// `data` followed by its check digit.
pub fn with_check_digit(data: &str) -> Option<String> {
    check_digit(data).map(|c| format!("{data}{c}"))
}

/// The GS1 AI encodable character set 82, in the order its values count
/// for check character pairs.
const CSET82: &[u8] =
    b"!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
/// The character set 39 of CPIDs.
fn in_cset39(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_uppercase() || matches!(b, b'#' | b'-' | b'/')
}
/// The alphabet of check character pairs.
const CSET32: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// The GS1 check character pair of `data` (GenSpecs 7.9.5, for GMN): each
/// character's value in set 82 times a prime (2 for the last, then 3, 5, …
/// leftwards), summed modulo 1021, written as two characters of set 32.
pub fn check_pair(data: &str) -> Option<[u8; 2]> {
    const PRIMES: [u32; 30] = [
        2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113,
    ];
    if data.len() > PRIMES.len() {
        return None;
    }
    let mut sum = 0u32;
    for (b, w) in data.bytes().rev().zip(PRIMES) {
        let v = CSET82.iter().position(|&c| c == b)? as u32;
        sum += v * w;
    }
    let sum = sum % 1021;
    Some([CSET32[(sum >> 5) as usize], CSET32[(sum & 31) as usize]])
}

/// How closely a Digital Link must follow the standard's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spelling {
    /// As the standard writes it: what captured data must be.
    Exact,
    /// Also the spellings people type (short names, GTIN-8/12/13, an
    /// upper-case scheme), which a resolver takes and redirects.
    Lenient,
}

/// Checks a URI's authority against RFC 3986 (section 3.2):
/// `[userinfo "@"] host [":" port]`, the host an IP literal in brackets, an
/// IPv4 address or a registered name, the port digits.
fn check_authority(authority: &str) -> Result<(), String> {
    let unreserved_or_sub = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b);
    let pct_ok = |s: &str| {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                if i + 2 >= b.len()
                    || !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit())
                {
                    return false;
                }
                i += 3;
            } else {
                i += 1;
            }
        }
        true
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = userinfo {
        if !u
            .bytes()
            .all(|b| unreserved_or_sub(b) || b == b':' || b == b'%')
            || !pct_ok(u)
        {
            return Err(format!(
                "its user information {u:?} is not as RFC 3986 allows"
            ));
        }
    }
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (literal, after) = rest.split_once(']').ok_or_else(|| {
            format!("its host {hostport:?} opens an IP literal with [ and does not close it")
        })?;
        let ok = !literal.is_empty()
            && literal.bytes().all(|b| {
                b.is_ascii_hexdigit()
                    || b == b':'
                    || b == b'.'
                    || (literal.starts_with(['v', 'V']) && unreserved_or_sub(b))
            });
        if !ok {
            return Err(format!("its host [{literal}] is not an IP literal"));
        }
        match after {
            "" => (hostport, None),
            p => (hostport, Some(p.strip_prefix(':').ok_or_else(|| {
                format!("its authority {authority:?} has {p:?} after the IP literal; only :port may follow")
            })?)),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("it has no host".to_string());
    }
    if !host.starts_with('[')
        && (!host.bytes().all(|b| unreserved_or_sub(b) || b == b'%') || !pct_ok(host))
    {
        return Err(format!(
            "its host {host:?} has characters a host name cannot have (RFC 3986: letters, digits, -._~, sub-delimiters, %XX)"
        ));
    }
    if let Some(p) = port {
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("its port {p:?} is not a number"));
        }
    }
    Ok(())
}

/// One Application Identifier with its value (percent-decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The numeric AI as written (`3103` for the measure family `3nnn`).
    pub code: String,
    pub ai: &'static Ai,
    pub value: String,
}

/// A parsed GS1 Digital Link URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitalLink {
    /// `scheme://host` and any path before the primary key, as written but
    /// with the scheme in lower case.
    pub stem: String,
    /// The primary key (a GTIN is always 14 digits here).
    pub key: Element,
    /// Key qualifiers, in path order.
    pub qualifiers: Vec<Element>,
    /// Data attributes from the query string, in the order given.
    pub attributes: Vec<Element>,
    /// Other query parameters (`linkType`, `lang`…), percent-decoded.
    pub extensions: Vec<(String, String)>,
}

impl DigitalLink {
    /// Parses an absolute GS1 Digital Link URI (`http` or `https` in any
    /// case, any host, an optional path before the primary key, a query
    /// string and a fragment, which is dropped).
    pub fn parse(uri: &str) -> Result<DigitalLink, Gs1Error> {
        Self::parse_as(uri, Spelling::Lenient)
    }

    fn parse_as(uri: &str, spelling: Spelling) -> Result<DigitalLink, Gs1Error> {
        let not = |why: &str| Gs1Error::NotDigitalLink(uri.to_string(), why.to_string());
        let uri_nofrag = uri.split_once('#').map_or(uri, |(u, _)| u);
        let (written, rest) = uri_nofrag
            .split_once("://")
            .ok_or_else(|| not("it has no http:// or https:// scheme"))?;
        let scheme = written.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(not("its scheme is neither http nor https"));
        }
        if spelling == Spelling::Exact && written != scheme {
            return Err(not(&format!(
                "write its scheme in lower case ({scheme}://, not {written}://)"
            )));
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let (host, path) = match before_query.find('/') {
            Some(i) => before_query.split_at(i),
            None => (before_query, ""),
        };
        check_authority(host).map_err(|why| not(&why))?;
        Self::from_parts_as(&format!("{scheme}://{host}"), path, query, spelling).map_err(|e| {
            match e {
                Gs1Error::NotDigitalLink(_, why) => Gs1Error::NotDigitalLink(uri.to_string(), why),
                other => other,
            }
        })
    }

    /// Parses a GS1 Digital Link URI exactly as the GS1 Digital Link URI
    /// Syntax standard writes one, as identifiers in captured data must be:
    /// on top of what [`DigitalLink::parse`] checks, the scheme is `http`
    /// or `https` in lower case, every AI is numeric (no short names such as
    /// `gtin` or `lot`), and a GTIN has its 14 digits. The lenient spellings
    /// people type are for the resolver, which redirects them to the
    /// canonical URI; they are never stored.
    pub fn parse_strict(uri: &str) -> Result<DigitalLink, Gs1Error> {
        Self::parse_as(uri, Spelling::Exact)
    }

    /// Parses the path (from its first `/`) and query of a Digital Link URI
    /// under `stem`, as a resolver receives them.
    pub fn from_parts(
        stem: &str,
        path: &str,
        query: Option<&str>,
    ) -> Result<DigitalLink, Gs1Error> {
        Self::from_parts_as(stem, path, query, Spelling::Lenient)
    }

    fn from_parts_as(
        stem: &str,
        path: &str,
        query: Option<&str>,
        spelling: Spelling,
    ) -> Result<DigitalLink, Gs1Error> {
        let not = |why: String| Gs1Error::NotDigitalLink(format!("{stem}{path}"), why);
        // The standard's AIs are numeric; short names are Digital Link 1.1's
        // deprecated convenience, for people typing, not for stored data.
        let exact_ai = |written: &str, ai: &'static Ai| {
            if spelling == Spelling::Exact && ai.alpha == Some(written) {
                Err(not(format!(
                    "write the AI as its number: /{}/ or {}=, not {written:?}",
                    ai.code, ai.code
                )))
            } else {
                Ok(())
            }
        };
        let mut segments: Vec<&str> = match path.strip_prefix('/') {
            Some(p) => p.split('/').collect(),
            None if path.is_empty() => Vec::new(),
            None => return Err(not("its path does not start with /".into())),
        };
        // A trailing slash after a value is not an element; after an AI it
        // is an empty value, which the value check names.
        if segments.len() % 2 == 1 && segments.last() == Some(&"") {
            segments.pop();
        }
        // From the right, as the standard reads it: qualifier pairs, then the
        // primary key; whatever is left of it is the stem's own path.
        let mut end = segments.len();
        let mut qualifiers = Vec::new();
        let key_at = loop {
            if end < 2 {
                return Err(not(
                    "it names no primary key (such as /01/{GTIN} or /00/{SSCC})".into(),
                ));
            }
            let code = segments[end - 2];
            let ai = ai::lookup(code).ok_or_else(|| {
                if code.bytes().all(|b| b.is_ascii_digit()) {
                    Gs1Error::UnknownAi(code.to_string())
                } else {
                    not(format!(
                        "{code:?} is not the Application Identifier of a primary key or key qualifier"
                    ))
                }
            })?;
            exact_ai(code, ai)?;
            let value = decode(segments[end - 1]).map_err(not)?;
            match ai.role {
                Role::PrimaryKey => break end - 2,
                Role::Qualifier => qualifiers.push(Element {
                    code: ai.code.to_string(),
                    ai,
                    value,
                }),
                Role::Attribute => {
                    return Err(not(format!(
                        "AI ({}) {} is a data attribute: give it in the query string (?{}=…)",
                        ai.code, ai.title, ai.code
                    )))
                }
            }
            end -= 2;
        };
        qualifiers.reverse();
        let ai = ai::lookup(segments[key_at]).expect("found above");
        let key = Element {
            code: ai.code.to_string(),
            ai,
            value: decode(segments[key_at + 1]).map_err(not)?,
        };
        let mut stem = stem.to_string();
        for s in &segments[..key_at] {
            stem.push('/');
            stem.push_str(s);
        }
        let mut link = DigitalLink {
            stem,
            key,
            qualifiers,
            attributes: Vec::new(),
            extensions: Vec::new(),
        };
        for param in query.unwrap_or("").split(['&', ';']) {
            if param.is_empty() {
                continue;
            }
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            let k = decode(k).map_err(not)?;
            let v = decode(v).map_err(not)?;
            match ai::lookup(&k) {
                Some(ai) if ai.role != Role::Attribute => {
                    return Err(not(format!(
                        "AI ({}) {} is a {} and belongs in the path, not the query string",
                        ai.code,
                        ai.title,
                        if ai.role == Role::PrimaryKey {
                            "primary key"
                        } else {
                            "key qualifier"
                        }
                    )))
                }
                Some(ai) => {
                    exact_ai(&k, ai)?;
                    link.attributes.push(Element {
                        code: if ai.alpha == Some(k.as_str()) {
                            ai.code.to_string()
                        } else {
                            k
                        },
                        ai,
                        value: v,
                    })
                }
                None if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => {
                    return Err(Gs1Error::UnknownAi(k))
                }
                None => link.extensions.push((k, v)),
            }
        }
        link.validate(spelling)?;
        Ok(link)
    }

    /// Checks every value's syntax and check digit, the qualifiers' order
    /// and that no AI appears twice; pads a GTIN-8, -12 or -13 to 14 digits
    /// where the spelling may be lenient.
    fn validate(&mut self, spelling: Spelling) -> Result<(), Gs1Error> {
        for e in std::iter::once(&mut self.key)
            .chain(&mut self.qualifiers)
            .chain(&mut self.attributes)
        {
            let short_gtin = e.ai.code == "01"
                && matches!(e.value.len(), 8 | 12 | 13)
                && e.value.bytes().all(|b| b.is_ascii_digit());
            if short_gtin && spelling == Spelling::Exact {
                return Err(Gs1Error::Syntax {
                    ai: e.ai.code,
                    title: e.ai.title,
                    reason: format!(
                        "has {} digits: a Digital Link writes a GTIN with all 14, as {:0>14}",
                        e.value.len(),
                        e.value
                    ),
                    value: e.value.clone(),
                });
            }
            if short_gtin {
                e.value = format!("{:0>14}", e.value);
            }
            check_value(e.ai, &e.value)?;
        }
        let mut seen: Vec<&str> = Vec::new();
        for e in self.elements() {
            if seen.contains(&e.code.as_str()) {
                return Err(Gs1Error::Duplicate(e.ai.code));
            }
            seen.push(&e.code);
        }
        let key = self.key.ai.code;
        let paths = ai::qualifier_paths(key);
        let codes: Vec<&str> = self.qualifiers.iter().map(|q| q.ai.code).collect();
        let fits = |path: &[&str]| {
            let mut rest = path.iter();
            codes.iter().all(|c| rest.any(|p| p == c))
        };
        if !codes.is_empty() && !paths.iter().any(|p| fits(p)) {
            let allowed = if paths.is_empty() {
                format!("({key}) takes no key qualifiers")
            } else {
                let forms: Vec<String> = paths
                    .iter()
                    .map(|p| {
                        let mut s = format!("/{key}/…");
                        for q in *p {
                            let _ = write!(s, "[/{q}/…]");
                        }
                        s
                    })
                    .collect();
                format!("the path must be {}", forms.join(" or "))
            };
            let qualifier = self
                .qualifiers
                .iter()
                .find(|q| !paths.iter().any(|p| p.contains(&q.ai.code)))
                .or(self.qualifiers.last())
                .map_or(key, |q| q.ai.code);
            return Err(Gs1Error::Qualifier {
                key,
                qualifier,
                allowed,
            });
        }
        Ok(())
    }

    /// The primary key, its qualifiers and the data attributes.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        std::iter::once(&self.key)
            .chain(&self.qualifiers)
            .chain(&self.attributes)
    }

    /// The value of `code` (a primary key, qualifier or attribute), if given.
    pub fn get(&self, code: &str) -> Option<&str> {
        self.elements()
            .find(|e| e.code == code)
            .map(|e| e.value.as_str())
    }

    /// The GTIN (14 digits), when the primary key is one.
    pub fn gtin(&self) -> Option<&str> {
        (self.key.ai.code == "01").then_some(self.key.value.as_str())
    }

    /// The canonical path: the primary key and its qualifiers, numeric AIs,
    /// values percent-encoded where a path needs it.
    pub fn path(&self) -> String {
        let mut s = String::new();
        for e in std::iter::once(&self.key).chain(&self.qualifiers) {
            let _ = write!(s, "/{}/{}", e.code, encode(&e.value));
        }
        s
    }

    /// The data attributes and other parameters as a canonical query string
    /// (without `?`; empty when there are none).
    pub fn query(&self) -> String {
        let mut parts: Vec<String> = self
            .attributes
            .iter()
            .map(|e| format!("{}={}", e.code, encode(&e.value)))
            .collect();
        parts.extend(
            self.extensions
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v))),
        );
        parts.join("&")
    }

    /// The canonical URI of the identified thing: `https://id.gs1.org` and
    /// the canonical path (no data attributes).
    pub fn canonical(&self) -> String {
        format!("{CANONICAL_STEM}{}", self.path())
    }

    /// The identified thing's URI under `base` (a resolver's public URL).
    pub fn under(&self, base: &str) -> String {
        format!("{}{}", base.trim_end_matches('/'), self.path())
    }
}

/// The one canonical name of a GS1-identified thing (see
/// [`DigitalLink::canonical`]) from any of its spellings: an EPC URN
/// (`urn:epc:id:sgtin:…`, `urn:epc:class:lgtin:…`, …) or a Digital Link
/// URI on any host. `None` for identifiers that are not GS1 keys (other URN
/// schemes, EPC patterns, private URIs) or not valid.
pub fn canonical_id(id: &str) -> Option<String> {
    if is_epc_urn(id) {
        return from_epc_urn(id).ok().flatten().map(|l| l.canonical());
    }
    let lower = id.get(..8).map(str::to_ascii_lowercase);
    if lower
        .as_deref()
        .is_some_and(|p| p.starts_with("http://") || p == "https://")
    {
        return DigitalLink::parse(id).ok().map(|l| l.canonical());
    }
    None
}

/// The digits of a GS1 key from where its GS1 Company Prefix starts, for an
/// identifier in any spelling: a network's member whose prefix begins them
/// owns the thing (its home). The keys that open with an indicator,
/// extension or filler digit (GTIN, SSCC, GRAI, ITIP) skip it; a key whose
/// value is not all digits (GIAI, GINC) gives its leading digits. `None` for
/// an identifier that is not a GS1 key.
pub fn company_digits(id: &str) -> Option<String> {
    let link = DigitalLink::parse(&canonical_id(id)?).ok()?;
    let skip = match link.key.ai.code {
        "01" | "00" | "8003" | "8006" => 1,
        _ => 0,
    };
    let digits: String = link
        .key
        .value
        .chars()
        .skip(skip)
        .take_while(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then_some(digits)
}

/// The organisation-level GLN of a location or party identifier, as a
/// canonical Digital Link (`https://id.gs1.org/414/{gln}`): an SGLN (any
/// extension) or a PGLN in any spelling. `None` for anything not a GLN-based
/// key. Two locations with the same answer belong to the same GLN.
pub fn gln_of(id: &str) -> Option<String> {
    gln_of_canonical(&canonical_id(id)?)
}

/// [`gln_of`] for an identifier already in canonical form.
pub fn gln_of_canonical(canonical: &str) -> Option<String> {
    let (stem, rest) = canonical
        .split_once("/414/")
        .or_else(|| canonical.split_once("/417/"))?;
    let gln = rest.split('/').next()?;
    Some(format!("{stem}/414/{gln}"))
}

/// Checks an identifier as EPCIS capture takes it: an EPC URN (the GS1
/// schemes checked in full, others by shape) or a GS1 Digital Link URI.
pub fn check_identifier(id: &str) -> Result<(), Gs1Error> {
    if is_epc_urn(id) {
        return from_epc_urn(id).map(|_| ());
    }
    DigitalLink::parse_strict(id).map(|_| ())
}

/// Checks `value` against `ai`'s format.
pub fn check_value(ai: &'static Ai, value: &str) -> Result<(), Gs1Error> {
    let bad = |reason: String| Gs1Error::Syntax {
        ai: ai.code,
        title: ai.title,
        value: value.to_string(),
        reason,
    };
    if value.is_empty() {
        return Err(bad("is empty: give a value".into()));
    }
    let mut rest = value;
    let components: Vec<&str> = ai.format.split(' ').collect();
    for (i, component) in components.iter().enumerate() {
        let optional = component.starts_with('[');
        let component = component.trim_matches(|c| c == '[' || c == ']');
        let (spec, flags) = component.split_once(',').unwrap_or((component, ""));
        let (set, len) = spec.split_at(1);
        let (min, max) = match len.strip_prefix("..") {
            Some(n) => (1, n.parse::<usize>().expect("table format")),
            None => {
                let n = len.parse::<usize>().expect("table format");
                (n, n)
            }
        };
        if optional && rest.is_empty() {
            break;
        }
        let last = i + 1 == components.len();
        let take = if last || min == max {
            rest.len().min(max)
        } else {
            max
        };
        let take = take.min(rest.len());
        let (part, tail) = rest.split_at(
            (0..=take)
                .rev()
                .find(|&n| rest.is_char_boundary(n))
                .unwrap_or(0),
        );
        rest = tail;
        if part.len() < min {
            return Err(bad(if min == max {
                format!("is too short: {} must be {min} characters", ai.format)
            } else {
                format!("is too short for {}", ai.format)
            }));
        }
        let ok = match set {
            "N" => part.bytes().all(|b| b.is_ascii_digit()),
            "X" => part.bytes().all(|b| CSET82.contains(&b)),
            "Y" => part.bytes().all(in_cset39),
            _ => unreachable!("table format"),
        };
        if !ok {
            return Err(bad(match set {
                "N" => format!("must be digits ({})", ai.format),
                "Y" => "may hold only digits, capital letters, # - and /".into(),
                _ => "holds a character outside the GS1 character set 82 (letters, digits and !\"%&'()*+,-./:;<=>?_)".into(),
            }));
        }
        for flag in flags.split(',').filter(|f| !f.is_empty()) {
            match flag {
                "csum" if !check_digit_ok(part) => {
                    return Err(Gs1Error::CheckDigit {
                        ai: ai.code,
                        title: ai.title,
                        value: value.to_string(),
                        expected: check_digit(&part[..part.len().saturating_sub(1)])
                            .map(|c| c.to_string())
                            .unwrap_or_default(),
                    })
                }
                "csumalpha" => {
                    let n = part.len();
                    // At least one character and the pair; shorter is refused
                    // before anything is sliced.
                    let want = (n >= 3).then(|| check_pair(&part[..n - 2])).flatten();
                    if n < 3 || want.as_ref().map(|w| &w[..]) != Some(&part.as_bytes()[n - 2..]) {
                        return Err(Gs1Error::CheckDigit {
                            ai: ai.code,
                            title: ai.title,
                            value: value.to_string(),
                            expected: want
                                .map(|w| String::from_utf8_lossy(&w).into_owned())
                                .unwrap_or_else(|| "a check character pair".into()),
                        });
                    }
                }
                "yymmdd" | "yymmd0" if !date_ok(part, flag == "yymmd0") => {
                    return Err(bad("is not a date YYMMDD".into()))
                }
                "zero" if part != "0" => return Err(bad("must start with 0".into())),
                "bool" if part != "0" && part != "1" => return Err(bad("must be 0 or 1".into())),
                _ => {}
            }
        }
    }
    if !rest.is_empty() {
        return Err(bad(format!("is too long for {}", ai.format)));
    }
    Ok(())
}

/// A YYMMDD date (day 00 allowed when `day_zero`, meaning the month's end).
fn date_ok(s: &str, day_zero: bool) -> bool {
    let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(99);
    let (yy, mm, dd) = (n(0..2), n(2..4), n(4..6));
    let leap = yy % 4 == 0;
    let days = match mm {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (dd == 0 && day_zero) || (1..=days).contains(&dd)
}

/// Percent-decodes `s` (UTF-8; a malformed escape is an error).
pub fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{s:?} has a malformed percent-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} decodes to bytes that are not UTF-8"))
}

/// Percent-encodes every byte of `s` but RFC 3986's unreserved characters,
/// as GS1 Digital Link writes values.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests;
