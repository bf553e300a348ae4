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
    let fields: Vec<&str> = body.split('.').collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // (company prefix, reference) of `total` digits, the prefix 6 to 12.
    let prefix_and = |cp: &str, r: &str, total: usize, what: &str| -> Result<String, Gs1Error> {
        if !(6..=12).contains(&cp.len()) || !digits(cp) || !(r.is_empty() || digits(r)) {
            return Err(bad(&format!(
                "the company prefix must be 6 to 12 digits and the {what} digits"
            )));
        }
        if cp.len() + r.len() != total {
            return Err(bad(&format!(
                "company prefix and {what} must together be {total} digits"
            )));
        }
        Ok(format!("{cp}{r}"))
    };
    let with_check = |d: String| {
        let c = check_digit(&d).expect("digits checked");
        format!("{d}{c}")
    };
    let field = |i: usize| -> Result<String, Gs1Error> {
        let f = fields
            .get(i)
            .ok_or_else(|| bad("it has too few dot-separated fields"))?;
        decode(f).map_err(|e| bad(&e))
    };
    let n = |k: usize| -> Result<(), Gs1Error> {
        if fields.len() == k {
            Ok(())
        } else {
            Err(bad(&format!("{scheme} takes {k} dot-separated fields")))
        }
    };
    let gtin = |cp: &str, ir: &str| -> Result<String, Gs1Error> {
        if ir.is_empty() {
            return Err(bad("the item reference starts with the indicator digit"));
        }
        prefix_and(cp, ir, 13, "indicator and item reference")?;
        // The URN moves the indicator digit in front of the item reference.
        Ok(with_check(format!("{}{cp}{}", &ir[..1], &ir[1..])))
    };
    let elements: Vec<(&str, String)> = match (kind.to_ascii_lowercase().as_str(), scheme) {
        ("id", "sgtin") => {
            n(3)?;
            vec![("01", gtin(fields[0], fields[1])?), ("21", field(2)?)]
        }
        ("class", "lgtin") => {
            n(3)?;
            vec![("01", gtin(fields[0], fields[1])?), ("10", field(2)?)]
        }
        ("id", "sscc") => {
            n(2)?;
            let (cp, sr) = (fields[0], fields[1]);
            prefix_and(cp, sr, 17, "extension and serial reference")?;
            // The extension digit leads, as the indicator does in a GTIN.
            vec![("00", with_check(format!("{}{cp}{}", &sr[..1], &sr[1..])))]
        }
        ("id", "sgln") => {
            n(3)?;
            let gln = with_check(prefix_and(fields[0], fields[1], 12, "location reference")?);
            let ext = field(2)?;
            let mut e = vec![("414", gln)];
            if ext != "0" {
                e.push(("254", ext));
            }
            e
        }
        ("id", "pgln") => {
            n(2)?;
            vec![(
                "417",
                with_check(prefix_and(fields[0], fields[1], 12, "party reference")?),
            )]
        }
        ("id", "grai") => {
            n(3)?;
            let d = with_check(prefix_and(fields[0], fields[1], 12, "asset type")?);
            vec![("8003", format!("0{d}{}", field(2)?))]
        }
        ("id", "giai") => {
            n(2)?;
            if !(6..=12).contains(&fields[0].len()) || !digits(fields[0]) {
                return Err(bad("the company prefix must be 6 to 12 digits"));
            }
            vec![("8004", format!("{}{}", fields[0], field(1)?))]
        }
        ("id", s @ ("gsrn" | "gsrnp")) => {
            n(2)?;
            let d = with_check(prefix_and(fields[0], fields[1], 17, "service reference")?);
            vec![(if s == "gsrn" { "8018" } else { "8017" }, d)]
        }
        ("id", "gdti") => {
            n(3)?;
            let d = with_check(prefix_and(fields[0], fields[1], 12, "document type")?);
            vec![("253", format!("{d}{}", field(2)?))]
        }
        ("id", "sgcn") => {
            n(3)?;
            let d = with_check(prefix_and(fields[0], fields[1], 12, "coupon reference")?);
            vec![("255", format!("{d}{}", field(2)?))]
        }
        ("id", "gsin") => {
            n(2)?;
            vec![(
                "402",
                with_check(prefix_and(fields[0], fields[1], 16, "shipper reference")?),
            )]
        }
        ("id", "itip") => {
            n(5)?;
            let g = gtin(fields[0], fields[1])?;
            vec![
                ("8006", format!("{g}{}{}", fields[2], fields[3])),
                ("21", field(4)?),
            ]
        }
        _ => return Ok(None),
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
    link.validate()?;
    Ok(Some(link))
}
