//! EPCIS 2.0 SimpleEventQuery over the captured events: the parameters of the
//! REST binding's `GET /events` (eventType, time ranges, EQ_…, MATCH_…,
//! quantity comparisons, ordering, limits), evaluated over the lineage
//! graph's events, paged by a cursor that hands out every event exactly once.
//!
//! Semantics, as EPCIS 2.0 §8.2.7.1 defines them: list-valued parameters
//! match any of their values (pipe-delimited, as the REST binding's OpenAPI
//! declares them, or the parameter repeated);
//! different parameters must all match. CBV values match in any of their
//! spellings (`shipping`, `urn:epcglobal:cbv:bizstep:shipping`,
//! `https://ref.gs1.org/cbv/BizStep-shipping`). MATCH_ values are EPC URIs or
//! EPC pattern URIs (`urn:epc:idpat:sgtin:0614141.*`). `WD_` (with
//! descendants) matches like `EQ_`: no location hierarchy is recorded. The
//! parameters only the captured event answers (errors, sensors, source and
//! destination types…) are `doc_query`'s, checked on what the others leave.

use std::hash::{Hash, Hasher};

use ledger::entry::{Action, EventKind, SubjectRole};

use super::doc_query::{DocFilter, Probe};
use super::index::{Field, Runs};
use super::{At, EventRec, Lineage, Mention};

/// Why a query was refused; `parameter` names the one at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{parameter}`: {message}")]
pub struct QueryError {
    pub parameter: String,
    pub message: String,
    /// More events match than `maxEventCount` allows (QueryTooLargeException).
    pub too_large: bool,
}

pub(super) fn bad(parameter: &str, message: impl Into<String>) -> QueryError {
    QueryError {
        parameter: parameter.to_string(),
        message: message.into(),
        too_large: false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Cmp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A parsed SimpleEventQuery.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    event_types: Vec<EventKind>,
    ge_time: Option<i64>,
    lt_time: Option<i64>,
    actions: Vec<Action>,
    biz_steps: Vec<String>,
    dispositions: Vec<String>,
    read_points: Vec<String>,
    biz_locations: Vec<String>,
    /// (which lists, patterns)
    matches: Vec<(Match, Vec<String>)>,
    quantities: Vec<(Cmp, f64)>,
    event_ids: Vec<String>,
    exists_error_declaration: bool,
    descending: bool,
    /// `orderBy` when it is not eventTime: `recordTime` or an extension
    /// field's IRI, read from each captured event (`doc_query::sort_key`).
    order_by: Option<String>,
    event_count_limit: Option<usize>,
    max_event_count: Option<usize>,
    /// `GE_recordTime` and `LT_recordTime`, as given; the graph knows no
    /// record times, so the caller resolves them into `record_window`.
    ge_record_time: Option<i64>,
    lt_record_time: Option<i64>,
    /// Which entries of each shard the query may select: the record times
    /// resolved, or a subscription's new entries.
    pub record_window: Option<RecordWindow>,
    /// What only the captured event answers (`doc_query`).
    pub doc: DocFilter,
    /// Only the events that concern this organisation (`Lineage::event_concerns`).
    pub visible_to: Option<String>,
    /// Identifies the query for paging tokens (its parameters, in order).
    fingerprint: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Match {
    Epc,
    Parent,
    Input,
    Output,
    AnyEpc,
    Class,
    InputClass,
    OutputClass,
    AnyClass,
}

/// The parameters this implementation evaluates (besides paging).
pub const PARAMETERS: &[&str] = &[
    "eventType",
    "GE_eventTime",
    "LT_eventTime",
    "EQ_action",
    "EQ_bizStep",
    "EQ_disposition",
    "EQ_readPoint",
    "WD_readPoint",
    "EQ_bizLocation",
    "WD_bizLocation",
    "MATCH_epc",
    "MATCH_parentID",
    "MATCH_inputEPC",
    "MATCH_outputEPC",
    "MATCH_anyEPC",
    "MATCH_epcClass",
    "MATCH_inputEPCClass",
    "MATCH_outputEPCClass",
    "MATCH_anyEPCClass",
    "EQ_quantity",
    "GT_quantity",
    "GE_quantity",
    "LT_quantity",
    "LE_quantity",
    "EQ_eventID",
    "EXISTS_errorDeclaration",
    "orderBy",
    "orderDirection",
    "eventCountLimit",
    "maxEventCount",
    "GE_recordTime",
    "LT_recordTime",
];

/// Per shard, the entries a query may select: indices from `from[shard]`
/// (0 where not given) up to, not including, `to[shard]` (no end where not
/// given). A shard's entries are recorded in index order, so a span of
/// record times, or what arrived since a subscription last ran, is one such
/// window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordWindow {
    pub from: Vec<u64>,
    pub to: Vec<Option<u64>>,
}

impl RecordWindow {
    /// The entries both windows hold.
    pub fn intersect(&self, other: &RecordWindow) -> RecordWindow {
        let shards = self
            .from
            .len()
            .max(self.to.len())
            .max(other.from.len())
            .max(other.to.len());
        let from = |w: &RecordWindow, s: usize| w.from.get(s).copied().unwrap_or(0);
        let to = |w: &RecordWindow, s: usize| w.to.get(s).copied().flatten();
        RecordWindow {
            from: (0..shards)
                .map(|s| from(self, s).max(from(other, s)))
                .collect(),
            to: (0..shards)
                .map(|s| match (to(self, s), to(other, s)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                })
                .collect(),
        }
    }

    /// Whether the window holds entry `at`.
    pub fn holds(&self, at: &At) -> bool {
        let s = at.shard as usize;
        at.index >= self.from.get(s).copied().unwrap_or(0)
            && self
                .to
                .get(s)
                .copied()
                .flatten()
                .is_none_or(|end| at.index < end)
    }
}

/// An RFC 3339 time in milliseconds, or the refusal naming `parameter`.
pub fn time(parameter: &str, v: &str) -> Result<i64, QueryError> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            bad(
                parameter,
                format!("{v:?} is not an RFC 3339 time like 2026-11-02T00:00:00Z"),
            )
        })
}

