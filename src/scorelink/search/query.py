"""Answer queries against an index: audio -> systems, sheet strip -> recording windows.

An audio clip up to one system long is one query vector; a longer clip is cut into windows
(each about a system long) whose hits are merged, keeping each system's best score. Where the
index keeps parts (runs of each piece's joined systems, many across a system boundary,
`search/parts.py`), the model ranks systems with them: each window and its sub-windows against
every system's vector and parts, so that a clip cut anywhere finds the system under its
middle. Where the
index keeps the notes of its scores (symbolic scores, dataset pieces), the clip is also
aligned to them (`search/notes.py`) and the two are fused (`fuse`: the notes rank the systems
that have them, the model the others), and an answer's `evidence` says which of the two
ranked it where it is. A sheet
query's hits are recording windows; overlapping windows of one recording are folded into the
best of them, so the answers are distinct places. `by_piece` ranks pieces by their best hit.

Answers are for people: their `page` and `system` count from 1 (page 1 is the first page,
system 1 the first system of the piece), as the command line, the web page and the demo report
print them. The index stores them from 0, as dataset records do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scorelink.constants import AUDIO_SNIPPET_HOP, FPS
from scorelink.errors import QueryError
from scorelink.threads import one_blas_thread

if TYPE_CHECKING:  # imported by callers; a query imports no more than it uses
    from scorelink.search.embed import EmbedderBase as Embedder
    from scorelink.search.index import Index

LONG_QUERY_SECONDS = 25.0  # up to this, an audio query is one passage
QUERY_WINDOW_SECONDS = 10.8  # longer queries: windows of this length ...
QUERY_HOP_SECONDS = 5.4  # ... every this many seconds
DEPTH = 200  # hits fetched per query vector before merging
MODEL_CANDIDATES = 10  # systems the model proposes for note alignment, per query vector
# Fusion (`fuse`): a system with notes scores IMAGE_WEIGHT x the model's score - its notes cost;
# IMAGE_WEIGHT 0: on MSMD validation clips (benchmarks/notes_quality.py --split valid --tune,
# 300 clips) every weight above 0 lost clips, for every model gridded (2026-12-05, the shipped
# model with parts: 0 -> 89.7 %, 0.0001 to 0.001 -> 88.3 %; 2026-12-04, three models before,
# the same): where the notes tie, the same music is printed twice, and the model, which sees
# the same notes on the page, does not know better. A system without notes (a scan, in an
# index that also keeps notes) scores SCAN_WEIGHT x the model's score - NO_NOTES_COST, a cost
# that says nothing either way: the model orders such systems among themselves.
IMAGE_WEIGHT = 0.0
SCAN_WEIGHT = 0.001
NO_NOTES_COST = 0.3
# A system without notes whose noteheads the note reader read (a scan, a page image;
# `search/reading.py`) scores READ_WEIGHT x the model's score - its read-notes cost. Chosen on
# validation (benchmarks/search_quality.py --split valid --read --read-weights ..., the chorales
# and MSMD, 100 clips of 5, 10 and 20 s each, 2026-12-06): R@1 of the clip's middle system,
# mean of the six, at weights 0 / 0.05 / 0.1 / 0.2 / 0.3 / 0.5: 79.8 / 81.0 / 81.5 / 82.0 /
# 82.8 / 80.7 % (the model alone 24.8 %; docs/reader.md)
READ_WEIGHT = 0.3
TIE_DIGITS = 5  # fused scores equal to this many decimals are a tie (`fuse`)


def query_spans(n_frames: int) -> list[tuple[int, int]]:
    """Frame spans an audio query of n_frames is cut into."""
    if n_frames <= LONG_QUERY_SECONDS * FPS:
        return [(0, n_frames)]
    length, hop = int(QUERY_WINDOW_SECONDS * FPS), int(QUERY_HOP_SECONDS * FPS)
    hop -= hop % AUDIO_SNIPPET_HOP
    starts = list(range(0, n_frames - length + 1, hop))
    if starts[-1] + length < n_frames:
        starts.append(n_frames - length)
    return [(a, a + length) for a in starts]


@one_blas_thread
def search_audio(index: Index, embedder: Embedder, samples: np.ndarray, *,
                 top: int = 10, notes: bool = True) -> list[dict]:
    """Systems for an audio clip (float mono samples at SAMPLE_RATE), best first.

    notes=False: the model alone, even where the index keeps notes."""
    from scorelink.data.spectrogram import spectrogram

    evidence = audio_evidence(index, embedder, spectrogram(samples), notes=notes)
    return fuse(index, evidence, top=top)


@one_blas_thread
def audio_evidence(index: Index, embedder: Embedder, spec: np.ndarray, *,
                   notes: bool = True, depth: int = DEPTH) -> dict:
    """What an audio query's spectrogram (N_BINS, T) says about the indexed systems:
    {"image": {system id: the model's score} (`model_evidence`),
     "notes": {system id: lowest alignment cost} (empty without notes),
     "with_notes": the ids of systems that have notes,
     "spans": {system id: the timeline frames its best alignment covers},
     "read": {system id: lowest alignment cost against the notes read off its image, over
     the timeline's scales} (systems without notes; empty when none was read),
     "with_heads": the ids of systems with read noteheads,
     "span_features": the notes matcher's features of each query span (`span_features`; []
     without notes), "read_span_features": the read notes' (with onsets; [] without read
     notes)}."""
    image, proposed = model_evidence(index, embedder, spec, depth=depth)
    matcher = index.note_matcher() if notes else None
    spans: dict[int, tuple[int, int]] = {}
    read: dict[int, float] = {}
    readers = index.read_matchers() if notes else []
    features = span_features(spec) if matcher is not None else []
    read_features = span_features(spec, onsets=True) if readers else []
    for reader in readers:
        for i, c in notes_evidence(reader, read_features, proposed).items():
            read[i] = min(c, read.get(i, np.inf))
    return {"image": image, "notes": notes_evidence(matcher, features, proposed, spans=spans),
            "with_notes": matcher.systems if matcher is not None else set(), "spans": spans,
            "read": read, "with_heads": set().union(*(r.systems for r in readers)),
            "span_features": features, "read_span_features": read_features}


def model_evidence(index: Index, embedder: Embedder, spec: np.ndarray, *,
                   depth: int = DEPTH) -> tuple[dict[int, float], list[list[int]]]:
    """The model's side of `audio_evidence`: ({system id: score}, per query span
    (`query_spans`) the ids of its MODEL_CANDIDATES best systems), ranked with the index's
    parts where it keeps them (`parts_evidence`), else by each system's best cosine
    similarity (`image_evidence`: an index made before parts were kept)."""
    index.check_model(embedder.fingerprint)
    if index.sheet.ntotal == 0:
        raise QueryError(f"{index.root} holds no systems to search (index some scores)")
    ranked = parts_evidence(index, embedder, spec, depth=depth)
    return ranked if ranked is not None else image_evidence(index, embedder, spec, depth=depth)


def image_evidence(index: Index, embedder: Embedder, spec: np.ndarray, *,
                   depth: int = DEPTH) -> tuple[dict[int, float], list[list[int]]]:
    """`model_evidence` by the query spans' vectors alone: ({system id: best cosine
    similarity among the spans' `depth` nearest systems}, proposed as there)."""
    spans = query_spans(spec.shape[1])
    vectors = embedder.audio(spec, spans)
    scores, ids = index.nearest("sheet", vectors, depth)
    image: dict[int, float] = {}
    for row_scores, row_ids in zip(scores, ids, strict=True):
        for s, i in zip(row_scores, row_ids, strict=True):
            if i >= 0 and s > image.get(int(i), -np.inf):
                image[int(i)] = float(s)
    proposed = [[int(i) for i in row[:MODEL_CANDIDATES] if i >= 0] for row in ids]
    return image, proposed


