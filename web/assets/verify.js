// The consumer page's verifier: for every fact that names a ledger entry
// (`a.proof[data-entry="shard/index/id"]`), fetch the entry's bytes and its
// inclusion proof, check them (proof.js) against the node's published keys,
// and say per fact "verified" or what failed. The page reads the same
// without it; this only adds the check.
//
// Trust: the operator key is taken from the node on the first visit and
// remembered in this browser (trust on first use); a later key document
// must reach it through endorsed rotations. The page shows the key, so a
// careful reader can compare it with one the operator publishes elsewhere.
// When the node's key set names witnesses, a fact is "verified" only when
// a quorum of them cosigned a checkpoint that holds it; the page names who
// vouched, and says so when too few have yet.

import { ProofError, verifyEntry, verifyKeyChain, verifyWitnessed } from './proof.js';

const WORDS = {
  en: {
    checking: 'checking…',
    verified: 'verified',
    failed: 'not verified',
    fetch: 'the node did not answer',
    format: 'the answer is malformed',
    id: 'the record was altered',
    kind: 'the record is not what the page says',
    head: 'the log\'s signature does not check',
    inclusion: 'the record is not in the signed log',
    keys: 'the node\'s published keys do not check',
    pin: 'the node\'s key changed since your last visit',
    witness: 'the witnesses\' checkpoint does not check',
    quorum: 'too few witnesses vouch for it',
    unwitnessed: 'signed, not yet vouched for by witnesses',
    summary: (ok, all, key) => `${ok} of ${all} facts verified in your browser against the node's key ${key}.`,
    summaryFailed: (bad, all) => `${bad} of ${all} facts could not be verified. Treat them with caution.`,
    vouched: (names, quorum, all) => `Vouched for by the independent witnesses ${names.join(', ')} (${quorum} of ${all} needed).`,
    summaryUnwitnessed: (n, all, quorum, count) =>
      `${n} of ${all} facts are signed by the node but not yet vouched for by ${quorum} of its ${count} witnesses, so they are not verified yet; reload in a few seconds.`,
    checkedAt: (size) => `in the log's signed state at ${size} records`,
  },
  de: {
    checking: 'wird geprüft…',
    verified: 'geprüft',
    failed: 'nicht bestätigt',
    fetch: 'der Server antwortet nicht',
    format: 'die Antwort ist fehlerhaft',
    id: 'der Eintrag wurde verändert',
    kind: 'der Eintrag ist nicht, was die Seite angibt',
    head: 'die Signatur des Registers stimmt nicht',
    inclusion: 'der Eintrag steht nicht im signierten Register',
    keys: 'die veröffentlichten Schlüssel stimmen nicht',
    pin: 'der Schlüssel des Servers hat sich seit Ihrem letzten Besuch geändert',
    witness: 'der Prüfpunkt der Zeugen stimmt nicht',
    quorum: 'zu wenige Zeugen bürgen dafür',
    unwitnessed: 'signiert, noch von keinen Zeugen bestätigt',
    summary: (ok, all, key) => `${ok} von ${all} Angaben in Ihrem Browser mit dem Schlüssel ${key} des Servers geprüft.`,
    summaryFailed: (bad, all) => `${bad} von ${all} Angaben konnten nicht bestätigt werden. Seien Sie vorsichtig.`,
    vouched: (names, quorum, all) => `Bestätigt von den unabhängigen Zeugen ${names.join(', ')} (${quorum} von ${all} nötig).`,
    summaryUnwitnessed: (n, all, quorum, count) =>
      `${n} von ${all} Angaben sind vom Server signiert, aber noch nicht von ${quorum} seiner ${count} Zeugen bestätigt, also noch nicht geprüft; laden Sie die Seite in einigen Sekunden neu.`,
    checkedAt: (size) => `im signierten Stand des Registers bei ${size} Einträgen`,
  },
};
const words = WORDS[document.documentElement.lang] || WORDS.en;

async function fetchOk(url, as) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: as === 'json' ? 'application/json' : 'application/octet-stream' } });
  } catch (e) {
    throw new ProofError('fetch', `${url}: ${e.message}`);
  }
  if (!response.ok) throw new ProofError('fetch', `${url}: HTTP ${response.status}`);
  if (as === 'json') {
    try {
      return await response.json();
    } catch {
      throw new ProofError('format', `${url} is not JSON`);
    }
  }
  return new Uint8Array(await response.arrayBuffer());
}

const PIN = `coldtrail operator key ${location.host}`;

