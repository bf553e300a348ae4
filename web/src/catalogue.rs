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
//! Places are the organisations' own master data, which FSMA 204's
//! spreadsheet describes each location with: its address and phone, by the
//! organisation's GLN (13 digits, or a GLN-bearing EPC URN or Digital Link),
//! in `locations.json`:
//!
//! ```json
//! { "0614141000012": { "address": "1200 Abbott St, Salinas, CA 93901, US",
//!                      "phone": "+1 831 555 0101" } }
//! ```
//!
//! Disclosure is the brand owner's choice, per GTIN, and off unless given
//! (`"disclose": true`; the short form, language -> name, names a product
//! without disclosing it): a consumer page shows ledger facts (origin,
//! journey, the cold chain's verdict, each with its proof) only for a
//! disclosed product. Supply-chain records are trade secrets until their
//! owner publishes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use analytics::lineage::fsma204::{MasterData, Place};

/// The file's name in the data directory.
pub const CATALOGUE_FILE: &str = "products.json";

/// The places' file in the data directory.
pub const PLACES_FILE: &str = "locations.json";

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
    #[error(
        "{path}: {message}; write it as {{\"<GLN>\": {{\"address\": \"<street, city, postal code, country>\", \"phone\": \"<+country number>\"}}}}"
    )]
    InvalidPlaces { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    /// GTIN-14 -> language -> name.
    names: BTreeMap<String, BTreeMap<String, String>>,
    /// The GTIN-14s whose brand owner discloses their record on pages.
    disclosed: std::collections::BTreeSet<String>,
    /// Places by their organisation's GLN, canonical (`gs1::gln_of`).
    places: BTreeMap<String, Place>,
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
    /// The catalogue in `data_dir` (products and places); empty where a
    /// file is missing.
    pub fn load(data_dir: &Path) -> Result<Catalogue, CatalogueError> {
        let read = |path: &Path| match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CatalogueError::Io {
                path: path.to_path_buf(),
                source,
            }),
        };
        let path = data_dir.join(CATALOGUE_FILE);
        let mut catalogue = match read(&path)? {
            Some(bytes) => Catalogue::parse(&bytes)
                .map_err(|message| CatalogueError::Invalid { path, message })?,
            None => Catalogue::default(),
        };
        let path = data_dir.join(PLACES_FILE);
        if let Some(bytes) = read(&path)? {
            catalogue.places = parse_places(&bytes)
                .map_err(|message| CatalogueError::InvalidPlaces { path, message })?;
        }
        Ok(catalogue)
    }

    /// Writes `places` (GLN -> address and phone) as `data_dir`'s places.
    pub fn write_places(
        data_dir: &Path,
        places: &BTreeMap<String, Place>,
    ) -> Result<(), CatalogueError> {
        let path = data_dir.join(PLACES_FILE);
        let json = serde_json::to_vec_pretty(places).expect("maps of strings serialise");
        std::fs::write(&path, json).map_err(|source| CatalogueError::Io { path, source })
    }

    /// What FSMA 204's spreadsheet describes products and places with:
    /// products by their English name (else any), places as given.
    pub fn master_data(&self) -> MasterData {
        MasterData {
            products: self
                .names
                .keys()
                .filter_map(|g| Some((g.clone(), self.name(g, "en")?.to_string())))
                .collect(),
            places: self.places.clone().into_iter().collect(),
        }
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

/// Parses `locations.json`: every key a GLN, every place with an address
/// and a phone number.
fn parse_places(bytes: &[u8]) -> Result<BTreeMap<String, Place>, String> {
    let raw: BTreeMap<String, Place> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut places = BTreeMap::new();
    for (key, place) in raw {
        let as_id = if key.len() == 13 && key.bytes().all(|b| b.is_ascii_digit()) {
            format!("https://id.gs1.org/414/{key}")
        } else {
            key.clone()
        };
        let gln = gs1::gln_of(&as_id).ok_or_else(|| {
            format!("{key:?} is not a GLN (13 digits with a valid check digit, or an SGLN/PGLN URN or GLN Digital Link)")
        })?;
        if place.address.trim().is_empty() || place.phone.trim().is_empty() {
            return Err(format!("{key}: give both an address and a phone number"));
        }
        places.insert(gln, place);
    }
    Ok(places)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_keyed_by_their_gln_in_any_spelling() {
        let places = parse_places(
            br#"{"0614141000012": {"address": "1200 Abbott St, Salinas", "phone": "+1 831 555 0101"},
                 "urn:epc:id:sgln:0614141.00002.0": {"address": "455 E 5th St, Holtville", "phone": "+1 760 555 0102"}}"#,
        )
        .unwrap();
        let gln = |g: &str| gs1::gln_of(&format!("https://id.gs1.org/414/{g}")).unwrap();
        assert_eq!(places[&gln("0614141000012")].phone, "+1 831 555 0101");
        assert_eq!(
            places[&gln("0614141000029")].address,
            "455 E 5th St, Holtville"
        );
        for (bytes, says) in [
            (
                &br#"{"0614141000013": {"address": "a", "phone": "1"}}"#[..],
                "not a GLN",
            ),
            (
                br#"{"0614141000012": {"address": "", "phone": "1"}}"#,
                "both",
            ),
            (br#"{"0614141000012": {"address": "a"}}"#, "phone"),
        ] {
            let err = parse_places(bytes).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }

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
