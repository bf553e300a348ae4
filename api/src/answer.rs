//! What a successful write answers, whichever edge took it (device
//! batches, capture, device and lot changes, recall changes): where each
//! entry landed, enough to fetch its proof later.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where one written entry landed: enough to fetch its proof later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Written {
    pub shard: u32,
    pub index: u64,
    /// The entry id (its Merkle leaf hash), hex.
    pub id: String,
    /// What the entry is about (device, lot, event id…).
    pub subject: String,
}

/// The answer to a successful write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WriteResult {
    pub entries: Vec<Written>,
    /// Cross-shard receipts committed with the entries.
    pub receipts: usize,
    /// EPCIS capture only: events already captured with the same content,
    /// answered with where they are instead of written again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub already_captured: Vec<Written>,
    /// EPCIS capture only: the capture job's id (`GET /capture/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_id: Option<String>,
    /// Recalls only: the recall's id and what it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub recall: Option<serde_json::Value>,
}

/// Where an entry is: what every read answer that rests on an entry names.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntryRefJson {
    pub shard: u32,
    pub index: u64,
    /// The entry's id (Merkle leaf hash), hex.
    pub id: String,
}

impl From<&ledger::entry::EntryRef> for EntryRefJson {
    fn from(r: &ledger::entry::EntryRef) -> EntryRefJson {
        EntryRefJson {
            shard: r.shard,
            index: r.index,
            id: r.id.to_hex(),
        }
    }
}
