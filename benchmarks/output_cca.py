"""Benchmark: would a CCA fitted after training on the passage embeddings help retrieval?

    python benchmarks/output_cca.py --train data/msmd-r4=4000 --train data/chorales=2000 \
        --train data/beethoven=2000 --valid data/msmd --valid data/chorales \
        --valid data/beethoven [--checkpoint CKPT]

The passage model ends in a linear layer and an L2 norm. A CCA (the closed form of
`models/cca.py`, as Dorfer et al.'s CCA layer, but on the whole passages' vectors) fitted on
training pairs of those pre-norm vectors could be folded into that linear layer, so the shipped
model would keep its shape. This measures whether it is worth it before building it: seeded
training passages of each --train folder (=N of them), their pre-norm vectors, one CCA fit, and
the validation passages' MRR (the paper's protocol, `evaluate`'s ranking) with the vectors
unchanged, centred, projected with each canonical dimension scaled by its correlation to the
power p, or cut to the first k dimensions. Prints Markdown.
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import numpy as np
import torch
from _machine import machine  # benchmarks/_machine.py

from scorelink import checkpoint
from scorelink.data.store import Dataset
from scorelink.evaluate.metrics import retrieval_metrics
from scorelink.evaluate.retrieval import embed, eval_records, rank_passages
from scorelink.models.cca import fit_cca


class _Keep(torch.nn.Module):
    """A tower's output layer that also keeps what it returns (the vectors before the norm)."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.layer, self.kept = layer, []

    def forward(self, x):
        y = self.layer(x)
        self.kept.append(y.detach().float().clone())
        return y


def _prenorm(model, root: str, records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    for tower in (model.sheet, model.audio):
        tower.proj.kept.clear()
    embed(model, root, records)
    return tuple(torch.cat(t.proj.kept).numpy() for t in (model.sheet, model.audio))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", action="append", required=True, metavar="DIR=N")
    p.add_argument("--valid", action="append", required=True, metavar="DIR")
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(2)
    model, _ = checkpoint.load_model(args.checkpoint or "src/scorelink/weights/rnn-piano.pt")
    model.eval()
    for tower in (model.sheet, model.audio):
        tower.proj = _Keep(tower.proj)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    xs, ys = [], []
    for spec in args.train:
        root, n = spec.rsplit("=", 1)
        records = Dataset(root).records(split="train")
        pick = sorted(rng.choice(len(records), size=min(int(n), len(records)), replace=False))
        x, y = _prenorm(model, root, [records[i] for i in pick])
        xs.append(x), ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    mx, wx, my, wy, rho = (t.numpy() for t in fit_cca(torch.tensor(x), torch.tensor(y)))
    valid = {}
    for root in args.valid:
        records = eval_records(Dataset(root), split="valid")
        valid[root] = (*_prenorm(model, root, records),
                       [(r["piece"], r["system"]) for r in records])

    variants = {"unchanged": lambda s, a: (s, a),
                "centred": lambda s, a: (s - x.mean(0), a - y.mean(0))}
    for power in (0, 0.5, 1, 2, 4):
        variants[f"CCA, correlation^{power:g}"] = (
            lambda s, a, w=rho ** power: ((s - mx) @ wx * w, (a - my) @ wy * w))
    for k in (16, 32, 48):
        variants[f"CCA, first {k}"] = (
            lambda s, a, k=k: (((s - mx) @ wx)[:, :k], ((a - my) @ wy)[:, :k]))

    print(f"### A CCA after training, on the passage vectors ({date.today()})\n")
    print(f"- machine: {machine()}; `python benchmarks/output_cca.py "
          + " ".join(f"--train {t}" for t in args.train) + " "
          + " ".join(f"--valid {v}" for v in args.valid)
          + (f" --checkpoint {args.checkpoint}" if args.checkpoint else "") + "`")
    print(f"- {len(x)} training pairs; canonical correlations {rho[0]:.2f} ... {rho[-1]:.3f} "
          f"(median {np.median(rho):.2f}); {time.perf_counter() - t0:.0f} s\n")
    print("| vectors | " + " | ".join(f"{v} MRR A2S / S2A" for v in args.valid)
          + " | mean |\n|---|" + "---|" * (len(args.valid) + 1))
    for name, f in variants.items():
        cells = []
        for s, a, keys in valid.values():
            s2, a2 = f(s, a)
            ranks = rank_passages(_unit(s2), _unit(a2), keys)
            cells.append([retrieval_metrics(ranks[d])["MRR"] for d in ("a2s", "s2a")])
        print(f"| {name} | " + " | ".join(f"{c[0]:.3f} / {c[1]:.3f}" for c in cells)
              + f" | {np.mean(cells):.3f} |")


if __name__ == "__main__":
    main()
