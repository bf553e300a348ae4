//! Realistic one-minute cold-chain readings, deterministic from a seed.
//!
//! A pallet logger in a reefer at a chilled setpoint: the air temperature
//! wanders around the setpoint with sensor noise and mean reversion, a door
//! opening at a stop warms it for some minutes, the reefer's defrost cycle
//! adds a bump every six hours, humidity drifts, the battery drains slowly.
//! Used by `demo` and `bench` until the fixtures world takes over.

use ed25519_dalek::SigningKey;
use ledger::entry::SignedBatch;
use ledger::reading::{DeviceBatch, Reading};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One simulated logger.
pub struct Logger {
    pub id: String,
    pub key: SigningKey,
    rng: ChaCha8Rng,
    setpoint: f64,
    temp: f64,
    humidity: f64,
    battery_mv: f64,
    door_open_left: u32,
    time_ms: i64,
    next_seq: u64,
}

/// 2026-11-01T00:00:00Z: where simulated time starts.
pub const START_MS: i64 = 1_793_491_200_000;

impl Logger {
    pub fn new(seed: u64, n: u32) -> Logger {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (u64::from(n) << 32));
        let key = SigningKey::from_bytes(&rng.gen());
        let setpoint = [4.0, 0.5, -20.0, 5.0][n as usize % 4];
        Logger {
            id: format!("urn:epc:id:giai:0614141.logger-{n:05}"),
            key,
            setpoint,
            temp: setpoint,
            humidity: 85.0,
            battery_mv: 3600.0,
            door_open_left: 0,
            time_ms: START_MS + rng.gen_range(0..60_000),
            next_seq: 0,
            rng,
        }
    }

    /// The same logger under another id, starting at `start_ms`.
    pub fn renamed(mut self, id: String, start_ms: i64) -> Logger {
        self.id = id;
        self.time_ms = start_ms + (self.time_ms - START_MS);
        self
    }

    fn next_reading(&mut self) -> Reading {
        let minute = self.time_ms / 60_000;
        if self.door_open_left == 0 && self.rng.gen_bool(1.0 / 240.0) {
            self.door_open_left = self.rng.gen_range(2..12);
        }
        let defrost = minute % 360 < 20;
        let target = if self.door_open_left > 0 {
            self.setpoint + 8.0
        } else if defrost {
            self.setpoint + 2.5
        } else {
            self.setpoint
        };
        self.temp += (target - self.temp) * 0.15 + self.rng.gen_range(-0.08..0.08);
        self.humidity = (self.humidity + self.rng.gen_range(-0.3..0.3)).clamp(60.0, 98.0);
        self.battery_mv -= 0.01;
        let door = self.door_open_left > 0;
        self.door_open_left = self.door_open_left.saturating_sub(1);
        let r = Reading {
            humidity_permille: Some((self.humidity * 10.0).round() as u16),
            door_open: Some(door),
            battery_mv: Some(self.battery_mv.round() as u16),
            shock_centi_g: self
                .rng
                .gen_bool(0.002)
                .then(|| self.rng.gen_range(100..600)),
            ..Reading::new(self.time_ms, (self.temp * 100.0).round() as i32)
        };
        // One-minute interval with a little jitter, as real loggers have.
        self.time_ms += 60_000 + self.rng.gen_range(-200..200);
        r
    }

    /// The next `n` readings as an unsigned batch.
    pub fn batch(&mut self, n: usize) -> DeviceBatch {
        let readings = (0..n).map(|_| self.next_reading()).collect();
        let b = DeviceBatch {
            device: self.id.clone(),
            first_seq: self.next_seq,
            readings,
        };
        self.next_seq += n as u64;
        b
    }

    /// The next `n` readings, signed.
    pub fn signed_batch(&mut self, n: usize) -> SignedBatch {
        let batch = self.batch(n);
        SignedBatch::sign(batch, &self.key)
    }
}
