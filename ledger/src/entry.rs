//! What the ledger records, and its canonical, versioned encoding.
//!
//! An encoded entry is `[version][kind][body]`. The version byte lets a future
//! format coexist with this one; a reader refuses versions it does not know
//! rather than guess. The bytes are canonical (see [`crate::codec`]): the
//! stored bytes are the hashed bytes are the bytes a device signed.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::codec::{DecodeError, Reader, Writer};
use crate::hash::{Digest, Domain};
use crate::head::SignedTreeHead;
use crate::merkle::{Blake3Merkle, MerkleHasher};
use crate::reading::{decode_readings, encode_readings, DeviceBatch, Reading};

/// The encoding version this build writes and reads.
pub const ENCODING_VERSION: u8 = 1;
/// Identifiers (GLNs, EPC URIs, Digital Link URIs, rule names) are short.
pub const MAX_ID_LEN: usize = 1024;
/// An EPCIS event document as received, kept whole.
pub const MAX_DOCUMENT_LEN: usize = 1 << 20;

/// An entry's id: its Merkle leaf hash, so the id is also what proofs prove.
pub fn entry_id(encoded: &[u8]) -> Digest {
    Blake3Merkle::hash_leaf(encoded)
}

/// The kind of an encoded entry, read from its two header bytes without
/// decoding the rest; `None` for an unknown version or kind.
pub fn kind_of(encoded: &[u8]) -> Option<&'static str> {
    match encoded {
        [ENCODING_VERSION, kind, ..] => kind_label(*kind),
        _ => None,
    }
}

/// The label of an entry kind tag.
pub fn kind_label(kind: u8) -> Option<&'static str> {
    Some(match kind {
        KIND_READINGS => "readings",
        KIND_CUSTODY => "custody",
        KIND_IDENTITY => "identity",
        KIND_RECEIPT_OUT => "receipt-out",
        KIND_RECEIPT_IN => "receipt-in",
        KIND_VERDICT => "verdict",
        KIND_CHECKPOINT => "checkpoint",
        KIND_RECALL => "recall",
        KIND_NETWORK => "network",
        _ => return None,
    })
}

/// The device, first sequence number and reading count of an encoded
/// readings entry, read without decoding its readings (for scans that only
/// need to know whose batch it is). `None` for any other entry.
pub fn peek_readings(encoded: &[u8]) -> Option<(String, u64, u64)> {
    match encoded {
        [ENCODING_VERSION, KIND_READINGS, rest @ ..] => {
            let mut r = Reader::new(rest);
            Some((
                r.string("device id").ok()?,
                r.varint("first sequence number").ok()?,
                r.varint("reading count").ok()?,
            ))
        }
        _ => None,
    }
}

/// One record in a shard's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A device's signed batch of sensor readings.
    Readings(SignedBatch),
    /// A custody event (EPCIS 2.0): commission, pack, ship, receive, transform, sell…
    Custody(CustodyEvent),
    /// Organisations and device keys: the identity state is derived from these.
    Identity(IdentityChange),
    /// A receipt in this shard's outbox for a subject homed on another shard.
    ReceiptOut(Receipt),
    /// A receipt delivered from another shard, with the proof that it was committed there.
    ReceiptIn(ReceiptDelivery),
    /// A rule's verdict: breach, quarantine, release.
    Verdict(RuleVerdict),
    /// A signed tree head recorded in the log (own earlier head or a peer's).
    Checkpoint(SignedTreeHead),
    /// A recall opened, widened or closed by an investigator.
    Recall(RecallChange),
    /// What the node saw of the network it is a member of.
    Network(NetworkRecord),
}

/// What a member node records of its network on its own log: each version
/// of the network document it follows, and each fork it caught in another
/// member's log. Neither carries a time of its own (the log's heads date
/// them), so one version or one fork has one encoding and is recorded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkRecord {
    /// The node follows this version of the network document (checked as
    /// a chain from version 1), its votes as it holds them.
    Adopted(crate::network::SignedNetworkDoc),
    /// The node's mirror of `member`'s log `shard` holds two heads that
    /// log's key signed and that cannot both be true: the evidence.
    Fork {
        member: String,
        shard: u32,
        /// The head the mirror held.
        held: SignedTreeHead,
        /// The head that contradicts it.
        conflicting: SignedTreeHead,
    },
}

/// A change to a recall. A recall is named by the id of the entry that opened
/// it; widening and closing name that id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecallChange {
    Opened {
        /// The lot the recall is for.
        lot: String,
        reason: String,
        /// The organisation (of the investigator) that opened it.
        by: String,
        at_ms: i64,
        /// Every lot recalled: the lot, its descendants, and any co-exposed lots.
        affected: Vec<String>,
        /// The entries the affected set was computed from.
        evidence: Vec<EntryRef>,
    },
    Widened {
        recall: Digest,
        reason: String,
        by: String,
        at_ms: i64,
        /// Lots added to the recall.
        added: Vec<String>,
        evidence: Vec<EntryRef>,
    },
    Closed {
        recall: Digest,
        reason: String,
        by: String,
        at_ms: i64,
    },
}

/// Readings and the device's ed25519 signature over the batch's canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBatch {
    pub batch: DeviceBatch,
    pub signature: [u8; 64],
}

impl SignedBatch {
    /// The message a device key signs: the canonical batch bytes in their own domain.
    pub fn signing_message(batch_bytes: &[u8]) -> Digest {
        Domain::DeviceBatch.hash(batch_bytes)
    }

    pub fn sign(batch: DeviceBatch, key: &SigningKey) -> SignedBatch {
        let msg = Self::signing_message(&batch.to_bytes());
        SignedBatch {
            signature: key.sign(&msg.0).to_bytes(),
            batch,
        }
    }

    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let msg = Self::signing_message(&self.batch.to_bytes());
        key.verify(&msg.0, &Signature::from_bytes(&self.signature))
            .is_ok()
    }
}

