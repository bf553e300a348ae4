//! EPC URNs (GS1 EPC Tag Data Standard, pure identity and class URIs) and
//! their Digital Link equivalents.

use crate::{ai, check_digit, decode, DigitalLink, Element, Gs1Error};

/// Whether `id` is written as an EPC URN (`urn:epc:…`).
pub fn is_epc_urn(id: &str) -> bool {
    id.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:epc:"))
}

/// The Digital Link form of an EPC URN of a GS1 key (SGTIN, LGTIN, SSCC,
/// SGLN, GRAI, GIAI, GSRN, GSRNP, GDTI, SGCN, GSIN, PGLN, ITIP), its
/// digits and check digit reassembled; `Ok(None)` for other EPC schemes
/// (GID, patterns, …), which have no Digital Link form but are well
/// shaped. The company prefix's length is where the URN puts its dot.
pub fn from_epc_urn(urn: &str) -> Result<Option<DigitalLink>, Gs1Error> {
    let bad = |why: &str| Gs1Error::Epc(urn.to_string(), why.to_string());
    if !is_epc_urn(urn) {
        return Err(bad("it does not start with urn:epc:"));
    }
    let mut parts = urn[8..].splitn(3, ':');
    let (kind, scheme, body) = match (parts.next(), parts.next(), parts.next()) {
        (Some(k), Some(s), Some(b)) if !s.is_empty() && !b.is_empty() => (k, s, b),
        _ => return Err(bad("it must be urn:epc:{id|class|idpat}:{scheme}:{value}")),
    };
    if urn
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(bad("it contains white space"));
    }
    let fields = UrnFields {
        urn,
        scheme,
        fields: body.split('.').collect(),
    };
    let Some(elements) = fields.elements(&kind.to_ascii_lowercase())? else {
        return Ok(None);
    };
    let mut it = elements.into_iter().map(|(code, value)| Element {
        code: code.to_string(),
        ai: ai::lookup(code).expect("known AI"),
        value,
    });
    let key = it.next().expect("a key");
    let mut link = DigitalLink {
        stem: crate::CANONICAL_STEM.to_string(),
        key,
        qualifiers: it.collect(),
        attributes: Vec::new(),
        extensions: Vec::new(),
    };
    // EPC URNs carry whole GTIN-14s: exact is what they must be.
    link.validate(crate::Spelling::Exact)?;
    Ok(Some(link))
}

/// The dot-separated fields of an EPC URN's value, read as its scheme says.
struct UrnFields<'a> {
    urn: &'a str,
    scheme: &'a str,
    fields: Vec<&'a str>,
}

