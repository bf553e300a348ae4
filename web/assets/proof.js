// coldtrail's proof checks for browsers: VERIFYING.md §2–§7 over the vendored
// noble libraries (BLAKE3, SHA-512, ed25519). Pure functions, no DOM, no
// network: verify.js fetches and shows; this decides. Every failure is a
// ProofError whose `code` names what failed (verify.js words it for people).

import { blake3 } from './vendor/noble-hashes/blake3.js';
import { sha256, sha512 } from './vendor/noble-hashes/sha2.js';
import * as ed from './vendor/noble-ed25519/index.js';

// noble-ed25519 leaves its SHA-512 to the caller; the synchronous one
// keeps verification off WebCrypto, which plain-HTTP pages do not get.
ed.hashes.sha512 = sha512;

export class ProofError extends Error {
  constructor(code, detail) {
    super(`${code}: ${detail}`);
    this.code = code;
    this.detail = detail;
  }
}

const fail = (code, detail) => {
  throw new ProofError(code, detail);
};

const utf8 = new TextEncoder();

/** BLAKE3 derive-key mode with empty key material: a domain's key (§2). */
const domainKey = (context) => blake3(new Uint8Array(0), { context: utf8.encode(context) });

/** The domains a verifier needs; an unknown version is refused, not guessed. */
export const DOMAINS = {
  merkle: domainKey('coldtrail 2026-11 merkle tree v1'),
  treeHead: domainKey('coldtrail 2026-11 signed tree head v1'),
  logId: domainKey('coldtrail 2026-11 log id v1'),
  keySet: domainKey('coldtrail 2026-11 node key set v1'),
};

/** `H_D(data)`: BLAKE3 keyed with the domain's key. */
export const hashIn = (domain, data) => blake3(data, { key: DOMAINS[domain] });