/// An entry together with its canonical bytes, encoded once.
///
/// Invariant: `bytes == entry.to_bytes()`. [`Encoded::new`] encodes;
/// [`Encoded::readings`] keeps the batch bytes a device sent, which is sound
/// because the decoder accepts canonical bytes only (every accepted input
/// re-encodes to itself; `decoded_entries_re_encode_to_the_same_bytes`), so
/// a batch's bytes are checked against its signature and appended without
/// being encoded again. On the write path encoding a batch of a thousand
/// readings costs about as much as checking its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    entry: Entry,
    bytes: Vec<u8>,
}

impl Encoded {
    pub fn new(entry: Entry) -> Encoded {
        let bytes = entry.to_bytes();
        Encoded { entry, bytes }
    }

    /// A readings entry from a device batch's canonical bytes as received
    /// and its signature; anything but canonical bytes is refused.
    pub fn readings(batch_bytes: &[u8], signature: [u8; 64]) -> Result<Encoded, DecodeError> {
        let batch = DeviceBatch::from_bytes(batch_bytes)?;
        let mut bytes = Vec::with_capacity(2 + batch_bytes.len() + 64);
        bytes.extend_from_slice(&[ENCODING_VERSION, KIND_READINGS]);
        bytes.extend_from_slice(batch_bytes);
        bytes.extend_from_slice(&signature);
        debug_assert_eq!(
            Entry::Readings(SignedBatch {
                batch: batch.clone(),
                signature
            })
            .to_bytes(),
            bytes
        );
        Ok(Encoded {
            entry: Entry::Readings(SignedBatch { batch, signature }),
            bytes,
        })
    }

    pub fn into_parts(self) -> (Entry, Vec<u8>) {
        (self.entry, self.bytes)
    }

    /// The entry's id (its Merkle leaf hash), from the bytes it is kept as.
    pub fn id(&self) -> Digest {
        entry_id(&self.bytes)
    }

    /// The signed batch of a readings entry.
    pub fn into_signed_batch(self) -> Option<SignedBatch> {
        match self.entry {
            Entry::Readings(sb) => Some(sb),
            _ => None,
        }
    }

    /// For a readings entry, the batch and the message its device signed
    /// (from the bytes, without encoding the batch again).
    pub fn signed_batch(&self) -> Option<(&SignedBatch, Digest)> {
        match &self.entry {
            Entry::Readings(sb) => {
                // Version and kind before the batch, the signature after it.
                let batch_bytes = &self.bytes[2..self.bytes.len() - 64];
                Some((sb, SignedBatch::signing_message(batch_bytes)))
            }
            _ => None,
        }
    }
}

/// The five EPCIS 2.0 event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Object,
    Aggregation,
    Transformation,
    Association,
    Transaction,
}

/// EPCIS `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Observe,
    Delete,
}

/// How an identifier takes part in an event; lineage follows these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectRole {
    /// `epcList` / `quantityList` of an object or transaction event.
    Object,
    /// `parentID` of an aggregation, association or transaction event.
    Parent,
    /// `childEPCs` / `childQuantityList`.
    Child,
    /// `inputEPCList` / `inputQuantityList` of a transformation.
    Input,
    /// `outputEPCList` / `outputQuantityList` of a transformation.
    Output,
}

/// A quantity of a class-level identifier (lot), in thousandths of `uom`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    pub milli: i64,
    pub uom: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub role: SubjectRole,
    /// EPC URN or GS1 Digital Link URI, as received.
    pub id: String,
    pub quantity: Option<Quantity>,
}

/// A custody event: the fields coldtrail indexes, plus the event document as
/// received so that every EPCIS field is kept and can be returned unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustodyEvent {
    /// The organisation (GLN) that captured it.
    pub recorded_by: String,
    /// EPCIS `eventID` (a URI).
    pub event_id: String,
    pub kind: EventKind,
    pub action: Option<Action>,
    /// `eventTime`, Unix epoch ms.
    pub event_time_ms: i64,
    /// `eventTimeZoneOffset` in minutes.
    pub tz_offset_min: i16,
    pub biz_step: Option<String>,
    pub disposition: Option<String>,
    pub read_point: Option<String>,
    pub biz_location: Option<String>,
    pub subjects: Vec<Subject>,
    /// Sensor readings the event carries (EPCIS `sensorElementList`), in the
    /// same model as device batches; every sensor field stays in `document`.
    pub readings: Vec<Reading>,
    /// The event's JSON as received.
    pub document: Vec<u8>,
}

/// What kind of partner an organisation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgRole {
    Grower,
    Packer,
    Processor,
    Carrier,
    DistributionCentre,
    Retailer,
    Manufacturer,
    Clinic,
    Investigator,
    Operator,
}

/// Changes to who may write: organisations and their devices' keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityChange {
    OrgRegistered {
        org: String,
        name: String,
        role: OrgRole,
        at_ms: i64,
    },
    /// A device of `org` is registered at `at_ms`; its key signs readings
    /// taken from `active_from_ms` on (the registration time unless its
    /// owner declared another, for a logger's backlog uploaded late).
    /// Readings before it are refused.
    DeviceRegistered {
        org: String,
        device: String,
        public_key: [u8; 32],
        at_ms: i64,
        active_from_ms: i64,
    },
    KeyRotated {
        org: String,
        device: String,
        public_key: [u8; 32],
        at_ms: i64,
    },
    DeviceRevoked {
        org: String,
        device: String,
        reason: String,
        at_ms: i64,
    },
    /// `org`, which owns `location` (a GLN or SGLN of its own), lets `to`
    /// record events there (a carrier's dock at a distribution centre).
    LocationDelegated {
        org: String,
        location: String,
        to: String,
        at_ms: i64,
    },
    /// `org` withdraws a delegation of `location` to `to`: from `at_ms` on,
    /// `to` records no more events there.
    DelegationWithdrawn {
        org: String,
        location: String,
        to: String,
        at_ms: i64,
    },
}

