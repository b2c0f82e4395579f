"""Benchmark: build a dataset from scratch with the CLI; report time, memory, size and counts.

    python benchmarks/dataset_build.py --out data/chorales -- --corpus chorales --workers 2

Prints a Markdown block for docs/benchmarks.md. The output folder must not exist.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from _machine import machine  # benchmarks/_machine.py


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("build_args", nargs=argparse.REMAINDER, help="after --: data build args")
    args = p.parse_args()
    out = Path(args.out)
    if out.exists():
        sys.exit(f"{out} exists; the benchmark builds from scratch")
    extra = [a for a in args.build_args if a != "--"]
    cmd = [sys.executable, "-m", "scorelink", "data", "build", "--out", str(out), "--no-progress",
           *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    stats = json.loads(subprocess.run(
        [sys.executable, "-m", "scorelink", "data", "stats", str(out), "--json"],
        check=True, capture_output=True, text=True).stdout)
    print(f"### `scorelink data build {' '.join(extra)}` ({date.today()})\n")
    print(f"- machine: {machine()}")
    print(f"- wall time: {wall / 60:.1f} min; peak memory of one process: {peak_mb:.0f} MB")
    print(f"- size on disk: {stats['size_mb']:.0f} MB; audio: {stats['audio_hours']:.1f} h "
          "(all renditions)")
    print(f"- pieces: {stats['pieces']}, passages: {stats['passages']}, "
          f"failures: {len(stats['failures'])}")
    print("\n| split | pieces | passages (all renditions) |\n|---|---|---|")
    for split, v in stats["splits"].items():
        print(f"| {split} | {v['pieces']} | {v['passages']} |")
    d = stats["duration_seconds"]
    print(f"\nPassage durations at tempo 1.0: mean {d['mean']:.1f} s, median {d['median']:.1f} s, "
          f"max {d['max']:.1f} s; {100 * d['share_over_10s']:.0f} % longer than 10 s.")


if __name__ == "__main__":
    main()