/// A time as EPCIS answers write one (RFC 3339, UTC, milliseconds);
/// `None` beyond chrono's range.
pub fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// A CBV value in its bare form: `urn:epcglobal:cbv:bizstep:shipping` and
/// `https://ref.gs1.org/cbv/BizStep-shipping` are both `shipping`.
pub fn cbv_bare(v: &str) -> &str {
    for prefix in [
        "urn:epcglobal:cbv:bizstep:",
        "urn:epcglobal:cbv:disp:",
        "https://ref.gs1.org/cbv/BizStep-",
        "https://ref.gs1.org/cbv/Disp-",
        "https://gs1.org/voc/BizStep-",
        "https://gs1.org/voc/Disp-",
        "cbv:BizStep-",
        "cbv:Disp-",
    ] {
        if let Some(rest) = v.strip_prefix(prefix) {
            return rest;
        }
    }
    v
}

impl EventQuery {
    /// Parses the query string's parameters; an unknown one is refused by name.
    pub fn from_params(params: &[(String, String)]) -> Result<EventQuery, QueryError> {
        let mut q = EventQuery::default();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (name, value) in params {
            (name, value).hash(&mut h);
            let values: Vec<String> = value
                .split('|')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect();
            if values.is_empty()
                && !matches!(
                    name.as_str(),
                    "EXISTS_errorDeclaration" | "EXISTS_sensorElement"
                )
            {
                return Err(bad(name, "give a value"));
            }
            let one = || -> Result<&str, QueryError> {
                match &values[..] {
                    [v] => Ok(v.as_str()),
                    _ => Err(bad(name, "give exactly one value")),
                }
            };
            let count = || -> Result<usize, QueryError> {
                one()?
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(name, format!("{value:?} is not a positive integer")))
            };
            let matching = |m: Match, q: &mut EventQuery| q.matches.push((m, values.clone()));
            match name.as_str() {
                "eventType" => {
                    for v in &values {
                        q.event_types.push(match v.as_str() {
                            "ObjectEvent" => EventKind::Object,
                            "AggregationEvent" => EventKind::Aggregation,
                            "TransformationEvent" => EventKind::Transformation,
                            "AssociationEvent" => EventKind::Association,
                            "TransactionEvent" => EventKind::Transaction,
                            other => return Err(bad(name, format!("{other:?} is not an EPCIS event type (ObjectEvent, AggregationEvent, TransformationEvent, AssociationEvent, TransactionEvent)"))),
                        });
                    }
                }
                "GE_eventTime" => q.ge_time = Some(time(name, one()?)?),
                "LT_eventTime" => q.lt_time = Some(time(name, one()?)?),
                "EQ_action" => {
                    for v in &values {
                        q.actions.push(match v.as_str() {
                            "ADD" => Action::Add,
                            "OBSERVE" => Action::Observe,
                            "DELETE" => Action::Delete,
                            other => return Err(bad(name, format!("{other:?} is not ADD, OBSERVE or DELETE"))),
                        });
                    }
                }
                "EQ_bizStep" => q.biz_steps.extend(values.iter().map(|v| cbv_bare(v).to_string())),
                "EQ_disposition" => q.dispositions.extend(values.iter().map(|v| cbv_bare(v).to_string())),
                "EQ_readPoint" | "WD_readPoint" => q.read_points.extend(values),
                "EQ_bizLocation" | "WD_bizLocation" => q.biz_locations.extend(values),
                "MATCH_epc" => matching(Match::Epc, &mut q),
                "MATCH_parentID" => matching(Match::Parent, &mut q),
                "MATCH_inputEPC" => matching(Match::Input, &mut q),
                "MATCH_outputEPC" => matching(Match::Output, &mut q),
                "MATCH_anyEPC" => matching(Match::AnyEpc, &mut q),
                "MATCH_epcClass" => matching(Match::Class, &mut q),
                "MATCH_inputEPCClass" => matching(Match::InputClass, &mut q),
                "MATCH_outputEPCClass" => matching(Match::OutputClass, &mut q),
                "MATCH_anyEPCClass" => matching(Match::AnyClass, &mut q),
                "EQ_quantity" | "GT_quantity" | "GE_quantity" | "LT_quantity" | "LE_quantity" => {
                    let v: f64 = one()?
                        .parse()
                        .ok()
                        .filter(|v: &f64| v.is_finite())
                        .ok_or_else(|| bad(name, format!("{value:?} is not a number")))?;
                    let cmp = match &name[..2] {
                        "EQ" => Cmp::Eq,
                        "GT" => Cmp::Gt,
                        "GE" => Cmp::Ge,
                        "LT" => Cmp::Lt,
                        _ => Cmp::Le,
                    };
                    q.quantities.push((cmp, v));
                }
                "EQ_eventID" => q.event_ids.extend(values),
                "EXISTS_errorDeclaration" => q.exists_error_declaration = true,
                "orderBy" => match one()? {
                    "eventTime" => q.order_by = None,
                    "recordTime" => q.order_by = Some("recordTime".into()),
                    // An extension field, by its full IRI.
                    iri if iri.contains(':') => q.order_by = Some(iri.to_string()),
                    other => return Err(bad(name, format!("{other:?}: give eventTime, recordTime or an extension field's full IRI"))),
                },
                "orderDirection" => {
                    q.descending = match one()? {
                        "ASC" => false,
                        "DESC" => true,
                        other => return Err(bad(name, format!("{other:?}: give ASC or DESC"))),
                    }
                }
                "eventCountLimit" => q.event_count_limit = Some(count()?),
                "maxEventCount" => q.max_event_count = Some(count()?),
                "GE_recordTime" => q.ge_record_time = Some(time(name, one()?)?),
                "LT_recordTime" => q.lt_record_time = Some(time(name, one()?)?),
                other if q.doc.take(other, &values)? => {}
                other => {
                    return Err(bad(other, "not a SimpleEventQuery parameter this node evaluates; see its OpenAPI document for the list"))
                }
            }
        }
        if q.event_count_limit.is_some() && q.max_event_count.is_some() {
            return Err(bad(
                "maxEventCount",
                "give eventCountLimit or maxEventCount, not both",
            ));
        }
        q.fingerprint = h.finish();
        Ok(q)
    }
}

