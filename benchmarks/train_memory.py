"""Benchmark: memory of training runs over time, read from /proc (Linux).

    python benchmarks/train_memory.py --pid 1234 --pid 5678 --every 30 --minutes 90
    python benchmarks/train_memory.py --minutes 5 -- scorelink train --data ... --out ...

Samples, every `--every` seconds, the anonymous resident memory (`RssAnon`: the heap, what
the kernel's out-of-memory killer counts; file-backed pages such as the memory-mapped dataset
are left out) of each process, and apart from it the sum over its child processes (the
data-loading workers). Either watches processes already running (`--pid`, several side by
side) or starts one command and stops it after `--minutes`. Writes every sample to `--csv` if
given and prints a Markdown table per process: min / mean / max over the run and over its first
and last tenth, so that a slow creep shows as a rising last tenth.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from _machine import machine  # benchmarks/_machine.py


def _rss_anon_kb(pid: int) -> int | None:
    """RssAnon of one process in kB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return 0


def _children(pid: int) -> list[int]:
    """Every descendant of pid (the DataLoader workers and their own children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


def sample(pid: int) -> tuple[int, int] | None:
    """(main process, descendants) RssAnon in MB, or None once the process is gone."""
    main = _rss_anon_kb(pid)
    if main is None:
        return None
    kids = sum(_rss_anon_kb(c) or 0 for c in _children(pid))
    return main // 1024, kids // 1024


def _summary(values: list[int]) -> str:
    return f"{min(values)}–{max(values)} (mean {statistics.fmean(values):.0f})"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pid", type=int, action="append", default=[], help="a running process")
    p.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    p.add_argument("--minutes", type=float, default=5.0, help="how long to watch")
    p.add_argument("--csv", help="write every sample here")
    p.add_argument("command", nargs=argparse.REMAINDER, help="after --: a command to start")
    args = p.parse_args()
    command = [a for a in args.command if a != "--"]
    if bool(command) == bool(args.pid):
        sys.exit("give either --pid (one or more) or a command after --")
    started = subprocess.Popen(command) if command else None
    pids = [started.pid] if started else args.pid

    rows: list[dict] = []
    t0 = time.monotonic()
    alive = set(pids)
    while alive and time.monotonic() - t0 < args.minutes * 60:
        for pid in sorted(alive):
            got = sample(pid)
            if got is None:
                alive.discard(pid)
                continue
            rows.append({"seconds": round(time.monotonic() - t0), "pid": pid,
                         "main_MB": got[0], "children_MB": got[1]})
        time.sleep(args.every)
    if started and started.poll() is None:
        started.terminate()
        started.wait()

    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["seconds", "pid", "main_MB", "children_MB"])
            writer.writeheader()
            writer.writerows(rows)
    print(f"### Training memory, RssAnon in MB ({date.today()}, {machine()})\n")
    print(f"Every {args.every:g} s for up to {args.minutes:g} min.\n")
    print("| process | samples | span | main process | first tenth | last tenth | workers |")
    print("|---|---|---|---|---|---|---|")
    for pid in pids:
        mine = [r for r in rows if r["pid"] == pid]
        if not mine:
            print(f"| {pid} | 0 | | | | | |")
            continue
        main_mb = [r["main_MB"] for r in mine]
        tenth = max(1, len(mine) // 10)
        print(f"| {pid} | {len(mine)} | {mine[0]['seconds']}–{mine[-1]['seconds']} s "
              f"| {_summary(main_mb)} | {_summary(main_mb[:tenth])} | {_summary(main_mb[-tenth:])} "
              f"| {_summary([r['children_MB'] for r in mine])} |")


if __name__ == "__main__":
    main()
