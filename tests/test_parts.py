"""Parts across system boundaries and sub-window consistency (search/parts.py)."""

from __future__ import annotations

import numpy as np
from conftest import tiny_passage_model

from scorelink.constants import FPS, SHEET_SNIPPET_HOP, STRIP_HEIGHT
from scorelink.models.snippets import sheet_snippets
from scorelink.search import parts
from scorelink.search.embed import Embedder


def _strips(n: int, width: int = 835, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (STRIP_HEIGHT, width), dtype=np.uint8) for _ in range(n)]


def test_one_strip_joined_is_cut_as_alone_and_its_run_embeds_as_the_strip():
    strip = _strips(1)[0]
    snippets, centre, edges = parts.joined_snippets([strip])
    np.testing.assert_array_equal(snippets, sheet_snippets(strip))
    emb = Embedder(tiny_passage_model(), bf16=False)
    run = emb.sheet_runs(snippets, [np.arange(len(snippets))])
    np.testing.assert_allclose(run, emb.sheet(strip[None]), atol=1e-5)


def test_parts_cross_boundaries_and_belong_to_the_system_under_their_middle():
    strips = _strips(3)
    snippets, sequences, owner = parts.piece_parts(strips)
    _, centre, edges = parts.joined_snippets(strips)
    per_system = np.median(np.diff(edges)) / SHEET_SNIPPET_HOP
    lengths = {len(s) for s in sequences}
    assert lengths == {round(f * per_system) for f in parts.PART_SYSTEMS}
    crossing = 0
    for rows, o in zip(sequences, owner, strict=True):
        middle = (centre[rows[0]] + centre[rows[-1]]) / 2
        assert edges[o] <= middle < edges[o + 1] or (o == 0 and middle < edges[0])
        first = np.searchsorted(edges, centre[rows[0]], side="right") - 1
        last = np.searchsorted(edges, centre[rows[-1]], side="right") - 1
        crossing += first != last
    assert crossing >= 4  # parts that span the end of one system and the start of the next
    assert set(owner.tolist()) == {0, 1, 2}


def test_embed_parts_numbers_owners_across_pieces():
    emb = Embedder(tiny_passage_model(), bf16=False)
    pieces = [_strips(2, seed=1), _strips(3, seed=2)]
    got = parts.embed_parts(emb, pieces)
    n_first = len(parts.piece_parts(pieces[0])[1])
    assert got.owner[:n_first].max() <= 1 and got.owner[n_first:].min() >= 2
    assert got.vectors.shape == (len(got.owner), emb.dim)
    np.testing.assert_allclose(np.linalg.norm(got.vectors, axis=1), 1, atol=1e-4)


def test_system_scores_equal_a_naive_loop():
    rng = np.random.default_rng(3)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    spans, systems = unit(rng.normal(size=(6, 8))), unit(rng.normal(size=(5, 8)))
    p = parts.Parts(unit(rng.normal(size=(12, 8))), rng.integers(0, 4, 12))  # 4 has none
    weights = rng.uniform(0.1, 1, 6)
    for mix, w in ((0.0, None), (0.3, None), (1.0, None), (0.0, weights), (0.3, weights)):
        got = parts.system_scores(spans, systems, p, mix=mix, weights=w)
        for j in range(5):
            per_span = [max([spans[s] @ systems[j]] + [spans[s] @ p.vectors[k]
                                                       for k in range(12) if p.owner[k] == j])
                        for s in range(6)]
            mean = np.mean(per_span) if w is None else np.dot(w, per_span) / w.sum()
            want = mix * spans[0] @ systems[j] + (1 - mix) * mean
            assert abs(got[j] - want) < 1e-6


def test_span_weights_favour_the_middle():
    """The whole clip and a sub-window centred on its middle weigh 1; the further a span's
    centre from the middle, the less it weighs (Gaussian of CENTRE_SECONDS)."""
    n = 20 * FPS
    spans = parts.clip_spans(n)
    w = parts.span_weights(spans)
    assert w[0] == 1.0 and len(w) == len(spans)
    distance = [abs((a + b) / 2 - n / 2) for a, b in spans]
    order = np.argsort(distance, kind="stable")
    assert np.all(np.diff(w[order]) <= 1e-12)
    far = int(np.argmax(distance))
    want = np.exp(-0.5 * (distance[far] / (parts.CENTRE_SECONDS * FPS)) ** 2)
    assert abs(w[far] - want) < 1e-9


def test_clip_spans():
    assert parts.clip_spans(50) == [(0, 50)]  # shorter than every sub-window
    for seconds in (10, 20):
        spans = parts.clip_spans(seconds * FPS)
        assert spans[0] == (0, seconds * FPS)
        lengths = {b - a for a, b in spans[1:]}
        assert lengths == {int(s * FPS) for s in parts.SUB_SECONDS if s < seconds}
        assert all(0 <= a < b <= seconds * FPS for a, b in spans)


def test_system_scores_less_hubness_shifts_equal_shifted_similarities():
    """Shifts lower each vector's similarity to every span; all-zero shifts change nothing."""
    rng = np.random.default_rng(4)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    spans, systems = unit(rng.normal(size=(4, 8))), unit(rng.normal(size=(3, 8)))
    vectors, owner = unit(rng.normal(size=(7, 8))), rng.integers(0, 3, 7)
    plain = parts.system_scores(spans, systems, parts.Parts(vectors, owner))
    zero = parts.system_scores(spans, systems, parts.Parts(vectors, owner, np.zeros(7)),
                               system_shift=np.zeros(3))
    np.testing.assert_allclose(zero, plain)
    sys_shift, part_shift = rng.uniform(0, 0.2, 3), rng.uniform(0, 0.2, 7)
    got = parts.system_scores(spans, systems, parts.Parts(vectors, owner, part_shift),
                              system_shift=sys_shift)
    for j in range(3):
        per_span = [max([spans[s] @ systems[j] - sys_shift[j]]
                        + [spans[s] @ vectors[k] - part_shift[k] for k in range(7)
                           if owner[k] == j]) for s in range(4)]
        assert abs(got[j] - np.mean(per_span)) < 1e-6


def test_hubness_shift_is_the_weighted_mean_of_the_nearest_bank_similarities():
    from scorelink.search import hubness

    rng = np.random.default_rng(5)
    bank = rng.normal(size=(200, 8)).astype(np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    hub = bank[:60].mean(axis=0)
    hub /= np.linalg.norm(hub)
    loner = -hub
    got = hubness.shifts(bank, np.stack([hub, loner]), chunk=1)
    for k, v in enumerate((hub, loner)):
        sims = np.sort(bank @ v)[-hubness.TOP:]
        assert abs(got[k] - hubness.WEIGHT * sims.mean()) < 1e-5
    assert got[0] > got[1]  # a vector near much of the bank is shifted down more
