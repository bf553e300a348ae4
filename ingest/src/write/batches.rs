//! Signed device batches: bounds and clocks, the key valid at each batch's time, one ed25519 batch verification, sequence numbers reserved under the identity lock, each device's batches appended on its home shard.

use super::*;

impl Ingest {
    /// Accepts signed device batches, all or none: each must come from a
    /// device of the caller's organisation, be signed by the key valid at its
    /// first reading, and continue the device's sequence.
    pub async fn submit_batches(
        &self,
        who: &Principal,
        batches: Vec<SignedBatch>,
    ) -> Result<WriteResult, ApiError> {
        self.submit_encoded(who, encode_batches(batches)).await
    }

    /// [`Ingest::submit_batches`] for batches kept with their canonical bytes
    /// ([`Encoded::readings`], as the binary wire form carries them): the
    /// signatures are checked over those bytes and they are appended as they
    /// are, never encoded again.
    pub async fn submit_encoded(
        &self,
        who: &Principal,
        encoded: Vec<Encoded>,
    ) -> Result<WriteResult, ApiError> {
        self.writer(who)?;
        let (batches, messages): (Vec<&SignedBatch>, Vec<Digest>) = encoded
            .iter()
            .map(batch_of)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip();
        if let Some(b) = batches.iter().find(|b| b.batch.readings.is_empty()) {
            return Err(ApiError::InvalidBody(format!(
                "the batch of device {:?} starting at sequence {} holds no readings; send at least one",
                b.batch.device, b.batch.first_seq
            )));
        }
        let keys = self.admit(who, &batches)?;
        verify_signatures(&batches, &messages, &keys)?;
        let reserved = self.reserve_sequences(who, &batches)?;
        let devices: Vec<String> = batches.iter().map(|b| b.batch.device.clone()).collect();
        self.commit_per_device(devices, encoded, reserved).await
    }

    /// Admission: every reading within the clock's slack, every device the
    /// caller's and not suspended, and the key each batch must verify under
    /// (the one valid at its first reading). All before any signature.
    fn admit(
        &self,
        who: &Principal,
        batches: &[&SignedBatch],
    ) -> Result<Vec<VerifyingKey>, ApiError> {
        let now = self.node.clock().now_ms();
        let id = self.identity.read().expect("identity lock");
        let mut keys = Vec::with_capacity(batches.len());
        for b in batches {
            if let Some(r) = b
                .batch
                .readings
                .iter()
                .find(|r| r.time_ms > now + self.limits.future_slack_ms)
            {
                return Err(ApiError::ClockInFuture {
                    at_ms: r.time_ms,
                    now_ms: now,
                    slack_ms: self.limits.future_slack_ms,
                });
            }
            let device = id.device_of(&who.org, &b.batch.device)?;
            if let Some(why) = &device.suspended {
                return Err(ApiError::DeviceSuspended {
                    device: b.batch.device.clone(),
                    reason: why.clone(),
                });
            }
            // The key is the one valid at the first reading; none of the
            // readings may be older than the device's activation: the
            // earliest, not the first (a clock may step back in a batch).
            let at = b.batch.readings.first().map_or(now, |r| r.time_ms);
            keys.push(device.key_at(&b.batch.device, at)?);
            if let Some(earliest) = b.batch.readings.iter().map(|r| r.time_ms).min() {
                device.check_active(&b.batch.device, earliest)?;
            }
        }
        Ok(keys)
    }

    /// Checks each device's sequence and reserves it, in one hold of the
    /// identity lock, so two copies of one batch cannot both pass. Returns
    /// (device, next before, next after) for each device reserved.
    fn reserve_sequences(
        &self,
        who: &Principal,
        batches: &[&SignedBatch],
    ) -> Result<Vec<(String, u64, u64)>, ApiError> {
        let mut id = self.identity.write().expect("identity lock");
        let mut next: HashMap<&str, u64> = HashMap::new();
        for b in batches {
            let dev = b.batch.device.as_str();
            let expected = match next.get(dev) {
                Some(n) => *n,
                None => id.device_of(&who.org, dev)?.next_seq,
            };
            if b.batch.first_seq < expected {
                return Err(ApiError::ReplayedSequence {
                    device: dev.to_string(),
                    got: b.batch.first_seq,
                    expected,
                });
            }
            // A device's readings are numbered without gaps: readings skipped
            // here could never be sent after.
            if b.batch.first_seq > expected {
                return Err(ApiError::SequenceGap {
                    device: dev.to_string(),
                    got: b.batch.first_seq,
                    expected,
                });
            }
            next.insert(dev, b.batch.next_seq());
        }
        Ok(next
            .into_iter()
            .map(|(dev, n)| {
                let d = id.devices.get_mut(dev).expect("checked above");
                let old = d.next_seq;
                d.next_seq = n;
                (dev.to_string(), old, n)
            })
            .collect())
    }

