//! Search hits.

use super::*;

/// A search hit.
#[derive(SimpleObject, Clone)]
pub struct SearchHit {
    /// organisation, product, lot, location, device or event.
    pub kind: String,
    /// The identifier (GLN, GTIN, lot, device or event id).
    pub id: String,
    /// A readable name for it.
    pub label: String,
    /// Relevance; higher is better.
    pub score: f64,
}
