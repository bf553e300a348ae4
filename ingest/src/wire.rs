//! The wire forms of signed device batches, and the signing client that
//! tools, tests, fixtures and the load generator use to make them.
//!
//! JSON (`application/json`) carries the reading model's scaled integers, so
//! it maps to exactly one canonical batch; the binary form
//! (`application/vnd.coldtrail.batch`) carries the canonical bytes
//! themselves. Either way the device's signature covers the canonical bytes.
//! Identifiers that arrive on the wire (device ids, eventIDs) follow one
//! rule ([`check_id`]).

use ed25519_dalek::SigningKey;
use ledger::codec::{Reader, Writer};
use ledger::entry::{Encoded, SignedBatch};
use ledger::reading::{DeviceBatch, Reading};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use api::problem::ApiError;
pub use api::wire::ReadingJson;

pub const BINARY_BATCH: &str = "application/vnd.coldtrail.batch";

/// A device's signed batch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchJson {
    pub device: String,
    /// Sequence number of the first reading; the rest follow without gaps.
    pub first_seq: u64,
    pub readings: Vec<ReadingJson>,
    /// ed25519 signature (128 hex digits) over BLAKE3-derive-key("coldtrail 2026-11 device batch signature v1", canonical batch bytes).
    pub signature: String,
}

/// The body of `POST /v1/batches` in JSON.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchesJson {
    pub batches: Vec<BatchJson>,
}

fn signature_from_hex(s: &str, at: &str) -> Result<[u8; 64], ApiError> {
    let bytes = hex::decode(s)
        .map_err(|_| ApiError::InvalidBody(format!("{at}: signature must be 128 hex digits")))?;
    bytes.try_into().map_err(|_| {
        ApiError::InvalidBody(format!("{at}: signature must be 128 hex digits (64 bytes)"))
    })
}

fn checked(batch: DeviceBatch, at: &str) -> Result<DeviceBatch, ApiError> {
    batch
        .validate()
        .map_err(|e| ApiError::InvalidBody(format!("{at}: {e}")))?;
    Ok(batch)
}

/// Parses a JSON body into signed batches.
pub fn decode_json(body: &[u8]) -> Result<Vec<SignedBatch>, ApiError> {
    let parsed: BatchesJson = serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::MalformedJson(e.to_string())
        } else {
            ApiError::InvalidBody(e.to_string())
        }
    })?;
    if parsed.batches.is_empty() {
        return Err(ApiError::InvalidBody(
            "`batches` is empty; send at least one batch".into(),
        ));
    }
    parsed
        .batches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let at = format!("batches[{i}]");
            let readings = b
                .readings
                .iter()
                .enumerate()
                .map(|(j, r)| r.to_reading(&format!("{at}.readings[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(SignedBatch {
                batch: checked(
                    DeviceBatch {
                        device: b.device.clone(),
                        first_seq: b.first_seq,
                        readings,
                    },
                    &at,
                )?,
                signature: signature_from_hex(&b.signature, &at)?,
            })
        })
        .collect()
}

/// Encodes signed batches as a JSON body.
pub fn encode_json(batches: &[SignedBatch]) -> Vec<u8> {
    let body = BatchesJson {
        batches: batches
            .iter()
            .map(|s| BatchJson {
                device: s.batch.device.clone(),
                first_seq: s.batch.first_seq,
                readings: s.batch.readings.iter().map(ReadingJson::from).collect(),
                signature: hex::encode(s.signature),
            })
            .collect(),
    };
    serde_json::to_vec(&body).expect("batches serialise")
}

/// Encodes signed batches in the binary form: for each, the canonical batch
/// bytes with a varint length in front, then the 64-byte signature.
pub fn encode_binary(batches: &[SignedBatch]) -> Vec<u8> {
    let mut w = Writer::new();
    for s in batches {
        w.bytes(&s.batch.to_bytes());
        w.fixed(&s.signature);
    }
    w.into_bytes()
}

/// Parses a binary body into signed batches.
pub fn decode_binary(body: &[u8]) -> Result<Vec<SignedBatch>, ApiError> {
    Ok(decode_binary_encoded(body)?
        .into_iter()
        .filter_map(Encoded::into_signed_batch)
        .collect())
}