impl EventQuery {
    /// `GE_recordTime` and `LT_recordTime` (ms), which the caller resolves
    /// into [`EventQuery::record_window`] before the query runs.
    pub fn record_times(&self) -> (Option<i64>, Option<i64>) {
        (self.ge_record_time, self.lt_record_time)
    }
}

/// Each list once: a value named twice is one list, counted once in the
/// choice's size (the merged walk would give its events once anyway).
fn distinct(lists: Vec<&Runs>) -> Vec<&Runs> {
    let mut out: Vec<&Runs> = Vec::with_capacity(lists.len());
    for l in lists {
        if !out.iter().any(|o| std::ptr::eq(*o, l)) {
            out.push(l);
        }
    }
    out
}

/// The events a query can only select among: index lists merged as they
/// are read (no copy, no sort), or a list made for the query.
enum Candidates<'a> {
    Lists(Vec<&'a Runs>),
    Owned(Runs),
}

impl Candidates<'_> {
    fn ordered<'s, K: Fn(u32) -> Cursor + 's>(
        &'s self,
        key: K,
        skip: impl Fn(Cursor) -> bool,
        descending: bool,
    ) -> super::index::Ordered<'s, K> {
        match self {
            Candidates::Lists(lists) => super::index::ordered_union(lists, key, skip, descending),
            Candidates::Owned(runs) => runs.ordered(key, skip, descending),
        }
    }
}

/// Where a page ended: the last event handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub time_ms: i64,
    pub shard: u32,
    pub index: u64,
}

/// Where event `e` sorts: its eventTime, then its place on the ledger.
pub(super) fn cursor_of(e: &EventRec) -> Cursor {
    Cursor {
        time_ms: e.time_ms,
        shard: e.at.shard,
        index: e.at.index,
    }
}

/// The opaque `nextPageToken`: the cursor and the query it belongs to.
pub fn page_token(q: &EventQuery, c: Cursor) -> String {
    format!("{:x}_{}_{}_{}", q.fingerprint, c.time_ms, c.shard, c.index)
}

/// Reads a `nextPageToken` given with `q`.
pub fn parse_token(q: &EventQuery, token: &str) -> Result<Cursor, QueryError> {
    let err = || {
        bad(
            "nextPageToken",
            "not a token this node gave for this query; repeat the query without it",
        )
    };
    let parts: Vec<&str> = token.split('_').collect();
    let [fp, time_ms, shard, index] = parts[..] else {
        return Err(err());
    };
    if u64::from_str_radix(fp, 16).ok() != Some(q.fingerprint) {
        return Err(err());
    }
    Ok(Cursor {
        time_ms: time_ms.parse().map_err(|_| err())?,
        shard: shard.parse().map_err(|_| err())?,
        index: index.parse().map_err(|_| err())?,
    })
}

