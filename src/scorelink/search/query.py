"""Answer queries against an index: audio -> systems, sheet strip -> recording windows.

An audio clip up to one system long is one query vector; a longer clip is cut into windows
(each about a system long) whose hits are merged, keeping each system's best score. A sheet
query's hits are recording windows; overlapping windows of one recording are folded into the
best of them, so the answers are distinct places. `by_piece` ranks pieces by their best hit.

Answers are for people: their `page` and `system` count from 1 (page 1 is the first page,
system 1 the first system of the piece), as the command line, the web page and the demo report
print them. The index stores them from 0, as dataset records do.
"""

from __future__ import annotations

import numpy as np

from scorelink.constants import AUDIO_SNIPPET_HOP, FPS
from scorelink.errors import QueryError
from scorelink.search.embed import Embedder
from scorelink.search.index import Index

LONG_QUERY_SECONDS = 25.0  # up to this, an audio query is one passage
QUERY_WINDOW_SECONDS = 10.8  # longer queries: windows of this length ...
QUERY_HOP_SECONDS = 5.4  # ... every this many seconds
DEPTH = 200  # hits fetched per query vector before merging


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


def search_audio(index: Index, embedder: Embedder, samples: np.ndarray, *,
                 top: int = 10) -> list[dict]:
    """Systems for an audio clip (float mono samples at SAMPLE_RATE), best first."""
    from scorelink.data.spectrogram import spectrogram

    index.check_model(embedder.fingerprint)
    if index.sheet.ntotal == 0:
        raise QueryError(f"{index.root} holds no systems to search (index some scores)")
    spec = spectrogram(samples)
    vectors = embedder.audio(spec, query_spans(spec.shape[1]))
    scores, ids = index.nearest("sheet", vectors, max(top, DEPTH))
    best: dict[int, float] = {}
    for row_scores, row_ids in zip(scores, ids, strict=True):
        for s, i in zip(row_scores, row_ids, strict=True):
            if i >= 0 and s > best.get(int(i), -np.inf):
                best[int(i)] = float(s)
    ranked = sorted(best.items(), key=lambda kv: -kv[1])
    rows = index.rows("sheet", [i for i, _ in ranked])
    return [{"rank": k + 1, "score": round(s, 4), **_system(r)}
            for k, ((_, s), r) in enumerate(zip(ranked, rows, strict=True))][: _limit(top)]


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
    """Every indexed system of a piece's page (`page` from 1), top to bottom, numbered from 1."""
    rows = index.db.execute("SELECT * FROM systems WHERE piece = ? AND page = ? ORDER BY system",
                            (piece, page - 1))
    return [{"id": r["id"], "system": r["system"] + 1,
             "box": [r["top"], r["left"], r["bottom"], r["right"]]} for r in rows]


def _system(r: dict) -> dict:
    return {"piece": r["piece"], "page": r["page"] + 1, "system": r["system"] + 1,
            "box": [r["top"], r["left"], r["bottom"], r["right"]], "page_image": r["page_image"],
            "id": r["id"]}


def _window(r: dict) -> dict:
    out = {"recording": r["recording"], "start": round(r["start"], 2), "end": round(r["end"], 2),
           "id": r["id"], "audio_path": r["audio_path"]}
    if r.get("piece") is not None:
        out.update(piece=r["piece"], system=r["system"] + 1)
    return out
