"""A reference client for coldtrail partners, outside Rust.

It builds device batches in the ledger's canonical encoding (VERIFYING.md,
sections 4 and 5; PARTNERS.md walks through it with vectors), signs them with
the device's ed25519 key, and sends them, or EPCIS 2.0 documents, over HTTP
with retries and an Idempotency-Key, so a retried request is never applied
twice.

Needs `pynacl` and `blake3` (clients/python/requirements.txt); the rest is
the standard library.

    python3 coldtrail_client.py register --url URL --token T --key KEYFILE --device D
    python3 coldtrail_client.py send --url URL --token T --key KEYFILE --device D \
        [--first-seq N] [--format binary|json] [--batch-size 500] readings.jsonl
    python3 coldtrail_client.py capture --url URL --token T document.json
    python3 coldtrail_client.py keygen --out KEYFILE
    python3 coldtrail_client.py vectors

Each command prints the server's answers as JSON lines on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Iterable, Optional

import blake3
from nacl.signing import SigningKey

BINARY_BATCH = "application/vnd.coldtrail.batch"
DEVICE_BATCH_CONTEXT = "coldtrail 2026-11 device batch signature v1"
KEY_FILE_TAG = "coldtrail-ed25519-secret-key-v1"

MAX_READINGS_PER_BATCH = 100_000
MAX_TIME_MS = 253_402_300_799_999

# --- canonical encoding (VERIFYING.md, section 4) ---------------------------


def varint(v: int) -> bytes:
    """Unsigned LEB128, minimal length, at most 64 bits."""
    if not 0 <= v < 1 << 64:
        raise ValueError(f"varint out of range: {v}")
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def svarint(v: int) -> bytes:
    """Zig-zag, then varint."""
    if not -(1 << 63) <= v < 1 << 63:
        raise ValueError(f"svarint out of range: {v}")
    return varint(((v << 1) ^ (v >> 63)) & ((1 << 64) - 1))


def length_prefixed(b: bytes) -> bytes:
    return varint(len(b)) + b


# --- readings and batches (VERIFYING.md, section 5) -------------------------


@dataclass
class Reading:
    """One reading in the ledger's scaled integers."""

    time_ms: int
    temp_centi_c: int  # hundredths of a degree Celsius
    humidity_permille: Optional[int] = None  # tenths of a percent RH, 0..=1000
    shock_centi_g: Optional[int] = None  # hundredths of g
    door_open: Optional[bool] = None  # None: the logger has no door sensor
    light_lux: Optional[int] = None
    lat_e7: Optional[int] = None  # degrees x 1e7, with lon_e7
    lon_e7: Optional[int] = None
    battery_mv: Optional[int] = None
    defrost: bool = False

    def check(self) -> None:
        if not 0 <= self.time_ms <= MAX_TIME_MS:
            raise ValueError(f"time_ms {self.time_ms} out of range")
        if abs(self.temp_centi_c) > 100_000:
            raise ValueError(f"temp_centi_c {self.temp_centi_c} out of range")
        if self.humidity_permille is not None and not 0 <= self.humidity_permille <= 1000:
            raise ValueError("humidity_permille must be 0..=1000")
        if (self.lat_e7 is None) != (self.lon_e7 is None):
            raise ValueError("give both lat_e7 and lon_e7, or neither")
        if self.lat_e7 is not None and (abs(self.lat_e7) > 900_000_000 or abs(self.lon_e7) > 1_800_000_000):
            raise ValueError("latitude must be within ±90° and longitude within ±180°")

    def mask(self) -> int:
        m = 0
        if self.humidity_permille is not None:
            m |= 1 << 0
        if self.shock_centi_g is not None:
            m |= 1 << 1
        if self.door_open is not None:
            m |= 1 << 2
            if self.door_open:
                m |= 1 << 3
        if self.light_lux is not None:
            m |= 1 << 4
        if self.lat_e7 is not None:
            m |= 1 << 5
        if self.battery_mv is not None:
            m |= 1 << 6
        if self.defrost:
            m |= 1 << 7
        return m

    def to_json(self) -> dict:
        out = {"time_ms": self.time_ms, "temp_centi_c": self.temp_centi_c}
        for name in ("humidity_permille", "shock_centi_g", "door_open", "light_lux", "lat_e7", "lon_e7", "battery_mv"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.defrost:
            out["defrost"] = True
        return out

    @staticmethod
    def from_json(obj: dict) -> "Reading":
        known = {f for f in Reading.__dataclass_fields__}
        unknown = set(obj) - known
        if unknown:
            raise ValueError(f"unknown reading fields: {sorted(unknown)}")
        return Reading(**obj)


def _delta_column(values: Iterable[Optional[int]]) -> bytes:
    out, prev = bytearray(), 0
    for v in values:
        if v is not None:
            out += svarint(v - prev)
            prev = v
    return bytes(out)


def encode_readings(readings: list[Reading]) -> bytes:
    """The columnar encoding: count, times (first, then delta-of-deltas),
    presence masks, then each column as deltas from its previous value."""
    out = bytearray(varint(len(readings)))
    if not readings:
        return bytes(out)
    out += svarint(readings[0].time_ms)
    prev_t, prev_d = readings[0].time_ms, 0
    for r in readings[1:]:
        d = r.time_ms - prev_t
        out += svarint(d - prev_d)
        prev_t, prev_d = r.time_ms, d
    out += bytes(r.mask() for r in readings)
    out += _delta_column(r.temp_centi_c for r in readings)
    out += _delta_column(r.humidity_permille for r in readings)
    for r in readings:
        if r.shock_centi_g is not None:
            out += varint(r.shock_centi_g)
    out += _delta_column(r.light_lux for r in readings)
    out += _delta_column(r.lat_e7 for r in readings)
    out += _delta_column(r.lon_e7 for r in readings)
    out += _delta_column(r.battery_mv for r in readings)
    return bytes(out)


@dataclass
class DeviceBatch:
    device: str
    first_seq: int
    readings: list[Reading] = field(default_factory=list)

    def canonical_bytes(self) -> bytes:
        device = self.device.encode("utf-8")
        if not 1 <= len(device) <= 256:
            raise ValueError("a device id is 1 to 256 bytes")
        if len(self.readings) > MAX_READINGS_PER_BATCH:
            raise ValueError(f"at most {MAX_READINGS_PER_BATCH} readings per batch")
        for r in self.readings:
            r.check()
        return length_prefixed(device) + varint(self.first_seq) + encode_readings(self.readings)


def signing_message(batch_bytes: bytes) -> bytes:
    """What the device key signs: BLAKE3 keyed by the DeviceBatch domain's
    derived key, over the canonical batch bytes (32 bytes)."""
    key = blake3.blake3(b"", derive_key_context=DEVICE_BATCH_CONTEXT).digest()
    return blake3.blake3(batch_bytes, key=key).digest()


@dataclass
class SignedBatch:
    batch: DeviceBatch
    signature: bytes

    def binary(self) -> bytes:
        """One batch of a binary body: its bytes (length first), then the
        64-byte signature."""
        return length_prefixed(self.batch.canonical_bytes()) + self.signature

    def to_json(self) -> dict:
        return {
            "device": self.batch.device,
            "first_seq": self.batch.first_seq,
            "readings": [r.to_json() for r in self.batch.readings],
            "signature": self.signature.hex(),
        }


class Device:
    """A device's key and its next sequence number: batches it signs follow
    on without gaps (the server refuses a rewound or replayed sequence)."""

    def __init__(self, device: str, key: SigningKey, next_seq: int = 0):
        self.device, self.key, self.next_seq = device, key, next_seq

    def sign(self, readings: list[Reading]) -> SignedBatch:
        batch = DeviceBatch(self.device, self.next_seq, list(readings))
        signature = self.key.sign(signing_message(batch.canonical_bytes())).signature
        self.next_seq += len(readings)
        return SignedBatch(batch, signature)


def binary_body(batches: list[SignedBatch]) -> bytes:
    return b"".join(b.binary() for b in batches)


def json_body(batches: list[SignedBatch]) -> bytes:
    return json.dumps({"batches": [b.to_json() for b in batches]}).encode()


# --- keys -------------------------------------------------------------------


def read_key_file(path: str) -> SigningKey:
    """A coldtrail key file (`coldtrail keygen`): a tag line, then the 32-byte
    secret seed in hex."""
    lines = open(path, encoding="ascii").read().split()
    if len(lines) != 2 or lines[0] != KEY_FILE_TAG or len(lines[1]) != 64:
        raise ValueError(f"{path} is not a coldtrail key file")
    return SigningKey(bytes.fromhex(lines[1]))


def write_key_file(path: str, key: SigningKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{KEY_FILE_TAG}\n{bytes(key).hex()}\n")


# --- HTTP -------------------------------------------------------------------


class Refused(Exception):
    """The server refused the request (a 4xx problem document)."""

    def __init__(self, status: int, problem: dict):
        super().__init__(f"{status} {problem.get('code')}: {problem.get('detail')}")
        self.status, self.problem = status, problem


RETRY_STATUSES = {429, 502, 503, 504}


class Client:
    def __init__(self, url: str, token: str, attempts: int = 6, timeout: float = 30.0):
        self.url, self.token = url.rstrip("/"), token
        self.attempts, self.timeout = attempts, timeout

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                content_type: Optional[str] = None, idempotent: bool = True,
                idempotency_key: Optional[str] = None) -> tuple[int, dict]:
        """Sends with retries on connection errors, 429 and 5xx gateways
        (honouring Retry-After); a write carries one Idempotency-Key across
        all its attempts, so the server applies it at most once. Give
        `idempotency_key` to carry it across your own retries too (a gateway
        that crashed and resends after a restart); else one is made per call."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if method == "POST" and idempotent:
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        delay = 0.2
        for attempt in range(1, self.attempts + 1):
            req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return resp.status, json.loads(resp.read() or b"{}")
            except urllib.error.HTTPError as e:
                payload = e.read()
                if e.code in RETRY_STATUSES and attempt < self.attempts:
                    wait = float(e.headers.get("Retry-After") or delay)
                    time.sleep(wait + random.uniform(0, delay))
                    delay = min(delay * 2, 5.0)
                    continue
                try:
                    problem = json.loads(payload)
                except ValueError:
                    problem = {"code": "unreadable", "detail": payload[:200].decode("utf-8", "replace")}
                raise Refused(e.code, problem) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if attempt == self.attempts:
                    raise
                time.sleep(delay + random.uniform(0, delay))
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def register_device(self, device: str, key: SigningKey,
                        idempotency_key: Optional[str] = None,
                        active_from_ms: Optional[int] = None) -> dict:
        """Registers `device` under `key`. The key signs readings taken from
        `active_from_ms` (Unix ms) on; by default from the registration, so give
        the logger's deployment time to upload readings it recorded before."""
        public = bytes(key.verify_key).hex()
        fields = {"device": device, "public_key": public}
        if active_from_ms is not None:
            fields["active_from_ms"] = active_from_ms
        body = json.dumps(fields).encode()
        return self.request("POST", "/v1/devices", body, "application/json",
                            idempotency_key=idempotency_key)[1]

    def device(self, device: str) -> dict:
        return self.request("GET", f"/v1/devices/{urllib.request.quote(device, safe='')}")[1]

    def send_batches(self, batches: list[SignedBatch], fmt: str = "binary",
                     idempotency_key: Optional[str] = None) -> dict:
        if fmt == "binary":
            body, content_type = binary_body(batches), BINARY_BATCH
        else:
            body, content_type = json_body(batches), "application/json"
        return self.request("POST", "/v1/batches", body, content_type,
                            idempotency_key=idempotency_key)[1]

    def capture(self, document: bytes, idempotency_key: Optional[str] = None) -> dict:
        return self.request("POST", "/capture", document, "application/ld+json",
                            idempotency_key=idempotency_key)[1]


# --- the command line -------------------------------------------------------


def read_readings(path: str) -> list[Reading]:
    """JSON lines, one reading each, fields as in `Reading`."""
    with open(path, encoding="utf-8") as f:
        return [Reading.from_json(json.loads(line)) for line in f if line.strip()]


def vectors() -> dict:
    """The worked example of PARTNERS.md, computed here (the Rust test
    compares it with what the server's own code produces)."""
    key = SigningKey(bytes([7]) * 32)
    device = Device("urn:epc:id:giai:0614141.LOGGER-7", key, next_seq=41)
    readings = [
        Reading(1_793_491_200_000, 412, humidity_permille=853, battery_mv=3012),
        Reading(1_793_491_260_000, 415, door_open=True, shock_centi_g=120),
        Reading(1_793_491_320_000, -35, lat_e7=367_783_000, lon_e7=-1_196_538_000, defrost=True, light_lux=40),
    ]
    signed = device.sign(readings)
    batch_bytes = signed.batch.canonical_bytes()
    return {
        "device_seed": (bytes([7]) * 32).hex(),
        "device_public_key": bytes(key.verify_key).hex(),
        "batch_bytes": batch_bytes.hex(),
        "signing_message": signing_message(batch_bytes).hex(),
        "signature": signed.signature.hex(),
        "binary_body": binary_body([signed]).hex(),
        "json_body": json.loads(json_body([signed])),
        "next_seq": device.next_seq,
    }


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def server(sp):
        sp.add_argument("--url", required=True)
        sp.add_argument("--token", default=os.environ.get("COLDTRAIL_TOKEN"))

    sp = sub.add_parser("keygen")
    sp.add_argument("--out", required=True)
    def keyed(sp):
        sp.add_argument("--idempotency-key",
                        help="the request's Idempotency-Key (send: KEY-0, KEY-1, … per request), "
                             "so a resend after a crash is answered, not applied again")

    sp = sub.add_parser("register")
    server(sp)
    keyed(sp)
    sp.add_argument("--key", required=True)
    sp.add_argument("--device", required=True)
    sp.add_argument("--active-from-ms", type=int,
                    help="from when (Unix ms) the key signs readings; default: now. "
                         "Give the logger's deployment time to upload its backlog")
    sp = sub.add_parser("send")
    server(sp)
    keyed(sp)
    sp.add_argument("--key", required=True)
    sp.add_argument("--device", required=True)
    sp.add_argument("--first-seq", type=int, help="default: the server's next sequence number for the device")
    sp.add_argument("--format", choices=["binary", "json"], default="binary")
    sp.add_argument("--batch-size", type=int, default=500)
    sp.add_argument("--batches-per-request", type=int, default=4)
    sp.add_argument("readings")
    sp = sub.add_parser("capture")
    server(sp)
    keyed(sp)
    sp.add_argument("document")
    sub.add_parser("vectors")
    args = p.parse_args(argv)

    if args.cmd == "vectors":
        print(json.dumps(vectors()))
        return 0
    if args.cmd == "keygen":
        key = SigningKey.generate()
        write_key_file(args.out, key)
        print(json.dumps({"public_key": bytes(key.verify_key).hex()}))
        return 0
    if not args.token:
        p.error("give --token or set COLDTRAIL_TOKEN")
    client = Client(args.url, args.token)
    try:
        if args.cmd == "register":
            print(json.dumps(client.register_device(args.device, read_key_file(args.key),
                                                    args.idempotency_key,
                                                    args.active_from_ms)))
        elif args.cmd == "capture":
            with open(args.document, "rb") as f:
                print(json.dumps(client.capture(f.read(), args.idempotency_key)))
        elif args.cmd == "send":
            first = args.first_seq
            if first is None:
                first = client.device(args.device)["next_seq"]
            device = Device(args.device, read_key_file(args.key), first)
            readings = read_readings(args.readings)
            batches = [device.sign(readings[i:i + args.batch_size])
                       for i in range(0, len(readings), args.batch_size)]
            for n, i in enumerate(range(0, len(batches), args.batches_per_request)):
                key = f"{args.idempotency_key}-{n}" if args.idempotency_key else None
                print(json.dumps(client.send_batches(batches[i:i + args.batches_per_request],
                                                     args.format, key)))
    except Refused as e:
        print(json.dumps({"status": e.status, **e.problem}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
