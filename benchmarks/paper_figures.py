"""The paper's Figures 3 and 4 for a passage model, as PNGs.

    python benchmarks/paper_figures.py fig4 --data data/msmd --checkpoint MODEL.pt \
        --out docs/figures/fig4-distance-vs-duration.png
    python benchmarks/paper_figures.py fig3 --data data/msmd --checkpoint MODEL.pt \
        --runs runs/fig3 --out docs/figures/fig3-mrr-vs-dim.png [--dims 16 32 ... 1024]

Figure 4: the cosine distance between each test audio passage and its sheet passage (tempo 1,
the held-out piano) against the audio passage's duration; point size by the audio query's
precision (1 / rank of its system). Figure 3: test MRR against the embedding dimension. Each
point is a model trained with a shorter budget than the paper's: the snippet CNNs of
--checkpoint frozen (RNN-FZ) and the GRUs and head trained afresh for each dimension on cached
CNN features (`cache_features`, computed once and shared by every dimension), the checkpoint
chosen by validation MRR. The budget (epochs x passages) is printed and written beside the
figure as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date
from pathlib import Path

import numpy as np
from _machine import machine  # benchmarks/_machine.py

from scorelink import checkpoint
from scorelink.data.store import Dataset
from scorelink.evaluate.retrieval import embed, eval_records, rank_passages
from scorelink.train.features import cnn_fingerprint

DIMS = (16, 32, 64, 128, 256, 512, 1024)


def figure4(data: str, ckpt: str, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, _ = checkpoint.load_model(ckpt, kind="rnn")
    records = eval_records(Dataset(data), split="test")
    sheet, audio = embed(model, data, records)
    distance = 1.0 - np.sum(sheet * audio, axis=1)  # (N,): each pair's cosine distance
    duration = np.array([r["end"] - r["start"] for r in records])
    ranks = rank_passages(sheet, audio, [(r["piece"], r["system"]) for r in records])["a2s"]
    precision = 1.0 / ranks
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter(duration, distance, s=4 + 60 * precision, alpha=0.45, c="tab:blue",
               edgecolors="none")
    bins = np.arange(0, duration.max() + 2, 2.0)
    which = np.digitize(duration, bins)
    centres = [(bins[k - 1] + 1.0, np.median(distance[which == k]))
               for k in np.unique(which) if (which == k).sum() >= 5]
    ax.plot(*zip(*centres, strict=True), color="tab:red", lw=1.5,
            label="median per 2 s of duration")
    ax.set_xlabel("audio passage duration (s)")
    ax.set_ylabel("cosine distance to its sheet passage")
    ax.set_title(f"{Path(ckpt).name}: {len(records)} test pairs (size: precision of the audio "
                 "query)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    long = duration > 10
    summary = {"pairs": len(records), "median_distance_le_10s": float(np.median(distance[~long])),
               "median_distance_gt_10s": float(np.median(distance[long])) if long.any() else None,
               "mrr_le_10s": float(precision[~long].mean()),
               "mrr_gt_10s": float(precision[long].mean()) if long.any() else None}
    return summary


def figure3(data: str, ckpt: str, runs: Path, out: Path, *, dims: tuple[int, ...], epochs: int,
            passages: int, views: int, workers: int, train_passages: int = 0) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scorelink.evaluate.metrics import retrieval_metrics
    from scorelink.train.batches import PassageSnippets
    from scorelink.train.config import TrainConfig
    from scorelink.train.features import FeatureCache
    from scorelink.train.trainer import Trainer

    # the frozen CNNs' outputs of the test passages, computed once: each dimension's model
    # differs only after them
    records = eval_records(Dataset(data), split="test")
    keys = [(r["piece"], r["system"]) for r in records]
    test_path = runs / "test-features.pt"
    runs.mkdir(parents=True, exist_ok=True)
    if test_path.exists():
        test = FeatureCache.load(test_path)
    else:
        cnns, _ = checkpoint.load_model(ckpt, kind="rnn")
        test = FeatureCache.compute(cnns, PassageSnippets(data, records), views=1,
                                    workers=workers)
        test.save(test_path)
    shared = runs / "features.pt"
    shared_valid = runs / "valid-features.pt"
    results = {}
    for dim in dims:
        run = runs / f"dim{dim}"
        run.mkdir(parents=True, exist_ok=True)
        for cache in (shared, shared_valid):  # one cache for every dimension
            if cache.exists() and not (run / cache.name).exists():
                os.link(cache, run / cache.name)
        config = TrainConfig(data=data, out=str(run), init_from=ckpt, init_cnns_only=True,
                             freeze_cnn=True, cache_features=views, embed_dim=dim,
                             epochs=epochs, passages_per_epoch=passages, lr=1e-3,
                             workers=workers, patience=3, train_passages=train_passages)
        t0 = time.perf_counter()
        Trainer(config).fit()
        for cache in (shared, shared_valid):
            if not cache.exists():
                os.link(run / cache.name, cache)
        model, _ = checkpoint.load_model(run / "best.pt", kind="rnn")
        if test.fingerprint != cnn_fingerprint(model):
            raise SystemExit(f"{run}: its CNNs are not {ckpt}'s")
        ranks = rank_passages(*test.embed(model), keys)
        results[dim] = {f"{d}_MRR": retrieval_metrics(r)["MRR"] for d, r in ranks.items()}
        results[dim]["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"dim {dim}: {results[dim]}", flush=True)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for key, label in (("a2s_MRR", "A2S"), ("s2a_MRR", "S2A")):
        ax.plot(list(results), [v[key] for v in results.values()], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(results), [str(d) for d in results])
    ax.set_xlabel("embedding dimension")
    ax.set_ylabel("test MRR (tempo 1)")
    pool = f" from {train_passages:,} training passages" if train_passages else ""
    ax.set_title(f"RNN-FZ on {Path(ckpt).name}'s CNNs, {epochs} x {passages} passages each{pool}",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return {"budget": {"epochs": epochs, "passages_per_epoch": passages, "views": views,
                       "train_passages": train_passages or "all"},
            "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("figure", choices=("fig3", "fig4"))
    parser.add_argument("--data", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--runs", type=Path, default=Path("runs/fig3"))
    parser.add_argument("--dims", type=int, nargs="+", default=list(DIMS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--passages", type=int, default=8192, help="passages per epoch")
    parser.add_argument("--views", type=int, default=1, help="augmented views cached")
    parser.add_argument("--train-passages", type=int, default=0,
                        help="train on this many training passages drawn at random (0: all)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    t0 = time.perf_counter()
    if args.figure == "fig4":
        summary = figure4(args.data, args.checkpoint, args.out)
    else:
        summary = figure3(args.data, args.checkpoint, args.runs, args.out, dims=tuple(args.dims),
                          epochs=args.epochs, passages=args.passages, views=args.views,
                          workers=args.workers, train_passages=args.train_passages)
    summary.update({"date": str(date.today()), "machine": machine(),
                    "seconds": round(time.perf_counter() - t0, 1), "checkpoint": args.checkpoint,
                    "data": args.data})
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
