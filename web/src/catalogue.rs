//! Product names for consumer pages: master data, which the ledger does not
//! hold (a name is not a fact anyone attests; a GTIN's owner publishes it).
//! The operator keeps them in `products.json` in the data directory:
//!
//! ```json
//! { "00614141100019": { "en": "Romaine lettuce", "de": "Römersalat" } }
//! ```
//!
//! Keys are GTINs (8, 12, 13 or 14 digits, check digit checked; stored as
//! GTIN-14); values map language codes to names. A page asks for its
//! language, then English, then any.

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
        "{path}: {message}; write it as {{\"<GTIN>\": {{\"en\": \"<name>\", \"de\": \"<Name>\"}}}}"
    )]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    /// GTIN-14 -> language -> name.
    names: BTreeMap<String, BTreeMap<String, String>>,
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
        let raw: BTreeMap<String, BTreeMap<String, String>> =
            serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut names = BTreeMap::new();
        for (gtin, by_lang) in raw {
            if !matches!(gtin.len(), 8 | 12 | 13 | 14)
                || !gtin.bytes().all(|b| b.is_ascii_digit())
                || !gs1::check_digit_ok(&gtin)
            {
                return Err(format!(
                    "{gtin:?} is not a GTIN (8, 12, 13 or 14 digits with a valid check digit)"
                ));
            }
            if by_lang.is_empty() || by_lang.values().any(|n| n.trim().is_empty()) {
                return Err(format!("{gtin}: give at least one non-empty name"));
            }
            names.insert(format!("{gtin:0>14}"), by_lang);
        }
        Ok(Catalogue { names })
    }

    /// Writes `names` (GTIN -> language -> name) as `data_dir`'s catalogue.
    pub fn write(
        data_dir: &Path,
        names: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<(), CatalogueError> {
        let path = data_dir.join(CATALOGUE_FILE);
        let json = serde_json::to_vec_pretty(names).expect("maps of strings serialise");
        std::fs::write(&path, json).map_err(|source| CatalogueError::Io { path, source })
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
            (br#"{"00614141100019": {"en": " "}}"#, "non-empty"),
            (br#"{"#, "EOF"),
        ] {
            let e = Catalogue::parse(bytes).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
