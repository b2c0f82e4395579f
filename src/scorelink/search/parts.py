"""Clips cut anywhere: parts of the score that cross system boundaries, and sub-window consistency.

The passage model summarises a whole system, so a clip that starts in the middle of one system
and ends in the next matches neither system's vector well. Two remedies, for the model's side
of a search (the image evidence; a score with notes is aligned by `search/notes.py` anyway):

- *Parts*: the systems of a piece, in reading order, are joined into one long strip, and runs
  of its sheet snippets are summarised as extra vectors: runs of PART_SYSTEMS (a fraction of the
  piece's median system, in snippets) starting at every snippet, so that many of them span the
  end of one system and the start of the next. Each part belongs to the system holding its
  middle column. The CNN runs once per snippet of the joined strip; only the GRU runs per part.
- *Sub-windows*: the clip is also embedded in SUB_SECONDS windows (a quarter hop); every span
  gives each system the best similarity among its own vector and its parts; the spans' mean,
  weighted by how near each span's centre lies to the clip's middle (a Gaussian of
  CENTRE_SECONDS: the answer sought is the system under the middle), rewards the system that
  the spans around the middle agree on.

A system's score = MIX x (whole clip . system vector) + (1 - MIX) x weighted mean over the
clip's spans (the whole clip and its sub-windows) of max(span . system, span . its parts).
PART_SYSTEMS, SUB_SECONDS, CENTRE_SECONDS and MIX were chosen on validation clips only (the
chorale corpus's and MSMD's validation splits, docs/search.md); the test splits report them.

Indexes keep every system's parts (`index --add` too; `collect.piece_parts`), and the model's
ranking of an audio query uses them (`query.parts_evidence`, which scores the candidates that
the clip's spans find by their nearest systems and nearest parts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from scorelink.constants import (
    FPS,
    SHEET_LEFT_PAD,
    SHEET_SNIPPET_HOP,
    SHEET_SNIPPET_WIDTH,
)
from scorelink.models.snippets import halve_strip, n_snippets

if TYPE_CHECKING:
    from scorelink.search.embed import EmbedderBase as Embedder

PART_SYSTEMS = (0.25, 0.5, 0.75, 1.0, 1.5)  # part lengths, in systems (the piece's median
# system, in snippets)
SUB_SECONDS = (4.5, 7.2, 10.8)  # query sub-window lengths (those shorter than the clip)
SUB_HOP = 0.25  # of a sub-window's length
CENTRE_SECONDS = 3.0  # spans weigh exp(-d^2 / 2 CENTRE^2), d: centre to the clip's middle
MIX = 0.0  # weight of the whole clip's own system similarity (validation, docs/search.md)


@dataclass
class Parts:
    """Part vectors of some systems: vectors (P, D) unit rows, owner (P,) the row of `systems`
    (the order the systems were given in) that holds each part's middle; shift (P,) their
    hubness shifts (`search/hubness.py`), or None."""

    vectors: np.ndarray
    owner: np.ndarray
    shift: np.ndarray | None = None


def joined_snippets(strips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One piece's system strips (160 x W_i uint8, reading order) joined left to right and cut
    into sheet snippets as `models.snippets.sheet_snippets` cuts one strip.

    Returns (snippets (n, 80, 90) float32, centre (n,) the column of the joined strip (half
    resolution, after the left pad) at each snippet's centre, edges (len(strips) + 1,) the
    columns where each system starts, same units)."""
    inks = [halve_strip(s) for s in strips]
    edges = np.cumsum([0] + [i.shape[1] for i in inks]) + SHEET_LEFT_PAD
    ink = np.pad(np.concatenate(inks, axis=1), ((0, 0), (SHEET_LEFT_PAD, 0)))
    n = n_snippets(ink.shape[1], size=SHEET_SNIPPET_WIDTH, hop=SHEET_SNIPPET_HOP)
    ink = np.pad(ink, ((0, 0), (0, (n - 1) * SHEET_SNIPPET_HOP + SHEET_SNIPPET_WIDTH
                                - ink.shape[1])))
    starts = np.arange(n) * SHEET_SNIPPET_HOP
    cols = starts[:, None] + np.arange(SHEET_SNIPPET_WIDTH)
    snippets = np.ascontiguousarray(ink[:, cols].transpose(1, 0, 2))
    return snippets, starts + SHEET_SNIPPET_WIDTH / 2, edges


