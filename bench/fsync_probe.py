#!/usr/bin/env python3
"""What an fdatasync costs on this machine's disk, the floor under every
durable acknowledgement: 40 kB writes, each followed by fdatasync, into

  append  a file that grows with every write (as the embedded store's
          active segment does today: each fdatasync also commits the new
          file size through the ext4 journal), and
  zeroed  a file written full of zeros and synced beforehand, then
          overwritten in place (no metadata changes: the fdatasync flushes
          data only, as PostgreSQL's recycled WAL segments do),

first on a quiet disk, then while another thread writes 8 MiB files and
fsyncs them (as a neighbour's flushes would). Prints percentiles in ms.

    python3 bench/fsync_probe.py [DIR]        (default: a temporary directory)
    python3 bench/fsync_probe.py --json DIR [N]

With --json, only the quiet disk and the zeroed file (what the embedded
store's group commits do: its segments are zeroed ahead of the appends), N
fdatasyncs (default 2000), as one JSON object of milliseconds: the floor
bench/ingest.sh sets beside the acknowledgement tail.
"""
import json
import os
import sys
import tempfile
import threading
import time


def probe(directory, mode, n=3000, size=40_000):
    path = os.path.join(directory, f"probe-{mode}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    if mode == "zeroed":
        zeros = b"\0" * (1 << 20)
        for _ in range(n * size // len(zeros) + 1):
            os.write(fd, zeros)
        os.fsync(fd)
    data = os.urandom(size)
    lat = []
    for i in range(n):
        os.pwrite(fd, data, i * size)
        t = time.perf_counter()
        os.fdatasync(fd)
        lat.append(time.perf_counter() - t)
    os.close(fd)
    os.remove(path)
    lat.sort()
    q = lambda p: lat[int(p * (len(lat) - 1))] * 1000
    return {"p50": q(.5), "p90": q(.9), "p99": q(.99), "p99.9": q(.999), "max": q(1)}


def words(p):
    return "  ".join(f"{k} {v:.3f}" for k, v in p.items())


def neighbour(directory, stop):
    i = 0
    while not stop.is_set():
        with open(os.path.join(directory, f"neighbour-{i % 4}"), "wb") as f:
            for _ in range(8):
                f.write(os.urandom(1 << 20))
            f.flush()
            os.fsync(f.fileno())
        i += 1
        time.sleep(0.05)


def main():
    if sys.argv[1:2] == ["--json"]:
        n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
        with tempfile.TemporaryDirectory(dir=sys.argv[2]) as d:
            print(json.dumps(probe(d, "zeroed", n=n)))
        return
    parent = sys.argv[1] if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory(dir=parent) as d:
        for label, busy in (("quiet disk", False), ("with a neighbour's 8 MiB fsyncs", True)):
            stop = threading.Event()
            t = threading.Thread(target=neighbour, args=(d, stop)) if busy else None
            if t:
                t.start()
            try:
                for mode in ("append", "zeroed"):
                    print(f"{label:32s} {mode:7s} fdatasync ms: {words(probe(d, mode))}", flush=True)
            finally:
                stop.set()
                if t:
                    t.join()


if __name__ == "__main__":
    main()