export const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/** Lower-case hex of exactly `len` bytes (when given), or a ProofError. */
export function fromHex(hex, len, what) {
  if (typeof hex !== 'string' || !/^([0-9a-f]{2})*$/.test(hex) || (len !== undefined && hex.length !== 2 * len)) {
    fail('format', `${what} is not ${len ?? 'whole'} bytes of lower-case hex`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function fromBase64(b64, what) {
  try {
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  } catch {
    return fail('format', `${what} is not base64`);
  }
}

export const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An entry's id: its Merkle leaf hash (§3). */
export const leafHash = (bytes) => hashIn('merkle', concat([0], bytes));
const nodeHash = (left, right) => hashIn('merkle', concat([1], left, right));

/**
 * The root an RFC 9162 §2.1.3.2 audit path leads to from leaf `index` of a
 * tree of `size` leaves, or a ProofError when the path cannot belong to it.
 * Indices are BigInt: logs may outgrow 2^53 entries.
 */
export function rootFromInclusion(index, size, leaf, path) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (fn > sn) fail('inclusion', `index ${index} is not below the head's size ${size}`);
  let r = leaf;
  for (const p of path) {
    if (sn === 0n) fail('inclusion', 'the audit path is longer than the tree is deep');
    if (fn % 2n === 1n || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2n === 0n) {
        while (fn % 2n === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) fail('inclusion', 'the audit path is shorter than the tree is deep');
  return r;
}

// §4: the canonical encoding, both ways.

/** Unsigned LEB128 of a non-negative integer. */
export function varint(value) {
  let v = BigInt(value);
  if (v < 0n) fail('format', 'a varint cannot be negative');
  const out = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return Uint8Array.from(out);
}

/** Zig-zag, then LEB128. */
export const svarint = (value) => {
  const v = BigInt(value);
  return varint(v >= 0n ? v << 1n : (-v << 1n) - 1n);
};

/** Reads the canonical encoding; refuses anything the encoder would not write. */
export class Reader {
  constructor(bytes, what) {
    this.bytes = bytes;
    this.at = 0;
    this.what = what;
  }
  fail(detail) {
    fail('format', `${this.what}: ${detail} at byte ${this.at}`);
  }
  u8() {
    if (this.at >= this.bytes.length) this.fail('ends early');
    return this.bytes[this.at++];
  }
  varint() {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (shift > 63n) this.fail('varint longer than 64 bits');
      const b = this.u8();
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) {
        if (b === 0 && shift > 0n) this.fail('varint not minimal');
        if (v >= 1n << 64n) this.fail('varint longer than 64 bits');
        return v;
      }
    }
  }
  svarint() {
    const z = this.varint();
    return z & 1n ? -(z >> 1n) - 1n : z >> 1n;
  }
  fixed(n) {
    if (this.at + n > this.bytes.length) this.fail('ends early');
    const out = this.bytes.slice(this.at, this.at + n);
    this.at += n;
    return out;
  }
  bytesField() {
    const n = this.varint();
    if (n > BigInt(this.bytes.length - this.at)) this.fail('length past the end');
    return this.fixed(Number(n));
  }
  option(read) {
    const tag = this.u8();
    if (tag === 0) return null;
    if (tag === 1) return read();
    return this.fail(`option tag ${tag}`);
  }
  seq(read) {
    const n = this.varint();
    if (n > BigInt(this.bytes.length - this.at)) this.fail('count past the end');
    const out = [];
    for (let i = 0n; i < n; i++) out.push(read());
    return out;
  }
  end() {
    if (this.at !== this.bytes.length) this.fail('trailing bytes');
  }
}

/** The bytes a log key signs the hash of (§6). */
export function headBytes(head) {
  return concat(
    fromHex(head.log_id, 32, 'the head\'s log id'),
    varint(head.size),
    fromHex(head.root, 32, 'the head\'s root'),
    svarint(head.timestamp_ms),
  );
}

const verifySignature = (signature, message, key) => {
  try {
    // Strict RFC 8032 (no ZIP-215 leniency), as the node checks.
    return ed.verify(signature, message, key, { zip215: false });
  } catch {
    return false;
  }
};

/**
 * Checks a head answer (`{shard, log_id, size, root, timestamp_ms,
 * signature}`) under `shardKey`, the key the verified key set names for its
 * shard, never under the key the answer names.
 */
export function verifyHead(head, shard, shardKey) {
  if (head.shard !== shard) fail('head', `the head is shard ${head.shard}'s, not shard ${shard}'s`);
  const logId = hashIn('logId', shardKey);
  if (!equal(logId, fromHex(head.log_id, 32, 'the head\'s log id'))) {
    fail('head', `the head names another log than shard ${shard}'s published key`);
  }
  const message = hashIn('treeHead', headBytes(head));
  if (!verifySignature(fromHex(head.signature, 64, 'the head\'s signature'), message, shardKey)) {
    fail('head', `the head's signature does not check under shard ${shard}'s published key`);
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes a key set's bytes (§7): version 1, or 2 with a witness policy. */
export function decodeKeySet(bytes) {
  const r = new Reader(bytes, 'key set');
  const version = r.u8();
  if (version !== 1 && version !== 2) fail('keys', `key set version ${version} is not one this verifier knows`);
  const set = {
    sequence: r.varint(),
    previous: r.option(() => r.fixed(32)),
    issuedAtMs: r.svarint(),
    operatorKey: r.fixed(32),
    shards: r.seq(() => ({ shard: r.varint(), key: r.fixed(32) })),
    witnesses: null,
  };
  if (version === 2) {
    const quorum = r.varint();
    const witnesses = r.seq(() => {
      const name = r.bytesField();
      let text;
      try {
        text = strictUtf8.decode(name);
      } catch {
        r.fail('a witness name is not UTF-8');
      }
      return { name: text, key: r.fixed(32) };
    });
    checkPolicy(quorum, witnesses);
    set.witnesses = { quorum: Number(quorum), witnesses };
  }
  r.end();
  set.shards.forEach((s, i) => {
    if (s.shard !== BigInt(i)) fail('keys', `the key set lists shard ${s.shard} where shard ${i} belongs`);
  });
  return set;
}

/**
 * A witness policy a client can hold to (§7): at least one witness, sorted
 * by name, names and keys distinct, names a signature line can carry, and
 * a quorum from 1 to their number. A policy that fails any of these could
 * count one witness twice or ask for nothing, so it is refused.
 */
function checkPolicy(quorum, witnesses) {
  if (witnesses.length === 0) fail('keys', 'a version 2 key set names at least one witness');
  if (quorum < 1n || quorum > BigInt(witnesses.length)) {
    fail('keys', `a quorum of ${quorum} is not between 1 and the ${witnesses.length} witnesses named`);
  }
  witnesses.forEach((w, i) => {
    if (!/^[!-*,-~]{1,255}$/.test(w.name)) fail('keys', `witness name ${JSON.stringify(w.name)} cannot name a signature line`);
    if (i > 0 && !(witnesses[i - 1].name < w.name)) fail('keys', 'the witnesses are not sorted by name, each named once');
    if (witnesses.slice(0, i).some((o) => equal(o.key, w.key))) fail('keys', `witness ${w.name} has another witness's key`);
  });
}

/** A signed set as served: `bytes(set)`, signature, optional endorsement. */
export function decodeSignedSet(bytes) {
  const r = new Reader(bytes, 'signed key set');
  const setBytes = r.bytesField();
  const signature = r.fixed(64);
  const endorsement = r.option(() => r.fixed(64));
  r.end();
  return { setBytes, signature, endorsement };
}

/**
 * Checks the key document's chain of sets (§7) and returns the operator key
 * and each shard's log key of the newest set. `pinned` (hex, or null on a
 * first visit) must be an operator key somewhere in the chain: rotations
 * away from it are trusted only through endorsements.
 */
export function verifyKeyChain(doc, pinned) {
  const sets = doc && Array.isArray(doc.key_sets) ? doc.key_sets : [];
  if (sets.length === 0) fail('keys', 'the node publishes no key set');
  let previous = null;
  let pinSeen = pinned === null;
  for (const [i, served] of sets.entries()) {
    const signed = decodeSignedSet(fromBase64(served.signed, `key set ${i}`));
    const set = decodeKeySet(signed.setBytes);
    const digest = hashIn('keySet', signed.setBytes);
    if (set.sequence !== BigInt(i)) fail('keys', `key set ${i} says it is number ${set.sequence}`);
    if (String(served.sequence) !== String(set.sequence) || served.operator_key !== toHex(set.operatorKey)) {
      fail('keys', `the fields shown beside key set ${i} disagree with its signed bytes`);
    }
    if (i === 0 ? set.previous !== null : !set.previous || !equal(set.previous, previous.digest)) {
      fail('keys', `key set ${i} does not follow the set before it`);
    }
    if (!verifySignature(signed.signature, digest, set.operatorKey)) {
      fail('keys', `key set ${i} is not signed by its operator key`);
    }
    const rotated = previous && !equal(previous.set.operatorKey, set.operatorKey);
    if (rotated) {
      if (!signed.endorsement || !verifySignature(signed.endorsement, digest, previous.set.operatorKey)) {
        fail('keys', `key set ${i} changes the operator key without the previous key's endorsement`);
      }
    } else if (signed.endorsement) {
      fail('keys', `key set ${i} carries an endorsement but keeps its operator key`);
    }
    // A log keeps its key for life: a later set lists every earlier shard
    // with the same key and may only add shards.
    if (previous) {
      previous.set.shards.forEach((s, j) => {
        if (!set.shards[j] || !equal(set.shards[j].key, s.key)) {
          fail('keys', `key set ${i} changes or drops shard ${j}'s log key`);
        }
      });
    }
    if (pinned !== null && toHex(set.operatorKey) === pinned) pinSeen = true;
    previous = { set, digest };
  }
  if (!pinSeen) fail('pin', `no key set is signed by the operator key first seen here (${pinned.slice(0, 16)}…)`);
  return {
    operatorKey: toHex(previous.set.operatorKey),
    shards: previous.set.shards.map((s) => s.key),
    // {quorum, witnesses: [{name, key}]}, or null: whom to ask to vouch.
    witnesses: previous.set.witnesses,
  };
}

// §6: checkpoints as signed notes, and their witnesses' cosignatures.

/** A C2SP signed note: its text and signature lines ({name, keyId, bytes}). */
export function parseNote(note) {
  if (typeof note !== 'string') fail('witness', 'the checkpoint is not text');
  const split = note.indexOf('\n\n');
  if (split < 0) fail('witness', 'the checkpoint has no signature lines');
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2);
  if (!lines.endsWith('\n')) fail('witness', 'the checkpoint does not end in a newline');
  const signatures = lines
    .slice(0, -1)
    .split('\n')
    .map((line) => {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m) fail('witness', `not a signature line: ${line.slice(0, 40)}`);
      const bytes = fromBase64(m[2], 'a signature line');
      if (bytes.length < 4) fail('witness', 'a signature line is too short');
      return { name: m[1], keyId: bytes.slice(0, 4), bytes: bytes.slice(4) };
    });
  return { text, signatures };
}

/** `SHA-256(name || 0x0A || type || key)[:4]` (§6). */
export const keyId = (name, type, key) => sha256(concat(utf8.encode(name), [0x0a, type], key)).slice(0, 4);

const signedBy = (note, name, type, key) => {
  const id = keyId(name, type, key);
  return note.signatures.filter((s) => s.name === name && equal(s.keyId, id));
};

/** Whether `name`'s `key` cosigned the note (`cosignature/v1`, type 0x04). */
function cosigned(note, name, key) {
  return signedBy(note, name, 0x04, key).some((s) => {
    if (s.bytes.length !== 8 + 64) return false;
    const time = new DataView(s.bytes.buffer, s.bytes.byteOffset, 8).getBigUint64(0);
    if (time >= 1n << 63n) return false;
    return verifySignature(s.bytes.slice(8), utf8.encode(`cosignature/v1\ntime ${time}\n${note.text}`), key);
  });
}

/**
 * Checks a `witnessed` answer (§9 step 4) for entry `index` whose id is
 * `id`: a checkpoint of shard `shard`'s log (`shardKey`), signed by that
 * key, cosigned by at least `policy.quorum` of `policy.witnesses`, with the
 * entry's audit path up to its root. Returns `{size, vouched}` (names).
 */
export function verifyWitnessed({ index, id }, witnessed, shardKey, policy) {
  const note = parseNote(witnessed.checkpoint);
  const origin = `coldtrail/blake3/${toHex(hashIn('logId', shardKey))}`;
  const [first, sizeLine, rootLine] = note.text.split('\n');
  if (first !== origin) fail('witness', 'the checkpoint is of another log');
  if (!/^(0|[1-9][0-9]*)$/.test(sizeLine || '')) fail('witness', 'the checkpoint\'s size is not a decimal number');
  const root = fromBase64(rootLine || '', 'the checkpoint\'s root');
  if (root.length !== 32) fail('witness', 'the checkpoint\'s root is not 32 bytes');
  const logSigned = signedBy(note, origin, 0x01, shardKey).some(
    (s) => s.bytes.length === 64 && verifySignature(s.bytes, utf8.encode(note.text), shardKey),
  );
  if (!logSigned) fail('witness', 'the checkpoint is not signed by its shard\'s published key');
  const vouched = policy.witnesses.filter((w) => cosigned(note, w.name, w.key)).map((w) => w.name);
  if (vouched.length < policy.quorum) {
    fail('quorum', `${vouched.length} of the ${policy.quorum} witnesses needed vouch for the checkpoint`);
  }
  const path = (witnessed.proof || []).map((h, i) => fromHex(h, 32, `witnessed audit path hash ${i}`));
  const leaf = fromHex(id, 32, 'the entry id');
  if (!equal(rootFromInclusion(index, sizeLine, leaf, path), root)) {
    fail('witness', `the audit path does not lead to the root the witnesses vouched for at size ${sizeLine}`);
  }
  return { size: sizeLine, vouched };
}

/** Entry kinds by their tag (§5). */
export const KINDS = ['readings', 'custody', 'identity', 'receipt-out', 'receipt-in', 'verdict', 'checkpoint', 'recall'];

/**
 * The whole check of one fact (§9 step 4): the entry's bytes hash to the id
 * the page names and are an entry of the kind the page says, and its audit
 * path leads to the root of a head signed by its shard's published key.
 * `proof` is the node's proof answer; returns the head it was checked under.
 * `checkedHeads` (a Set) remembers heads whose signature already checked:
 * the facts of one page mostly share their shard's newest head.
 */
export function verifyEntry({ shard, index, id, kind }, bytes, proof, shardKeys, checkedHeads = new Set()) {
  const leaf = leafHash(bytes);
  if (toHex(leaf) !== id) fail('id', `the entry's bytes hash to ${toHex(leaf).slice(0, 16)}…, not to the id ${id.slice(0, 16)}… the page names`);
  if (bytes[0] !== 1 || KINDS[bytes[1]] === undefined) fail('format', 'the bytes are not an entry this verifier knows');
  if (kind && KINDS[bytes[1]] !== kind) fail('kind', `the entry is a ${KINDS[bytes[1]]} entry, not the ${kind} entry the page says`);
  if (proof.shard !== shard || String(proof.index) !== String(index) || proof.id !== id) {
    fail('inclusion', 'the proof is for another entry');
  }
  const key = shardKeys[shard];
  if (!key) fail('head', `the node publishes no key for shard ${shard}`);
  const h = proof.head;
  const headKey = [shard, h.log_id, h.size, h.root, h.timestamp_ms, h.signature].join('/');
  if (!checkedHeads.has(headKey)) {
    verifyHead(h, shard, key);
    checkedHeads.add(headKey);
  }
  const path = (proof.proof || []).map((h, i) => fromHex(h, 32, `audit path hash ${i}`));
  const root = rootFromInclusion(index, proof.head.size, leaf, path);
  if (!equal(root, fromHex(proof.head.root, 32, 'the head\'s root'))) {
    fail('inclusion', `the audit path does not lead to the root the log signed at size ${proof.head.size}`);
  }
  return proof.head;
}