def parts_evidence(index: Index, embedder: Embedder, spec: np.ndarray, *, depth: int = DEPTH
                   ) -> tuple[dict[int, float], list[list[int]]] | None:
    """The model's ranking with the index's parts: ({system id: score}, the MODEL_CANDIDATES
    best ids per query span). Each query span and its sub-windows (`parts.clip_spans`) fetch
    their `depth` nearest systems and the systems of their `depth` nearest parts (FAISS);
    those candidates get `parts.system_scores`, the best over query spans kept. None: the
    index keeps no parts."""
    from scorelink.search import parts

    found = index.parts()
    if found is None:
        return None
    ids, vectors = index.system_matrix()
    scores: dict[int, float] = {}
    proposed = []
    for a, b in query_spans(spec.shape[1]):
        span = spec[:, a:b]
        spans = parts.clip_spans(span.shape[1])
        sub = embedder.audio(span, spans)
        _, near = index.nearest("sheet", sub, depth)
        near = np.r_[near.ravel(), index.nearest_parts(sub, depth).ravel()]
        candidates = np.unique(near[near >= 0])
        lo = np.searchsorted(found.owner, candidates, side="left")
        hi = np.searchsorted(found.owner, candidates, side="right")
        rows = np.concatenate([np.arange(x, y) for x, y in zip(lo, hi, strict=True)])
        rows = rows.astype(np.int64)
        own = parts.Parts(found.vectors[rows], np.repeat(np.arange(len(candidates)), hi - lo),
                          None if found.shift is None else found.shift[rows])
        s = parts.system_scores(sub, vectors[np.searchsorted(ids, candidates)], own,
                                weights=parts.span_weights(spans),
                                system_shift=index.system_shifts(candidates))
        best = np.argsort(-s, kind="stable")[:depth]
        for k in best.tolist():
            i = int(candidates[k])
            scores[i] = max(scores.get(i, -np.inf), float(s[k]))
        proposed.append([int(candidates[k]) for k in best[:MODEL_CANDIDATES]])
    return scores, proposed


