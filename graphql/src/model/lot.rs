//! Lots: their product, holder, status, events, verdicts, recalls, genealogy and the loggers that watched them.

use super::*;

/// A lot (a batch of one product), as EPCIS events name it.
#[derive(Clone)]
pub struct Lot(pub String);

impl Lot {
    pub(super) async fn view(&self, ctx: &Context<'_>) -> Answer<Arc<LotView>> {
        loader(ctx)
            .load_one(LotKey(self.0.clone()))
            .await?
            .ok_or_else(|| refusal(crate::unknown_lot(&self.0)))
    }
}

/// Why a lot may not be sold.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct LotStatus {
    /// Held by a quarantine verdict until QA releases it.
    pub quarantined: bool,
    /// In at least one open recall.
    pub recalled: bool,
    #[graphql(skip)]
    view: Arc<LotView>,
}

#[ComplexObject]
impl LotStatus {
    /// The quarantine verdict holding it.
    pub(super) async fn quarantine(&self) -> Option<Verdict> {
        self.view.quarantine.clone().map(Verdict)
    }
    /// Every recall that names it, open or closed.
    pub(super) async fn recalls(&self) -> Vec<Recall> {
        self.view.recalls.iter().cloned().map(Recall).collect()
    }
}

#[Object]
impl Lot {
    /// The identifier events use (LGTIN EPC URN or GS1 Digital Link URI).
    pub(super) async fn id(&self) -> &str {
        &self.0
    }
    /// The product's GTIN-14.
    pub(super) async fn gtin(&self, ctx: &Context<'_>) -> Answer<Option<String>> {
        Ok(self.view(ctx).await?.gtin.clone())
    }
    /// The lot number (GS1 AI 10).
    pub(super) async fn lot_number(&self, ctx: &Context<'_>) -> Answer<Option<String>> {
        Ok(self.view(ctx).await?.lot_number.clone())
    }
    /// The quantity its first quantified event gives (e.g. kg).
    pub(super) async fn quantity(&self, ctx: &Context<'_>) -> Answer<Option<Quantity>> {
        Ok(self.view(ctx).await?.quantity.as_ref().map(Quantity::from))
    }
    /// Who made or grew it: the organisation that recorded its first event.
    pub(super) async fn origin(&self, ctx: &Context<'_>) -> Answer<Organization> {
        Ok(Organization(self.view(ctx).await?.origin.clone()))
    }
    /// Its first event (commissioning, or the transformation that made it).
    pub(super) async fn first_event(&self, ctx: &Context<'_>) -> Answer<Event> {
        Ok(Event(self.view(ctx).await?.first_event.clone()))
    }
    /// Who has it now: the organisation that recorded its latest event.
    pub(super) async fn holder(&self, ctx: &Context<'_>) -> Answer<Organization> {
        Ok(Organization(self.view(ctx).await?.now.holder.clone()))
    }
    /// Where it was last seen.
    pub(super) async fn location(&self, ctx: &Context<'_>) -> Answer<Option<Location>> {
        Ok(self.view(ctx).await?.now.location.clone().map(Location))
    }
    /// Since when it has been there.
    pub(super) async fn since(&self, ctx: &Context<'_>) -> Answer<DateTime<Utc>> {
        Ok(time(self.view(ctx).await?.now.since_ms))
    }
    /// The ledger entry of its latest counted event: what `holder`,
    /// `location` and `since` rest on (its `proof` checks them).
    pub(super) async fn whereabouts_entry(&self, ctx: &Context<'_>) -> Answer<Entry> {
        Ok(Entry(self.view(ctx).await?.now.entry))
    }
    /// Quarantine and recalls.
    pub(super) async fn status(&self, ctx: &Context<'_>) -> Answer<LotStatus> {
        let v = self.view(ctx).await?;
        Ok(LotStatus {
            quarantined: v.quarantine.is_some(),
            recalled: v.recalls.iter().any(|r| r.open),
            view: v,
        })
    }
    /// The breaches the rules recorded about it, oldest first.
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    pub(super) async fn breaches(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Page<Verdict>> {
        let all = loader(ctx).load_one(VerdictsKey(self.0.clone())).await?;
        let breaches = all
            .iter()
            .flat_map(|v| v.iter())
            .filter(|v| v.kind == "breach")
            .cloned()
            .map(Verdict)
            .collect();
        page(ctx, breaches, first, after)
    }
    /// Every event that names it, oldest first (partners: those their
    /// organisation captured or that happened at its location).
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    pub(super) async fn events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Page<Event>> {
        let who = caller(ctx);
        let only = (!who.sees_all()).then(|| who.0.org.clone());
        let events = loader(ctx)
            .load_one(EventsKey(self.0.clone(), only))
            .await?;
        let events = events.iter().flat_map(|e| e.iter()).cloned().map(Event);
        page(ctx, events.collect(), first, after)
    }
    /// The loggers that watched it (directly or through a container), when.
    pub(super) async fn watchers(&self, ctx: &Context<'_>) -> Answer<Vec<Watcher>> {
        let w = loader(ctx).load_one(WatchersKey(self.0.clone())).await?;
        Ok(w.iter()
            .flat_map(|w| w.iter())
            .cloned()
            .map(Watcher)
            .collect())
    }
    /// Its temperature as the loggers that watched it measured it, while
    /// they watched it, downsampled: one series per logger.
    #[graphql(complexity = "10 * child_complexity")]
    pub(super) async fn readings(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(desc = "Bucket width in minutes (60: hourly)")] bucket_minutes: i32,
    ) -> Answer<Vec<Series>> {
        crate::lot_readings(ctx, &self.0, from, to, bucket_minutes).await
    }
    /// Its genealogy: forward (what was made from it) or backward.
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    pub(super) async fn trace(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Direction::Forward")] direction: Direction,
        #[graphql(desc = "Transformations to follow; all when absent")] depth: Option<i32>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Trace> {
        caller(ctx).investigator("a trace")?;
        crate::trace(ctx, &self.0, direction, depth, first, after)
    }
}

/// A logger that watched a lot, and when.
pub struct Watcher(pub analytics::lineage::Watcher);

#[Object]
impl Watcher {
    /// The logger.
    pub(super) async fn device(&self) -> Device {
        Device(self.0.device.clone())
    }
    /// The container it watched the lot through; none: the lot itself.
    pub(super) async fn through(&self) -> Option<&str> {
        self.0.through.as_deref()
    }
    /// When it began watching the lot (within the asked interval).
    pub(super) async fn from(&self) -> DateTime<Utc> {
        time(self.0.from_ms)
    }
    /// None while it still watches.
    pub(super) async fn to(&self) -> Option<DateTime<Utc>> {
        self.0.to_ms.map(time)
    }
}
