"""Retrieval metrics on hand-computed rankings."""

from __future__ import annotations

import numpy as np
import pytest

from scorelink.evaluate.metrics import ranks_from_scores, retrieval_metrics
from scorelink.evaluate.retrieval import rank_passages


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
