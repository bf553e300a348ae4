"""Checks a checkpoint as the C2SP specifications define it, written from
them alone (signed-note, tlog-checkpoint, tlog-cosignature), not from our Rust.

Usage: check_checkpoint.py FILE LOG_KEY_HEX SIZE ROOT_HEX [WITNESS_NAME WITNESS_KEY_HEX]
Exits 1 naming what failed: the note's shape, the origin (coldtrail/blake3/<log
id>), the size and root, the log key's Ed25519 signature (type 0x01, key name =
origin) and, when a witness is given, its cosignature/v1 (type 0x04).
"""
import base64
import hashlib
import sys

import blake3
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

EM_DASH = "\u2014"


def key_id(name: str, kind: int, key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + key).digest()[:4]


def log_id(key: bytes) -> str:
    dk = blake3.blake3(b"", derive_key_context="coldtrail 2026-11 log id v1").digest()
    return blake3.blake3(key, key=dk).hexdigest()


def main() -> int:
    path, log_key, size, root = sys.argv[1:5]
    note = open(path, encoding="utf-8").read()
    assert note.endswith("\n"), "a note ends in a newline"
    assert all(c >= " " or c == "\n" for c in note), "no control characters"
    split = note.rindex("\n\n")
    text, sigs = note[: split + 1], note[split + 2 :]
    lines = text[:-1].split("\n")
    key = bytes.fromhex(log_key)
    origin = f"coldtrail/blake3/{log_id(key)}"
    assert lines[0] == origin, f"origin {lines[0]!r}, expected {origin!r}"
    assert lines[1] == str(int(size)), f"size {lines[1]!r}"
    assert base64.b64decode(lines[2], validate=True).hex() == root, "root"
    signatures = []
    for line in sigs.splitlines():
        assert line.startswith(EM_DASH + " "), f"signature line {line!r}"
        name, blob = line[2:].split(" ")
        raw = base64.b64decode(blob, validate=True)
        signatures.append((name, raw[:4], raw[4:]))

    found = [s for s in signatures if s[0] == origin and s[1] == key_id(origin, 0x01, key)]
    assert found, "no signature by the log key"
    try:
        VerifyKey(key).verify(text.encode(), found[0][2])
    except BadSignatureError:
        raise AssertionError("the log's signature does not verify")

    if len(sys.argv) > 5:
        name, wkey = sys.argv[5], bytes.fromhex(sys.argv[6])
        found = [s for s in signatures if s[0] == name and s[1] == key_id(name, 0x04, wkey)]
        assert found, f"no cosignature by {name}"
        stamp, sig = found[0][2][:8], found[0][2][8:]
        t = int.from_bytes(stamp, "big")
        message = f"cosignature/v1\ntime {t}\n{text}".encode()
        try:
            VerifyKey(wkey).verify(message, sig)
        except BadSignatureError:
            raise AssertionError(f"the cosignature by {name} does not verify")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"{sys.argv[1]}: {e}")
        sys.exit(1)