/// A cross-shard receipt: entry `source_index` of shard `from_shard` concerns
/// `subject`, which is homed on `to_shard`. `channel_seq` numbers receipts on
/// the (from, to) channel from 0 without gaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub from_shard: u32,
    pub to_shard: u32,
    pub channel_seq: u64,
    pub source_index: u64,
    pub source_id: Digest,
    pub subject: String,
}

/// A receipt as the receiving shard commits it: the receipt entry's position
/// in the sender's log, its inclusion proof, and the sender's signed head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptDelivery {
    pub receipt: Receipt,
    pub receipt_index: u64,
    pub proof: Vec<Digest>,
    pub head: SignedTreeHead,
}

/// What a verdict records. Quarantine and suspension are policies the rules
/// apply; release and reinstatement are people lifting them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictKind {
    /// A rule found a breach (subject: a lot, container or logger).
    Breach,
    /// A lot may not move on until released.
    Quarantine,
    /// An investigator or QA released a quarantined lot.
    Release,
    /// A device sent physically impossible data; its batches are refused.
    Suspend,
    /// The device's owner put it back in service.
    Reinstate,
}

/// Points at an entry on some shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRef {
    pub shard: u32,
    pub index: u64,
    pub id: Digest,
}

/// A rule's finding, explained in one sentence, with the entries it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleVerdict {
    pub rule: String,
    pub subject: String,
    pub kind: VerdictKind,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    pub explanation: String,
    pub evidence: Vec<EntryRef>,
}

macro_rules! tagged_enum {
    ($name:ident, $what:literal, { $($variant:ident = $tag:literal $label:literal),+ $(,)? }) => {
        impl $name {
            fn tag(self) -> u8 {
                match self { $($name::$variant => $tag),+ }
            }
            fn from_tag(tag: u8) -> Result<Self, DecodeError> {
                match tag {
                    $($tag => Ok($name::$variant),)+
                    _ => Err(DecodeError::UnknownTag { what: $what, tag: u64::from(tag) }),
                }
            }
            /// The name APIs, tables and documents use (EPCIS / CBV spelling where there is one).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
        }
    };
}

tagged_enum!(EventKind, "event kind", {
    Object = 0 "ObjectEvent", Aggregation = 1 "AggregationEvent", Transformation = 2 "TransformationEvent",
    Association = 3 "AssociationEvent", Transaction = 4 "TransactionEvent",
});
tagged_enum!(Action, "action", { Add = 0 "ADD", Observe = 1 "OBSERVE", Delete = 2 "DELETE" });
tagged_enum!(SubjectRole, "subject role", {
    Object = 0 "object", Parent = 1 "parent", Child = 2 "child", Input = 3 "input", Output = 4 "output",
});
tagged_enum!(OrgRole, "organisation role", {
    Grower = 0 "grower", Packer = 1 "packer", Processor = 2 "processor", Carrier = 3 "carrier",
    DistributionCentre = 4 "distribution_centre", Retailer = 5 "retailer", Manufacturer = 6 "manufacturer",
    Clinic = 7 "clinic", Investigator = 8 "investigator", Operator = 9 "operator",
});
tagged_enum!(VerdictKind, "verdict kind", {
    Breach = 0 "breach", Quarantine = 1 "quarantine", Release = 2 "release", Suspend = 3 "suspend", Reinstate = 4 "reinstate",
});

const KIND_READINGS: u8 = 0;
const KIND_CUSTODY: u8 = 1;
const KIND_IDENTITY: u8 = 2;
const KIND_RECEIPT_OUT: u8 = 3;
const KIND_RECEIPT_IN: u8 = 4;
const KIND_VERDICT: u8 = 5;
const KIND_CHECKPOINT: u8 = 6;
const KIND_RECALL: u8 = 7;
const KIND_NETWORK: u8 = 8;
/// How many entry kinds there are: their tags are `0..KINDS`.
pub const KINDS: u8 = 9;

fn id(r: &mut Reader<'_>, what: &'static str) -> Result<String, DecodeError> {
    let s = r.string(what)?;
    if s.len() > MAX_ID_LEN {
        return Err(DecodeError::OutOfRange {
            what,
            value: s.len() as u64,
        });
    }
    Ok(s)
}

fn opt_id(r: &mut Reader<'_>, what: &'static str) -> Result<Option<String>, DecodeError> {
    r.option(what, |r| id(r, what))
}

fn put_opt_str(w: &mut Writer, v: &Option<String>) {
    w.option(v.as_ref(), |w, s| w.str(s));
}

fn put_refs(w: &mut Writer, refs: &[EntryRef]) {
    w.seq(refs, |w, e| {
        w.varint(u64::from(e.shard));
        w.varint(e.index);
        w.digest(&e.id);
    });
}

