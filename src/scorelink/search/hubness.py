"""Hubness correction of the model's system scores, for clips cut anywhere.

In a 64-dimensional embedding space some sheet vectors ("hubs") lie near almost any piano
audio: they come out on top for clips of music they do not hold. Cross-domain similarity local
scaling (CSLS, Conneau et al., 2018) lowers each candidate's similarity by how near it lies to
generic queries. Here the generic queries are a *bank* of audio windows (4.5-12 s) of piano
music no index holds (the built-in corpus's training renditions), embedded by the model; each
sheet vector (a system's or a part's) gets the shift

    WEIGHT x mean of its TOP highest similarities to the bank's vectors,

computed once when it is indexed (table `hubness`) and subtracted from its similarity to every
query span in `parts.system_scores`. WEIGHT and TOP were chosen on validation clips
(`benchmarks/parts_grid.py --bank`, docs/search.md).

The bank is model-specific: `weights/hub-<fingerprint[:16]>.npy` (float16, BANK x D) beside the
shipped models, written by `python -m scorelink.search.hubness --data DIR` (a dataset whose
training renditions it cuts). A model without a bank, and an index made before this, rank
without the correction.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scorelink.constants import FPS

if TYPE_CHECKING:
    from scorelink.search.embed import EmbedderBase as Embedder

WEIGHT = 0.25  # of the mean similarity to the bank's nearest vectors
TOP = 50  # how many of the bank's vectors count
BANK = 2000  # audio windows in a bank
BANK_SECONDS = (4.5, 12.0)  # their lengths (uniform)
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def bank_path(fingerprint: str) -> Path:
    return WEIGHTS_DIR / f"hub-{fingerprint[:16]}.npy"


def load_bank(fingerprint: str) -> np.ndarray | None:
    """The model's bank (BANK, D) float32, or None where it has none."""
    path = bank_path(fingerprint)
    return np.load(path).astype(np.float32) if path.exists() else None


def shifts(bank: np.ndarray, vectors: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """(n,) WEIGHT x mean of each vector's TOP highest similarities to the bank."""
    vectors = np.asarray(vectors, np.float32)
    out = np.empty(len(vectors), np.float32)
    top = min(TOP, len(bank))
    for a in range(0, len(vectors), chunk):
        sims = bank @ vectors[a:a + chunk].T  # (BANK, c)
        out[a:a + chunk] = np.partition(sims, len(bank) - top, axis=0)[-top:].mean(axis=0)
    return WEIGHT * out


def build_bank(root: str | Path, embedder: Embedder, *, n: int = BANK, seed: int = 0
               ) -> np.ndarray:
    """n audio windows cut at random places of the training renditions of the dataset at root
    (five from each of n / 5 renditions drawn at random), embedded: (n, D) float32."""
    from scorelink.data.store import Dataset

    ds = Dataset(root)
    first: dict[tuple[str, str], dict] = {}
    for r in ds.records(split="train"):
        first.setdefault((r["piece"], r["rendition"]), r)
    keys = sorted(first)
    if not keys:
        raise ValueError(f"{root} has no training renditions to cut a bank from")
    rng = np.random.default_rng(seed)
    out = []
    for k in rng.permutation(len(keys))[: n // 5]:
        spec = ds.rendition_spec(first[keys[k]])
        for _ in range(5):
            m = min(int(rng.uniform(*BANK_SECONDS) * FPS), spec.shape[1])
            a = int(rng.integers(spec.shape[1] - m + 1))
            out.append(embedder.audio(np.asarray(spec[:, a:a + m], np.float32), [(0, m)])[0])
    return np.stack(out).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    from scorelink.search.embed import Embedder

    p = argparse.ArgumentParser(prog="python -m scorelink.search.hubness",
                                description="write a model's hubness bank beside the weights")
    p.add_argument("--data", required=True, help="a dataset whose training renditions to cut")
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--out", help=f"default: {WEIGHTS_DIR}/hub-<fingerprint>.npy")
    args = p.parse_args(argv)
    embedder = Embedder.load(args.checkpoint)
    bank = build_bank(args.data, embedder)
    out = Path(args.out) if args.out else bank_path(embedder.fingerprint)
    np.save(out, bank.astype(np.float16))
    print(f"{out}: {len(bank)} audio windows of {args.data}, model {embedder.fingerprint[:16]}")


if __name__ == "__main__":
    main()
