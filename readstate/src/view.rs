//! The decoded JSON view of a ledger entry, served beside its canonical bytes.
//!
//! The view is for people and tools that want to read an entry; it proves
//! nothing. A verifier recomputes the id from the bytes and decodes those
//! (VERIFYING.md says how); the view is derived from the same bytes, so a
//! view that disagrees with its bytes is a bug here, never a second truth.

use ledger::entry::{
    CustodyEvent, Entry, EntryRef, IdentityChange, NetworkRecord, RecallChange, Receipt,
    RuleVerdict, SignedBatch,
};
use ledger::SignedTreeHead;
use serde_json::{json, Value};

use api::answer::EntryRefJson;
use api::wire::ReadingJson;

/// The extension field each queried event carries: the ledger entry it rests
/// on (shard, index, id). Its prefix is declared in the answer's `@context`.
pub const ENTRY_EXTENSION: &str = "coldtrail:entry";
/// The namespace of coldtrail's EPCIS extension fields.
pub const NAMESPACE: &str = api::discovery::NAMESPACE;

/// An entry's fields as JSON: `{"kind": …, …}` with the kind's own fields.
pub fn entry_view(entry: &Entry) -> Value {
    let mut v = match entry {
        Entry::Readings(sb) => readings(sb),
        Entry::Custody(e) => custody(e),
        Entry::Identity(c) => identity(c),
        Entry::ReceiptOut(r) => receipt(r),
        Entry::ReceiptIn(d) => json!({
            "receipt": receipt(&d.receipt),
            "receipt_index": d.receipt_index,
            "proof": d.proof.iter().map(|p| p.to_hex()).collect::<Vec<_>>(),
            "head": head(&d.head),
        }),
        Entry::Verdict(v) => verdict(v),
        Entry::Checkpoint(h) => json!({ "head": head(h) }),
        Entry::Recall(c) => recall(c),
        Entry::Network(r) => network(r),
    };
    v.as_object_mut()
        .expect("every view is an object")
        .insert("kind".into(), entry.kind_name().into());
    v
}

fn readings(sb: &SignedBatch) -> Value {
    json!({
        "device": sb.batch.device,
        "first_seq": sb.batch.first_seq,
        "readings": sb.batch.readings.iter().map(ReadingJson::from).collect::<Vec<_>>(),
        "signature": hex::encode(sb.signature),
    })
}

fn custody(e: &CustodyEvent) -> Value {
    // The document is the event as captured; it is JSON by construction
    // (capture parsed it), and shown as a string if it ever is not.
    let document = serde_json::from_slice::<Value>(&e.document)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&e.document).into_owned()));
    json!({
        "recorded_by": e.recorded_by,
        "event_id": e.event_id,
        "event_type": e.kind.name(),
        "action": e.action.map(|a| a.name()),
        "event_time_ms": e.event_time_ms,
        "tz_offset_min": e.tz_offset_min,
        "biz_step": e.biz_step,
        "disposition": e.disposition,
        "read_point": e.read_point,
        "biz_location": e.biz_location,
        "subjects": e.subjects.iter().map(|s| json!({
            "role": s.role.name(),
            "id": s.id,
            "quantity": s.quantity.as_ref().map(|q| json!({"milli": q.milli, "uom": q.uom})),
        })).collect::<Vec<_>>(),
        "readings": e.readings.iter().map(ReadingJson::from).collect::<Vec<_>>(),
        "document": document,
    })
}