fn get_refs(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<EntryRef>, DecodeError> {
    r.seq(what, 34, |r| {
        Ok(EntryRef {
            shard: r.varint_as("evidence shard")?,
            index: r.varint("evidence index")?,
            id: r.digest("evidence entry id")?,
        })
    })
}

fn encode_recall(w: &mut Writer, c: &RecallChange) {
    match c {
        RecallChange::Opened {
            lot,
            reason,
            by,
            at_ms,
            affected,
            evidence,
        } => {
            w.u8(0);
            w.str(lot);
            w.str(reason);
            w.str(by);
            w.svarint(*at_ms);
            w.seq(affected, |w, a| w.str(a));
            put_refs(w, evidence);
        }
        RecallChange::Widened {
            recall,
            reason,
            by,
            at_ms,
            added,
            evidence,
        } => {
            w.u8(1);
            w.digest(recall);
            w.str(reason);
            w.str(by);
            w.svarint(*at_ms);
            w.seq(added, |w, a| w.str(a));
            put_refs(w, evidence);
        }
        RecallChange::Closed {
            recall,
            reason,
            by,
            at_ms,
        } => {
            w.u8(2);
            w.digest(recall);
            w.str(reason);
            w.str(by);
            w.svarint(*at_ms);
        }
    }
}

fn decode_recall(r: &mut Reader<'_>) -> Result<RecallChange, DecodeError> {
    Ok(match r.u8("recall change")? {
        0 => RecallChange::Opened {
            lot: id(r, "recalled lot")?,
            reason: r.string("recall reason")?,
            by: id(r, "recalled by")?,
            at_ms: r.svarint("recall time")?,
            affected: r.seq("affected lots", 1, |r| id(r, "affected lot"))?,
            evidence: get_refs(r, "recall evidence")?,
        },
        1 => RecallChange::Widened {
            recall: r.digest("recall")?,
            reason: r.string("recall reason")?,
            by: id(r, "recalled by")?,
            at_ms: r.svarint("recall time")?,
            added: r.seq("added lots", 1, |r| id(r, "added lot"))?,
            evidence: get_refs(r, "recall evidence")?,
        },
        2 => RecallChange::Closed {
            recall: r.digest("recall")?,
            reason: r.string("recall reason")?,
            by: id(r, "recalled by")?,
            at_ms: r.svarint("recall time")?,
        },
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "recall change",
                tag: u64::from(tag),
            })
        }
    })
}

impl Receipt {
    fn encode(&self, w: &mut Writer) {
        w.varint(u64::from(self.from_shard));
        w.varint(u64::from(self.to_shard));
        w.varint(self.channel_seq);
        w.varint(self.source_index);
        w.digest(&self.source_id);
        w.str(&self.subject);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Receipt, DecodeError> {
        Ok(Receipt {
            from_shard: r.varint_as("receipt source shard")?,
            to_shard: r.varint_as("receipt destination shard")?,
            channel_seq: r.varint("receipt channel sequence")?,
            source_index: r.varint("receipt source index")?,
            source_id: r.digest("receipt source entry id")?,
            subject: id(r, "receipt subject")?,
        })
    }
}

impl Entry {
    /// A short name of the entry's kind, for tools and logs.
    pub fn kind_name(&self) -> &'static str {
        kind_label(self.kind_tag()).expect("every kind has a label")
    }

    fn kind_tag(&self) -> u8 {
        match self {
            Entry::Readings(_) => KIND_READINGS,
            Entry::Custody(_) => KIND_CUSTODY,
            Entry::Identity(_) => KIND_IDENTITY,
            Entry::ReceiptOut(_) => KIND_RECEIPT_OUT,
            Entry::ReceiptIn(_) => KIND_RECEIPT_IN,
            Entry::Verdict(_) => KIND_VERDICT,
            Entry::Checkpoint(_) => KIND_CHECKPOINT,
            Entry::Recall(_) => KIND_RECALL,
            Entry::Network(_) => KIND_NETWORK,
        }
    }

    pub fn encode(&self, w: &mut Writer) {
        w.u8(ENCODING_VERSION);
        w.u8(self.kind_tag());
        match self {
            Entry::Readings(sb) => {
                sb.batch.encode(w);
                w.fixed(&sb.signature);
            }
            Entry::Custody(e) => {
                w.str(&e.recorded_by);
                w.str(&e.event_id);
                w.u8(e.kind.tag());
                w.option(e.action.as_ref(), |w, a| w.u8(a.tag()));
                w.svarint(e.event_time_ms);
                w.svarint(i64::from(e.tz_offset_min));
                put_opt_str(w, &e.biz_step);
                put_opt_str(w, &e.disposition);
                put_opt_str(w, &e.read_point);
                put_opt_str(w, &e.biz_location);
                w.seq(&e.subjects, |w, s| {
                    w.u8(s.role.tag());
                    w.str(&s.id);
                    w.option(s.quantity.as_ref(), |w, q| {
                        w.svarint(q.milli);
                        put_opt_str(w, &q.uom);
                    });
                });
                encode_readings(w, &e.readings);
                w.bytes(&e.document);
            }
            Entry::Identity(c) => match c {
                IdentityChange::OrgRegistered {
                    org,
                    name,
                    role,
                    at_ms,
                } => {
                    w.u8(0);
                    w.str(org);
                    w.str(name);
                    w.u8(role.tag());
                    w.svarint(*at_ms);
                }
                IdentityChange::DeviceRegistered {
                    org,
                    device,
                    public_key,
                    at_ms,
                    active_from_ms,
                } => {
                    // Tag 1 when the key is valid from the registration
                    // (the form older logs hold), tag 6 with the declared
                    // activation otherwise: one encoding per registration.
                    let declared = active_from_ms != at_ms;
                    w.u8(if declared { 6 } else { 1 });
                    w.str(org);
                    w.str(device);
                    w.fixed(public_key);
                    w.svarint(*at_ms);
                    if declared {
                        w.svarint(*active_from_ms);
                    }
                }
                IdentityChange::KeyRotated {
                    org,
                    device,
                    public_key,
                    at_ms,
                } => {
                    w.u8(2);
                    w.str(org);
                    w.str(device);
                    w.fixed(public_key);
                    w.svarint(*at_ms);
                }
                IdentityChange::DeviceRevoked {
                    org,
                    device,
                    reason,
                    at_ms,
                } => {
                    w.u8(3);
                    w.str(org);
                    w.str(device);
                    w.str(reason);
                    w.svarint(*at_ms);
                }
                IdentityChange::LocationDelegated {
                    org,
                    location,
                    to,
                    at_ms,
                }
                | IdentityChange::DelegationWithdrawn {
                    org,
                    location,
                    to,
                    at_ms,
                } => {
                    w.u8(if matches!(c, IdentityChange::LocationDelegated { .. }) {
                        4
                    } else {
                        5
                    });
                    w.str(org);
                    w.str(location);
                    w.str(to);
                    w.svarint(*at_ms);
                }
            },
            Entry::ReceiptOut(rc) => {
                rc.encode(w);
            }
            Entry::ReceiptIn(d) => {
                d.receipt.encode(w);
                w.varint(d.receipt_index);
                w.seq(&d.proof, |w, h| w.digest(h));
                d.head.encode(w);
            }
            Entry::Verdict(v) => {
                w.str(&v.rule);
                w.str(&v.subject);
                w.u8(v.kind.tag());
                w.svarint(v.from_ms);
                w.option(v.to_ms.as_ref(), |w, t| w.svarint(*t));
                w.str(&v.explanation);
                put_refs(w, &v.evidence);
            }
            Entry::Checkpoint(h) => {
                h.encode(w);
            }
            Entry::Recall(c) => encode_recall(w, c),
            Entry::Network(NetworkRecord::Adopted(doc)) => {
                w.u8(0);
                w.bytes(&doc.to_bytes());
            }
            Entry::Network(NetworkRecord::Fork {
                member,
                shard,
                held,
                conflicting,
            }) => {
                w.u8(1);
                w.str(member);
                w.varint(u64::from(*shard));
                held.encode(w);
                conflicting.encode(w);
            }
        }
    }

