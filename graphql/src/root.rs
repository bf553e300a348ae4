//! The root types: what investigators (and partners, for their own
//! organisation) can ask, change and follow.

use std::sync::Arc;

use analytics::lineage::query::{page_token, parse_token, EventQuery};
use api::ApiError;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, InputObject, Object, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;

use crate::context::{caller, cost, refusal, state, with_graph, write_path, Answer, PageLimits};
use crate::model::{
    Device, Direction, Entry, Event, Exposure, Head, Location, Lot, Organization, Proof, Recall,
    RecallChanged, RecallNotice, SearchHit, Series, Trace, Verdict,
};
use crate::page::{page, Page, TotalCount};

pub struct Query;

/// Which breaches to list; every field narrows.
#[derive(InputObject, Default)]
pub struct BreachFilter {
    /// Only breaches about subjects this organisation (SGLN URN) recorded
    /// events about or registered.
    pub organization: Option<String>,
    /// Only breaches about lots of this product (GTIN-14).
    pub product: Option<String>,
    /// Only breaches about this lot (or container, or device).
    pub lot: Option<String>,
    /// Only breaches of this rule.
    pub rule: Option<String>,
    /// Only excursions still going on at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only excursions that began before this time.
    pub to: Option<DateTime<Utc>>,
}

/// Which events to list (EPCIS SimpleEventQuery's common parameters).
#[derive(InputObject, Default)]
pub struct EventFilter {
    /// Events naming this identifier in any role (EPC, class, container…).
    pub epc: Option<String>,
    /// ObjectEvent, AggregationEvent, TransformationEvent, AssociationEvent, TransactionEvent.
    pub event_type: Option<String>,
    /// A CBV business step (`shipping` or its full URI).
    pub biz_step: Option<String>,
    /// The business location (SGLN URN).
    pub biz_location: Option<String>,
    /// Events at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Events before this time.
    pub to: Option<DateTime<Utc>>,
}

fn bad(name: &str, message: impl Into<String>) -> async_graphql::Error {
    refusal(ApiError::InvalidParameter {
        name: name.into(),
        message: message.into(),
    })
}

/// Whether the interval `[from, to]` (open-ended when `to` is none) meets `[a, b]`.
fn meets(from: i64, to: Option<i64>, a: i64, b: i64) -> bool {
    from <= b && to.is_none_or(|t| t >= a)
}

#[Object]
impl Query {
    /// A lot by its identifier as events name it (`epc`: an LGTIN EPC URN or
    /// GS1 Digital Link URI), or by `gtin` and `lot` number. Null when no
    /// event names it. Partners see lots their organisation recorded events about.
    async fn lot(
        &self,
        ctx: &Context<'_>,
        epc: Option<String>,
        gtin: Option<String>,
        lot: Option<String>,
    ) -> Answer<Option<Lot>> {
        let id = match (epc, gtin, lot) {
            (Some(e), None, None) => with_graph(ctx, |g| g.knows(&e).then_some(e)),
            (None, Some(g), Some(l)) => {
                if g.len() != 14
                    || !g.bytes().all(|b| b.is_ascii_digit())
                    || !gs1::check_digit_ok(&g)
                {
                    return Err(bad(
                        "gtin",
                        format!("{g:?} is not a GTIN-14 with a valid check digit"),
                    ));
                }
                with_graph(ctx, |gr| gr.lot_named(&g, &l))
            }
            _ => {
                return Err(bad(
                    "epc",
                    "give either `epc`, or `gtin` and `lot` (the lot number)",
                ))
            }
        };
        let Some(id) = id else { return Ok(None) };
        with_graph(ctx, |g| caller(ctx).must_see(g, &id))?;
        Ok(Some(Lot(id)))
    }