def span_features(spec: np.ndarray, *, onsets: bool = False) -> list[np.ndarray]:
    """The notes matcher's `audio_features` of each query span (`query_spans`), computed once
    for the index's matchers (its notes; with onsets, the read notes at each scale)."""
    from scorelink.search.notes import audio_features

    return [audio_features(spec[:, a:b], onsets=onsets) for a, b in query_spans(spec.shape[1])]


def notes_evidence(matcher, features: list[np.ndarray], proposed: list[list[int]], *,
                   spans: dict | None = None) -> dict[int, float]:
    """The notes' side of `audio_evidence`: {system id: lowest alignment cost} over the query
    spans (their `span_features`), each aligned to the shingle candidates and the systems the
    model proposed for it; {} without a matcher (an index without notes). `spans` receives the
    timeline frames of each system's lowest-cost alignment."""
    costs: dict[int, float] = {}
    if matcher is None or not len(matcher):
        return costs
    for query, ids in zip(features, proposed, strict=True):
        where: dict[int, tuple[int, int]] = {}
        found = matcher.match_features(query, extra=matcher.system_regions(ids), spans=where)
        for i, c in found.items():
            if c < costs.get(i, np.inf):
                costs[i] = c
                if spans is not None:
                    spans[i] = where[i]
    return costs


