"""Retrieval metrics as pure functions (R@k, MRR, MR), from ranks or from a score matrix."""

from __future__ import annotations

import numpy as np

KS = (1, 10, 25)


def ranks_from_scores(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based rank of the best relevant candidate for each query.

    scores: (Q, C) similarity, higher is better. relevant: (Q, C) bool, at least one True per row.
    Ties are counted against the query (a relevant item tied with an irrelevant one ranks after
    it), so a constant model cannot score well.
    """
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    if scores.ndim != 2 or scores.shape != relevant.shape:
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} must be (Q, C)")
    if not relevant.any(axis=1).all():
        raise ValueError("every query needs at least one relevant candidate")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    best = np.where(relevant, scores, -np.inf).max(axis=1, keepdims=True)  # (Q, 1)
    return 1 + ((scores >= best) & ~relevant).sum(axis=1)


def retrieval_metrics(ranks: np.ndarray, *, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """{"R@1", "R@10", "R@25" (percent of queries), "MRR", "MR"} from 1-based ranks."""
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or len(ranks) == 0:
        raise ValueError("need a non-empty 1-D array of ranks")
    if (ranks < 1).any() or not np.issubdtype(ranks.dtype, np.integer):
        raise ValueError("ranks are integers >= 1")
    out = {f"R@{k}": float(100.0 * (ranks <= k).mean()) for k in ks}
    out["MRR"] = float((1.0 / ranks).mean())
    out["MR"] = float(np.median(ranks))
    return out