    /// A lot's genealogy: `FORWARD` (every lot made from it, where each is
    /// and who holds it) or `BACKWARD` (what it was made from). Investigators only.
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    async fn trace(
        &self,
        ctx: &Context<'_>,
        lot: String,
        #[graphql(default_with = "Direction::Forward")] direction: Direction,
        #[graphql(desc = "Transformations to follow; all when absent")] depth: Option<i32>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Trace> {
        caller(ctx).investigator("a trace")?;
        crate::trace(ctx, &lot, direction, depth, first, after)
    }

    /// Lots that shared a container, pallet, reefer, logger or place with
    /// `lot` during `[from, to]` (such as a breach's interval). Investigators only.
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    async fn co_exposure(
        &self,
        ctx: &Context<'_>,
        lot: String,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Page<Exposure>> {
        caller(ctx).investigator("co-exposure")?;
        let (a, b) = (
            from.map_or(i64::MIN, |t| t.timestamp_millis()),
            to.map_or(i64::MAX, |t| t.timestamp_millis()),
        );
        if a > b {
            return Err(bad("from", "`from` is after `to`"));
        }
        let c = with_graph(ctx, |g| g.co_exposure(&lot, a, b))
            .ok_or_else(|| refusal(crate::unknown_lot(&lot)))?;
        page(
            ctx,
            c.exposures.into_iter().map(Exposure).collect(),
            first,
            after,
        )
    }

    /// A recall by id (the id of the entry that opened it). Partners see
    /// the recalls of their lots, and of those only their lots.
    async fn recall(&self, ctx: &Context<'_>, id: String) -> Answer<Option<Recall>> {
        let who = caller(ctx);
        with_graph(ctx, |g| {
            let Some(r) = g.recalls().get(&id) else {
                return Ok(None);
            };
            if !who.may_see_recall(g, &id) {
                return Err(refusal(ApiError::Forbidden(format!(
                    "recall {id} names no lot of {}",
                    who.0.org
                ))));
            }
            Ok(Some(Recall(r.clone())))
        })
    }

    /// Recalls, newest last; only those naming `lot`, only open ones with
    /// `open: true`. Investigators only.
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    async fn recalls(
        &self,
        ctx: &Context<'_>,
        lot: Option<String>,
        open: Option<bool>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Page<Recall>> {
        caller(ctx).investigator("the recall list")?;
        let all: Vec<Recall> = with_graph(ctx, |g| {
            let list: Vec<&analytics::recall::Recall> = match &lot {
                Some(l) => g.recalls().of_lot(l),
                None => g.recalls().all().collect(),
            };
            list.into_iter()
                .filter(|r| open.is_none_or(|o| r.open == o))
                .cloned()
                .map(Recall)
                .collect()
        });
        page(ctx, all, first, after)
    }

    /// Breaches the rules recorded, in ledger order. Partners see those
    /// about their own lots, containers and devices.
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    async fn breaches(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] filter: BreachFilter,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Page<Verdict>> {
        let who = caller(ctx);
        let (a, b) = (
            filter.from.map_or(i64::MIN, |t| t.timestamp_millis()),
            filter.to.map_or(i64::MAX, |t| t.timestamp_millis()),
        );
        let list: Vec<Verdict> = with_graph(ctx, |g| {
            g.verdicts()
                .filter(|v| v.kind == "breach")
                .filter(|v| filter.lot.as_ref().is_none_or(|l| &v.subject == l))
                .filter(|v| filter.rule.as_ref().is_none_or(|r| &v.rule == r))
                .filter(|v| {
                    filter
                        .product
                        .as_ref()
                        .is_none_or(|p| analytics::watches::gtin_of(&v.subject).as_ref() == Some(p))
                })
                .filter(|v| meets(v.from_ms, v.to_ms, a, b))
                .filter(|v| {
                    filter.organization.as_ref().is_none_or(|o| {
                        g.about_concerns(&v.subject, v.from_ms, v.to_ms.unwrap_or(i64::MAX), o)
                    })
                })
                .filter(|v| who.may_see(g, &v.subject))
                .map(Verdict)
                .collect()
        });
        page(ctx, list, first, after)
    }

    /// A registered device. Partners see their own organisation's devices.
    async fn device(&self, ctx: &Context<'_>, id: String) -> Answer<Option<Device>> {
        cost(ctx).trip("devices", 0);
        if write_path(ctx).device(&id).is_none() {
            return Ok(None);
        }
        with_graph(ctx, |g| caller(ctx).must_see(g, &id))?;
        Ok(Some(Device(id)))
    }

    /// Temperatures downsampled (min, max, mean per bucket): of one `device`,
    /// or of a `lot` (each logger that watched it, while it watched it).
    #[graphql(complexity = "10 * child_complexity")]
    async fn readings(
        &self,
        ctx: &Context<'_>,
        device: Option<String>,
        lot: Option<String>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(desc = "Bucket width in minutes (60: hourly)")] bucket_minutes: i32,
    ) -> Answer<Vec<Series>> {
        match (device, lot) {
            (Some(d), None) => {
                with_graph(ctx, |g| caller(ctx).must_see(g, &d))?;
                Ok(vec![
                    crate::series(ctx, &d, from, to, bucket_minutes).await?,
                ])
            }
            (None, Some(l)) => {
                with_graph(ctx, |g| caller(ctx).must_see(g, &l))?;
                crate::lot_readings(ctx, &l, from, to, bucket_minutes).await
            }
            _ => Err(bad("device", "give either `device` or `lot`")),
        }
    }

    /// EPCIS events, oldest first. Partners see the events their
    /// organisation captured.
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] filter: EventFilter,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Connection<String, Event, TotalCount>> {
        let who = caller(ctx);
        let mut params: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                params.push((k.to_string(), v));
            }
        };
        // Lots are classes (LGTIN); serials, containers and the rest instances.
        let class = filter
            .epc
            .as_deref()
            .is_some_and(|e| e.starts_with("urn:epc:class:") || e.contains("/10/"));
        put(
            if class {
                "MATCH_anyEPCClass"
            } else {
                "MATCH_anyEPC"
            },
            filter.epc,
        );
        put("eventType", filter.event_type);
        put("EQ_bizStep", filter.biz_step);
        put("EQ_bizLocation", filter.biz_location);
        put("GE_eventTime", filter.from.map(|t| t.to_rfc3339()));
        put("LT_eventTime", filter.to.map(|t| t.to_rfc3339()));
        let mut q = EventQuery::from_params(&params).map_err(|e| bad(&e.parameter, e.message))?;
        if !who.sees_all() {
            q.visible_to = Some(who.0.org.clone());
        }
        let limits = ctx.data_unchecked::<PageLimits>();
        let n = match first {
            None => limits.default_page,
            Some(f) if f >= 0 && f as usize <= limits.max_page => f as usize,
            Some(f) => return Err(bad("first", format!("{f}: give 0 to {}", limits.max_page))),
        };
        let after_cursor = after
            .map(|a| parse_token(&q, &a).map_err(|e| bad("after", e.message)))
            .transpose()?;
        let analytics::lineage::query::ViewPage {
            events,
            more,
            total,
        } = with_graph(ctx, |g| g.query_views(&q, after_cursor, n))
            .map_err(|e| bad(&e.parameter, e.message))?;
        let mut c = Connection::with_additional_fields(
            after_cursor.is_some(),
            more,
            TotalCount { total_count: total },
        );
        c.edges.extend(
            events
                .into_iter()
                .map(|(cur, e)| Edge::new(page_token(&q, cur), Event(e))),
        );
        Ok(c)
    }

    /// An organisation by its GLN (as registered): its name and role, the
    /// network's directory, which every member reads (as it reads the
    /// registration entries).
    async fn organization(&self, ctx: &Context<'_>, id: String) -> Answer<Option<Organization>> {
        Ok(with_graph(ctx, |g| g.org(&id).map(|_| Organization(id))))
    }

    /// A place (SGLN URN) where events happened. Partners see the events
    /// there that concern their organisation (as under an event's location).
    async fn location(&self, ctx: &Context<'_>, id: String) -> Answer<Option<Location>> {
        Ok(with_graph(ctx, |g| g.knows_location(&id)).then_some(Location(id)))
    }

    /// Organisations, products, lots, locations, devices and events by
    /// identifier or words, typos tolerated; best first. Investigators only.
    async fn search(
        &self,
        ctx: &Context<'_>,
        q: String,
        #[graphql(default = 20)] first: i32,
    ) -> Answer<Vec<SearchHit>> {
        caller(ctx).investigator("search")?;
        let max = ctx.data_unchecked::<PageLimits>().max_page;
        if first < 1 || first as usize > max {
            return Err(bad("first", format!("{first}: give 1 to {max}")));
        }
        cost(ctx).trip("search", 0);
        let index = state(ctx).search_index().map_err(refusal)?;
        let hits = index
            .search(&q, first as usize)
            .map_err(|e| refusal(ApiError::Unavailable(e.to_string())))?;
        Ok(hits
            .into_iter()
            .map(|h| SearchHit {
                kind: h.kind.to_string(),
                id: h.id,
                label: h.label,
                score: f64::from(h.score),
            })
            .collect())
    }

    /// The inclusion proof of entry `index` of `shard`'s log under the
    /// shard's newest signed head.
    async fn proof(&self, ctx: &Context<'_>, shard: u32, index: u64) -> Answer<Proof> {
        Entry(analytics::lineage::At {
            shard,
            index,
            id: [0; 32],
        })
        .proof_of(ctx)
        .await
    }

    /// The newest signed head of `shard`'s log.
    async fn head(&self, ctx: &Context<'_>, shard: u32) -> Answer<Head> {
        cost(ctx).trip("heads", 1);
        Ok(Head(
            state(ctx).reads.latest_head(shard).await.map_err(refusal)?,
        ))
    }
}

