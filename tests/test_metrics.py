"""Retrieval metrics on hand-computed rankings."""

from __future__ import annotations

import numpy as np
import pytest

from scorelink.evaluate.metrics import (
    bootstrap_intervals,
    paired_difference,
    ranks_from_scores,
    retrieval_metrics,
)
from scorelink.evaluate.retrieval import passage_at, rank_passages


def test_ranks_hand_computed():
    scores = np.array([[0.9, 0.1, 0.5],
                       [0.2, 0.8, 0.9],
                       [0.3, 0.3, 0.1]])
    assert ranks_from_scores(scores, np.eye(3, dtype=bool)).tolist() == [1, 2, 3]


def test_ties_count_against_the_query():
    assert ranks_from_scores(np.array([[0.5, 0.5, 0.5]]), np.array([[1, 0, 0]], bool)) == [3]


def test_best_of_several_relevant():
    scores = np.array([[0.1, 0.7, 0.9, 0.8]])
    relevant = np.array([[1, 0, 0, 1]], bool)  # best relevant 0.8, one irrelevant above
    assert ranks_from_scores(scores, relevant).tolist() == [2]


def test_metrics_hand_computed():
    m = retrieval_metrics(np.array([1, 2, 3, 30]))
    assert m["R@1"] == 25.0 and m["R@10"] == 75.0 and m["R@25"] == 75.0
    assert m["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 30) / 4)
    assert m["MR"] == 2.5


def test_metrics_validate_input():
    with pytest.raises(ValueError):
        retrieval_metrics(np.array([], dtype=int))
    with pytest.raises(ValueError):
        retrieval_metrics(np.array([0, 1]))
    with pytest.raises(ValueError):
        ranks_from_scores(np.zeros((2, 2)), np.zeros((2, 2), bool))
    with pytest.raises(ValueError):
        ranks_from_scores(np.zeros((2, 2)), np.eye(3, dtype=bool))


def test_repeated_system_is_one_sheet_candidate():
    """Passages 0 and 2 are the same system (a repeat): one sheet candidate, two audio answers."""
    sheet = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    audio = np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.3]])
    ranks = rank_passages(sheet, audio, ["a", "b", "a"])
    assert ranks["a2s"].tolist() == [1, 1, 1]  # three audio queries, two sheet candidates
    assert ranks["s2a"].tolist() == [1, 1]  # two sheet queries (unique systems)


def test_bootstrap_resamples_whole_pieces():
    """Piece A's five queries all rank 1, piece B's all rank 5: a resample of two pieces is AA,
    AB or BB, so the MRR interval runs from 0.2 (BB, drawn a quarter of the time) to 1.0 (AA)."""
    ranks = np.array([1] * 5 + [5] * 5)
    pieces = ["A"] * 5 + ["B"] * 5
    by_piece = bootstrap_intervals(ranks, pieces, resamples=400)
    assert by_piece["MRR"] == pytest.approx([0.2, 1.0])
    assert by_piece["R@1"] == pytest.approx([0.0, 100.0])
    by_query = bootstrap_intervals(ranks, resamples=400)  # ten independent draws: narrower
    assert 0.2 < by_query["MRR"][0] < 0.6 < by_query["MRR"][1] < 1.0
    assert bootstrap_intervals(ranks, ["A"] * 10)["MRR"] == pytest.approx([0.6, 0.6])


def test_paired_difference_cancels_what_queries_share():
    """Model a is one rank better than b on every query: every paired resample says a is
    better, although each model's own interval is wide and the two overlap."""
    rng = np.random.default_rng(1)
    b = rng.integers(2, 40, size=60)
    a = b - 1
    pieces = np.repeat(np.arange(12), 5).tolist()
    diff = paired_difference(a, b, pieces)
    assert diff["MRR"]["diff"] == pytest.approx(np.mean(1 / a) - np.mean(1 / b))
    assert 0 < diff["MRR"]["lo"] <= diff["MRR"]["diff"] <= diff["MRR"]["hi"]
    assert diff["MRR"]["p_not_above"] == 0.0
    own_a, own_b = bootstrap_intervals(a, pieces), bootstrap_intervals(b, pieces)
    assert own_a["MRR"][0] < own_b["MRR"][1]  # the unpaired intervals overlap
    same = paired_difference(a, a, pieces)
    assert all(v["diff"] == v["lo"] == v["hi"] == 0 for v in same.values())
    with pytest.raises(ValueError):
        paired_difference(a, b[:-1])
    with pytest.raises(ValueError):
        bootstrap_intervals(a, pieces[:-1])


def test_passage_at_is_the_passage_sounding_then_or_the_nearest_before():
    passages = [{"system": 1, "start_frame": 100, "end_frame": 200},
                {"system": 0, "start_frame": 20, "end_frame": 100},
                {"system": 2, "start_frame": 200, "end_frame": 260}]
    assert passage_at(passages, 20)["system"] == 0
    assert passage_at(passages, 99)["system"] == 0
    assert passage_at(passages, 100)["system"] == 1
    assert passage_at(passages, 5)["system"] == 0     # the silence before the first
    assert passage_at(passages, 300)["system"] == 2   # past the end
    gap = [passages[1], {"system": 1, "start_frame": 150, "end_frame": 200}]
    assert passage_at(gap, 120)["system"] == 0        # a gap: the one that started before
