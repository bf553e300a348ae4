//! Recalls, their steps, and what subscriptions announce of them.

use super::*;

/// A recall: the lot, every lot it names, and its history on the ledger.
#[derive(Clone)]
pub struct Recall(pub analytics::recall::Recall);

#[Object]
impl Recall {
    /// The id of the entry that opened it, hex.
    pub(super) async fn id(&self) -> &str {
        &self.0.id
    }
    /// The lot it was opened for; null for a partner it is not a lot of
    /// (a recall reaches partners through the lots of theirs it names).
    pub(super) async fn lot(&self, ctx: &Context<'_>) -> Option<Lot> {
        caller(ctx)
            .visible_lots(ctx, std::slice::from_ref(&self.0.lot))
            .pop()
            .map(Lot)
    }
    /// Why it was opened, in the investigator's words.
    pub(super) async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// Whether it is still open (not closed).
    pub(super) async fn open(&self) -> bool {
        self.0.open
    }
    /// Every lot recalled, in the order added (partners: their own).
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    pub(super) async fn affected(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Page<Lot>> {
        let lots = caller(ctx).visible_lots(ctx, &self.0.affected);
        page(ctx, lots.into_iter().map(Lot).collect(), first, after)
    }
    /// Each change (opened, widened, closed) with its entry.
    pub(super) async fn history(&self) -> Vec<RecallStep> {
        self.0.history.iter().cloned().map(RecallStep).collect()
    }
}

pub struct RecallStep(pub analytics::recall::Step);

#[Object]
impl RecallStep {
    /// opened, widened or closed.
    pub(super) async fn change(&self) -> &str {
        self.0.change
    }
    /// Why the change was made.
    pub(super) async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// The organisation that made the change.
    pub(super) async fn by(&self) -> Organization {
        Organization(self.0.by.clone())
    }
    /// When the change was made.
    pub(super) async fn at(&self) -> DateTime<Utc> {
        time(self.0.at_ms)
    }
    /// Lots this change added (partners: their own).
    pub(super) async fn added(&self, ctx: &Context<'_>) -> Vec<Lot> {
        caller(ctx)
            .visible_lots(ctx, &self.0.added)
            .into_iter()
            .map(Lot)
            .collect()
    }
    /// The recall entry on the ledger.
    pub(super) async fn entry(&self) -> Entry {
        Entry(self.0.entry)
    }
}

/// What a recall change recorded.
#[derive(SimpleObject)]
pub struct RecallChanged {
    /// The recall as it is after the change.
    pub recall: Recall,
    /// The recall entry on the ledger.
    pub entry: Entry,
}

/// A recall change as subscribers see it.
#[derive(SimpleObject, Clone, Debug)]
pub struct RecallNotice {
    /// opened, widened or closed.
    pub change: String,
    /// The recall's id.
    pub recall_id: String,
    /// The lot it was opened for, or the first lot a widening added.
    pub lot: Option<String>,
    /// Why the change was made.
    pub reason: String,
    /// The organisation that made the change.
    pub by: String,
    /// The recall entry on the ledger.
    pub entry: Entry,
}