pub struct Mutation;

/// Opens or changes a recall in the caller's name and answers with it.
async fn recall_change(
    ctx: &Context<'_>,
    plan: impl FnOnce(
        &analytics::lineage::Lineage,
        &api::Principal,
        i64,
    ) -> Result<readstate::Plan, analytics::recall::RecallError>,
) -> Answer<RecallChanged> {
    let st = state(ctx);
    let who = &caller(ctx).0;
    let result = st.change_recall(who, None, plan).await.map_err(refusal)?;
    let w = result.entries.first().ok_or_else(|| {
        refusal(ApiError::Unavailable(
            "the recall entry was not written".into(),
        ))
    })?;
    let at = analytics::lineage::At {
        shard: w.shard,
        index: w.index,
        id: ledger::Digest::from_hex(&w.id)
            .map(|d| d.0)
            .unwrap_or_default(),
    };
    let recall = result
        .recall
        .as_ref()
        .and_then(|r| r["recall"]["id"].as_str().map(str::to_string))
        .and_then(|id| with_graph(ctx, |g| g.recalls().get(&id).cloned()))
        .ok_or_else(|| {
            refusal(ApiError::Unavailable(
                "the recall is not readable yet".into(),
            ))
        })?;
    Ok(RecallChanged {
        recall: Recall(recall),
        entry: Entry(at),
    })
}

