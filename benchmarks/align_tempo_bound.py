"""Benchmark: the image decoder's tempo bound (`align.TEMPO_RANGE`) and two hubness corrections.

    python benchmarks/align_tempo_bound.py --data data/chorales --pieces 24 [--checkpoint CKPT]

The similarities of every segment with every system are computed once per recording (the
first N test pieces' renditions at tempo 0.5, 1 and 2, and their tempo-1 renditions one after
another until 600 s, as `align_quality.py --ten-minutes` makes it); then they are decoded with
the tempi bounded to TEMPO_RANGE either way of the tempo that plays the score once (100: in
effect no bound), and, at a bound of 3, with each system's column centred over the starts or
with CSLS (cross-domain similarity local scaling). Prints the share of system onsets within
1 s for each (docs/align.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _machine import machine
from align_quality import dataset_pieces, errors  # benchmarks/align_quality.py

from scorelink.search import align
from scorelink.search.embed import Embedder


def column_centred(sim: np.ndarray) -> np.ndarray:
    return sim - sim.mean(0, keepdims=True) + sim.mean()


def csls(sim: np.ndarray, m: int = 5) -> np.ndarray:
    r_audio = np.sort(sim, axis=2)[:, :, -min(m, sim.shape[2]):].mean(2, keepdims=True)
    r_sheet = np.sort(sim, axis=0)[-min(m, sim.shape[0]):].mean(0, keepdims=True)
    return 2 * sim - r_audio - r_sheet + (r_audio.mean() + r_sheet.mean())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--pieces", type=int, default=24)
    p.add_argument("--checkpoint", help="default: the shipped model")
    args = p.parse_args()
    embedder = Embedder.load(args.checkpoint)
    cases, medley = [], []
    for _, systems, renditions, _ in dataset_pieces(Path(args.data), "test", args.pieces):
        sheet = embedder.sheet(np.stack([s["strip"] for s in systems]))
        for label, spec, truth in renditions:
            if label in ("0.5", "1", "2"):
                cases.append((label, *align.similarities(embedder, spec, sheet), truth))
            if label == "1":
                medley.append((sheet, spec, truth))
    sheets, specs, truth, t, base = [], [], [], 0.0, 0
    for sheet, spec, piece_truth in medley:
        truth += [(base + k, a + t) for k, a in piece_truth]
        sheets.append(sheet)
        specs.append(spec)
        base += len(sheet)
        t += spec.shape[1] / 20
        if t >= 600:
            break
    cases.append(("10 min", *align.similarities(embedder, np.concatenate(specs, axis=1),
                                                np.concatenate(sheets)), truth))
    variants = [(f"bound {r:g}", r, None) for r in (100.0, 3.0, 2.0, 1.5)]
    variants += [("bound 3, columns centred", 3.0, column_centred), ("bound 3, CSLS", 3.0, csls)]
    print(f"- machine: {machine()}; model {embedder.name}; {args.data}, {args.pieces} test pieces")
    print("\n| decoder | " + " | ".join(c for c in ("0.5", "1", "2", "10 min")) + " |")
    print("|---|---|---|---|---|")
    for name, bound, transform in variants:
        align.TEMPO_RANGE = bound
        within: dict[str, list[float]] = {}
        for label, sim, k_min, truth in cases:
            sim = transform(sim) if transform else sim
            path = align.decode_tempo(sim, k_min)
            found = [(s, i * align.STEP_SECONDS) for i, _, s in path if s >= 0]
            within.setdefault(label, []).extend(errors(found, truth))
        cells = " | ".join(f"{100 * np.mean(np.array(e) <= 1):.1f} %" for e in within.values())
        print(f"| {name} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
