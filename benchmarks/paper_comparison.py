"""Benchmark: our models beside the paper's, in the layout of its Table 2 (row I) and Table 3.

    python benchmarks/paper_comparison.py --data data/msmd \
        --model BL=runs/msmd-bl/best.pt --model RNN=runs/msmd-rnn/best.pt [--against BL] \
        [--json out.json]

The paper's protocol (`scorelink evaluate`): every test passage of the held-out piano timbre is
a query, all the others of that rendition the candidates, both directions. Table 2 is measured
twice: on all test passages, and on 534 of them drawn at random (seeded), the paper's test
size, since the number of candidates sets how hard the ranking is. Table 3 (MRR per tempo
ratio) uses all test passages of each tempo rendition. The paper's numbers are printed beside
ours. Under each of our rows, the 95 % interval of every metric from resampling test pieces
(`metrics.bootstrap_intervals`); with --against LABEL, every other model's MRR minus that
model's on the same queries with paired intervals. Each rendition is embedded once per model;
the 534-passage subset is ranked from the same embeddings. Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date

import numpy as np
from _machine import machine  # benchmarks/_machine.py

from scorelink import checkpoint
from scorelink.data.store import Dataset
from scorelink.evaluate.metrics import bootstrap_intervals, paired_difference, retrieval_metrics
from scorelink.evaluate.report import METRICS
from scorelink.evaluate.retrieval import (
    embed,
    eval_records,
    query_pieces,
    rank_passages,
    rank_records,
)

TEMPI = (0.5, 0.66, 1.0, 1.33, 2.0)
PAPER_TEST_SIZE = 534
# Carvalho & Widmer (ISMIR 2023), MSMD: Table 2 row I (R@1, R@10, R@25, MRR, MR per direction)
# and Table 3 (MRR per tempo ratio, A2S and S2A).
PAPER_TABLE2 = {
    "BL": {"a2s": (47.56, 81.68, 90.80, 0.592, 1), "s2a": (51.37, 83.51, 92.59, 0.628, 1)},
    "RNN": {"a2s": (51.12, 84.46, 92.88, 0.627, 1), "s2a": (54.30, 85.95, 94.94, 0.670, 1)},
    "RNN-FT": {"a2s": (55.27, 87.98, 95.02, 0.651, 1), "s2a": (56.32, 87.12, 96.44, 0.697, 1)},
    "RNN-FT-CCA": {"a2s": (60.04, 89.66, 97.73, 0.692, 1),
                   "s2a": (62.11, 91.44, 98.41, 0.734, 1)},
    "RNN-FZ": {"a2s": (50.76, 84.20, 92.11, 0.619, 1), "s2a": (52.90, 85.21, 94.12, 0.658, 1)},
    "RNN-FZ-CCA": {"a2s": (52.67, 86.46, 92.88, 0.635, 1),
                   "s2a": (55.67, 86.30, 95.34, 0.682, 1)},
}
PAPER_TABLE3 = {
    "BL": {"a2s": (0.47, 0.54, 0.59, 0.52, 0.40), "s2a": (0.54, 0.59, 0.63, 0.56, 0.48)},
    "RNN": {"a2s": (0.53, 0.59, 0.63, 0.58, 0.43), "s2a": (0.60, 0.64, 0.67, 0.61, 0.50)},
}


def ranks_of(model, data: str, records: list[dict], subset: list[int] | None = None) -> tuple:
    """(ranks on all records, ranks on records[subset] among themselves): one embedding pass
    for a passage model; snippet voting (BL) ranks each set on its own."""
    if getattr(model, "kind", "rnn") == "snippet":
        part = [records[i] for i in subset] if subset is not None else None
        return (rank_records(model, data, records),
                rank_records(model, data, part) if part is not None else None)
    sheet, audio = embed(model, data, records)
    keys = [(r["piece"], r["system"]) for r in records]
    full = rank_passages(sheet, audio, keys)
    if subset is None:
        return full, None
    return full, rank_passages(sheet[subset], audio[subset], [keys[i] for i in subset])


def summary(ranks: dict, records: list[dict]) -> dict:
    """Metrics per direction, their 95 % intervals by piece, and the ranks themselves."""
    pieces = query_pieces(records)
    return {**{d: retrieval_metrics(r) for d, r in ranks.items()},
            "ci95": {d: bootstrap_intervals(r, pieces[d]) for d, r in ranks.items()},
            "ranks": {d: r.tolist() for d, r in ranks.items()},
            "pieces": pieces, "queries": len(records)}


def row(label: str, m: dict) -> str:
    cells = []
    for d in ("a2s", "s2a"):
        values = m[d] if isinstance(m[d], dict) else dict(zip(METRICS, m[d], strict=True))
        cells += [f"{values['R@1']:.1f}", f"{values['R@10']:.1f}", f"{values['R@25']:.1f}",
                  f"{values['MRR']:.3f}", f"{values['MR']:g}"]
    return f"| {label} | " + " | ".join(cells) + " |"


def interval_row(m: dict) -> str:
    cells = []
    for d in ("a2s", "s2a"):
        ci = m["ci95"][d]
        cells += [f"{ci[k][0]:.1f}–{ci[k][1]:.1f}" for k in ("R@1", "R@10", "R@25")]
        cells += [f"{ci['MRR'][0]:.3f}–{ci['MRR'][1]:.3f}", f"{ci['MR'][0]:g}–{ci['MR'][1]:g}"]
    return "| 95 % interval | " + " | ".join(cells) + " |"


def difference_cell(m: dict, base: dict, direction: str) -> str:
    d = paired_difference(np.array(m["ranks"][direction]), np.array(base["ranks"][direction]),
                          m["pieces"][direction])["MRR"]
    return f"{d['diff']:+.3f} ({d['lo']:+.3f}, {d['hi']:+.3f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--model", action="append", required=True, metavar="LABEL=CKPT")
    p.add_argument("--seed", type=int, default=0, help="draws the 534-passage subset")
    p.add_argument("--against", metavar="LABEL",
                   help="paired MRR differences of every other model against this one")
    p.add_argument("--json", metavar="FILE", help="also write every figure here")
    p.add_argument("--tempi", default=",".join(f"{t:g}" for t in TEMPI),
                   help="tempo ratios to measure (1 alone: Table 2 only)")
    args = p.parse_args()
    tempi = tuple(float(t) for t in args.tempi.split(","))
    if 1.0 not in tempi:
        raise SystemExit("--tempi must hold 1 (Table 2)")

    ds = Dataset(args.data)
    by_tempo = {t: eval_records(ds, split="test", tempo=t) for t in tempi}
    full = by_tempo[1.0]
    rng = np.random.default_rng(args.seed)
    subset = sorted(rng.choice(len(full), min(PAPER_TEST_SIZE, len(full)), replace=False))
    results: dict = {}
    t0 = time.perf_counter()
    for item in args.model:
        label, _, path = item.partition("=")
        model = checkpoint.load_model(path)[0]
        results[label] = {"checkpoint": path, "tempo": {}}
        for t in tempi:
            ranks, part = ranks_of(model, args.data, by_tempo[t], subset if t == 1.0 else None)
            results[label]["tempo"][t] = summary(ranks, by_tempo[t])
            if part is not None:
                results[label]["subset"] = summary(part, [full[i] for i in subset])
            print(f"{label} ρ = {t:g}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    seconds = time.perf_counter() - t0
    if args.against is not None and args.against not in results:
        raise SystemExit(f"--against {args.against}: no model of that label")

    head = ("| model | A2S R@1 | R@10 | R@25 | MRR | MR | S2A R@1 | R@10 | R@25 | MRR | MR |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"{date.today()}, {machine()}, {args.data}: {len(full)} test passages "
          f"(tempo 1.0), {seconds:.0f} s\n")
    print(f"Table 2 layout, all {len(full)} test passages:\n\n{head}")
    for label, r in results.items():
        print(row(label, r["tempo"][1.0]))
        print(interval_row(r["tempo"][1.0]))
    print(f"\nTable 2 layout, {len(subset)} test passages drawn at random (seed {args.seed}), "
          f"the paper's test size:\n\n{head}")
    for label, r in results.items():
        print(row(label, r["subset"]))
        print(interval_row(r["subset"]))
    for label, values in PAPER_TABLE2.items():
        print(row(f"*paper: {label}*", values))
    print("\nTable 3 layout, MRR A2S / S2A per tempo ratio ρ (all test passages):\n")
    print("| model | " + " | ".join(f"ρ = {t:g}" for t in tempi) + " |\n|---|"
          + "---|" * len(tempi))
    for label, r in results.items():
        print(f"| {label} | " + " | ".join(
            f"{r['tempo'][t]['a2s']['MRR']:.3f} / {r['tempo'][t]['s2a']['MRR']:.3f}"
            for t in tempi) + " |")
    for label, values in PAPER_TABLE3.items() if len(tempi) == len(TEMPI) else ():
        print(f"| *paper: {label}* | " + " | ".join(
            f"{a:.2f} / {s:.2f}" for a, s in zip(values["a2s"], values["s2a"], strict=True))
            + " |")
    if args.against is not None:
        base = results[args.against]
        print(f"\nMRR minus {args.against}'s on the same queries, paired 95 % intervals "
              "(pieces resampled):\n")
        print("| model | ρ | A2S | S2A |\n|---|---|---|---|")
        for label, r in results.items():
            if label == args.against:
                continue
            parts = [("534", r["subset"], base["subset"])] + [
                (f"{t:g}", r["tempo"][t], base["tempo"][t]) for t in tempi]
            for name, m, b in parts:
                print(f"| {label} | {name} | {difference_cell(m, b, 'a2s')} | "
                      f"{difference_cell(m, b, 's2a')} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"data": args.data, "machine": machine(), "date": str(date.today()),
                       "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
