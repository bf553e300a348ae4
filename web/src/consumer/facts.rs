//! What a consumer page says about one lot, gathered from the read model:
//! each fact with the ledger entry it rests on, so the page can offer the
//! proof of each.

use analytics::lineage::{At, EventView, Lineage, VerdictView};
use analytics::profile::{Direction, Quantity, RuleKind};
use analytics::readings::Series;
use analytics::RulesConfig;

/// One step of the journey, in words the page translates.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub what: StepKind,
    pub time_ms: i64,
    /// The place's organisation name, else its identifier.
    pub place: Option<String>,
    pub by: String,
    pub entry: At,
}

/// The kinds of custody step a shopper tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Harvested,
    Packed,
    Shipped,
    Received,
    Stored,
    Transformed,
    Sold,
    Other,
}

impl StepKind {
    fn of(e: &EventView) -> StepKind {
        // A transformation makes something new, whatever step it names
        // (often `commissioning`, which otherwise reads as packing).
        if e.event_type == "TransformationEvent" {
            return StepKind::Transformed;
        }
        let step = e.biz_step.as_deref().map(|s| {
            s.rsplit([':', '/'])
                .next()
                .unwrap_or(s)
                .to_ascii_lowercase()
        });
        match step.as_deref() {
            Some("harvesting") => StepKind::Harvested,
            Some("commissioning" | "packing") => StepKind::Packed,
            Some("shipping" | "departing") => StepKind::Shipped,
            Some("receiving" | "arriving" | "accepting") => StepKind::Received,
            Some("storing") => StepKind::Stored,
            Some("transforming" | "creating_class_instance") => StepKind::Transformed,
            Some("retail_selling" | "dispensing") => StepKind::Sold,
            _ => StepKind::Other,
        }
    }
}

/// What went wrong, as a shopper would say it: from the kind of rule that
/// found the breach (its explanation is written for investigators).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trouble {
    /// Warmer than the limit, °C.
    Above(f64),
    /// Colder than the limit, °C.
    Below(f64),
    /// A sudden change of temperature.
    Jump,
    /// No readings for too long.
    Silence,
    /// A hard knock.
    Shock,
    /// The cooling cycling on and off.
    Swings,
    /// Too warm on average (mean kinetic temperature above the limit, °C).
    WarmOnAverage(f64),
    /// Any other condition of its profile.
    Other,
}

impl Trouble {
    fn of(rule: Option<&RuleKind>) -> Trouble {
        match rule {
            Some(RuleKind::Limit(l)) if l.quantity == Quantity::Temperature => match l.direction {
                Direction::Above => Trouble::Above(l.limit),
                Direction::Below => Trouble::Below(l.limit),
            },
            Some(RuleKind::RateOfChange { .. }) => Trouble::Jump,
            Some(RuleKind::MissingData) => Trouble::Silence,
            Some(RuleKind::Shock { .. }) => Trouble::Shock,
            Some(RuleKind::ReeferSwings { .. }) => Trouble::Swings,
            Some(RuleKind::Mkt { limit_c, .. }) => Trouble::WarmOnAverage(*limit_c),
            _ => Trouble::Other,
        }
    }
}

/// A breach in words: which way, how far past which limit, for how long, when.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    pub rule: String,
    pub trouble: Trouble,
    pub explanation: String,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    /// The journey step the lot was in when it began.
    pub during: Option<StepKind>,
    pub entry: At,
}

/// An open recall of this lot.
#[derive(Debug, Clone, PartialEq)]
pub struct RecallNotice {
    pub reason: String,
    pub since_ms: i64,
    pub by: String,
    pub entry: At,
}

