#!/usr/bin/env python3
"""Where each core's time goes: CPU time per thread of a running process,
grouped by thread name, between two snapshots, per reading ingested.

    threads.py snapshot PID > FILE
    threads.py run CPU_FILE -- COMMAND...     runs COMMAND, passes its stdout
                                              on, writes its CPU seconds to
                                              CPU_FILE (the load generator's
                                              own share of the cores)
    threads.py profile BEFORE AFTER READINGS SECONDS [CLIENT_CPU_FILE]

Thread names are the kernel's (15 characters); digits are folded so a pool
of workers is one row. Figures are CPU microseconds per reading, and the
share of the machine's cores over the run's wall time.
"""
import json
import os
import re
import resource
import subprocess
import sys

TICK = os.sysconf("SC_CLK_TCK")


def snapshot(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except FileNotFoundError:
            continue  # the thread ended between the listing and the read
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        # utime and stime are fields 14 and 15 of stat, 12 and 13 after comm.
        out[tid] = [comm, int(fields[11]) + int(fields[12])]
    return out


def group(comm):
    # A pool's numbers, and the hex of a log id cut off at 15 characters.
    return re.sub(r"(?<=-)[0-9a-f]+$|\d+", "N", comm)


def profile(before, after, readings, seconds, client_cpu=None):
    b, a = json.load(open(before)), json.load(open(after))
    cpu = {}
    for tid, (comm, ticks) in a.items():
        used = ticks - b.get(tid, [comm, 0])[1]
        if used > 0:
            cpu[group(comm)] = cpu.get(group(comm), 0) + used / TICK
    cores = os.cpu_count()
    rows = sorted(cpu.items(), key=lambda kv: -kv[1])
    if client_cpu is not None:
        rows.append(("(load generator)", client_cpu))
    total = sum(v for _, v in rows)
    print(f"  per reading, by thread ({readings:,.0f} readings in {seconds:.1f} s on {cores} cores):")
    for name, secs in rows:
        print(f"    {name:18s} {secs * 1e6 / readings:6.3f} us CPU/reading  {secs / seconds / cores * 100:5.1f} % of the cores")
    print(f"    {'all':18s} {total * 1e6 / readings:6.3f} us CPU/reading  {total / seconds / cores * 100:5.1f} % of the cores;"
          f" at this cost {cores} busy cores ingest {cores * readings / total / 1e6:.2f} M readings/s")


def main():
    cmd = sys.argv[1]
    if cmd == "snapshot":
        json.dump(snapshot(sys.argv[2]), sys.stdout)
    elif cmd == "run":
        cpu_file, rest = sys.argv[2], sys.argv[4:]
        done = subprocess.run(rest, stdout=subprocess.PIPE, check=True)
        sys.stdout.buffer.write(done.stdout)
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(cpu_file, "w") as f:
            f.write(str(r.ru_utime + r.ru_stime))
    elif cmd == "profile":
        client = float(open(sys.argv[6]).read()) if len(sys.argv) > 6 else None
        profile(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), client)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
