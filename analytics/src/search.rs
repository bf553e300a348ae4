//! Search over what the ledger names: organisations, products (GTIN),
//! lots, locations, devices and events, by identifier or by words, tolerant
//! of typos (tantivy, in memory).
//!
//! The index is derived from the lineage graph, like the tables: built from
//! it, never a source of truth, rebuilt when the graph has grown.

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, Value, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexReader, TantivyDocument, Term};

pub use crate::lineage::Doc;
use crate::lineage::Lineage;

#[derive(Debug, thiserror::Error)]
#[error("search index: {0}")]
pub struct SearchError(#[from] tantivy::TantivyError);

/// One thing found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    /// `organisation`, `product`, `lot`, `location`, `device` or `event`.
    pub kind: String,
    /// The identifier, as the ledger names it.
    pub id: String,
    /// What to show: a name, or a one-line description.
    pub label: String,
    pub score: f32,
}

pub struct SearchIndex {
    reader: IndexReader,
    kind: Field,
    id: Field,
    label: Field,
    words: Field,
    docs: usize,
}

/// The words of an identifier: its parts between punctuation, so
/// `urn:epc:class:lgtin:0614141.010001.L00010` is found by `L00010`.
fn words_of(id: &str) -> String {
    id.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl SearchIndex {
    /// Indexes `docs`.
    pub fn build(docs: impl IntoIterator<Item = Doc>) -> Result<SearchIndex, SearchError> {
        let mut sb = Schema::builder();
        let kind = sb.add_text_field("kind", STRING | STORED);
        let id = sb.add_text_field("id", STRING | STORED);
        let label = sb.add_text_field("label", STORED);
        let words = sb.add_text_field("words", TEXT);
        let index = Index::create_in_ram(sb.build());
        let mut writer = index.writer_with_num_threads(1, 32_000_000)?;
        let mut n = 0;
        for d in docs {
            writer.add_document(doc!(
                kind => d.kind,
                id => d.id.as_str(),
                label => d.label.as_str(),
                words => format!("{} {} {} {}", d.kind, words_of(&d.id), d.label, d.words),
            ))?;
            n += 1;
        }
        writer.commit()?;
        let reader = index.reader()?;
        reader.reload()?;
        Ok(SearchIndex {
            reader,
            kind,
            id,
            label,
            words,
            docs: n,
        })
    }

    /// Everything the lineage graph names.
    pub fn from_lineage(lineage: &Lineage) -> Result<SearchIndex, SearchError> {
        SearchIndex::build(lineage.search_docs())
    }

    pub fn len(&self) -> usize {
        self.docs
    }

    pub fn is_empty(&self) -> bool {
        self.docs == 0
    }

    /// The best `limit` matches of `q`: an exact identifier first, then
    /// documents whose words match every word of `q`, each word exactly, by
    /// prefix, or within one or two typos (by its length).
    pub fn search(&self, q: &str, limit: usize) -> Result<Vec<Hit>, SearchError> {
        let q = q.trim();
        if q.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut every_word: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for w in words_of(q)
            .to_lowercase()
            .split(' ')
            .filter(|w| !w.is_empty())
        {
            let term = Term::from_field_text(self.words, w);
            let typos = match w.chars().count() {
                0..=3 => 0,
                4..=7 => 1,
                _ => 2,
            };
            let alternatives: Vec<(Occur, Box<dyn Query>)> = vec![
                (
                    Occur::Should,
                    Box::new(BoostQuery::new(
                        Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
                        3.0,
                    )),
                ),
                (
                    Occur::Should,
                    Box::new(FuzzyTermQuery::new_prefix(term.clone(), 0, true)),
                ),
                (
                    Occur::Should,
                    Box::new(FuzzyTermQuery::new(term, typos, true)),
                ),
            ];
            every_word.push((Occur::Must, Box::new(BooleanQuery::new(alternatives))));
        }
        let exact = TermQuery::new(Term::from_field_text(self.id, q), IndexRecordOption::Basic);
        let mut top: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Should,
            Box::new(BoostQuery::new(Box::new(exact), 20.0)),
        )];
        if !every_word.is_empty() {
            top.push((Occur::Should, Box::new(BooleanQuery::new(every_word))));
        }
        let query = BooleanQuery::new(top);
        let searcher = self.reader.searcher();
        let found = searcher.search(&query, &TopDocs::with_limit(limit))?;
        let text = |d: &TantivyDocument, f: Field| {
            d.get_first(f)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        found
            .into_iter()
            .map(|(score, addr)| {
                let d: TantivyDocument = searcher.doc(addr)?;
                Ok(Hit {
                    kind: text(&d, self.kind),
                    id: text(&d, self.id),
                    label: text(&d, self.label),
                    score,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> SearchIndex {
        SearchIndex::build([
            Doc {
                kind: "organisation",
                id: "urn:epc:id:sgln:0614141.00001.0".into(),
                label: "Salinas Leaf Farms".into(),
                words: String::new(),
            },
            Doc {
                kind: "lot",
                id: "urn:epc:class:lgtin:0614141.010001.L00010".into(),
                label: "lot L00010 of GTIN 00614141100019".into(),
                words: String::new(),
            },
            Doc {
                kind: "organisation",
                id: "urn:epc:id:sgln:0614141.00005.0".into(),
                label: "FreshCut Salads".into(),
                words: String::new(),
            },
        ])
        .unwrap()
    }

    #[test]
    fn finds_by_identifier_words_and_typos() {
        let i = index();
        let first = |q: &str| i.search(q, 3).unwrap().first().map(|h| h.label.clone());
        assert_eq!(
            first("urn:epc:class:lgtin:0614141.010001.L00010").as_deref(),
            Some("lot L00010 of GTIN 00614141100019")
        );
        assert_eq!(
            first("L00010").as_deref(),
            Some("lot L00010 of GTIN 00614141100019")
        );
        assert_eq!(first("salinas").as_deref(), Some("Salinas Leaf Farms"));
        assert_eq!(
            first("Salinsa Laef").as_deref(),
            Some("Salinas Leaf Farms"),
            "two typos"
        );
        assert_eq!(
            first("freshc").as_deref(),
            Some("FreshCut Salads"),
            "a prefix"
        );
        assert!(i.search("nothing-like-it", 3).unwrap().is_empty());
        assert!(i.search("", 3).unwrap().is_empty());
    }
}