/// Reads the captured event an entry holds (`None` if it cannot).
pub type ReadEvent<'a> = &'a dyn Fn(&At) -> Option<serde_json::Value>;

/// One page of a query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub events: Vec<At>,
    /// Where the next page starts, if there are more events.
    pub next: Option<Cursor>,
}

/// Is `id` matched by `pattern` (an EPC URI, or an `urn:epc:idpat:` pattern
/// whose fields may be `*`)?
fn epc_matches(pattern: &str, id: &str) -> bool {
    if pattern == id {
        return true;
    }
    let Some(pat) = pattern.strip_prefix("urn:epc:idpat:") else {
        return false;
    };
    let Some((scheme, fields)) = pat.split_once(':') else {
        return false;
    };
    let target = id
        .strip_prefix("urn:epc:id:")
        .or_else(|| id.strip_prefix("urn:epc:class:"));
    let Some((id_scheme, id_fields)) = target.and_then(|t| t.split_once(':')) else {
        return false;
    };
    // A class-level lot (lgtin) matches the instance scheme's pattern (sgtin).
    let same_scheme = id_scheme == scheme || (scheme == "sgtin" && id_scheme == "lgtin");
    let pf: Vec<&str> = fields.split('.').collect();
    let idf: Vec<&str> = id_fields.split('.').collect();
    same_scheme && pf.len() == idf.len() && pf.iter().zip(&idf).all(|(p, i)| *p == "*" || p == i)
}

/// Class-level identifiers (lots) are quantity-list members; instances are EPC-list members.
fn is_class(m: &Mention, name: &str) -> bool {
    m.quantity.is_some()
        || name.starts_with("urn:epc:class:")
        || gs1::DigitalLink::parse(name)
            .is_ok_and(|l| matches!(l.key.ai.code, "01" | "8006") && l.get("21").is_none())
}

impl Lineage {
    fn mention_matches(&self, m: &Mention, which: Match, patterns: &[String]) -> bool {
        let name = self.name(m.id);
        let class = is_class(m, name);
        let role_ok = match which {
            Match::Epc => !class && matches!(m.role, SubjectRole::Object | SubjectRole::Child),
            Match::Parent => m.role == SubjectRole::Parent,
            Match::Input => !class && m.role == SubjectRole::Input,
            Match::Output => !class && m.role == SubjectRole::Output,
            Match::AnyEpc => !class || m.role == SubjectRole::Parent,
            Match::Class => class && matches!(m.role, SubjectRole::Object | SubjectRole::Child),
            Match::InputClass => class && m.role == SubjectRole::Input,
            Match::OutputClass => class && m.role == SubjectRole::Output,
            Match::AnyClass => class && m.role != SubjectRole::Parent,
        };
        // An exact identifier matches the node whatever GS1 spelling the
        // query and the event used; patterns match the node's own name.
        role_ok
            && patterns
                .iter()
                .any(|p| self.id_of(p) == Some(&m.id) || epc_matches(p, name))
    }

    fn event_matches(&self, e: &EventRec, q: &EventQuery) -> bool {
        let named = |id: Option<u32>, wanted: &[String], bare: bool| {
            wanted.is_empty()
                || id.is_some_and(|i| {
                    let n = self.name(i);
                    if bare {
                        wanted.iter().any(|w| w == cbv_bare(n))
                    } else {
                        wanted.iter().any(|w| w == n || self.id_of(w) == Some(&i))
                    }
                })
        };
        if !q.event_types.is_empty() && !q.event_types.contains(&e.kind) {
            return false;
        }
        if q.ge_time.is_some_and(|t| e.time_ms < t) || q.lt_time.is_some_and(|t| e.time_ms >= t) {
            return false;
        }
        if q.record_window.as_ref().is_some_and(|w| !w.holds(&e.at)) {
            return false;
        }
        if !q.actions.is_empty() && !e.action.is_some_and(|a| q.actions.contains(&a)) {
            return false;
        }
        if !named(e.biz_step, &q.biz_steps, true)
            || !named(e.disposition, &q.dispositions, true)
            || !named(e.read_point, &q.read_points, false)
            || !named(e.biz_location, &q.biz_locations, false)
        {
            return false;
        }
        if !q.event_ids.is_empty() && !q.event_ids.iter().any(|w| w == self.name(e.event_id)) {
            return false;
        }
        if q.exists_error_declaration && !e.declares_error {
            return false;
        }
        for (which, patterns) in &q.matches {
            if !e
                .subjects
                .iter()
                .any(|m| self.mention_matches(m, *which, patterns))
            {
                return false;
            }
        }
        if !q.quantities.is_empty()
            && !e.subjects.iter().any(|m| {
                m.quantity.is_some_and(|(milli, _)| {
                    let v = milli as f64 / 1000.0;
                    q.quantities.iter().all(|(cmp, x)| match cmp {
                        Cmp::Eq => v == *x,
                        Cmp::Gt => v > *x,
                        Cmp::Ge => v >= *x,
                        Cmp::Lt => v < *x,
                        Cmp::Le => v <= *x,
                    })
                })
            })
        {
            return false;
        }
        // A partner sees the events that concern it (`readstate::access`).
        if let Some(org) = &q.visible_to {
            if !self.id_of(org).is_some_and(|&o| self.rec_concerns(e, o)) {
                return false;
            }
        }
        true
    }