function remembered() {
  try {
    return localStorage.getItem(PIN);
  } catch {
    return null; // storage off: every visit is a first visit
  }
}

function remember(key) {
  try {
    localStorage.setItem(PIN, key);
  } catch {
    // as above
  }
}

async function keys() {
  const doc = await fetchOk('/.well-known/coldtrail/keys', 'json');
  const chain = verifyKeyChain(doc, remembered());
  remember(chain.operatorKey);
  return chain;
}

const checkedHeads = new Set();

/**
 * One entry, checked once however many facts name it: its head, and where
 * the node has a witness policy its witnesses' checkpoint (`witnessed`:
 * `{size, vouched}`, or null when none holds it yet).
 */
async function check(fact, chain) {
  const base = `/v1/shards/${fact.shard}/entries/${fact.index}`;
  // The content is read through the page's grant for this entry (the page
  // discloses what it shows); the proof is public.
  const grant = fact.grant ? `?grant=${encodeURIComponent(fact.grant)}` : '';
  const [bytes, proof] = await Promise.all([fetchOk(`${base}/raw${grant}`, 'bytes'), fetchOk(`${base}/proof`, 'json')]);
  const head = verifyEntry(fact, bytes, proof, chain.shards, checkedHeads);
  const witnessed = chain.witnesses && proof.witnessed ? verifyWitnessed(fact, proof.witnessed, chain.shards[fact.shard], chain.witnesses) : null;
  return { head, witnessed };
}

function parse(link) {
  const [shard, index, id] = link.dataset.entry.split('/');
  return { shard: Number(shard), index, id, kind: link.dataset.kind || null, grant: link.dataset.grant || null };
}

function show(link, state, text, title) {
  link.dataset.state = state;
  link.textContent = text;
  if (title) link.title = title;
}

async function main() {
  const links = [...document.querySelectorAll('a.proof[data-entry]')];
  if (links.length === 0) return;
  for (const link of links) show(link, 'checking', words.checking);
  const summary = document.getElementById('proof-summary');
  const byEntry = new Map();
  for (const link of links) {
    const key = `${link.dataset.entry}/${link.dataset.kind || ''}`;
    if (!byEntry.has(key)) byEntry.set(key, []);
    byEntry.get(key).push(link);
  }
  let chain = null;
  let chainError = null;
  try {
    chain = await keys();
  } catch (e) {
    chainError = e;
  }
  let bad = 0;
  let unwitnessed = 0;
  const vouched = new Set();
  await Promise.all(
    [...byEntry.values()].map(async (group) => {
      const fact = parse(group[0]);
      try {
        if (chainError) throw chainError;
        const { head, witnessed } = await check(fact, chain);
        const where = `${fact.shard}/${fact.index} · ${fact.id} · ${words.checkedAt(head.size)}`;
        if (chain.witnesses && !witnessed) {
          unwitnessed += group.length;
          for (const link of group) show(link, 'unwitnessed', `… ${words.unwitnessed}`, where);
          return;
        }
        if (witnessed) witnessed.vouched.forEach((n) => vouched.add(n));
        for (const link of group) show(link, 'verified', `✓ ${words.verified}`, where);
      } catch (e) {
        const code = e instanceof ProofError ? e.code : 'format';
        bad += group.length;
        for (const link of group) show(link, 'failed', `✗ ${words.failed}: ${words[code] || words.format}`, e.message);
      }
    }),
  );
  const state = bad > 0 ? 'failed' : unwitnessed > 0 ? 'unwitnessed' : 'verified';
  if (summary) {
    const policy = chain && chain.witnesses;
    summary.textContent =
      state === 'failed'
        ? words.summaryFailed(bad, links.length)
        : state === 'unwitnessed'
          ? words.summaryUnwitnessed(unwitnessed, links.length, policy.quorum, policy.witnesses.length)
          : words.summary(links.length, links.length, `${chain.operatorKey.slice(0, 16)}…`) +
            (policy ? ` ${words.vouched([...vouched].sort(), policy.quorum, policy.witnesses.length)}` : '');
    summary.dataset.state = state;
    summary.hidden = false;
  }
  document.documentElement.dataset.verification = state;
  // When every fact was judged, for the time-to-verified benchmark.
  performance.mark('coldtrail:verified');
}

main().catch((e) => {
  // Nothing above should throw; if it does, say so on the page rather than
  // leave facts "checking" forever.
  document.documentElement.dataset.verification = 'failed';
  for (const link of document.querySelectorAll('a.proof[data-state=checking]')) show(link, 'failed', `✗ ${words.failed}`, String(e));
});