def fuse(index: Index, evidence: dict, *, top: int = 10, weight: float = IMAGE_WEIGHT,
         read_weight: float = READ_WEIGHT, paths: str = "fused") -> list[dict]:
    """Rank systems by the fused score of `audio_evidence` (paths="image", "notes" or "read":
    by one path alone).

    Fused: a system with notes scores weight x the model's score minus its notes cost (weight:
    IMAGE_WEIGHT, 0: the notes decide), a system whose notes were read off its image
    read_weight (READ_WEIGHT) x how far the model's score falls short of the query's best
    minus its read cost (never above a system with notes for the model's sake: an index may
    hold both), any other system (a scan in an index made before heads were kept) SCAN_WEIGHT
    x the model's score minus NO_NOTES_COST. Equal scores (the same music printed twice,
    which no audio tells apart) go to the system the score plays more often (a repeat or a da
    capo replays it), then to the earlier one.
    Each answer says which evidence ranked it: "notes" (or "read notes", for notes read off
    the image) or "image" (whichever alone would rank it higher), "both" (the same rank), with
    the scores of both. The first answer, where the notes ranked it, also lists the systems
    that hold the music its alignment covers note for note ("same_music": the same music
    printed twice, which no recording tells apart)."""
    image, read = evidence["image"], evidence.get("read") or {}
    costs = {**read, **evidence["notes"]}  # a system has notes or read heads, not both
    if not costs:  # nothing aligned to notes (an index of scans): the model's score as it is
        paths = "image"
    floor = min(image.values(), default=0.0)  # systems the model did not return
    best_image = max(image.values(), default=0.0)
    with_notes, with_heads = evidence["with_notes"], evidence.get("with_heads") or set()
    worst = max(costs.values(), default=NO_NOTES_COST)  # a system with notes not aligned

    def fused_score(i: int) -> float:
        if i in with_notes:
            return weight * image.get(i, floor) - costs.get(i, worst)
        if i in with_heads:
            return read_weight * (image.get(i, floor) - best_image) - costs.get(i, worst)
        return SCAN_WEIGHT * image.get(i, floor) - NO_NOTES_COST

    ids = set(image) | set(costs)
    if paths == "image":
        fused = {i: image.get(i, floor) for i in ids}
        ranked = sorted(fused, key=lambda i: (-fused[i], i))
    else:  # notes costs: equal to TIE_DIGITS decimals is the same music
        fused = ({i: -evidence["notes"][i] for i in evidence["notes"]} if paths == "notes" else
                 {i: -read[i] for i in read} if paths == "read" else
                 {i: fused_score(i) for i in ids})
        matcher = index.note_matcher()
        plays = matcher.plays if matcher is not None else {}
        ranked = sorted(fused, key=lambda i: (-round(fused[i], TIE_DIGITS), -plays.get(i, 1), i))
    ranked = ranked[: _limit(top)]
    image_rank = {i: k for k, i in enumerate(sorted(image, key=lambda i: -image[i]))}
    notes_rank = {i: k for k, i in enumerate(sorted(costs, key=lambda i: costs[i]))}
    rows = index.rows("sheet", ranked)
    out = []
    for k, (i, r) in enumerate(zip(ranked, rows, strict=True)):
        a, b = image_rank.get(i, len(image)), notes_rank.get(i, len(costs))
        notes_word = "read notes" if i in read else "notes"
        word = "image" if not costs or a < b else notes_word if b < a else "both"
        out.append({"rank": k + 1, "score": round(fused[i], 4), **_system(index, r),
                    "evidence": word, "image_score": round(image.get(i, floor), 4),
                    "notes_cost": round(costs[i], 4) if i in costs else None})
    spans = evidence.get("spans") or {}
    if out and paths != "image" and out[0]["id"] in spans:
        same = index.note_matcher().same_music(*spans[out[0]["id"]], own=out[0]["id"])
        out[0]["same_music"] = [_system(index, r) for r in index.rows("sheet", sorted(same))]
    return out