impl UrnFields<'_> {
    fn bad(&self, why: &str) -> Gs1Error {
        Gs1Error::Epc(self.urn.to_string(), why.to_string())
    }

    /// The Digital Link elements (key first) of a URN of `kind` (`id`,
    /// `class`…) in this scheme; `None` for schemes without a Digital Link form.
    fn elements(&self, kind: &str) -> Result<Option<Vec<(&'static str, String)>>, Gs1Error> {
        let f = &self.fields;
        Ok(Some(match (kind, self.scheme) {
            ("id", "sgtin") => {
                self.count(3)?;
                vec![("01", self.gtin(f[0], f[1])?), ("21", self.field(2)?)]
            }
            ("class", "lgtin") => {
                self.count(3)?;
                vec![("01", self.gtin(f[0], f[1])?), ("10", self.field(2)?)]
            }
            ("id", "sscc") => {
                self.count(2)?;
                let (cp, sr) = (f[0], f[1]);
                self.prefix_and(cp, sr, 17, "extension and serial reference")?;
                // The extension digit leads, as the indicator does in a GTIN.
                vec![("00", with_check(format!("{}{cp}{}", &sr[..1], &sr[1..])))]
            }
            ("id", "sgln") => {
                self.count(3)?;
                let gln = with_check(self.prefix_and(f[0], f[1], 12, "location reference")?);
                let ext = self.field(2)?;
                let mut e = vec![("414", gln)];
                if ext != "0" {
                    e.push(("254", ext));
                }
                e
            }
            ("id", "pgln") => {
                self.count(2)?;
                let d = self.prefix_and(f[0], f[1], 12, "party reference")?;
                vec![("417", with_check(d))]
            }
            ("id", "grai") => {
                self.count(3)?;
                let d = with_check(self.prefix_and(f[0], f[1], 12, "asset type")?);
                vec![("8003", format!("0{d}{}", self.field(2)?))]
            }
            ("id", "giai") => {
                self.count(2)?;
                if !(6..=12).contains(&f[0].len()) || !digits(f[0]) {
                    return Err(self.bad("the company prefix must be 6 to 12 digits"));
                }
                vec![("8004", format!("{}{}", f[0], self.field(1)?))]
            }
            ("id", s @ ("gsrn" | "gsrnp")) => {
                self.count(2)?;
                let d = with_check(self.prefix_and(f[0], f[1], 17, "service reference")?);
                vec![(if s == "gsrn" { "8018" } else { "8017" }, d)]
            }
            ("id", "gdti") => {
                self.count(3)?;
                let d = with_check(self.prefix_and(f[0], f[1], 12, "document type")?);
                vec![("253", format!("{d}{}", self.field(2)?))]
            }
            ("id", "sgcn") => {
                self.count(3)?;
                let d = with_check(self.prefix_and(f[0], f[1], 12, "coupon reference")?);
                vec![("255", format!("{d}{}", self.field(2)?))]
            }
            ("id", "gsin") => {
                self.count(2)?;
                let d = self.prefix_and(f[0], f[1], 16, "shipper reference")?;
                vec![("402", with_check(d))]
            }
            ("id", "itip") => {
                self.count(5)?;
                let g = self.gtin(f[0], f[1])?;
                vec![
                    ("8006", format!("{g}{}{}", f[2], f[3])),
                    ("21", self.field(4)?),
                ]
            }
            _ => return Ok(None),
        }))
    }

    /// The scheme takes exactly `k` fields.
    fn count(&self, k: usize) -> Result<(), Gs1Error> {
        if self.fields.len() == k {
            Ok(())
        } else {
            Err(self.bad(&format!("{} takes {k} dot-separated fields", self.scheme)))
        }
    }

    /// Field `i`, percent-decoded.
    fn field(&self, i: usize) -> Result<String, Gs1Error> {
        let f = self
            .fields
            .get(i)
            .ok_or_else(|| self.bad("it has too few dot-separated fields"))?;
        decode(f).map_err(|e| self.bad(&e))
    }

    /// (company prefix, reference) of `total` digits, the prefix 6 to 12.
    fn prefix_and(&self, cp: &str, r: &str, total: usize, what: &str) -> Result<String, Gs1Error> {
        if !(6..=12).contains(&cp.len()) || !digits(cp) || !(r.is_empty() || digits(r)) {
            return Err(self.bad(&format!(
                "the company prefix must be 6 to 12 digits and the {what} digits"
            )));
        }
        if cp.len() + r.len() != total {
            return Err(self.bad(&format!(
                "company prefix and {what} must together be {total} digits"
            )));
        }
        Ok(format!("{cp}{r}"))
    }

    /// A GTIN from its company prefix and indicator-and-item-reference fields.
    fn gtin(&self, cp: &str, ir: &str) -> Result<String, Gs1Error> {
        if ir.is_empty() {
            return Err(self.bad("the item reference starts with the indicator digit"));
        }
        self.prefix_and(cp, ir, 13, "indicator and item reference")?;
        // The URN moves the indicator digit in front of the item reference.
        Ok(with_check(format!("{}{cp}{}", &ir[..1], &ir[1..])))
    }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `d` with its GS1 check digit appended; `d` is all digits.
fn with_check(d: String) -> String {
    let c = check_digit(&d).expect("digits checked");
    format!("{d}{c}")
}