    /// One page of the events `q` selects, after `after`, in eventTime order
    /// (then shard and index, so the order is total and paging exact).
    pub fn query(
        &self,
        q: &EventQuery,
        after: Option<Cursor>,
        per_page: usize,
    ) -> Result<Page, QueryError> {
        self.query_reading(q, after, per_page, None)
    }

    /// [`Lineage::query`] with `read` giving the captured event an entry
    /// holds, for the parameters only it answers (`doc_query`): they are
    /// checked on the events the graph's parameters leave, so a document is
    /// read only for those.
    pub fn query_reading(
        &self,
        q: &EventQuery,
        after: Option<Cursor>,
        per_page: usize,
        read: Option<ReadEvent<'_>>,
    ) -> Result<Page, QueryError> {
        let s = self.select(q, after, per_page, false, read)?;
        Ok(self.page_of(s))
    }

    /// Whether event `m` is one `q` selects: the graph's tests, then, only
    /// for the events that pass them, the captured event's.
    fn keeps(&self, q: &EventQuery, m: u32, read: Option<ReadEvent<'_>>) -> bool {
        let e = &self.events[m as usize];
        self.event_matches(e, q)
            && (q.doc.is_empty()
                || read
                    .and_then(|r| r(&e.at))
                    .is_some_and(|d| q.doc.matches(&d)))
    }

    /// [`Lineage::query_reading`] without the indexes: every event
    /// evaluated (its captured document read where the query has document
    /// tests), the matches sorted, the page cut, as queries were answered
    /// before the indexes. The reference the indexed path is tested and
    /// measured against (`bench --only lineage`).
    pub fn query_by_scan(
        &self,
        q: &EventQuery,
        after: Option<Cursor>,
        per_page: usize,
        read: Option<ReadEvent<'_>>,
    ) -> Result<Page, QueryError> {
        if !q.doc.is_empty() && read.is_none() {
            return Err(bad("parameters", "document parameters need the documents"));
        }
        let mut hits: Vec<(Cursor, u32)> = (0..self.events.len() as u32)
            .filter(|&m| self.keeps(q, m, read))
            .map(|m| (cursor_of(&self.events[m as usize]), m))
            .collect();
        hits.sort_by_key(|(c, _)| *c);
        let s = self.select_counted(q, hits, after, per_page)?;
        Ok(self.page_of(s))
    }

    fn page_of(&self, s: Selected) -> Page {
        Page {
            next: if s.more {
                s.page.last().map(|(c, _)| *c)
            } else {
                None
            },
            events: s
                .page
                .into_iter()
                .map(|(_, e)| self.events[e as usize].at)
                .collect(),
        }
    }

    /// The same page as [`Lineage::query`], each event with its cursor and
    /// its view; whether more follow; how many match in all.
    pub fn query_views(
        &self,
        q: &EventQuery,
        after: Option<Cursor>,
        per_page: usize,
    ) -> Result<ViewPage, QueryError> {
        let s = self.select(q, after, per_page, true, None)?;
        Ok(ViewPage {
            events: s
                .page
                .into_iter()
                .map(|(c, e)| (c, self.view(&self.events[e as usize])))
                .collect(),
            more: s.more,
            total: s.total.unwrap_or_default(),
        })
    }

    /// The index values of an event's single-valued fields.
    pub(super) fn index_fields(&mut self, e: &EventRec) -> Vec<(Field, u32)> {
        let mut fields = vec![(Field::Kind, e.kind as u32)];
        if let Some(a) = e.action {
            fields.push((Field::Action, a as u32));
        }
        for (field, value) in [
            (Field::BizStep, e.biz_step),
            (Field::Disposition, e.disposition),
        ] {
            if let Some(v) = value {
                let bare = cbv_bare(&self.names[v as usize]).to_string();
                fields.push((field, self.index.cbv_value(&bare)));
            }
        }
        for (field, value) in [
            (Field::ReadPoint, e.read_point),
            (Field::BizLocation, e.biz_location),
        ] {
            if let Some(v) = value {
                fields.push((field, v));
            }
        }
        let mut parties: Vec<u32> = [Some(e.recorded_by), e.read_point, e.biz_location]
            .into_iter()
            .flatten()
            .chain(e.sources.iter().chain(&e.destinations).copied())
            .collect();
        parties.sort_unstable();
        parties.dedup();
        fields.extend(parties.into_iter().map(|p| (Field::Party, p)));
        fields
    }

