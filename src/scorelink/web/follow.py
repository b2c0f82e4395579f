"""Follow a recording along a score held in an index: what the web page's score following
shows (which system sounds when, on which page, where its box is).

The score's systems come from the index (no page is read or embedded again) and are aligned as
`scorelink align` aligns a score: by their notes (`search.follow.align_notes`) where the index
keeps the piece's notes (a score engraved from a symbolic file), else by the index's vectors
(`align.align`), with the systems' starts sharpened by the noteheads read off them where the
index keeps those (`reading.refine_starts`); an `AlignmentCache` keeps the answers, so that a
recording followed again (or by another visitor) is aligned once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from scorelink.constants import FPS
from scorelink.errors import QueryError
from scorelink.search import align
from scorelink.search.embed import Embedder
from scorelink.search.index import Index

MAX_RECORDING_SECONDS = 30 * 60.0  # a recording followed on the page lasts at most this
CACHED_ALIGNMENTS = 32  # answers kept (a few KB each)


def pieces(index: Index) -> list[dict]:
    """Every indexed score: {"piece", "pages", "systems"}, by name."""
    rows = index.db.execute("SELECT piece, max(page) + 1 AS pages, count(*) AS systems "
                            "FROM systems GROUP BY piece ORDER BY piece")
    return [dict(r) for r in rows]


def recordings(index: Index) -> list[dict]:
    """Every indexed recording whose audio file is known: {"recording", "piece" (the score it
    renders where the index knows it, else None), "seconds", "audio_path"}, by name."""
    rows = index.db.execute(
        'SELECT recording, max(piece) AS piece, max("end") AS seconds, max(audio_path) AS '
        "audio_path FROM windows WHERE audio_path IS NOT NULL GROUP BY recording "
        "ORDER BY recording")
    return [dict(r) for r in rows]


def has_piece(index: Index, piece: str) -> bool:
    return index.db.execute("SELECT 1 FROM systems WHERE piece = ? LIMIT 1",
                            (piece,)).fetchone() is not None


def recording_path(index: Index, name: str) -> Path:
    """The audio file of an indexed recording; QueryError when none is known or it is gone."""
    row = index.db.execute("SELECT audio_path FROM windows WHERE recording = ? AND audio_path "
                           "IS NOT NULL LIMIT 1", (name,)).fetchone()
    if row is None:
        raise QueryError(f"no indexed recording {name!r} with an audio file")
    path = Path(row["audio_path"])
    if not path.is_file():
        raise QueryError(f"the audio file of recording {name!r} is gone ({path.name})")
    return path


def piece_systems(index: Index, piece: str) -> tuple[list[dict], np.ndarray]:
    """A piece's systems in reading order (page, then top to bottom) as index rows, and their
    stored vectors (S, D)."""
    rows = [dict(r) for r in index.db.execute(
        "SELECT * FROM systems WHERE piece = ? ORDER BY page, system", (piece,))]
    if not rows:
        raise QueryError(f"no indexed score {piece!r}")
    vectors = np.stack([index.sheet.reconstruct(r["id"]) for r in rows])
    return rows, vectors


def follow(index: Index, embedder: Embedder, piece: str, samples: np.ndarray) -> dict:
    """Align a recording (float32 mono samples at SAMPLE_RATE) to an indexed piece.

    Returns {"piece", "seconds", "systems": [{"page", "system", "start", "end", "confidence",
    "evidence", "id"}] in played order (as `scorelink align` gives them, plus the index's
    system id),
    "pages": [{"page", "url", "systems": [{"id", "system", "box"}]}]}: pages count from 1, a
    system's number counts its page's systems from 1 (top to bottom), boxes are
    [top, left, bottom, right] in page pixels.
    """
    from scorelink.data.spectrogram import spectrogram
    from scorelink.search.follow import align_notes

    rows, vectors = piece_systems(index, piece)
    spec = spectrogram(samples)
    ids = [r["id"] for r in rows]
    notes = index.notes(ids)
    if notes:
        empty = np.zeros((0, 3))
        result = align_notes(spec, [{"notes": notes.get(r["id"], empty)} for r in rows])
    else:
        halves = index.halves(ids)  # None in indexes made before 2026-12-05
        heads = index.heads(ids)  # scans and page images: aligned with their read notes too,
        read = None  # then their starts sharpened by them
        if heads:
            from scorelink.search.reading import refine_starts, timeline

            read = timeline([heads.get(i, np.zeros((0, 2))) for i in ids])
        result = align.align(spec, vectors, embedder, halves=halves, read=read)
        if read is not None:
            result.segments = refine_starts(spec, result.segments, read)
    systems, pages = [], {}
    for r in rows:  # `system` in the index counts a piece's systems; here, its page's
        page = pages.setdefault(r["page"], {"page": r["page"] + 1, "url": f"/{r['page_image']}",
                                            "systems": []})
        systems.append({"page": r["page"], "on_page": len(page["systems"])})
        page["systems"].append({"id": r["id"], "system": len(page["systems"]) + 1,
                                "box": [r["top"], r["left"], r["bottom"], r["right"]]})
    played = [{**row, "id": rows[s.system]["id"]}
              for row, s in zip(align.rows(result, systems), result.systems, strict=True)]
    return {"piece": piece, "seconds": round(spec.shape[1] / FPS, 2), "systems": played,
            "pages": [pages[p] for p in sorted(pages)]}


def upload_key(data: bytes) -> str:
    """What identifies an uploaded recording in the cache: its content."""
    return "upload:" + hashlib.sha256(data).hexdigest()


def file_key(path: Path) -> str:
    """What identifies an indexed recording's file in the cache: path, size and mtime (a file
    replaced in place is aligned again)."""
    st = path.stat()
    return f"file:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


class AlignmentCache:
    """The last CACHED_ALIGNMENTS answers of `follow`, by (index generation, piece,
    recording key). Not thread-safe: use it under the index's lock."""

    def __init__(self, size: int = CACHED_ALIGNMENTS):
        self.size = size
        self.answers: OrderedDict[tuple, dict] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> dict | None:
        answer = self.answers.get(key)
        if answer is None:
            self.misses += 1
            return None
        self.hits += 1
        self.answers.move_to_end(key)
        return answer

    def put(self, key: tuple, answer: dict) -> None:
        self.answers[key] = answer
        self.answers.move_to_end(key)
        while len(self.answers) > self.size:
            self.answers.popitem(last=False)