def piece_parts(strips: list[np.ndarray], *,
                lengths: tuple[float, ...] = PART_SYSTEMS) -> tuple[np.ndarray, list[np.ndarray],
                                                                   np.ndarray]:
    """The parts of one piece: (snippets, sequences (each part's snippet rows), owner (the
    index in `strips` of the system holding each part's middle))."""
    snippets, centre, edges = joined_snippets(strips)
    per_system = np.median(np.diff(edges)) / SHEET_SNIPPET_HOP
    sequences, owner = [], []
    for fraction in lengths:
        k = max(1, int(round(fraction * per_system)))
        for a in range(0, max(len(snippets) - k, 0) + 1):
            rows = np.arange(a, min(a + k, len(snippets)))
            middle = (centre[rows[0]] + centre[rows[-1]]) / 2
            sequences.append(rows)
            owner.append(min(int(np.searchsorted(edges, middle, side="right")) - 1,
                             len(strips) - 1))
    return snippets, sequences, np.maximum(np.array(owner, np.int64), 0)


def embed_parts(embedder: Embedder, pieces: list[list[np.ndarray]]) -> Parts:
    """Parts of several pieces (each a list of its system strips in reading order); owners
    count the systems of all pieces in the order given."""
    vectors, owners, first = [], [], 0
    for strips in pieces:
        snippets, sequences, owner = piece_parts(strips)
        vectors.append(embedder.sheet_runs(snippets, sequences))
        owners.append(owner + first)
        first += len(strips)
    if not vectors:
        return Parts(np.zeros((0, embedder.dim), np.float32), np.zeros(0, np.int64))
    return Parts(np.concatenate(vectors), np.concatenate(owners))


def clip_spans(n_frames: int) -> list[tuple[int, int]]:
    """The whole clip, then its sub-windows (SUB_SECONDS long, SUB_HOP of that apart)."""
    spans = [(0, n_frames)]
    for seconds in SUB_SECONDS:
        length = int(seconds * FPS)
        if length < n_frames:
            hop = max(1, int(length * SUB_HOP))
            spans += [(a, a + length) for a in range(0, n_frames - length + 1, hop)]
    return spans


def span_weights(spans: list[tuple[int, int]]) -> np.ndarray:
    """(S,) weights of `clip_spans` (the first: the whole clip): a Gaussian of CENTRE_SECONDS
    of the distance from each span's centre to the clip's middle."""
    a, b = np.array(spans, np.float64).T
    middle = (spans[0][0] + spans[0][1]) / 2
    return np.exp(-0.5 * (((a + b) / 2 - middle) / (CENTRE_SECONDS * FPS)) ** 2)


def system_scores(span_vectors: np.ndarray, system_vectors: np.ndarray, parts: Parts, *,
                  weights: np.ndarray | None = None, mix: float = MIX,
                  system_shift: np.ndarray | None = None) -> np.ndarray:
    """(N,) scores of the N systems for a clip embedded over `clip_spans` (S, D) (row 0: the
    whole clip): mix x whole . system + (1 - mix) x mean over spans (weighted by `weights`,
    `span_weights`; default: all alike) of the best of the system's own vector and its
    parts; every similarity less its vector's hubness shift where given (`system_shift`,
    `parts.shift`)."""
    own = span_vectors @ system_vectors.T  # (S, N)
    if system_shift is not None:
        own = own - system_shift
    best = own.copy()
    if len(parts.owner):
        sims = span_vectors @ parts.vectors.T  # (S, P)
        if parts.shift is not None:
            sims = sims - parts.shift
        for s in range(len(best)):
            np.maximum.at(best[s], parts.owner, sims[s])
    w = np.ones(len(best)) if weights is None else np.asarray(weights, np.float64)
    return mix * own[0] + (1 - mix) * (w @ best) / w.sum()
