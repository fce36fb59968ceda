#!/usr/bin/env python3
"""CPU time per process name over a window: where a loaded machine's cores go.

    scripts/cpu-split.py SECONDS      # e.g. beside a soak: scripts/cpu-split.py 150

Samples utime+stime of every process in /proc once a second for SECONDS and prints, per process
name (`comm`: postgres, nisshi, region-node, e2e, ...), the CPU seconds used and their share of
one core. Per process, so the processes a soak kills and restarts are counted while they live
(at most a second of each is missed). Linux only; reads /proc, changes nothing.
"""

import collections
import os
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks():
    """{(pid, name): utime + stime} of every process now."""
    ticks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat:
                line = stat.read()
        except OSError:
            continue  # ended between the listing and the read
        # The name is in parentheses and may hold spaces; the fields after it are numbers.
        name = line[line.find("(") + 1 : line.rfind(")")]
        fields = line[line.rfind(")") + 2 :].split()
        ticks[(entry, name)] = int(fields[11]) + int(fields[12])
    return ticks


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() or int(sys.argv[1]) <= 0:
        sys.exit("usage: scripts/cpu-split.py SECONDS")
    window = int(sys.argv[1])
    used = collections.Counter()
    started = time.monotonic()
    last = cpu_ticks()
    while time.monotonic() - started < window:
        time.sleep(1)
        now = cpu_ticks()
        for key, ticks in now.items():
            if key in last:
                used[key[1]] += ticks - last[key]
        last = now
    elapsed = time.monotonic() - started
    total = sum(used.values()) / TICKS
    print(f"{elapsed:.0f} s: {total:.1f} CPU seconds, {total / elapsed * 100:.0f} % of one core")
    for name, ticks in used.most_common(12):
        if ticks == 0:
            break
        seconds = ticks / TICKS
        print(f"{name:24} {seconds:8.1f} s {seconds / elapsed * 100:6.1f} % of a core"
              f" {seconds / max(total, 1e-9) * 100:5.1f} % of all")


if __name__ == "__main__":
    main()