fn identity(c: &IdentityChange) -> Value {
    match c {
        IdentityChange::OrgRegistered {
            org,
            name,
            role,
            at_ms,
        } => {
            json!({"change": "org_registered", "org": org, "name": name, "role": role.name(), "at_ms": at_ms})
        }
        IdentityChange::DeviceRegistered {
            org,
            device,
            public_key,
            at_ms,
            active_from_ms,
        } => {
            json!({"change": "device_registered", "org": org, "device": device, "public_key": hex::encode(public_key), "at_ms": at_ms, "active_from_ms": active_from_ms})
        }
        IdentityChange::KeyRotated {
            org,
            device,
            public_key,
            at_ms,
        } => {
            json!({"change": "key_rotated", "org": org, "device": device, "public_key": hex::encode(public_key), "at_ms": at_ms})
        }
        IdentityChange::DeviceRevoked {
            org,
            device,
            reason,
            at_ms,
        } => {
            json!({"change": "device_revoked", "org": org, "device": device, "reason": reason, "at_ms": at_ms})
        }
        IdentityChange::LocationDelegated {
            org,
            location,
            to,
            at_ms,
        } => {
            json!({"change": "location_delegated", "org": org, "location": location, "to": to, "at_ms": at_ms})
        }
        IdentityChange::DelegationWithdrawn {
            org,
            location,
            to,
            at_ms,
        } => {
            json!({"change": "delegation_withdrawn", "org": org, "location": location, "to": to, "at_ms": at_ms})
        }
    }
}

fn receipt(r: &Receipt) -> Value {
    json!({
        "from_shard": r.from_shard,
        "to_shard": r.to_shard,
        "channel_seq": r.channel_seq,
        "source_index": r.source_index,
        "source_id": r.source_id.to_hex(),
        "subject": r.subject,
    })
}

fn verdict(v: &RuleVerdict) -> Value {
    json!({
        "rule": v.rule,
        "subject": v.subject,
        "verdict": v.kind.name(),
        "from_ms": v.from_ms,
        "to_ms": v.to_ms,
        "explanation": v.explanation,
        "evidence": v.evidence.iter().map(entry_ref).collect::<Vec<_>>(),
    })
}

fn recall(c: &RecallChange) -> Value {
    let refs = |e: &[EntryRef]| e.iter().map(entry_ref).collect::<Vec<_>>();
    match c {
        RecallChange::Opened {
            lot,
            reason,
            by,
            at_ms,
            affected,
            evidence,
        } => json!({
            "change": "opened", "lot": lot, "reason": reason, "by": by, "at_ms": at_ms,
            "affected": affected, "evidence": refs(evidence),
        }),
        RecallChange::Widened {
            recall,
            reason,
            by,
            at_ms,
            added,
            evidence,
        } => json!({
            "change": "widened", "recall": recall.to_hex(), "reason": reason, "by": by, "at_ms": at_ms,
            "added": added, "evidence": refs(evidence),
        }),
        RecallChange::Closed {
            recall,
            reason,
            by,
            at_ms,
        } => json!({
            "change": "closed", "recall": recall.to_hex(), "reason": reason, "by": by, "at_ms": at_ms,
        }),
    }
}

/// An entry's place in the ledger, as every read answer names it.
pub fn entry_ref(r: &EntryRef) -> Value {
    serde_json::to_value(EntryRefJson::from(r)).expect("plain fields serialise")
}

fn network(r: &NetworkRecord) -> Value {
    match r {
        NetworkRecord::Adopted(s) => json!({
            "record": "adopted",
            "network": s.doc.network,
            "version": s.doc.version,
            "digest": s.doc.digest().to_hex(),
            "previous": s.doc.previous.map(|d| d.to_hex()),
            "issued_at_ms": s.doc.issued_at_ms,
            "members": s.doc.members.iter().map(|m| json!({
                "name": m.name,
                "operator_key": hex::encode(m.operator_key),
                "url": m.url,
                "prefixes": m.prefixes,
                "shards": m.shards,
            })).collect::<Vec<_>>(),
            "votes": s.votes.iter().map(|v| json!({
                "member": v.member,
                "signature": hex::encode(v.signature),
            })).collect::<Vec<_>>(),
        }),
        NetworkRecord::Fork {
            member,
            shard,
            held,
            conflicting,
        } => json!({
            "record": "fork",
            "member": member,
            "shard": shard,
            "held": head(held),
            "conflicting": head(conflicting),
        }),
    }
}

fn head(h: &SignedTreeHead) -> Value {
    json!({
        "log_id": h.head.log_id.to_hex(),
        "size": h.head.size,
        "root": h.head.root.to_hex(),
        "timestamp_ms": h.head.timestamp_ms,
        "signature": hex::encode(h.signature),
    })
}
