"""A training campaign's curve: validation MRR against the wall-clock hours of its epochs.

    python benchmarks/training_curve.py campaigns/piano/state/ft/log.csv \
        --label "piano, stage ft" --start-hours 5.5 --out docs/figures/piano-curve.png

Reads the `log.csv` of one or more runs (one row per epoch: `seconds` is the epoch's wall time,
validation included) and draws validation MRR (mean of both directions) against the hours
spent, each run starting where --start-hours says (e.g. the hours of the model it was
warm-started from). Marks the best epoch of each run. Prints the totals as Markdown. A run's
hours are wall-clock on the machine that ran it, shared with whatever else ran there.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read_log(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("logs", nargs="+", type=Path, help="log.csv files, one per run")
    p.add_argument("--label", action="append", help="a label per log (default: its folder)")
    p.add_argument("--start-hours", type=float, action="append",
                   help="hours already spent before each run (default 0)")
    p.add_argument("--out", type=Path, required=True, help="the PNG")
    args = p.parse_args()
    labels = args.label or [path.parent.name for path in args.logs]
    starts = args.start_hours or [0.0] * len(args.logs)
    if not len(labels) == len(starts) == len(args.logs):
        raise SystemExit("give one --label and one --start-hours per log, or none")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    print("| run | epochs | hours | best validation MRR (epoch) |\n|---|---|---|---|")
    for path, label, start in zip(args.logs, labels, starts, strict=True):
        rows = read_log(path)
        hours, total = [], start
        for r in rows:
            total += r["seconds"] / 3600
            hours.append(total)
        mrr = [r["valid_MRR"] for r in rows]
        best = max(range(len(rows)), key=mrr.__getitem__)
        ax.plot(hours, mrr, marker=".", label=label)
        ax.scatter([hours[best]], [mrr[best]], s=60, facecolors="none", edgecolors="black")
        print(f"| {label} | {len(rows)} | {total - start:.1f} | {mrr[best]:.3f} "
              f"({int(rows[best]['epoch'])}) |")
    ax.set_xlabel("wall-clock hours (2-core CPU)")
    ax.set_ylabel("validation MRR (both directions)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)


if __name__ == "__main__":
    main()