/// Parses a binary body into readings entries that keep the batches'
/// canonical bytes as received ([`Encoded::readings`]), so the write path
/// neither encodes them again to check the signatures nor to append them.
pub fn decode_binary_encoded(body: &[u8]) -> Result<Vec<Encoded>, ApiError> {
    let mut r = Reader::new(body);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let at = format!("batch {}", out.len());
        let bytes = r
            .bytes("batch")
            .map_err(|e| ApiError::InvalidBody(format!("{at}: {e}")))?;
        let signature = r
            .fixed::<64>("signature")
            .map_err(|e| ApiError::InvalidBody(format!("{at}: {e}")))?;
        let entry = Encoded::readings(bytes, signature)
            .map_err(|e| ApiError::InvalidBody(format!("{at}: {e}")))?;
        out.push(entry);
    }
    if out.is_empty() {
        return Err(ApiError::InvalidBody("the body holds no batch".into()));
    }
    Ok(out)
}

/// A device's signing client: numbers and signs its batches.
pub struct DeviceClient {
    pub device: String,
    key: SigningKey,
    next_seq: u64,
}

impl DeviceClient {
    pub fn new(device: impl Into<String>, key: SigningKey) -> DeviceClient {
        DeviceClient {
            device: device.into(),
            key,
            next_seq: 0,
        }
    }

    /// Continues from `next_seq` (for a device that already sent batches).
    pub fn starting_at(mut self, next_seq: u64) -> DeviceClient {
        self.next_seq = next_seq;
        self
    }

    pub fn public_key(&self) -> ed25519_dalek::VerifyingKey {
        self.key.verifying_key()
    }

    /// Swaps in a new key (after a rotation was registered).
    pub fn rotate(&mut self, key: SigningKey) {
        self.key = key;
    }

    /// Signs the next batch of `readings`.
    pub fn sign(&mut self, readings: Vec<Reading>) -> SignedBatch {
        let batch = DeviceBatch {
            device: self.device.clone(),
            first_seq: self.next_seq,
            readings,
        };
        self.next_seq = batch.next_seq();
        SignedBatch::sign(batch, &self.key)
    }
}

/// Identifiers are short, printable and non-empty.
pub(crate) fn check_id(s: &str, what: &str) -> Result<(), ApiError> {
    if s.is_empty() || s.len() > 256 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::InvalidBody(format!(
            "{what} {s:?} must be 1 to 256 characters without spaces or control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::reading::GeoPoint;

    fn sample() -> Vec<SignedBatch> {
        let mut c = DeviceClient::new("logger-1", SigningKey::from_bytes(&[4; 32]));
        let r = Reading {
            humidity_permille: Some(851),
            location: Some(GeoPoint {
                lat_e7: 515_000_000,
                lon_e7: -1_200_000,
            }),
            ..Reading::new(1_793_491_200_000, 412)
        };
        vec![
            c.sign(vec![r, Reading::new(1_793_491_260_000, 415)]),
            c.sign(vec![]),
        ]
    }

    #[test]
    fn both_wire_forms_round_trip_to_the_same_signed_bytes() {
        let batches = sample();
        assert_eq!(decode_json(&encode_json(&batches)).unwrap(), batches);
        assert_eq!(decode_binary(&encode_binary(&batches)).unwrap(), batches);
        assert_eq!(batches[1].batch.first_seq, 2);
    }

    #[test]
    fn malformed_bodies_are_told_apart() {
        assert!(matches!(decode_json(b"{"), Err(ApiError::MalformedJson(_))));
        assert!(matches!(
            decode_json(br#"{"batches": 3}"#),
            Err(ApiError::InvalidBody(_))
        ));
        assert!(matches!(
            decode_json(br#"{"batches": []}"#),
            Err(ApiError::InvalidBody(_))
        ));
        let mut bad = String::from_utf8(encode_json(&sample())).unwrap();
        bad = bad.replacen("\"lat_e7\":515000000,", "", 1);
        assert!(
            matches!(decode_json(bad.as_bytes()), Err(ApiError::InvalidBody(m)) if m.contains("lat_e7"))
        );
        assert!(decode_binary(&[1, 2, 3]).is_err());
        assert!(decode_binary(&[]).is_err());
    }
}