#[Object]
impl Mutation {
    /// Opens a recall of `lot`, every lot made from it and, with
    /// `coExposureFrom`/`coExposureTo`, the lots that shared its containers
    /// then and their descendants. Recorded on the ledger. Investigators only.
    async fn open_recall(
        &self,
        ctx: &Context<'_>,
        lot: String,
        reason: String,
        co_exposure_from: Option<DateTime<Utc>>,
        co_exposure_to: Option<DateTime<Utc>>,
    ) -> Answer<RecallChanged> {
        caller(ctx).investigator("opening a recall")?;
        let co = match (co_exposure_from, co_exposure_to) {
            (Some(a), Some(b)) => Some((a.timestamp_millis(), b.timestamp_millis())),
            (None, None) => None,
            _ => {
                return Err(bad(
                    "coExposureFrom",
                    "give both coExposureFrom and coExposureTo, or neither",
                ))
            }
        };
        recall_change(ctx, |g, who, now| {
            let (change, set) = analytics::recall::open(g, &lot, &reason, &who.org, now, co)?;
            Ok((change, lot.clone(), Some(set)))
        })
        .await
    }

    /// Adds `lot` and its descendants to an open recall. Investigators only.
    async fn widen_recall(
        &self,
        ctx: &Context<'_>,
        id: String,
        lot: String,
        reason: String,
    ) -> Answer<RecallChanged> {
        caller(ctx).investigator("widening a recall")?;
        recall_change(ctx, |g, who, now| {
            let (change, home, set) =
                analytics::recall::widen(g, &id, &lot, &reason, &who.org, now)?;
            Ok((change, home, Some(set)))
        })
        .await
    }