    /// The events organisation `org` may be concerned with (`rec_concerns`
    /// decides): those naming it, or a place or party its GLN owns.
    fn concerning(&self, org: &str) -> Vec<&Runs> {
        let Some(&o) = self.id_of(org) else {
            return Vec::new();
        };
        // The organisation's own GLN base, which its places share (its
        // node's name may be another spelling of that GLN).
        let owned = self
            .gln_bases
            .get(&o)
            .and_then(|base| self.gln_locations.get(base))
            .into_iter()
            .flatten()
            .copied()
            .filter(|&l| l != o && self.owner_id(l) == Some(o));
        std::iter::once(o)
            .chain(owned)
            .map(|p| self.index.list(Field::Party, p))
            .filter(|l| l.len() > 0)
            .collect()
    }

    /// The events `q` can only select among, in cursor order: the smallest
    /// of what its exact identifiers name and of the index lists its
    /// single-field parameters select; all events when it has none.
    fn candidates(&self, q: &EventQuery) -> Candidates<'_> {
        let ix = &self.index;
        let cbv = |field: Field, names: &[String]| -> Vec<&Runs> {
            distinct(
                names
                    .iter()
                    .map(|n| ix.list(field, ix.cbv_known(n).unwrap_or(u32::MAX)))
                    .collect(),
            )
        };
        let node = |field: Field, names: &[String]| -> Vec<&Runs> {
            distinct(
                names
                    .iter()
                    .map(|n| ix.list(field, self.id_of(n).copied().unwrap_or(u32::MAX)))
                    .collect(),
            )
        };
        let choices: Vec<Vec<&Runs>> = [
            (!q.event_types.is_empty()).then(|| {
                distinct(
                    q.event_types
                        .iter()
                        .map(|k| ix.list(Field::Kind, *k as u32))
                        .collect(),
                )
            }),
            (!q.actions.is_empty()).then(|| {
                distinct(
                    q.actions
                        .iter()
                        .map(|a| ix.list(Field::Action, *a as u32))
                        .collect(),
                )
            }),
            (!q.biz_steps.is_empty()).then(|| cbv(Field::BizStep, &q.biz_steps)),
            (!q.dispositions.is_empty()).then(|| cbv(Field::Disposition, &q.dispositions)),
            (!q.read_points.is_empty()).then(|| node(Field::ReadPoint, &q.read_points)),
            (!q.biz_locations.is_empty()).then(|| node(Field::BizLocation, &q.biz_locations)),
            q.visible_to.as_deref().map(|org| self.concerning(org)),
        ]
        .into_iter()
        .flatten()
        .collect();
        // Document parameters: each test's lists (its values' keys, or the
        // buckets of an axis its range covers) as a choice. An event can be
        // in several of one choice's lists; the merged walk gives it once.
        let mut choices = choices;
        let mut doc_choices = q.doc.candidates();
        if q.exists_error_declaration {
            doc_choices.push(vec![Probe::Key(
                super::doc_query::DECLARES_ERROR.to_string(),
            )]);
        }
        for probes in doc_choices {
            choices.push(distinct(
                probes
                    .iter()
                    .flat_map(|p| match p {
                        Probe::Key(k) => {
                            vec![ix.list(Field::Doc, ix.doc_known(k).unwrap_or(u32::MAX))]
                        }
                        Probe::Buckets { axis, low, high } => ix.buckets(axis, *low, *high),
                    })
                    .collect(),
            ));
        }
        // Exact identifiers: the events that name them, counted or not (yet).
        let named: Option<Vec<u32>> = q
            .matches
            .iter()
            .find(|(_, ps)| ps.iter().all(|p| !p.starts_with("urn:epc:idpat:")))
            .map(|(_, ps)| {
                ps.iter()
                    .filter_map(|p| self.id_of(p.as_str()))
                    .flat_map(|&id| {
                        let waiting = self.uncounted.get(&id).map_or(&[][..], Vec::as_slice);
                        self.mentions[id as usize].iter().chain(waiting).copied()
                    })
                    .collect()
            });
        // Event ids: the events with them (exactly as written, as events name them).
        let with_ids: Option<Vec<u32>> = (!q.event_ids.is_empty()).then(|| {
            q.event_ids
                .iter()
                .filter_map(|i| self.ids.get(i))
                .flat_map(|&i| ix.with_id(i))
                .collect()
        });
        let named = [named, with_ids].into_iter().flatten().min_by_key(Vec::len);
        let size = |lists: &Vec<&Runs>| lists.iter().map(|l| l.len()).sum::<usize>();
        let best = choices.into_iter().min_by_key(size);
        // A span of record times (a subscription's new entries, say) is
        // often the most selective: its events are found by entry index.
        if let Some(w) = &q.record_window {
            let key = |m: u32| cursor_of(&self.events[m as usize]);
            let chosen = match (&named, &best) {
                (Some(n), Some(b)) => n.len().min(size(b)),
                (Some(n), None) => n.len(),
                (None, Some(b)) => size(b),
                (None, None) => self.index.all().len(),
            };
            if ix.window_len(w, key) < chosen {
                return Candidates::Owned(self.sorted(ix.in_window(w, key)));
            }
        }
        match (named, best) {
            (Some(n), Some(b)) if size(&b) < n.len() => Candidates::Lists(b),
            (Some(n), _) => Candidates::Owned(self.sorted(n)),
            (None, Some(b)) => Candidates::Lists(b),
            (None, None) => Candidates::Lists(vec![self.index.all()]),
        }
    }

    /// Events as one run in cursor order, each once.
    fn sorted(&self, mut events: Vec<u32>) -> Runs {
        events.sort_by_key(|&m| cursor_of(&self.events[m as usize]));
        events.dedup();
        Runs::sorted(events)
    }

    fn select(
        &self,
        q: &EventQuery,
        after: Option<Cursor>,
        per_page: usize,
        count_all: bool,
        read: Option<ReadEvent<'_>>,
    ) -> Result<Selected, QueryError> {
        if (q.ge_record_time.is_some() || q.lt_record_time.is_some()) && q.record_window.is_none() {
            return Err(bad(
                if q.ge_record_time.is_some() { "GE_recordTime" } else { "LT_recordTime" },
                "record times are the ledger's (the heads that cover each entry); this path cannot resolve them, ask GET /events",
            ));
        }
        if !q.doc.is_empty() && read.is_none() {
            return Err(bad(
                "parameters",
                "this query names parameters only the captured events answer (error declarations, sensors, source and destination types); ask GET /events",
            ));
        }
        let candidates = self.candidates(q);
        let key = |m: u32| cursor_of(&self.events[m as usize]);
        let (ge, lt) = (q.ge_time, q.lt_time);
        let before = move |c: Cursor| ge.is_some_and(|t| c.time_ms < t);
        let past = move |c: Cursor| lt.is_some_and(|t| c.time_ms >= t);
        let matches = |m: &u32| self.keeps(q, *m, read);
        if let Some(field) = &q.order_by {
            // Ordered by what only the captured event holds: every match is
            // read and sorted (no index keeps this order). The cursor's time
            // is the sort key, so paging is exact as for eventTime.
            let Some(read) = read else {
                return Err(bad(
                    "orderBy",
                    "ordering by recordTime or an extension field reads the captured events; ask GET /events",
                ));
            };
            let mut hits: Vec<(Cursor, u32)> = candidates
                .ordered(key, before, false)
                .take_while(|&m| !past(key(m)))
                .filter(matches)
                .map(|m| {
                    let e = &self.events[m as usize];
                    let k = read(&e.at)
                        .and_then(|d| super::doc_query::sort_key(field, &d))
                        .unwrap_or(i64::MAX);
                    (
                        Cursor {
                            time_ms: k,
                            ..cursor_of(e)
                        },
                        m,
                    )
                })
                .collect();
            hits.sort_unstable_by_key(|(c, _)| *c);
            return self.select_counted(q, hits, after, per_page);
        }
        if count_all {
            let hits: Vec<(Cursor, u32)> = candidates
                .ordered(key, before, false)
                .take_while(|&m| !past(key(m)))
                .filter(matches)
                .map(|m| (key(m), m))
                .collect();
            return self.select_counted(q, hits, after, per_page);
        }
        if q.event_count_limit.is_some() || q.max_event_count.is_some() {
            // Only the first `limit` matches in the query's order count, and
            // `max` + 1 matches are enough to refuse: the walk stops there.
            let bound = match (q.event_count_limit, q.max_event_count) {
                (Some(limit), _) => limit,
                (None, Some(max)) => max.saturating_add(1),
                (None, None) => usize::MAX,
            };
            let walk: Box<dyn Iterator<Item = u32>> = if q.descending {
                Box::new(
                    candidates
                        .ordered(key, past, true)
                        .take_while(|&m| !before(key(m))),
                )
            } else {
                Box::new(
                    candidates
                        .ordered(key, before, false)
                        .take_while(|&m| !past(key(m))),
                )
            };
            let mut hits: Vec<(Cursor, u32)> = walk
                .filter(matches)
                .take(bound)
                .map(|m| (key(m), m))
                .collect();
            if q.descending {
                hits.reverse();
            }
            return self.select_counted(q, hits, after, per_page);
        }
        // A page: from where the last one ended (and the time range begins),
        // the first matches in order, and whether one more follows. The
        // candidates come in cursor order, which starts with eventTime.
        let page_from = |it: &mut dyn Iterator<Item = u32>| {
            let mut it = it.filter(matches);
            let page: Vec<(Cursor, u32)> =
                it.by_ref().take(per_page).map(|m| (key(m), m)).collect();
            let more = it.next().is_some();
            (page, more)
        };
        let (page, more) = if q.descending {
            let skip = |c: Cursor| after.is_some_and(|a| c >= a) || past(c);
            page_from(
                &mut candidates
                    .ordered(key, skip, true)
                    .take_while(|&m| !before(key(m))),
            )
        } else {
            let skip = |c: Cursor| after.is_some_and(|a| c <= a) || before(c);
            page_from(
                &mut candidates
                    .ordered(key, skip, false)
                    .take_while(|&m| !past(key(m))),
            )
        };
        Ok(Selected {
            page,
            more,
            total: None,
        })
    }

    /// [`Lineage::select`] when the whole answer counts: its size (GraphQL's
    /// `totalCount`, `maxEventCount`) or its first events (`eventCountLimit`).
    /// `hits` are every event `q` selects, in cursor order.
    fn select_counted(
        &self,
        q: &EventQuery,
        mut hits: Vec<(Cursor, u32)>,
        after: Option<Cursor>,
        per_page: usize,
    ) -> Result<Selected, QueryError> {
        if let Some(max) = q.max_event_count {
            if hits.len() > max {
                return Err(QueryError {
                    parameter: "maxEventCount".into(),
                    message: format!("more than {max} events match; narrow the query"),
                    too_large: true,
                });
            }
        }
        if q.descending {
            hits.reverse();
        }
        if let Some(limit) = q.event_count_limit {
            hits.truncate(limit);
        }
        let start = match after {
            None => 0,
            Some(c) => hits.partition_point(|(k, _)| if q.descending { *k >= c } else { *k <= c }),
        };
        let page: Vec<(Cursor, u32)> = hits[start..].iter().take(per_page).copied().collect();
        Ok(Selected {
            more: start + page.len() < hits.len(),
            total: Some(hits.len()),
            page,
        })
    }
}

