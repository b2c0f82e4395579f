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


def _group_members(groups, n: int) -> list[np.ndarray]:
    """Query indices of each group (e.g. piece), in order of first appearance."""
    if groups is None:
        return [np.array([i]) for i in range(n)]
    groups = list(groups)
    if len(groups) != n:
        raise ValueError(f"{len(groups)} groups for {n} queries")
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    return [np.array(m) for m in members.values()]


def _resamples(members: list[np.ndarray], resamples: int, seed: int):
    """Index arrays of `resamples` cluster-bootstrap samples: groups drawn with replacement."""
    if resamples < 1:
        raise ValueError("resamples >= 1")
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        picked = rng.integers(0, len(members), size=len(members))
        yield np.concatenate([members[g] for g in picked])


def _interval(values: list[float], level: float) -> list[float]:
    """[lo, hi]: the central `level` share of bootstrap values (percentile interval)."""
    if not 0 < level < 1:
        raise ValueError("level in (0, 1)")
    tail = 100 * (1 - level) / 2
    return [float(v) for v in np.percentile(values, [tail, 100 - tail])]


def bootstrap_intervals(ranks: np.ndarray, groups=None, *, resamples: int = 2000,
                        level: float = 0.95, seed: int = 0,
                        ks: tuple[int, ...] = KS) -> dict[str, list[float]]:
    """Percentile-bootstrap interval [lo, hi] of every metric of `retrieval_metrics`.

    groups: (Q,) a label per query (the piece it comes from). Whole groups are resampled, since
    the passages of one piece are alike and do not vary independently; without groups, queries.
    numpy/scipy have no cluster bootstrap (scipy.stats.bootstrap resamples single observations).
    """
    ranks = np.asarray(ranks)
    full = retrieval_metrics(ranks, ks=ks)  # validates
    members = _group_members(groups, len(ranks))
    draws = [retrieval_metrics(ranks[idx], ks=ks) for idx in _resamples(members, resamples, seed)]
    return {m: _interval([d[m] for d in draws], level) for m in full}


def paired_difference(ranks_a: np.ndarray, ranks_b: np.ndarray, groups=None, *,
                      resamples: int = 2000, level: float = 0.95, seed: int = 0,
                      ks: tuple[int, ...] = KS) -> dict[str, dict[str, float]]:
    """Metric differences a - b on the same queries, with paired bootstrap intervals.

    {metric: {"diff": a - b, "lo": ..., "hi": ..., "p_not_above": share of resamples where
    a - b <= 0}}: both models are scored on the same resampled queries each time, so what the
    queries have in common cancels out. An interval that holds 0 is no evidence either way.
    (For MR lower is better, so there a model ahead has a negative difference.)
    """
    ranks_a, ranks_b = np.asarray(ranks_a), np.asarray(ranks_b)
    if ranks_a.shape != ranks_b.shape:
        raise ValueError(f"ranks of {ranks_a.shape} and {ranks_b.shape}: not the same queries")
    full_a, full_b = retrieval_metrics(ranks_a, ks=ks), retrieval_metrics(ranks_b, ks=ks)
    members = _group_members(groups, len(ranks_a))
    draws = []
    for idx in _resamples(members, resamples, seed):
        a, b = retrieval_metrics(ranks_a[idx], ks=ks), retrieval_metrics(ranks_b[idx], ks=ks)
        draws.append({m: a[m] - b[m] for m in a})
    out = {}
    for m in full_a:
        values = [d[m] for d in draws]
        lo, hi = _interval(values, level)
        out[m] = {"diff": full_a[m] - full_b[m], "lo": lo, "hi": hi,
                  "p_not_above": float(np.mean(np.array(values) <= 0))}
    return out