def search_sheet(index: Index, embedder: Embedder, strip: np.ndarray, *,
                 top: int = 10) -> list[dict]:
    """Recording windows for one system strip (160 x W uint8), best first, no overlaps."""
    index.check_model(embedder.fingerprint)
    if index.audio.ntotal == 0:
        raise QueryError(f"{index.root} holds no recordings to search (index some audio)")
    vector = embedder.sheet(strip[None])
    scores, ids = index.nearest("audio", vector, max(4 * top, DEPTH))
    keep = [(float(s), int(i)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
    rows = index.rows("audio", [i for _, i in keep])
    chosen: list[dict] = []
    for (s, _), r in zip(keep, rows, strict=True):
        if any(c["recording"] == r["recording"] and _overlap(c, r) > 0.5 for c in chosen):
            continue
        chosen.append({**_window(r), "score": round(s, 4)})
        if top and len(chosen) >= top:
            break
    return [{"rank": k + 1, **c} for k, c in enumerate(chosen)]


def image_strip(path: str | Path, *, system: int | None = None) -> np.ndarray:
    """The strip (160 x W uint8) of a sheet query: the `system`-th system (from 1, top to
    bottom) of a page image or PDF's first page; `system` may be left out when the image shows
    one system only."""
    from scorelink.search.pages import load_pages, system_strips
    from scorelink.search.staves import find_systems

    page = load_pages(path)[0]
    found = find_systems(page)
    if not found:
        raise QueryError(f"{path}: no staves found; is it an image of printed music?")
    if system is None:
        if len(found) > 1:
            raise QueryError(f"{path} shows {len(found)} systems; choose one with --system N "
                             f"(1 to {len(found)}, top to bottom)")
        system = 1
    if not 1 <= system <= len(found):
        raise QueryError(f"{path} shows {len(found)} systems; --system must be 1 to "
                         f"{len(found)}")
    return system_strips(page, [found[system - 1]])[0]


def by_piece(hits: list[dict], *, top: int = 10) -> list[dict]:
    """Pieces ranked by their best passage hit (ties: more hits first)."""
    pieces: dict[str, dict] = {}
    for h in hits:
        piece = h.get("piece") or h.get("recording")
        p = pieces.setdefault(piece, {"piece": piece, "score": h["score"], "hits": 0,
                                      "best": h})
        p["hits"] += 1
    ranked = sorted(pieces.values(), key=lambda p: (-p["score"], -p["hits"]))
    return [{"rank": k + 1, "piece": p["piece"], "score": p["score"], "hits": p["hits"],
             "best": {key: v for key, v in p["best"].items() if key not in ("rank", "score")}}
            for k, p in enumerate(ranked[: _limit(top)])]


def _limit(top: int) -> int | None:
    return top if top and top > 0 else None


def _overlap(a: dict, b: dict) -> float:
    inter = min(a["end"], b["end"]) - max(a["start"], b["start"])
    return max(inter, 0.0) / max(min(a["end"] - a["start"], b["end"] - b["start"]), 1e-9)


def page_systems(index: Index, piece: str, page: int) -> list[dict]:
    """Every indexed system of a piece's page (`page` from 1), top to bottom, numbered from 1
    on the page."""
    rows = list(index.db.execute("SELECT * FROM systems WHERE piece = ? AND page = ? "
                                 "ORDER BY system", (piece, page - 1)))
    return [{"id": r["id"], "system": k + 1,
             "box": [r["top"], r["left"], r["bottom"], r["right"]]} for k, r in enumerate(rows)]


def on_page(index: Index, r: dict) -> tuple[int, int]:
    """A system row's place as people read it: (page from 1, the system counted from 1 on its
    page, top to bottom, as `align` and `--image --system N` count)."""
    first = index.first_systems().get((r["piece"], r["page"]), 0)
    return r["page"] + 1, r["system"] - first + 1


def _system(index: Index, r: dict) -> dict:
    """An answer's system: page and system as `on_page` counts them; `system_in_piece` counts
    the piece's systems from its first (the index's own order, from 1)."""
    page, system = on_page(index, r)
    return {"piece": r["piece"], "page": page, "system": system,
            "system_in_piece": r["system"] + 1,
            "box": [r["top"], r["left"], r["bottom"], r["right"]], "page_image": r["page_image"],
            "id": r["id"]}


def _window(r: dict) -> dict:
    out = {"recording": r["recording"], "start": round(r["start"], 2), "end": round(r["end"], 2),
           "id": r["id"], "audio_path": r["audio_path"]}
    if r.get("piece") is not None:
        out.update(piece=r["piece"], system=r["system"] + 1)
    return out