    /// The identifiers this entry is about: the device of a reading batch,
    /// every subject of a custody event, the organisation and device of an
    /// identity change, the subject of a delivered receipt or a verdict.
    /// A receipt in an outbox is about nothing on its own shard.
    pub fn subjects(&self) -> Vec<&str> {
        match self {
            Entry::Readings(sb) => vec![sb.batch.device.as_str()],
            Entry::Custody(e) => {
                let mut v: Vec<&str> = Vec::with_capacity(e.subjects.len());
                for s in &e.subjects {
                    if !v.contains(&s.id.as_str()) {
                        v.push(&s.id);
                    }
                }
                v
            }
            Entry::Identity(c) => match c {
                IdentityChange::OrgRegistered { org, .. } => vec![org.as_str()],
                IdentityChange::DeviceRegistered { org, device, .. }
                | IdentityChange::KeyRotated { org, device, .. }
                | IdentityChange::DeviceRevoked { org, device, .. } => {
                    vec![org.as_str(), device.as_str()]
                }
                IdentityChange::LocationDelegated {
                    org, location, to, ..
                }
                | IdentityChange::DelegationWithdrawn {
                    org, location, to, ..
                } => vec![org.as_str(), location.as_str(), to.as_str()],
            },
            // The network's records are about no subject: they are the log's own.
            Entry::ReceiptOut(_) | Entry::Checkpoint(_) | Entry::Network(_) => Vec::new(),
            Entry::ReceiptIn(d) => vec![d.receipt.subject.as_str()],
            // A recall is about every lot it names: each lot's history shows it.
            Entry::Recall(RecallChange::Opened { lot, affected, .. }) => {
                let mut v = vec![lot.as_str()];
                v.extend(affected.iter().map(String::as_str).filter(|a| *a != lot));
                v
            }
            Entry::Recall(RecallChange::Widened { added, .. }) => {
                added.iter().map(String::as_str).collect()
            }
            Entry::Recall(RecallChange::Closed { .. }) => Vec::new(),
            Entry::Verdict(v) => vec![v.subject.as_str()],
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        self.encode(&mut w);
        w.into_bytes()
    }

    /// Decodes one entry that must span all of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Entry, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("entry version")?;
        if version != ENCODING_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                version,
                supported: ENCODING_VERSION,
            });
        }
        let entry = match r.u8("entry kind")? {
            KIND_READINGS => Entry::Readings(SignedBatch {
                batch: DeviceBatch::decode(&mut r)?,
                signature: r.fixed("batch signature")?,
            }),
            KIND_CUSTODY => Entry::Custody(CustodyEvent {
                recorded_by: id(&mut r, "recorded by")?,
                event_id: id(&mut r, "event id")?,
                kind: EventKind::from_tag(r.u8("event kind")?)?,
                action: r.option("action", |r| Action::from_tag(r.u8("action")?))?,
                event_time_ms: r.svarint("event time")?,
                tz_offset_min: r.svarint_as("time zone offset")?,
                biz_step: opt_id(&mut r, "business step")?,
                disposition: opt_id(&mut r, "disposition")?,
                read_point: opt_id(&mut r, "read point")?,
                biz_location: opt_id(&mut r, "business location")?,
                subjects: r.seq("subjects", 3, |r| {
                    Ok(Subject {
                        role: SubjectRole::from_tag(r.u8("subject role")?)?,
                        id: id(r, "subject id")?,
                        quantity: r.option("quantity", |r| {
                            Ok(Quantity {
                                milli: r.svarint("quantity")?,
                                uom: opt_id(r, "unit of measure")?,
                            })
                        })?,
                    })
                })?,
                readings: decode_readings(&mut r)?,
                document: {
                    let d = r.bytes("event document")?;
                    if d.len() > MAX_DOCUMENT_LEN {
                        return Err(DecodeError::OutOfRange {
                            what: "event document length",
                            value: d.len() as u64,
                        });
                    }
                    d.to_vec()
                },
            }),
            KIND_IDENTITY => Entry::Identity(match r.u8("identity change")? {
                0 => IdentityChange::OrgRegistered {
                    org: id(&mut r, "organisation")?,
                    name: id(&mut r, "organisation name")?,
                    role: OrgRole::from_tag(r.u8("organisation role")?)?,
                    at_ms: r.svarint("time")?,
                },
                tag @ (1 | 6) => {
                    let org = id(&mut r, "organisation")?;
                    let device = id(&mut r, "device")?;
                    let public_key = r.fixed("device public key")?;
                    let at_ms = r.svarint("time")?;
                    let active_from_ms = if tag == 6 {
                        let from = r.svarint("activation time")?;
                        if from == at_ms {
                            // Tag 1 says this: not canonical.
                            return Err(DecodeError::Invalid {
                                what: "activation time",
                                reason: "equal to the registration time (tag 1 says that)",
                            });
                        }
                        from
                    } else {
                        at_ms
                    };
                    IdentityChange::DeviceRegistered {
                        org,
                        device,
                        public_key,
                        at_ms,
                        active_from_ms,
                    }
                }
                2 => IdentityChange::KeyRotated {
                    org: id(&mut r, "organisation")?,
                    device: id(&mut r, "device")?,
                    public_key: r.fixed("device public key")?,
                    at_ms: r.svarint("time")?,
                },
                3 => IdentityChange::DeviceRevoked {
                    org: id(&mut r, "organisation")?,
                    device: id(&mut r, "device")?,
                    reason: id(&mut r, "revocation reason")?,
                    at_ms: r.svarint("time")?,
                },
                4 => IdentityChange::LocationDelegated {
                    org: id(&mut r, "organisation")?,
                    location: id(&mut r, "location")?,
                    to: id(&mut r, "delegate")?,
                    at_ms: r.svarint("time")?,
                },
                5 => IdentityChange::DelegationWithdrawn {
                    org: id(&mut r, "organisation")?,
                    location: id(&mut r, "location")?,
                    to: id(&mut r, "delegate")?,
                    at_ms: r.svarint("time")?,
                },
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "identity change",
                        tag: u64::from(tag),
                    })
                }
            }),
            KIND_RECEIPT_OUT => Entry::ReceiptOut(Receipt::decode(&mut r)?),
            KIND_RECEIPT_IN => Entry::ReceiptIn(ReceiptDelivery {
                receipt: Receipt::decode(&mut r)?,
                receipt_index: r.varint("receipt index")?,
                proof: r.seq("receipt proof", 32, |r| r.digest("proof hash"))?,
                head: SignedTreeHead::decode(&mut r)?,
            }),
            KIND_VERDICT => Entry::Verdict(RuleVerdict {
                rule: id(&mut r, "rule")?,
                subject: id(&mut r, "verdict subject")?,
                kind: VerdictKind::from_tag(r.u8("verdict kind")?)?,
                from_ms: r.svarint("verdict start")?,
                to_ms: r.option("verdict end", |r| r.svarint("verdict end"))?,
                explanation: r.string("explanation")?,
                evidence: get_refs(&mut r, "evidence")?,
            }),
            KIND_CHECKPOINT => Entry::Checkpoint(SignedTreeHead::decode(&mut r)?),
            KIND_RECALL => Entry::Recall(decode_recall(&mut r)?),
            KIND_NETWORK => Entry::Network(match r.u8("network record")? {
                0 => NetworkRecord::Adopted(crate::network::SignedNetworkDoc::from_bytes(
                    r.bytes("network document")?,
                )?),
                1 => NetworkRecord::Fork {
                    member: id(&mut r, "forked member")?,
                    shard: r.varint_as("forked shard")?,
                    held: SignedTreeHead::decode(&mut r)?,
                    conflicting: SignedTreeHead::decode(&mut r)?,
                },
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "network record",
                        tag: u64::from(tag),
                    })
                }
            }),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "entry kind",
                    tag: u64::from(tag),
                })
            }
        };
        r.finish()?;
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::TreeHead;
    use crate::reading::tests::arb_batch;
    use proptest::prelude::*;

    fn arb_digest() -> impl Strategy<Value = Digest> {
        any::<[u8; 32]>().prop_map(Digest)
    }

    fn arb_opt_str() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[ -~]{0,20}")
    }

    fn arb_receipt() -> impl Strategy<Value = Receipt> {
        (
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            arb_digest(),
            "[ -~]{0,30}",
        )
            .prop_map(
                |(from_shard, to_shard, channel_seq, source_index, source_id, subject)| Receipt {
                    from_shard,
                    to_shard,
                    channel_seq,
                    source_index,
                    source_id,
                    subject,
                },
            )
    }

    fn arb_head() -> impl Strategy<Value = SignedTreeHead> {
        (
            arb_digest(),
            any::<u64>(),
            arb_digest(),
            any::<i64>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
        )
            .prop_map(|(log_id, size, root, timestamp_ms, s1, s2)| {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&s1);
                signature[32..].copy_from_slice(&s2);
                SignedTreeHead {
                    head: TreeHead {
                        log_id,
                        size,
                        root,
                        timestamp_ms,
                    },
                    signature,
                }
            })
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        let subject = (
            0u8..5,
            "[ -~]{1,30}",
            proptest::option::of((any::<i64>(), arb_opt_str())),
        )
            .prop_map(|(role, id, q)| Subject {
                role: SubjectRole::from_tag(role).unwrap(),
                id,
                quantity: q.map(|(milli, uom)| Quantity { milli, uom }),
            });
        prop_oneof![
            (arb_batch(), any::<[u8; 32]>()).prop_map(|(batch, s)| {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&s);
                Entry::Readings(SignedBatch { batch, signature })
            }),
            (
                (
                    "[ -~]{0,20}",
                    "[ -~]{0,40}",
                    0u8..5,
                    proptest::option::of(0u8..3),
                    any::<i64>(),
                    any::<i16>()
                ),
                (arb_opt_str(), arb_opt_str(), arb_opt_str(), arb_opt_str()),
                proptest::collection::vec(subject, 0..5),
                proptest::collection::vec(any::<u8>(), 0..64),
                proptest::collection::vec(crate::reading::tests::arb_reading(), 0..4),
            )
                .prop_map(
                    |(
                        (rb, eid, kind, action, t, tz),
                        (bs, disp, rp, bl),
                        subjects,
                        document,
                        readings,
                    )| {
                        Entry::Custody(CustodyEvent {
                            recorded_by: rb,
                            event_id: eid,
                            kind: EventKind::from_tag(kind).unwrap(),
                            action: action.map(|a| Action::from_tag(a).unwrap()),
                            event_time_ms: t,
                            tz_offset_min: tz,
                            biz_step: bs,
                            disposition: disp,
                            read_point: rp,
                            biz_location: bl,
                            subjects,
                            readings,
                            document,
                        })
                    }
                ),
            (
                "[ -~]{0,20}",
                "[ -~]{0,20}",
                any::<[u8; 32]>(),
                any::<i64>(),
                0u8..6,
                0u8..10,
                prop_oneof![Just(None), any::<i64>().prop_map(Some)],
            )
                .prop_map(|(org, device, public_key, at_ms, which, role, from)| {
                    Entry::Identity(match which {
                        0 => IdentityChange::OrgRegistered {
                            org,
                            name: device,
                            role: OrgRole::from_tag(role).unwrap(),
                            at_ms,
                        },
                        1 => IdentityChange::DeviceRegistered {
                            org,
                            device,
                            public_key,
                            at_ms,
                            active_from_ms: from.unwrap_or(at_ms),
                        },
                        2 => IdentityChange::KeyRotated {
                            org,
                            device,
                            public_key,
                            at_ms,
                        },
                        3 => IdentityChange::DeviceRevoked {
                            org,
                            device,
                            reason: "lost".into(),
                            at_ms,
                        },
                        4 => IdentityChange::LocationDelegated {
                            org,
                            location: device,
                            to: "urn:epc:id:pgln:0614141.00002".into(),
                            at_ms,
                        },
                        _ => IdentityChange::DelegationWithdrawn {
                            org,
                            location: device,
                            to: "urn:epc:id:pgln:0614141.00002".into(),
                            at_ms,
                        },
                    })
                }),
            arb_receipt().prop_map(Entry::ReceiptOut),
            (
                arb_receipt(),
                any::<u64>(),
                proptest::collection::vec(arb_digest(), 0..8),
                arb_head()
            )
                .prop_map(|(receipt, receipt_index, proof, head)| Entry::ReceiptIn(
                    ReceiptDelivery {
                        receipt,
                        receipt_index,
                        proof,
                        head
                    }
                )),
            (
                "[ -~]{0,20}",
                "[ -~]{0,20}",
                0u8..5,
                any::<i64>(),
                any::<Option<i64>>(),
                "[ -~]{0,60}",
                proptest::collection::vec((any::<u32>(), any::<u64>(), arb_digest()), 0..4)
            )
                .prop_map(|(rule, subject, kind, from_ms, to_ms, explanation, ev)| {
                    Entry::Verdict(RuleVerdict {
                        rule,
                        subject,
                        kind: VerdictKind::from_tag(kind).unwrap(),
                        from_ms,
                        to_ms,
                        explanation,
                        evidence: ev
                            .into_iter()
                            .map(|(shard, index, id)| EntryRef { shard, index, id })
                            .collect(),
                    })
                }),
            arb_head().prop_map(Entry::Checkpoint),
            (
                0u8..3,
                "[ -~]{1,20}",
                "[ -~]{0,40}",
                arb_digest(),
                any::<i64>(),
                proptest::collection::vec("[ -~]{1,20}", 0..4),
                proptest::collection::vec((any::<u32>(), any::<u64>(), arb_digest()), 0..3)
            )
                .prop_map(|(change, lot, reason, recall, at_ms, lots, ev)| {
                    let evidence: Vec<EntryRef> = ev
                        .into_iter()
                        .map(|(shard, index, id)| EntryRef { shard, index, id })
                        .collect();
                    let by = "urn:epc:id:sgln:0614141.00001.0".to_string();
                    Entry::Recall(match change {
                        0 => RecallChange::Opened {
                            lot,
                            reason,
                            by,
                            at_ms,
                            affected: lots,
                            evidence,
                        },
                        1 => RecallChange::Widened {
                            recall,
                            reason,
                            by,
                            at_ms,
                            added: lots,
                            evidence,
                        },
                        _ => RecallChange::Closed {
                            recall,
                            reason,
                            by,
                            at_ms,
                        },
                    })
                }),
            (
                any::<bool>(),
                "[a-z0-9-]{1,20}",
                any::<u32>(),
                arb_head(),
                arb_head(),
                any::<[u8; 32]>(),
                any::<i64>(),
            )
                .prop_map(|(fork, member, shard, held, conflicting, key, at_ms)| {
                    Entry::Network(if fork {
                        NetworkRecord::Fork {
                            member,
                            shard,
                            held,
                            conflicting,
                        }
                    } else {
                        let mut signature = [0u8; 64];
                        signature[..32].copy_from_slice(&key);
                        NetworkRecord::Adopted(crate::network::SignedNetworkDoc {
                            doc: crate::network::NetworkDoc {
                                network: "cold-chain".into(),
                                version: u64::from(shard) + 1,
                                previous: (shard > 0).then_some(held.head.root),
                                issued_at_ms: at_ms,
                                members: vec![crate::network::Member {
                                    name: member.clone(),
                                    operator_key: key,
                                    url: "https://node.example".into(),
                                    prefixes: vec!["0614141".into()],
                                    shards: shard % 64 + 1,
                                }],
                            },
                            votes: vec![crate::network::Vote { member, signature }],
                        })
                    })
                }),
        ]
    }

    #[test]
    fn every_tag_below_kinds_is_a_kind_and_none_above() {
        assert!((0..KINDS).all(|k| kind_label(k).is_some()));
        assert!((KINDS..=u8::MAX).all(|k| kind_label(k).is_none()));
    }

    proptest! {
        #[test]
        fn entries_round_trip(entry in arb_entry()) {
            let bytes = entry.to_bytes();
            prop_assert!(kind_of(&bytes).is_some());
            if let Entry::Readings(sb) = &entry {
                let peeked = peek_readings(&bytes).unwrap();
                prop_assert_eq!(peeked, (sb.batch.device.clone(), sb.batch.first_seq, sb.batch.readings.len() as u64));
            } else {
                prop_assert!(peek_readings(&bytes).is_none());
            }
            prop_assert_eq!(Entry::from_bytes(&bytes).unwrap(), entry);
        }

    }

    #[test]
    fn decoded_entries_re_encode_to_the_same_bytes() {
        let flips = proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4);
        crate::codec::counting::decoded_share(
            "decoded_entries_re_encode_to_the_same_bytes",
            (arb_entry(), flips, any::<prop::sample::Index>()),
            0.2,
            |(entry, flips, cut)| {
                let mut bytes = entry.to_bytes();
                for (i, b) in flips {
                    let i = i.index(bytes.len());
                    bytes[i] = b;
                }
                let cut = cut.index(bytes.len());
                let _ = Entry::from_bytes(&bytes[..cut]);
                let Ok(e) = Entry::from_bytes(&bytes) else {
                    return Ok(false);
                };
                prop_assert_eq!(e.to_bytes(), bytes);
                Ok(true)
            },
        );
    }

    /// Arbitrary bytes, and entries' bytes with arbitrary bytes in place of
    /// some of theirs: what decodes re-encodes to exactly those bytes.
    #[test]
    fn arbitrary_bytes_are_refused_or_canonical() {
        let arbitrary = proptest::collection::vec(any::<u8>(), 0..512);
        let spliced = (
            arb_entry(),
            any::<prop::sample::Index>(),
            proptest::collection::vec(any::<u8>(), 0..8),
        )
            .prop_map(|(entry, at, noise)| {
                let mut bytes = entry.to_bytes();
                let at = at.index(bytes.len());
                let end = (at + noise.len()).min(bytes.len());
                bytes.splice(at..end, noise);
                bytes
            });
        crate::codec::counting::decoded_share(
            "arbitrary_bytes_are_refused_or_canonical",
            prop_oneof![arbitrary, spliced],
            0.1,
            |bytes| {
                let Ok(e) = Entry::from_bytes(&bytes) else {
                    return Ok(false);
                };
                prop_assert_eq!(e.to_bytes(), bytes);
                Ok(true)
            },
        );
    }

    #[test]
    fn device_signatures_cover_the_canonical_bytes() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let batch = DeviceBatch {
            device: "logger-1".into(),
            first_seq: 10,
            readings: vec![crate::reading::Reading::new(1_700_000_000_000, 412)],
        };
        let signed = SignedBatch::sign(batch, &key);
        assert!(signed.verify(&key.verifying_key()));
        let mut altered = signed.clone();
        altered.batch.readings[0].temp_centi_c = 399;
        assert!(!altered.verify(&key.verifying_key()));
        let entry = Entry::Readings(signed);
        let Entry::Readings(back) = Entry::from_bytes(&entry.to_bytes()).unwrap() else {
            panic!("kind changed")
        };
        assert!(back.verify(&key.verifying_key()));
    }

    #[test]
    fn a_batch_kept_as_received_is_the_entry_its_encoding_gives() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let readings = (0..50)
            .map(|i| {
                let mut r =
                    crate::reading::Reading::new(1_700_000_000_000 + i * 60_000, 400 + i as i32);
                r.humidity_permille = (i % 3 == 0).then_some(800);
                r
            })
            .collect();
        let batch = DeviceBatch {
            device: "logger-1".into(),
            first_seq: 10,
            readings,
        };
        let signed = SignedBatch::sign(batch, &key);
        let sent = signed.batch.to_bytes();
        let kept = Encoded::readings(&sent, signed.signature).unwrap();
        let encoded = Encoded::new(Entry::Readings(signed.clone()));
        assert_eq!(kept, encoded);
        let (batch, message) = kept.signed_batch().unwrap();
        assert_eq!(batch, &signed);
        assert_eq!(message, SignedBatch::signing_message(&sent));
        assert!(key
            .verify(&message.0, &Signature::from_bytes(&signed.signature))
            .is_ok());
        let receipt = Entry::ReceiptOut(Receipt {
            from_shard: 0,
            to_shard: 1,
            channel_seq: 0,
            source_index: 3,
            source_id: Digest([7; 32]),
            subject: "logger-1".into(),
        });
        assert!(Encoded::new(receipt).signed_batch().is_none());
        // A padded varint (the first sequence number 10 as two bytes) is not
        // canonical: refused, never kept.
        let at = 1 + "logger-1".len();
        assert_eq!(sent[at], 10);
        let mut padded = sent[..at].to_vec();
        padded.extend_from_slice(&[0x8a, 0x00]);
        padded.extend_from_slice(&sent[at + 1..]);
        assert!(Encoded::readings(&padded, signed.signature).is_err());
        assert!(Encoded::readings(&sent[..sent.len() - 1], signed.signature).is_err());
    }

    #[test]
    fn unknown_versions_and_kinds_are_refused() {
        assert!(matches!(
            Entry::from_bytes(&[2, 0]),
            Err(DecodeError::UnsupportedVersion { version: 2, .. })
        ));
        assert!(matches!(
            Entry::from_bytes(&[1, 99]),
            Err(DecodeError::UnknownTag { .. })
        ));
        assert!(Entry::from_bytes(&[]).is_err());
    }
}
