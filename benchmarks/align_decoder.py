"""Benchmark: the image decoder's choices, step by step, on validation (or training) renditions.

    python benchmarks/align_decoder.py --data data/chorales-view --data data/msmd
        [--beethoven data/beethoven [--beethoven-split valid|train]] [--pieces 24]
        [--checkpoint CKPT]

How `scorelink/search/align.py` came to decode as it does, measured where its settings were
chosen, never on test. Each rendition's similarities are computed twice (each system's whole
vector alone, and with its halves, `align.HALVES_SHARE`), then decoded four ways:

1. `fixed jump`: one global tempo (tempo classes 2 times either way, no change between them),
   every jump 0.5;
2. `+ jump by length`: the jump penalty in proportion to a system's length (`align.JUMP_SHARE`);
3. `+ tempo classes`: the tempo may change between segments (`align.TEMPO_CHANGE`,
   `align.TEMPO_RANGE`): the decoder as shipped, on whole-system similarities;
4. `+ halves`: as shipped, with the halves (what `scorelink align` runs on a scan).

Datasets: a built dataset's split (`valid` keeps tempo 1.0 only, so each rendition is also
resampled in time to half and double speed, `train.batches.stretch`); the real-scan corpus's
split, the first performance of each piece (all of them with `--all-performances`). Prints,
per set, the share of system onsets found within 1 s and 2 s (as `align_quality.py` counts).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _machine import machine  # benchmarks/_machine.py
from align_quality import beethoven_pieces, dataset_pieces, errors

from scorelink.search import align
from scorelink.search.embed import Embedder
from scorelink.train.batches import stretch

STRETCH = (0.5, 1.0, 2.0)


def cases(args, embedder):
    """Yield (set name, whole-system similarities, with halves, k_min, truth)."""
    for root in args.data:
        name = Path(root).name
        for _, systems, renditions, _ in dataset_pieces(Path(root), args.split, args.pieces):
            vectors = embedder.sheet_with_halves(np.stack([s["strip"] for s in systems]))
            for label, spec, truth in renditions:
                ratios = STRETCH if args.split == "valid" else (float(label),)
                for rho in ratios:
                    sp = spec if rho == float(label) else stretch(spec, rho)
                    yield (f"{name} {rho:g}", *_both(embedder, sp, vectors),
                           [(s, t * float(label) / rho) for s, t in truth])
    if args.beethoven:
        for _, systems, renditions, _ in beethoven_pieces(Path(args.beethoven),
                                                          args.beethoven_split, 999):
            vectors = embedder.sheet_with_halves(np.stack([s["strip"] for s in systems]))
            for _, spec, truth in renditions[: None if args.all_performances else 1]:
                yield (f"real scans {args.beethoven_split}", *_both(embedder, spec, vectors),
                       truth)


def _both(embedder, spec, vectors):
    whole, k_min = align.similarities(embedder, spec, vectors[0])
    halves, _ = align.similarities(embedder, spec, vectors[0], halves=vectors[1:])
    return whole, halves, k_min


def decoders():
    def fixed(whole, halves, k_min):
        return _bounded(2.0, lambda: align.decode_tempo(whole, k_min, jump_penalty=0.5,
                                                        tempo_change=1e9))

    def by_length(whole, halves, k_min):
        return _bounded(2.0, lambda: align.decode_tempo(whole, k_min, tempo_change=1e9))

    return [("fixed jump", fixed), ("+ jump by length", by_length),
            ("+ tempo classes", lambda whole, halves, k_min: align.decode_tempo(whole, k_min)),
            ("+ halves", lambda whole, halves, k_min: align.decode_tempo(halves, k_min))]


def _bounded(tempo_range: float, run):
    kept = align.TEMPO_RANGE
    align.TEMPO_RANGE = tempo_range
    try:
        return run()
    finally:
        align.TEMPO_RANGE = kept


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", action="append", default=[], help="a built dataset (repeatable)")
    p.add_argument("--split", default="valid")
    p.add_argument("--pieces", type=int, default=24, help="the first N pieces of each dataset")
    p.add_argument("--beethoven", help="the real-scan corpus (`data build --corpus beethoven`)")
    p.add_argument("--beethoven-split", default="valid")
    p.add_argument("--all-performances", action="store_true")
    p.add_argument("--checkpoint", help="default: the shipped model")
    args = p.parse_args()
    embedder = Embedder.load(args.checkpoint)
    found: dict[tuple[str, str], list[float]] = {}
    for name, whole, halves, k_min, truth in cases(args, embedder):
        for label, decode in decoders():
            path = decode(whole, halves, k_min)
            onsets = [(s, i * align.STEP_SECONDS) for i, _, s in path if s >= 0]
            found.setdefault((name, label), []).extend(errors(onsets, truth))
    sets = list(dict.fromkeys(n for n, _ in found))
    print(f"- machine: {machine()}; model {embedder.name}")
    print(f"- onsets within 1 s / 2 s, {args.split} split"
          + (f", real scans {args.beethoven_split}" if args.beethoven else ""))
    print("\n| decoder | " + " | ".join(f"{n} ({len(found[(n, 'fixed jump')])})" for n in sets)
          + " |")
    print("|---|" + "---|" * len(sets))
    for label, _ in decoders():
        cells = [f"{100 * np.mean(np.array(found[(n, label)]) <= 1):.1f} / "
                 f"{100 * np.mean(np.array(found[(n, label)]) <= 2):.1f}" for n in sets]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
