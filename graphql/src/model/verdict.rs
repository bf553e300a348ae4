//! Verdicts: breaches, quarantines, releases, suspensions and reinstatements, with the evidence each cites.

use super::*;

/// A rule's verdict: a breach (or a quarantine, release, suspension,
/// reinstatement), explained in one sentence, with its evidence.
#[derive(Clone)]
pub struct Verdict(pub VerdictView);

#[derive(Enum, Copy, Clone, PartialEq, Eq, Debug)]
pub enum VerdictKind {
    /// A rule found the cold chain broken.
    Breach,
    /// The lot may not move on until QA releases it.
    Quarantine,
    /// QA released a quarantined lot.
    Release,
    /// A device sent impossible data; its batches are refused.
    Suspend,
    /// The device's owner put it back in service.
    Reinstate,
}

#[Object]
impl Verdict {
    /// The rule that decided it (e.g. `above_8c_10h`), or the policy.
    pub(super) async fn rule(&self) -> &str {
        &self.0.rule
    }
    /// BREACH, QUARANTINE, RELEASE, SUSPEND or REINSTATE.
    pub(super) async fn kind(&self) -> VerdictKind {
        match self.0.kind {
            "breach" => VerdictKind::Breach,
            "quarantine" => VerdictKind::Quarantine,
            "release" => VerdictKind::Release,
            "suspend" => VerdictKind::Suspend,
            _ => VerdictKind::Reinstate,
        }
    }
    /// What it is about: a lot, container or device identifier.
    pub(super) async fn subject(&self) -> &str {
        &self.0.subject
    }
    /// The lot it is about, when the subject is a lot.
    pub(super) async fn lot(&self) -> Option<Lot> {
        analytics::watches::gtin_of(&self.0.subject).map(|_| Lot(self.0.subject.clone()))
    }
    /// When the excursion (or the policy) began.
    pub(super) async fn from(&self) -> DateTime<Utc> {
        time(self.0.from_ms)
    }
    /// When the excursion ended; none for policies and open excursions.
    pub(super) async fn to(&self) -> Option<DateTime<Utc>> {
        self.0.to_ms.map(time)
    }
    /// The excursion's length in minutes, when it ended.
    pub(super) async fn duration_minutes(&self) -> Option<f64> {
        self.0.to_ms.map(|t| (t - self.0.from_ms) as f64 / 60_000.0)
    }
    /// In plain words, with the logger and what it watched.
    pub(super) async fn explanation(&self) -> &str {
        &self.0.explanation
    }
    /// The logger whose readings show it (read from the first evidence entry).
    pub(super) async fn device(&self, ctx: &Context<'_>) -> Answer<Option<Device>> {
        let Some(e) = self.0.evidence.first() else {
            return Ok(None);
        };
        Ok(loader(ctx)
            .load_one(DeviceOfKey(e.shard, e.index))
            .await?
            .map(Device))
    }
    /// The readings entries it rests on.
    pub(super) async fn evidence(&self) -> Vec<Entry> {
        self.0.evidence.iter().copied().map(Entry).collect()
    }
    /// The verdict entry on the ledger.
    pub(super) async fn entry(&self) -> Entry {
        Entry(self.0.entry)
    }
}
