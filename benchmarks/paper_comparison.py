"""Benchmark: our models beside the paper's, in the layout of its Table 2 (row I) and Table 3.

    python benchmarks/paper_comparison.py --data data/msmd \
        --model BL=runs/msmd-bl/best.pt --model RNN=runs/msmd-rnn/best.pt [--json out.json]

The paper's protocol (`scorelink evaluate`): every test passage of the held-out piano timbre is
a query, all the others of that rendition the candidates, both directions. Table 2 is measured
twice: on all test passages, and on 534 of them drawn at random (seeded), the paper's test
size, since the number of candidates sets how hard the ranking is. Table 3 (MRR per tempo
ratio) uses all test passages of each tempo rendition. The paper's numbers are printed beside
ours. Prints Markdown.
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
from scorelink.evaluate.metrics import retrieval_metrics
from scorelink.evaluate.report import METRICS
from scorelink.evaluate.retrieval import eval_records, rank_records

TEMPI = (0.5, 0.66, 1.0, 1.33, 2.0)
PAPER_TEST_SIZE = 534
# Carvalho & Widmer (ISMIR 2023), MSMD: Table 2 row I (R@1, R@10, R@25, MRR, MR per direction)
# and Table 3 (MRR per tempo ratio, A2S and S2A).
PAPER_TABLE2 = {
    "BL": {"a2s": (47.56, 81.68, 90.80, 0.592, 1), "s2a": (51.37, 83.51, 92.59, 0.628, 1)},
    "RNN": {"a2s": (51.12, 84.46, 92.88, 0.627, 1), "s2a": (54.30, 85.95, 94.94, 0.670, 1)},
    "RNN-FT-CCA": {"a2s": (60.04, 89.66, 97.73, 0.692, 1),
                   "s2a": (62.11, 91.44, 98.41, 0.734, 1)},
}
PAPER_TABLE3 = {
    "BL": {"a2s": (0.47, 0.54, 0.59, 0.52, 0.40), "s2a": (0.54, 0.59, 0.63, 0.56, 0.48)},
    "RNN": {"a2s": (0.53, 0.59, 0.63, 0.58, 0.43), "s2a": (0.60, 0.64, 0.67, 0.61, 0.50)},
}


def measure(model, data: str, records: list[dict]) -> dict:
    ranks = rank_records(model, data, records)
    return {d: retrieval_metrics(r) for d, r in ranks.items()} | {"queries": len(records)}


def row(label: str, m: dict) -> str:
    cells = []
    for d in ("a2s", "s2a"):
        values = m[d] if isinstance(m[d], dict) else dict(zip(METRICS, m[d], strict=True))
        cells += [f"{values['R@1']:.1f}", f"{values['R@10']:.1f}", f"{values['R@25']:.1f}",
                  f"{values['MRR']:.3f}", f"{values['MR']:g}"]
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--model", action="append", required=True, metavar="LABEL=CKPT")
    p.add_argument("--seed", type=int, default=0, help="draws the 534-passage subset")
    p.add_argument("--json", metavar="FILE", help="also write every figure here")
    args = p.parse_args()

    ds = Dataset(args.data)
    by_tempo = {t: eval_records(ds, split="test", tempo=t) for t in TEMPI}
    full = by_tempo[1.0]
    rng = np.random.default_rng(args.seed)
    subset = [full[i] for i in sorted(rng.choice(len(full), min(PAPER_TEST_SIZE, len(full)),
                                                 replace=False))]
    results: dict = {}
    t0 = time.perf_counter()
    for item in args.model:
        label, _, path = item.partition("=")
        model = checkpoint.load_model(path)[0]
        results[label] = {"checkpoint": path, "subset": measure(model, args.data, subset),
                          "tempo": {}}
        for t in TEMPI:
            results[label]["tempo"][t] = measure(model, args.data, by_tempo[t])
    seconds = time.perf_counter() - t0

    head = ("| model | A2S R@1 | R@10 | R@25 | MRR | MR | S2A R@1 | R@10 | R@25 | MRR | MR |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"{date.today()}, {machine()}, {args.data}: {len(full)} test passages "
          f"(tempo 1.0), {seconds:.0f} s\n")
    print(f"Table 2 layout, all {len(full)} test passages:\n\n{head}")
    for label, r in results.items():
        print(row(label, r["tempo"][1.0]))
    print(f"\nTable 2 layout, {len(subset)} test passages drawn at random (seed {args.seed}), "
          f"the paper's test size:\n\n{head}")
    for label, r in results.items():
        print(row(label, r["subset"]))
    for label, values in PAPER_TABLE2.items():
        print(row(f"*paper: {label}*", values))
    print("\nTable 3 layout, MRR A2S / S2A per tempo ratio ρ (all test passages):\n")
    print("| model | " + " | ".join(f"ρ = {t:g}" for t in TEMPI) + " |\n|---|"
          + "---|" * len(TEMPI))
    for label, r in results.items():
        print(f"| {label} | " + " | ".join(
            f"{r['tempo'][t]['a2s']['MRR']:.3f} / {r['tempo'][t]['s2a']['MRR']:.3f}"
            for t in TEMPI) + " |")
    for label, values in PAPER_TABLE3.items():
        print(f"| *paper: {label}* | " + " | ".join(
            f"{a:.2f} / {s:.2f}" for a, s in zip(values["a2s"], values["s2a"], strict=True))
            + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"data": args.data, "machine": machine(), "date": str(date.today()),
                       "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