/// Everything the page shows about a lot.
#[derive(Debug, Clone)]
pub struct LotFacts {
    /// The identifier as events name it.
    pub lot: String,
    pub gtin: Option<String>,
    pub lot_number: Option<String>,
    /// The grower or maker.
    pub origin: String,
    /// Where the first event happened.
    pub origin_place: Option<String>,
    pub origin_entry: At,
    pub journey: Vec<Step>,
    /// Third parties' observations (inspections): labelled as such, they
    /// move nothing in the journey.
    pub observations: Vec<Step>,
    /// The allowed temperature range, °C (from the product's profile).
    pub range_c: (Option<f64>, Option<f64>),
    pub breaches: Vec<Breach>,
    pub recalls: Vec<RecallNotice>,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// The name a place or organisation identifier stands for.
fn place_name(g: &Lineage, id: &str) -> String {
    g.org(id).map_or_else(|| id.to_string(), |(n, _)| n.clone())
}

/// The facts about the thing `id` names (any GS1 spelling); `None` when no
/// event names it.
pub fn lot_facts(g: &Lineage, rules: Option<&RulesConfig>, id: &str) -> Option<LotFacts> {
    let view = g.lot(id)?;
    let canonical = gs1::canonical_id(id).unwrap_or_else(|| id.to_string());
    let events = g.events_about(id);
    let step = |e: &EventView| Step {
        what: StepKind::of(e),
        time_ms: e.time_ms,
        place: e.location.as_deref().map(|l| place_name(g, l)),
        by: place_name(g, &e.recorded_by),
        entry: e.entry,
    };
    let journey: Vec<Step> = events.iter().map(step).collect();
    let observations: Vec<Step> = g.observations_about(id).iter().map(step).collect();
    let step_at = |t: i64| {
        journey
            .iter()
            .take_while(|s| s.time_ms <= t)
            .last()
            .map(|s| s.what)
    };
    let profile = rules.map(|r| r.profile_for_gtin(view.gtin.as_deref()));
    let rule_kind = |name: &str| {
        profile
            .and_then(|p| p.rules.iter().find(|r| r.name == name))
            .map(|r| &r.kind)
    };
    let breaches: Vec<Breach> = g
        .verdicts_about(id)
        .into_iter()
        .filter(|v: &VerdictView| v.kind == "breach")
        .map(|v| Breach {
            trouble: Trouble::of(rule_kind(&v.rule)),
            during: step_at(v.from_ms),
            rule: v.rule,
            explanation: v.explanation,
            from_ms: v.from_ms,
            to_ms: v.to_ms,
            entry: v.entry,
        })
        .collect();
    let recalls = view
        .recalls
        .iter()
        .filter(|r| r.open)
        .map(|r| {
            // The change that put this lot in the recall (the opening, or a
            // widening later): its reason, time and entry are this lot's.
            let this_lot =
                |a: &String| *a == view.lot || gs1::canonical_id(a).is_some_and(|c| c == canonical);
            let step = r
                .history
                .iter()
                .find(|s| s.added.iter().any(this_lot))
                .or(r.history.first());
            RecallNotice {
                reason: step.map_or_else(|| r.reason.clone(), |s| s.reason.clone()),
                since_ms: step.map_or(0, |s| s.at_ms),
                by: step.map_or_else(String::new, |s| place_name(g, &s.by)),
                entry: step.map_or(view.first_event.entry, |s| s.entry),
            }
        })
        .collect();
    let range_c = profile.map_or((None, None), |p| {
        let mut lo: Option<f64> = None;
        let mut hi: Option<f64> = None;
        for r in &p.rules {
            if let RuleKind::Limit(l) = &r.kind {
                if l.quantity != Quantity::Temperature {
                    continue;
                }
                match l.direction {
                    Direction::Above => hi = Some(hi.map_or(l.limit, |h: f64| h.min(l.limit))),
                    Direction::Below => lo = Some(lo.map_or(l.limit, |x: f64| x.max(l.limit))),
                }
            }
        }
        (lo, hi)
    });
    let first_ms = journey
        .first()
        .map_or(view.first_event.time_ms, |s| s.time_ms);
    let last_ms = journey.last().map_or(first_ms, |s| s.time_ms);
    Some(LotFacts {
        lot: view.lot.clone(),
        gtin: view.gtin.clone(),
        lot_number: view.lot_number.clone(),
        origin: place_name(g, &view.origin),
        origin_place: view
            .first_event
            .location
            .as_deref()
            .map(|l| place_name(g, l)),
        origin_entry: view.first_event.entry,
        journey,
        observations,
        range_c,
        breaches,
        recalls,
        first_ms,
        last_ms,
    })
}

/// The lowest and highest reading of every series (°C), if any.
pub fn extremes(series: &[Series]) -> Option<(f64, f64)> {
    let buckets = series.iter().flat_map(|s| &s.buckets);
    buckets.fold(None, |acc, b| {
        Some(match acc {
            None => (b.min_c, b.max_c),
            Some((lo, hi)) => (f64::min(lo, b.min_c), f64::max(hi, b.max_c)),
        })
    })
}