    /// Commits each device's batches on its home shard, concurrently; when
    /// any commit fails, the reservations of the devices that did not commit
    /// are given back before the refusal.
    async fn commit_per_device(
        &self,
        devices: Vec<String>,
        encoded: Vec<Encoded>,
        reserved: Vec<(String, u64, u64)>,
    ) -> Result<WriteResult, ApiError> {
        let mut by_device: HashMap<String, Vec<Encoded>> = HashMap::new();
        for (dev, e) in devices.into_iter().zip(encoded) {
            by_device.entry(dev).or_default().push(e);
        }
        let commits = by_device.into_iter().map(|(dev, entries)| async move {
            self.node
                .append_encoded(&dev, entries)
                .await
                .map(|c| (dev, c))
        });
        let results = futures_util::future::join_all(commits).await;
        let mut out = WriteResult::default();
        let mut failure = None;
        for r in results {
            match r {
                Ok((dev, c)) => {
                    out.receipts += c.receipts.len();
                    out.entries
                        .extend(c.entries.iter().map(|(index, d)| Written {
                            shard: c.shard,
                            index: *index,
                            id: d.to_hex(),
                            subject: dev.clone(),
                        }));
                }
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            // Give back the reservations that did not commit.
            let mut id = self.identity.write().expect("identity lock");
            for (dev, old, new) in reserved {
                if !out.entries.iter().any(|w| w.subject == dev) {
                    if let Some(d) = id.devices.get_mut(&dev) {
                        if d.next_seq == new {
                            d.next_seq = old;
                        }
                    }
                }
            }
            return Err(crate::write_refusal(e));
        }
        out.entries.sort_by_key(|w| (w.shard, w.index));
        Ok(out)
    }

    /// [`Ingest::submit_encoded`] for a retry whose earlier attempt may have
    /// committed some or all of `encoded` (see [`crate::idempotency`]):
    /// what is already on its device's home shard, byte for byte, is
    /// answered with where it is; the rest is submitted as usual. The answer
    /// is the one the earlier attempt would have given, had it finished.
    pub async fn submit_encoded_again(
        &self,
        who: &Principal,
        encoded: Vec<Encoded>,
    ) -> Result<WriteResult, ApiError> {
        self.writer(who)?;
        let mut found = Vec::new();
        let mut rest = Vec::new();
        for e in encoded {
            match self.committed_batch(who, &e)? {
                Some(w) => found.push(w),
                None => rest.push(e),
            }
        }
        let mut out = if rest.is_empty() {
            WriteResult::default()
        } else {
            self.submit_encoded(who, rest).await?
        };
        out.entries.extend(found);
        out.entries.sort_by_key(|w| (w.shard, w.index));
        Ok(out)
    }
}

/// Checks every signature, in one batch verification when there are several;
/// names the first bad one.
/// `messages[i]` is what `batches[i]`'s device signed.
pub(super) fn verify_signatures(
    batches: &[&SignedBatch],
    messages: &[Digest],
    keys: &[VerifyingKey],
) -> Result<(), ApiError> {
    let messages: Vec<[u8; 32]> = messages.iter().map(|m| m.0).collect();
    let sigs: Vec<Signature> = batches
        .iter()
        .map(|b| Signature::from_bytes(&b.signature))
        .collect();
    if batches.len() > 1 {
        let msgs: Vec<&[u8]> = messages.iter().map(|m| &m[..]).collect();
        if ed25519_dalek::verify_batch(&msgs, &sigs, keys).is_ok() {
            return Ok(());
        }
    }
    for (i, ((m, s), k)) in messages.iter().zip(&sigs).zip(keys).enumerate() {
        if k.verify_strict(m, s).is_err() {
            let b = &batches[i].batch;
            return Err(ApiError::BadSignature {
                index: i,
                device: b.device.clone(),
                at_ms: b.readings.first().map_or(0, |r| r.time_ms),
            });
        }
    }
    Ok(())
}

/// The signed batch `e` holds (and its signed message), or why it is refused.
pub(super) fn batch_of(e: &Encoded) -> Result<(&SignedBatch, Digest), ApiError> {
    e.signed_batch()
        .ok_or_else(|| ApiError::InvalidBody("only device batches are submitted here".into()))
}

/// Device batches as readings entries, each encoded once.
pub fn encode_batches(batches: Vec<SignedBatch>) -> Vec<Encoded> {
    batches
        .into_iter()
        .map(|b| Encoded::new(Entry::Readings(b)))
        .collect()
}