    /// Closes an open recall. Investigators only.
    async fn close_recall(
        &self,
        ctx: &Context<'_>,
        id: String,
        reason: String,
    ) -> Answer<RecallChanged> {
        caller(ctx).investigator("closing a recall")?;
        recall_change(ctx, |g, who, now| {
            let (change, home) = analytics::recall::close(g, &id, &reason, &who.org, now)?;
            Ok((change, home, None))
        })
        .await
    }

    /// Releases a quarantined lot; recorded on the ledger as a release
    /// verdict. Investigators (QA) only.
    async fn release_quarantine(
        &self,
        ctx: &Context<'_>,
        lot: String,
        reason: String,
    ) -> Answer<Entry> {
        caller(ctx).investigator("releasing a quarantine")?;
        let r = write_path(ctx)
            .release_lot(
                &caller(ctx).0,
                &lot,
                &reason,
                api::idempotency::Attempt::First,
            )
            .await
            .map_err(refusal)?;
        let w = r
            .entries
            .first()
            .ok_or_else(|| refusal(ApiError::Unavailable("the release was not written".into())))?;
        Ok(Entry(analytics::lineage::At {
            shard: w.shard,
            index: w.index,
            id: ledger::Digest::from_hex(&w.id)
                .map(|d| d.0)
                .unwrap_or_default(),
        }))
    }
}

pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Breaches as the rules record them, narrowed to an organisation's
    /// subjects, a product (GTIN-14) or a lot. Partners get their own.
    async fn breaches(
        &self,
        ctx: &Context<'_>,
        organization: Option<String>,
        product: Option<String>,
        lot: Option<String>,
    ) -> impl Stream<Item = Verdict> {
        let st = Arc::clone(state(ctx));
        let who = caller(ctx).clone();
        let rx = ctx.data_unchecked::<crate::Notices>().subscribe();
        crate::notices::breaches(rx, move |v| {
            let g = st.lineage.read().expect("lineage lock");
            lot.as_ref().is_none_or(|l| &v.subject == l)
                && product
                    .as_ref()
                    .is_none_or(|p| analytics::watches::gtin_of(&v.subject).as_ref() == Some(p))
                && organization.as_ref().is_none_or(|o| {
                    g.about_concerns(&v.subject, v.from_ms, v.to_ms.unwrap_or(i64::MAX), o)
                })
                && who.may_see(&g, &v.subject)
        })
    }

    /// Recall changes (opened, widened, closed) as they are recorded.
    /// Investigators only.
    async fn recall_changes(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = RecallNotice>> {
        caller(ctx).investigator("recall changes")?;
        Ok(crate::notices::recalls(
            ctx.data_unchecked::<crate::Notices>().subscribe(),
        ))
    }
}
