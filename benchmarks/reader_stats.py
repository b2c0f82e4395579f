"""Benchmark: what the note reader's timeline assumes, and what reading costs.

    python benchmarks/reader_stats.py --data data/chorales --data data/msmd [--split train]
        [--strips 100]

- px per second: for every piece of the split (its first rendition, whose tempo ratio is
  undone), the median over its systems' successive onsets of strip px per second of score time
  (the engraving's notehead x): the median and 10-90 % of pieces, what
  `search/reading.PX_PER_SECOND` and `READ_SCALES` rest on.
- reading: the shipped reader on --strips systems of the first dataset's test split, in
  batches as `index` reads them, one thread: CPU and wall ms a system.
Prints a Markdown block.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np
from _machine import machine  # benchmarks/_machine.py

from scorelink.data.store import Dataset


def px_per_second(ds: Dataset, split: str) -> np.ndarray:
    """Per piece, the median px per second of score time between successive onsets."""
    first: dict[str, str] = {}
    rates: dict[str, list[float]] = {}
    for r in ds.records(split=split):
        if first.setdefault(r["piece"], r["rendition"]) != r["rendition"] or r["occurrence"]:
            continue
        a, b = r["notes"]
        table = ds.rendition_notes(r)[a:b]
        score_time = np.round(table["onset"] * r["tempo"], 3)  # the rendition's tempo undone
        onsets = np.unique(score_time)
        xs = np.array([table["x"][score_time == t].mean() for t in onsets])
        dx, dt = np.diff(xs), np.diff(onsets)
        ok = (dx > 0) & (dt > 0)
        rates.setdefault(r["piece"], []).extend((dx[ok] / dt[ok]).tolist())
    return np.array([np.median(v) for v in rates.values() if v])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--split", default="train")
    p.add_argument("--strips", type=int, default=100)
    args = p.parse_args()
    import torch

    from scorelink.models.reader import load_reader, read_strips

    torch.set_num_threads(1)
    print(f"### The note reader's timeline and speed ({date.today()})\n")
    print(f"- machine: {machine()}")
    print("- `python benchmarks/reader_stats.py " + " ".join(f"--data {d}" for d in args.data)
          + f" --split {args.split} --strips {args.strips}`\n")
    print("| data | pieces | px per second: median | 10 % | 90 % |\n|---|---|---|---|---|")
    for folder in args.data:
        rates = px_per_second(Dataset(folder), args.split)
        lo, mid, hi = np.percentile(rates, [10, 50, 90])
        print(f"| {Path(folder).name} {args.split} | {len(rates)} | {mid:.0f} | {lo:.0f} | "
              f"{hi:.0f} |")
    ds = Dataset(args.data[0])
    seen, strips = set(), []
    for r in ds.records(split="test"):
        if (r["piece"], r["system"]) not in seen and len(strips) < args.strips:
            seen.add((r["piece"], r["system"]))
            strips.append(ds.strip(r))
    model = load_reader()
    read_strips(model, strips[:8])  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    read_strips(model, strips)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"\nReading {len(strips)} test systems of {Path(args.data[0]).name} (batches of 8, "
          f"one thread): {1000 * cpu / len(strips):.0f} ms CPU, {1000 * wall / len(strips):.0f} "
          "ms wall a system.")


if __name__ == "__main__":
    main()
