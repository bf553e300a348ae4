//! Product master data for consumer pages, which the ledger does not hold
//! (a name is not a fact anyone attests; a GTIN's owner publishes it): each
//! product's names, and whether its brand owner discloses its record. The
//! operator keeps them in `products.json` in the data directory:
//!
//! ```json
//! { "00614141100019": { "names": { "en": "Romaine lettuce", "de": "Römersalat" },
//!                       "disclose": true },
//!   "00614141100026": { "en": "Carrots" } }
//! ```
//!
//! Keys are GTINs (8, 12, 13 or 14 digits, check digit checked; stored as
//! GTIN-14). A page asks for its language, then English, then any.
//!
//! Disclosure is the brand owner's choice, per GTIN, and off unless given
//! (`"disclose": true`; the short form, language -> name, names a product
//! without disclosing it): a consumer page shows ledger facts (origin,
//! journey, the cold chain's verdict, each with its proof) only for a
//! disclosed product. Supply-chain records are trade secrets until their
//! owner publishes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file's name in the data directory.
pub const CATALOGUE_FILE: &str = "products.json";

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: {message}; write it as {{\"<GTIN>\": {{\"names\": {{\"en\": \"<name>\", \"de\": \"<Name>\"}}, \"disclose\": true}}}}"
    )]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    /// GTIN-14 -> language -> name.
    names: BTreeMap<String, BTreeMap<String, String>>,
    /// The GTIN-14s whose brand owner discloses their record on pages.
    disclosed: std::collections::BTreeSet<String>,
}

/// One product as `products.json` gives it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Product {
    /// Its names and whether its record is disclosed.
    Full {
        names: BTreeMap<String, String>,
        #[serde(default)]
        disclose: bool,
    },
    /// Its names only (not disclosed).
    Names(BTreeMap<String, String>),
}

impl Catalogue {
    /// The catalogue in `data_dir`; empty when there is none.
    pub fn load(data_dir: &Path) -> Result<Catalogue, CatalogueError> {
        let path = data_dir.join(CATALOGUE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Catalogue::default()),
            Err(source) => return Err(CatalogueError::Io { path, source }),
        };
        Catalogue::parse(&bytes).map_err(|message| CatalogueError::Invalid { path, message })
    }

    /// Parses the file's bytes, checking every GTIN and name.
    pub fn parse(bytes: &[u8]) -> Result<Catalogue, String> {
        let raw: BTreeMap<String, Product> =
            serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut catalogue = Catalogue::default();
        for (gtin, product) in raw {
            if !matches!(gtin.len(), 8 | 12 | 13 | 14)
                || !gtin.bytes().all(|b| b.is_ascii_digit())
                || !gs1::check_digit_ok(&gtin)
            {
                return Err(format!(
                    "{gtin:?} is not a GTIN (8, 12, 13 or 14 digits with a valid check digit)"
                ));
            }
            let (by_lang, disclose) = match product {
                Product::Full { names, disclose } => (names, disclose),
                Product::Names(names) => (names, false),
            };
            if by_lang.is_empty() || by_lang.values().any(|n| n.trim().is_empty()) {
                return Err(format!("{gtin}: give at least one non-empty name"));
            }
            let gtin14 = format!("{gtin:0>14}");
            if disclose {
                catalogue.disclosed.insert(gtin14.clone());
            }
            catalogue.names.insert(gtin14, by_lang);
        }
        Ok(catalogue)
    }

    /// Writes `products` (GTIN -> names and disclosure) as `data_dir`'s
    /// catalogue.
    pub fn write(
        data_dir: &Path,
        products: &BTreeMap<String, Product>,
    ) -> Result<(), CatalogueError> {
        let path = data_dir.join(CATALOGUE_FILE);
        let json = serde_json::to_vec_pretty(products).expect("maps of strings serialise");
        std::fs::write(&path, json).map_err(|source| CatalogueError::Io { path, source })
    }

    /// Whether the brand owner of `gtin` discloses its record on pages.
    pub fn discloses(&self, gtin: &str) -> bool {
        self.disclosed.contains(&format!("{gtin:0>14}"))
    }

    /// The product's name in `lang`, else English, else any it has.
    pub fn name(&self, gtin: &str, lang: &str) -> Option<&str> {
        let by_lang = self.names.get(&format!("{gtin:0>14}"))?;
        by_lang
            .get(lang)
            .or_else(|| by_lang.get("en"))
            .or_else(|| by_lang.values().next())
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_by_language_with_fallbacks() {
        let c = Catalogue::parse(
            br#"{"00614141100019": {"en": "Romaine lettuce", "de": "R\u00f6mersalat"},
                 "614141100026": {"fr": "Carottes"}}"#,
        )
        .unwrap();
        assert_eq!(c.name("00614141100019", "de"), Some("Römersalat"));
        assert_eq!(c.name("00614141100019", "fr"), Some("Romaine lettuce"));
        assert_eq!(c.name("00614141100026", "de"), Some("Carottes"));
        assert_eq!(c.name("00614141100033", "en"), None);
        assert_eq!(c.len(), 2);
        assert!(
            !c.discloses("00614141100019"),
            "the short form discloses nothing"
        );
    }

    #[test]
    fn a_product_is_disclosed_only_when_its_entry_says_so() {
        let c = Catalogue::parse(
            br#"{"00614141100019": {"names": {"en": "Romaine lettuce"}, "disclose": true},
                 "614141100026": {"names": {"en": "Carrots"}},
                 "00614141100033": {"names": {"en": "Kale"}, "disclose": false}}"#,
        )
        .unwrap();
        assert!(c.discloses("00614141100019"));
        assert!(c.discloses("0614141100019"), "any GTIN length");
        assert!(!c.discloses("00614141100026"));
        assert!(!c.discloses("00614141100033"));
        assert!(
            !c.discloses("00614141100040"),
            "unknown products are not disclosed"
        );
        assert_eq!(c.name("00614141100026", "en"), Some("Carrots"));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (bytes, says) in [
            (
                &br#"{"00614141100012": {"en": "x"}}"#[..],
                "valid check digit",
            ),
            (br#"{"0061414110001x": {"en": "x"}}"#, "not a GTIN"),
            (br#"{"00614141100019": {}}"#, "at least one"),
            (
                br#"{"00614141100019": {"names": {}, "disclose": true}}"#,
                "at least one",
            ),
            (
                br#"{"00614141100019": {"names": {"en": "x"}, "disclose": "yes"}}"#,
                "did not match",
            ),
            (
                br#"{"00614141100019": {"names": {"en": "x"}, "disclosed": true}}"#,
                "did not match",
            ),
            (br#"{"00614141100019": {"en": " "}}"#, "non-empty"),
            (br#"{"#, "EOF"),
        ] {
            let e = Catalogue::parse(bytes).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