/// A page of events with their cursors and views, whether more follow, and
/// how many match in all.
pub struct ViewPage {
    pub events: Vec<(Cursor, super::EventView)>,
    pub more: bool,
    pub total: usize,
}

/// A page of matching events (cursor, event number), whether more follow,
/// and how many match in all.
struct Selected {
    page: Vec<(Cursor, u32)>,
    more: bool,
    /// Counted when asked for (`select`'s `count_all`).
    total: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epc_patterns_match_by_field() {
        assert!(epc_matches(
            "urn:epc:idpat:sgtin:0614141.107346.*",
            "urn:epc:id:sgtin:0614141.107346.2017"
        ));
        assert!(epc_matches(
            "urn:epc:idpat:sgtin:0614141.*.*",
            "urn:epc:id:sgtin:0614141.107346.2017"
        ));
        assert!(epc_matches(
            "urn:epc:idpat:sgtin:0614141.010001.*",
            "urn:epc:class:lgtin:0614141.010001.L1"
        ));
        assert!(!epc_matches(
            "urn:epc:idpat:sgtin:0614141.107347.*",
            "urn:epc:id:sgtin:0614141.107346.2017"
        ));
        assert!(!epc_matches(
            "urn:epc:idpat:sscc:0614141.*",
            "urn:epc:id:sgtin:0614141.107346.2017"
        ));
        assert!(epc_matches(
            "urn:epc:id:sscc:0614141.1234567890",
            "urn:epc:id:sscc:0614141.1234567890"
        ));
    }

