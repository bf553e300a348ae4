//! Devices: their keys over time, suspensions, identity entries, and readings downsampled into buckets.

use super::*;

/// A registered logger or gateway.
pub struct Device(pub String);

/// One of a device's keys, valid from a time on.
#[derive(SimpleObject)]
pub struct DeviceKey {
    /// From when the key signs the device's readings.
    pub valid_from: DateTime<Utc>,
    /// ed25519 public key, hex.
    pub public_key: String,
}

#[Object]
impl Device {
    /// The device identifier as registered (e.g. a GIAI EPC URN).
    pub(super) async fn id(&self) -> &str {
        &self.0
    }
    /// The organisation that registered it.
    pub(super) async fn organization(&self, ctx: &Context<'_>) -> Answer<Option<Organization>> {
        Ok(loader(ctx)
            .load_one(OwnerKey(self.0.clone()))
            .await?
            .map(Organization))
    }
    /// Its keys in the order they became valid (rotations hand over at their time).
    pub(super) async fn keys(&self, ctx: &Context<'_>) -> Vec<DeviceKey> {
        cost(ctx).trip("devices", 0);
        write_path(ctx)
            .device(&self.0)
            .map(|d| {
                d.keys
                    .iter()
                    .map(|(from, k)| DeviceKey {
                        valid_from: time(*from),
                        public_key: ledger::Digest(*k).to_hex(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    /// When its key was revoked; it signs nothing after.
    pub(super) async fn revoked_at(&self, ctx: &Context<'_>) -> Option<DateTime<Utc>> {
        write_path(ctx)
            .device(&self.0)
            .and_then(|d| d.revoked_at_ms)
            .map(time)
    }
    /// Why it is suspended, when it is.
    pub(super) async fn suspended(&self, ctx: &Context<'_>) -> Option<String> {
        write_path(ctx).device(&self.0).and_then(|d| d.suspended)
    }
    /// The identity entries its state rests on: registration, rotations,
    /// revocation, suspensions, reinstatements.
    pub(super) async fn entries(&self, ctx: &Context<'_>) -> Vec<Entry> {
        write_path(ctx)
            .device(&self.0)
            .map(|d| d.entries.iter().map(|r| Entry(At::from(r))).collect())
            .unwrap_or_default()
    }
    /// Its readings, downsampled.
    #[graphql(complexity = "10 * child_complexity")]
    pub(super) async fn readings(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(desc = "Bucket width in minutes (60: hourly)")] bucket_minutes: i32,
    ) -> Answer<Series> {
        crate::series(ctx, &self.0, from, to, bucket_minutes).await
    }
}

/// A logger's readings in buckets (empty buckets left out).
pub struct Series(pub analytics::readings::Series);

#[Object]
impl Series {
    /// The logger the readings are from.
    pub(super) async fn device(&self) -> Device {
        Device(self.0.device.clone())
    }
    /// Start of the range asked for (inclusive).
    pub(super) async fn from(&self) -> DateTime<Utc> {
        time(self.0.from_ms)
    }
    /// End of the range (exclusive).
    pub(super) async fn to(&self) -> DateTime<Utc> {
        time(self.0.to_ms)
    }
    /// Bucket width, minutes.
    pub(super) async fn bucket_minutes(&self) -> f64 {
        self.0.bucket_ms as f64 / 60_000.0
    }
    /// The buckets that hold readings, oldest first (empty ones left out).
    pub(super) async fn buckets(&self) -> Vec<Bucket> {
        self.0.buckets.iter().cloned().map(Bucket).collect()
    }
}

/// The readings in `[from, to)`.
pub struct Bucket(pub analytics::readings::Bucket);

#[Object]
impl Bucket {
    /// Start of the bucket (inclusive), on the bucket grid (hours start on the hour, UTC).
    pub(super) async fn from(&self) -> DateTime<Utc> {
        time(self.0.from_ms)
    }
    /// End of the bucket (exclusive).
    pub(super) async fn to(&self) -> DateTime<Utc> {
        time(self.0.to_ms)
    }
    /// Readings in the bucket.
    pub(super) async fn count(&self) -> u64 {
        self.0.count
    }
    /// Lowest temperature, °C.
    pub(super) async fn min_c(&self) -> f64 {
        self.0.min_c
    }
    /// Highest temperature, °C.
    pub(super) async fn max_c(&self) -> f64 {
        self.0.max_c
    }
    /// Mean temperature of the readings, °C.
    pub(super) async fn mean_c(&self) -> f64 {
        self.0.mean_c
    }
    /// The readings entries they come from.
    pub(super) async fn entries(&self) -> Vec<Entry> {
        self.0.entries.iter().copied().map(Entry).collect()
    }
}