    #[test]
    fn unknown_and_malformed_parameters_are_named() {
        let p = |n: &str, v: &str| vec![(n.to_string(), v.to_string())];
        for (n, v) in [
            ("eventType", "FooEvent"),
            ("GE_eventTime", "yesterday"),
            ("EQ_action", "add"),
            ("GT_quantity", "lots"),
            ("orderDirection", "UP"),
            ("eventCountLimit", "0"),
            ("EQ_bizStp", "shipping"),
            ("GE_recordTime", "2026-11-01"),
            ("orderBy", "colour"),
        ] {
            let e = EventQuery::from_params(&p(n, v)).unwrap_err();
            assert_eq!(e.parameter, n, "{e}");
        }
        let q = EventQuery::from_params(&p("EQ_bizStep", "urn:epcglobal:cbv:bizstep:shipping"))
            .unwrap();
        assert_eq!(q.biz_steps, ["shipping"]);
        for time_ms in [-5, 0, 1_700_000_000_000] {
            let c = Cursor {
                time_ms,
                shard: 1,
                index: 9,
            };
            assert_eq!(parse_token(&q, &page_token(&q, c)), Ok(c));
        }
        assert!(parse_token(&q, "zz_1_2_3").is_err());
        let other = EventQuery::from_params(&p("EQ_bizStep", "receiving")).unwrap();
        assert!(
            parse_token(
                &other,
                &page_token(
                    &q,
                    Cursor {
                        time_ms: 1,
                        shard: 0,
                        index: 2
                    }
                )
            )
            .is_err(),
            "a token belongs to its query"
        );
    }
}
