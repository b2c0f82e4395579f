"""The index folder: two FAISS indexes (sheet systems, audio windows) plus SQLite metadata.

    IDX/index.json            format, version, the model's fingerprint, generation, counts
    IDX/sheet-<gen>.faiss     one vector per system (inner product on unit vectors = cosine)
    IDX/audio-<gen>.faiss     one vector per audio window
    IDX/meta-<gen>.sqlite     systems(id, piece, page, system, box, page image), windows(id,
                              recording, start, end, audio path, piece/system when known),
                              notes(system id, onset, offset, pitch) for systems engraved
                              from a symbolic score (score time in seconds, repeats unfolded),
                              halves(system id, first- and second-half vectors), parts(system
                              id, its parts' vectors: runs of the joined strip, `parts.py`),
                              hubness(system id, its own and its parts' shifts, where the
                              model has a bank, `hubness.py`), heads(system id, x, pitch):
                              the noteheads the note reader read off a system that has no
                              notes (a scan, a page image; `reading.py`)
    IDX/pages/<piece>/page-NNN.png   the page images, for display

Writes are atomic: a change writes the files of a new generation, then replaces index.json in
one rename, then removes the old generation. A reader (or a crash) sees the old index or the new
one, never a mix. `add` appends vectors and rows; nothing already indexed is embedded again.

A writer holds IDX/.lock (an exclusive `flock`, which the system releases when the process dies,
even by `kill -9`); writers queue on it. Files of another generation found while nobody holds it
are what an interrupted write left (a half-written meta-N.sqlite, its journal): opening the
index removes them. A reader can ask `changed()` (one stat of index.json) whether a newer
generation was committed since it opened, and open the index again (the web server does).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scorelink.errors import SearchIndexError
from scorelink.search.generations import (
    remove_abandoned_builds,
    remove_orphans,
    remove_orphans_locked,
    signature,
    writer_lock,
)

FORMAT = "scorelink-index"
VERSION = 1
KINDS = ("flat", "hnsw")  # exact inner product; approximate (HNSW graph) for millions

_SCHEMA = """
CREATE TABLE IF NOT EXISTS systems (
    id INTEGER PRIMARY KEY, piece TEXT NOT NULL, page INTEGER NOT NULL, system INTEGER NOT NULL,
    top REAL, left REAL, bottom REAL, right REAL, page_image TEXT, source TEXT);
CREATE TABLE IF NOT EXISTS windows (
    id INTEGER PRIMARY KEY, recording TEXT NOT NULL, start REAL NOT NULL, "end" REAL NOT NULL,
    audio_path TEXT, piece TEXT, system INTEGER, source TEXT);
CREATE TABLE IF NOT EXISTS notes (
    system INTEGER NOT NULL, onset REAL NOT NULL, offset REAL NOT NULL, pitch INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS halves (
    system INTEGER PRIMARY KEY, first BLOB NOT NULL, second BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS parts (system INTEGER PRIMARY KEY, vectors BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS hubness (system INTEGER PRIMARY KEY, own REAL NOT NULL,
    parts BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS heads (system INTEGER NOT NULL, x REAL NOT NULL,
    pitch INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS heads_system ON heads (system);
CREATE INDEX IF NOT EXISTS windows_recording ON windows (recording);
CREATE INDEX IF NOT EXISTS notes_system ON notes (system);
CREATE INDEX IF NOT EXISTS systems_piece ON systems (piece);
"""


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise SearchIndexError("faiss is not installed: pip install faiss-cpu") from exc
    return faiss


def _new_faiss(dim: int, kind: str):
    faiss = _faiss()
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efSearch = 128
    else:
        raise SearchIndexError(f"index kind must be one of {KINDS}, not {kind!r}")
    return faiss.IndexIDMap2(inner)


@dataclass
class Pending:
    """What one `add` call appends: vectors and their metadata rows (dicts)."""

    systems: list[dict] = field(default_factory=list)
    system_vectors: list[np.ndarray] = field(default_factory=list)
    windows: list[dict] = field(default_factory=list)
    window_vectors: list[np.ndarray] = field(default_factory=list)
    pages: dict[str, np.ndarray] = field(default_factory=dict)  # relative path -> image
    skipped: list[dict] = field(default_factory=list)  # files left out: {"path", "reason"}
    # per system (parallel to `systems`): its notes, (n, 3) float [onset s, offset s, MIDI
    # pitch] in the piece's score time, or None (a scan: no notes known)
    system_notes: list[np.ndarray | None] = field(default_factory=list)
    # per system: its first- and second-half vectors, (2, D) float32 (`Embedder.sheet_with_halves`;
    # whole-recording alignment by the images places boundaries with them), or None
    system_halves: list[np.ndarray | None] = field(default_factory=list)
    # per system: the vectors of the parts it holds, (p, D) float32 (`search/parts.py`: runs of
    # the piece's joined systems, many across a boundary; clips cut anywhere are ranked with
    # them), or None
    system_parts: list[np.ndarray | None] = field(default_factory=list)
    # per system without notes: the noteheads read off its image, (n, 2) float [x px, MIDI
    # pitch] (`models/reader.py`), or None
    system_heads: list[np.ndarray | None] = field(default_factory=list)

    def add_systems(self, rows: list[dict], vectors: np.ndarray,
                    notes: list[np.ndarray | None] | None = None,
                    halves: tuple[np.ndarray, np.ndarray] | None = None,
                    parts: list[np.ndarray] | None = None,
                    heads: list[np.ndarray | None] | None = None) -> None:
        if len(rows) != len(vectors):
            raise ValueError("one vector per system")
        if notes is not None and len(notes) != len(rows):
            raise ValueError("one note array (or None) per system")
        if halves is not None and not len(halves[0]) == len(halves[1]) == len(rows):
            raise ValueError("one first and one second half per system")
        if parts is not None and len(parts) != len(rows):
            raise ValueError("one array of part vectors per system")
        if heads is not None and len(heads) != len(rows):
            raise ValueError("one array of noteheads (or None) per system")
        self._pad()
        self.systems += rows
        self.system_vectors.append(np.asarray(vectors, np.float32))
        self.system_notes += list(notes) if notes is not None else [None] * len(rows)
        self.system_halves += (list(np.stack(halves, axis=1).astype(np.float32))
                               if halves is not None else [None] * len(rows))
        self.system_parts += ([np.asarray(v, np.float32) for v in parts] if parts is not None
                              else [None] * len(rows))
        self.system_heads += list(heads) if heads is not None else [None] * len(rows)

    def _pad(self) -> None:  # rows added directly to `systems`: no notes, halves or parts
        self.system_notes += [None] * (len(self.systems) - len(self.system_notes))
        self.system_halves += [None] * (len(self.systems) - len(self.system_halves))
        self.system_parts += [None] * (len(self.systems) - len(self.system_parts))
        self.system_heads += [None] * (len(self.systems) - len(self.system_heads))

    def add_windows(self, rows: list[dict], vectors: np.ndarray) -> None:
        if len(rows) != len(vectors):
            raise ValueError("one vector per window")
        self.windows += rows
        self.window_vectors.append(np.asarray(vectors, np.float32))

    def extend(self, other: Pending) -> None:
        """Append everything `other` holds."""
        self._pad()
        other._pad()
        self.system_notes += other.system_notes
        self.system_halves += other.system_halves
        self.system_parts += other.system_parts
        self.system_heads += other.system_heads
        self.systems += other.systems
        self.system_vectors += other.system_vectors
        self.windows += other.windows
        self.window_vectors += other.window_vectors
        self.pages.update(other.pages)
        self.skipped += other.skipped


class Index:
    """An index folder opened for reading; `Index.write` creates or extends one."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta = self.root / "index.json"
        if not meta.is_file():
            raise SearchIndexError(f"{self.root} is not a scorelink index (no index.json); "
                                   "make one with `scorelink index --out DIR ...`")
        remove_orphans(self.root)
        self._stat = signature(meta)
        try:
            self.info = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SearchIndexError(f"{meta} is unreadable ({exc})") from exc
        if self.info.get("format") != FORMAT:
            raise SearchIndexError(f"{self.root} is not a scorelink index")
        if self.info.get("version") != VERSION:
            raise SearchIndexError(f"{self.root} is index version {self.info.get('version')}; "
                                   f"this scorelink reads version {VERSION}")
        gen = self.info["generation"]
        faiss = _faiss()
        try:
            self.sheet = faiss.read_index(str(self.root / f"sheet-{gen}.faiss"))
            self.audio = faiss.read_index(str(self.root / f"audio-{gen}.faiss"))
        except RuntimeError as exc:
            raise SearchIndexError(f"{self.root}: the vector files are corrupt ({exc})") from exc
        self.db_path = self.root / f"meta-{gen}.sqlite"
        if not self.db_path.is_file():
            raise SearchIndexError(f"{self.root}: metadata file {self.db_path.name} is missing")
        try:
            self.db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True,
                                      check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            n_sys = self.db.execute("SELECT count(*) FROM systems").fetchone()[0]
            n_win = self.db.execute("SELECT count(*) FROM windows").fetchone()[0]
            self.has_notes = self.db.execute(  # indexes made before notes were kept have none
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='notes'").fetchone() \
                is not None and self.db.execute("SELECT 1 FROM notes LIMIT 1").fetchone() \
                is not None
        except sqlite3.DatabaseError as exc:
            raise SearchIndexError(f"{self.db_path} is corrupt ({exc})") from exc
        if (n_sys, n_win) != (self.sheet.ntotal, self.audio.ntotal):
            raise SearchIndexError(f"{self.root}: metadata ({n_sys} systems, {n_win} windows) "
                                   f"and vectors ({self.sheet.ntotal}, {self.audio.ntotal}) "
                                   "disagree")

    @property
    def fingerprint(self) -> str:
        return self.info["model"]["fingerprint"]

    @property
    def generation(self) -> int:
        return self.info["generation"]

    def changed(self) -> bool:
        """Whether another generation was committed since this index was opened (cheap: a
        stat of index.json, read only when the stat differs)."""
        meta = self.root / "index.json"
        now = signature(meta)
        if now == self._stat:
            return False
        try:
            generation = json.loads(meta.read_text())["generation"]
        except (OSError, ValueError, KeyError, TypeError):
            return False  # gone or unreadable: keep answering from what is open
        if generation == self.generation:
            self._stat = now  # rewritten, same generation: nothing to reload
        return generation != self.generation

    def check_model(self, fingerprint: str) -> None:
        if fingerprint != self.fingerprint:
            raise SearchIndexError(
                f"{self.root} was made with model {self.info['model']['name']} "
                f"({self.fingerprint[:12]}); the query model ({fingerprint[:12]}) is another: "
                "query with the index's model or rebuild the index")

    def close(self) -> None:
        self.db.close()

    # -- queries ------------------------------------------------------------------------------
    def nearest(self, side: str, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores (q, k), ids (q, k)); ids of -1 where fewer than k items exist."""
        index = self.sheet if side == "sheet" else self.audio
        q = np.ascontiguousarray(vectors, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.info["dim"]:
            raise SearchIndexError(f"query vectors of shape {q.shape}; "
                                   f"index dim {self.info['dim']}")
        k = max(1, min(k, index.ntotal)) if index.ntotal else 1
        return index.search(q, k)

    def rows(self, side: str, ids) -> list[dict]:
        """Metadata rows for ids, in the same order."""
        table = "systems" if side == "sheet" else "windows"
        ids = [int(i) for i in ids if int(i) >= 0]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        found = {r["id"]: dict(r) for r in
                 self.db.execute(f"SELECT * FROM {table} WHERE id IN ({marks})", ids)}
        return [found[i] for i in ids]

    def first_systems(self) -> dict[tuple[str, int], int]:
        """(piece, page from 0) -> the piece's number (from 0) of the page's first system:
        what answers subtract to count systems on their page. Read once per opened index."""
        if getattr(self, "_first_systems", None) is None:
            self._first_systems = {
                (r[0], r[1]): r[2] for r in self.db.execute(
                    "SELECT piece, page, MIN(system) FROM systems GROUP BY piece, page")}
        return self._first_systems

    def all_rows(self, side: str) -> list[dict]:
        table = "systems" if side == "sheet" else "windows"
        return [dict(r) for r in self.db.execute(f"SELECT * FROM {table} ORDER BY id")]

    def notes(self, ids: list[int] | None = None) -> dict[int, np.ndarray]:
        """System id -> its notes, (n, 3) float64 [onset s, offset s, MIDI pitch] in the
        piece's score time, sorted by onset; only systems engraved from a symbolic score (of
        `ids` only, if given)."""
        if not self.has_notes:
            return {}
        return self._per_system("notes", ("onset", "offset", "pitch"), "onset, pitch", ids)

    def _per_system(self, table: str, columns: tuple[str, ...], order: str,
                    ids: list[int] | None) -> dict[int, np.ndarray]:
        """Rows (system, *columns) of a per-system table, ordered by system then `order`, of
        the systems `ids` (None: all) -> {system id: (n, len(columns)) float64}."""
        where = f" WHERE system IN ({','.join('?' * len(ids))})" if ids is not None else ""
        if ids is not None and not ids:
            return {}
        rows = np.array(self.db.execute(
            f"SELECT system, {', '.join(columns)} FROM {table}{where} ORDER BY system, {order}",
            list(ids or ())).fetchall(), dtype=np.float64).reshape(-1, len(columns) + 1)
        cuts = np.flatnonzero(np.diff(rows[:, 0])) + 1
        return {int(part[0, 0]): part[:, 1:] for part in np.split(rows, cuts) if len(part)}

    def halves(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray] | None:
        """The given systems' first- and second-half vectors, (n, D) each, in the order
        given; None when any of them has none (an index made before they were kept)."""
        if not ids or self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                                      "name='halves'").fetchone() is None:
            return None
        marks = ",".join("?" * len(ids))
        found = {r[0]: (r[1], r[2]) for r in self.db.execute(
            f"SELECT system, first, second FROM halves WHERE system IN ({marks})", ids)}
        if len(found) < len(set(ids)):
            return None
        first, second = ([np.frombuffer(found[i][k], np.float32) for i in ids] for k in (0, 1))
        return np.stack(first), np.stack(second)

    def parts(self):
        """The parts of the indexed systems as one `parts.Parts` (owner: system ids, ascending),
        loaded on first use and kept; None when no system has parts (an index made before they
        were kept, or one of recordings only)."""
        if getattr(self, "_parts", False) is False:
            from scorelink.search.parts import Parts

            self._parts = None
            if self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                               "name='parts'").fetchone() is not None:
                dim = self.info["dim"]
                found = [(i, np.frombuffer(blob, np.float32).reshape(-1, dim)) for i, blob in
                         self.db.execute("SELECT system, vectors FROM parts ORDER BY system")]
                if found:
                    self._parts = Parts(np.concatenate([v for _, v in found]),
                                        np.concatenate([np.full(len(v), i, np.int64)
                                                        for i, v in found]))
                    self._parts.shift, self._system_shift = self._hubness(found)
                    self._parts_index = _faiss().IndexFlatIP(dim)
                    self._parts_index.add(np.ascontiguousarray(self._parts.vectors))
        return self._parts

    def _hubness(self, found: list[tuple[int, np.ndarray]]):
        """(the parts' shifts in `parts()` order, {system id: its own shift}) from the table
        `hubness`; (None, None) unless every system with parts has its row (an index made
        before, or with a model without a bank: no correction)."""
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                           "name='hubness'").fetchone() is None:
            return None, None
        rows = {i: (own, np.frombuffer(blob, np.float32)) for i, own, blob in
                self.db.execute("SELECT system, own, parts FROM hubness")}
        if any(i not in rows or len(rows[i][1]) != len(v) for i, v in found):
            return None, None
        return (np.concatenate([rows[i][1] for i, _ in found]),
                {i: own for i, (own, _) in rows.items()})

    def system_shifts(self, ids: np.ndarray) -> np.ndarray | None:
        """(n,) the hubness shifts of these system ids, or None when the index has none."""
        if self.parts() is None or self._system_shift is None:
            return None
        table = self._system_shift
        return np.array([table.get(int(i), 0.0) for i in ids], np.float32)

    def nearest_parts(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """(q, k) ids of the systems holding each query vector's k nearest parts (-1 where
        fewer exist); call only when `parts()` is not None."""
        found = self.parts()
        _, rows = self._parts_index.search(np.ascontiguousarray(vectors, np.float32),
                                           max(1, min(k, len(found.owner))))
        return np.where(rows >= 0, found.owner[np.maximum(rows, 0)], -1)

    def note_matcher(self):
        """The notes of the indexed scores as a `notes.NoteMatcher` (built on first use and
        kept), or None when the index keeps no notes."""
        if not self.has_notes:
            return None
        if getattr(self, "_matcher", None) is None:
            from scorelink.search.notes import NoteMatcher

            piece = {r["id"]: r["piece"] for r in self.db.execute("SELECT id, piece FROM systems")}
            self._matcher = NoteMatcher(self.notes(), piece)
        return self._matcher

    def heads(self, ids: list[int] | None = None) -> dict[int, np.ndarray]:
        """System id -> the noteheads read off its image, (n, 2) float64 [x px, MIDI pitch];
        only systems without notes (of `ids` only, if given), in an index made since heads
        were kept."""
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                           "name='heads'").fetchone() is None:
            return {}
        return self._per_system("heads", ("x", "pitch"), "x", ids)

    def read_matchers(self) -> list:
        """The read noteheads as notes on the timeline of x (`reading.timeline`), one
        `notes.NoteMatcher` per READ_SCALES (built on first use and kept); [] when no system
        has heads."""
        if getattr(self, "_read_matchers", None) is None:
            from scorelink.search.reading import read_matchers

            heads = self.heads()
            piece = {r["id"]: r["piece"] for r in self.db.execute("SELECT id, piece FROM systems")
                     if r["id"] in heads}
            self._read_matchers = read_matchers(heads, piece)
        return self._read_matchers

    def system_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids (n,) ascending, vectors (n, D)) of every system, read once and kept."""
        if getattr(self, "_system_matrix", None) is None:
            ids = np.array([r[0] for r in self.db.execute("SELECT id FROM systems ORDER BY id")],
                           np.int64)
            self._system_matrix = (ids, self.vectors("sheet"))
        return self._system_matrix

    def vectors(self, side: str) -> np.ndarray:
        """(n, D) stored vectors in id order (for exact checks; reconstructs every vector)."""
        index = self.sheet if side == "sheet" else self.audio
        ids = [r["id"] for r in self.all_rows(side)]
        return np.stack([index.reconstruct(i) for i in ids]) if ids else np.zeros(
            (0, self.info["dim"]), np.float32)

    # -- writing ------------------------------------------------------------------------------
    @classmethod
    def write(cls, root: str | Path, pending: Pending, *, model_name: str, fingerprint: str,
              dim: int, add: bool = False, kind: str = "flat") -> Index:
        """Create the index at root (add=False; root must not exist) or append to it."""
        root = Path(root)
        if not add:
            remove_abandoned_builds(root)
            return cls._write(root, pending, model_name=model_name, fingerprint=fingerprint,
                              dim=dim, add=False, kind=kind)
        if not (root / "index.json").is_file():
            cls(root)  # says why it is not an index
        with writer_lock(root, wait=True):
            remove_orphans_locked(root)
            return cls._write(root, pending, model_name=model_name, fingerprint=fingerprint,
                              dim=dim, add=True, kind=kind)

    @classmethod
    def _write(cls, root: Path, pending: Pending, *, model_name: str, fingerprint: str,
               dim: int, add: bool, kind: str) -> Index:
        if add:
            old = cls(root)
            old.check_model(fingerprint)
            old.close()
            info, gen = old.info, old.info["generation"]
        else:
            if root.exists() and any(root.iterdir()):
                raise SearchIndexError(f"{root} exists; use --add to extend it, or a new --out")
            info = {"format": FORMAT, "version": VERSION, "kind": kind, "dim": dim,
                    "model": {"name": model_name, "fingerprint": fingerprint},
                    "generation": 0}
            gen = None
        building = root if add else root.with_name(root.name + f".partial-{os.getpid()}")
        building.mkdir(parents=True, exist_ok=True)
        new = 0 if gen is None else gen + 1
        faiss = _faiss()
        try:
            db_path = building / f"meta-{new}.sqlite"
            if gen is not None:
                with sqlite3.connect(root / f"meta-{gen}.sqlite") as src, \
                        sqlite3.connect(db_path) as dst:
                    src.backup(dst)
                sheet = faiss.read_index(str(root / f"sheet-{gen}.faiss"))
                audio = faiss.read_index(str(root / f"audio-{gen}.faiss"))
            else:
                sheet, audio = _new_faiss(dim, info["kind"]), _new_faiss(dim, info["kind"])
            with sqlite3.connect(db_path) as db:
                db.executescript(_SCHEMA)
                if gen is not None:
                    pending = _rename_clashes(pending, db)
                first = _append(db, sheet, "systems", pending.systems, pending.system_vectors,
                                dim)
                _append_notes(db, first, pending)
                _append_heads(db, first, pending)
                _append_halves(db, first, pending)
                _append_parts(db, first, pending)
                _append_hubness(db, first, pending, fingerprint)
                _append(db, audio, "windows", pending.windows, pending.window_vectors, dim)
                n_sys = db.execute("SELECT count(*) FROM systems").fetchone()[0]
                n_win = db.execute("SELECT count(*) FROM windows").fetchone()[0]
                n_notes = db.execute("SELECT count(*) FROM notes").fetchone()[0]
                n_heads = db.execute("SELECT count(*) FROM heads").fetchone()[0]
            db.close()
            for rel, image in pending.pages.items():
                _save_png(building / rel, image)
            faiss.write_index(sheet, str(building / f"sheet-{new}.faiss"))
            faiss.write_index(audio, str(building / f"audio-{new}.faiss"))
            info = {**info, "generation": new, "systems": n_sys, "windows": n_win,
                    "notes": n_notes, "heads": n_heads}
            tmp = building / "index.json.tmp"
            tmp.write_text(json.dumps(info, indent=1) + "\n")
            tmp.replace(building / "index.json")  # the commit point
        except BaseException:
            for name in (f"meta-{new}.sqlite", f"sheet-{new}.faiss", f"audio-{new}.faiss"):
                (building / name).unlink(missing_ok=True)
            if not add:
                shutil.rmtree(building, ignore_errors=True)
            raise
        if add:
            for name in (f"meta-{gen}.sqlite", f"sheet-{gen}.faiss", f"audio-{gen}.faiss"):
                (root / name).unlink(missing_ok=True)
        else:
            if root.exists():
                root.rmdir()  # an empty folder given as --out
            building.rename(root)
        return cls(root)


def _append(db: sqlite3.Connection, index, table: str, rows: list[dict],
            vectors: list[np.ndarray], dim: int) -> int:
    """Insert rows and vectors; returns the id given to the first row."""
    if not rows:
        return 0
    matrix = np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32)
    if matrix.shape != (len(rows), dim):
        raise SearchIndexError(f"{len(rows)} {table} but vectors of shape {matrix.shape}")
    start = db.execute(f"SELECT coalesce(max(id), -1) + 1 FROM {table}").fetchone()[0]
    ids = np.arange(start, start + len(rows), dtype=np.int64)
    columns = sorted({k for r in rows for k in r})
    quoted = ",".join(f'"{c}"' for c in ["id", *columns])
    marks = ",".join("?" * (len(columns) + 1))
    db.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({marks})",
                   [(int(i), *(r.get(c) for c in columns)) for i, r in zip(ids, rows, strict=True)])
    index.add_with_ids(matrix, ids)
    return int(start)


def _append_notes(db: sqlite3.Connection, first: int, pending: Pending) -> None:
    pending._pad()
    _append_arrays(db, first, pending.system_notes, "notes", ("onset", "offset", "pitch"))


def _append_heads(db: sqlite3.Connection, first: int, pending: Pending) -> None:
    pending._pad()
    _append_arrays(db, first, pending.system_heads, "heads", ("x", "pitch"))


def _append_arrays(db: sqlite3.Connection, first: int, arrays: list[np.ndarray | None],
                   table: str, columns: tuple[str, ...]) -> None:
    """Rows (system id, *columns) of per-system arrays (n, len(columns)), the last column an
    integer (the MIDI pitch); systems with None or nothing are left out."""
    rows = []
    for k, values in enumerate(arrays):
        if values is None or not len(values):
            continue
        values = np.asarray(values, np.float64)
        if values.ndim != 2 or values.shape[1] != len(columns):
            raise SearchIndexError(f"{table} of shape {values.shape}; (n, {len(columns)}) "
                                   "expected")
        rows += [(first + k, *map(float, v[:-1]), int(v[-1])) for v in values]
    marks = ", ".join("?" * (len(columns) + 1))
    db.executemany(f"INSERT INTO {table} (system, {', '.join(columns)}) VALUES ({marks})", rows)


def _rename_clashes(pending: Pending, db: sqlite3.Connection) -> Pending:
    """Pieces and recordings already in the index get `~2`, `~3`, ... in what is added, so that
    an `add` never replaces an indexed page image or mixes two recordings' windows."""
    def renames(names: set[str], taken: set[str]) -> dict[str, str]:
        out = {}
        for name in sorted(names & taken):
            k = 2
            while f"{name}~{k}" in taken or f"{name}~{k}" in names:
                k += 1
            out[name] = f"{name}~{k}"
        return out

    pieces = renames({r["piece"] for r in pending.systems},
                     {r[0] for r in db.execute("SELECT DISTINCT piece FROM systems")})
    recordings = renames({r["recording"] for r in pending.windows},
                         {r[0] for r in db.execute("SELECT DISTINCT recording FROM windows")})
    if not pieces and not recordings:
        return pending

    def page(rel: str) -> str:  # pages/<piece>/page-NNN.png
        piece, _, name = rel.removeprefix("pages/").rpartition("/")
        return f"pages/{pieces.get(piece, piece)}/{name}"

    systems = [{**r, "piece": pieces.get(r["piece"], r["piece"]),
                "page_image": page(r["page_image"])} for r in pending.systems]
    windows = [{**r, "recording": recordings.get(r["recording"], r["recording"]),
                **({"piece": pieces.get(r["piece"], r["piece"])} if r.get("piece") else {})}
               for r in pending.windows]
    return Pending(systems, pending.system_vectors, windows, pending.window_vectors,
                   {page(rel): image for rel, image in pending.pages.items()}, pending.skipped,
                   pending.system_notes, pending.system_halves, pending.system_parts,
                   pending.system_heads)


def _append_halves(db: sqlite3.Connection, first: int, pending: Pending) -> None:
    pending._pad()
    db.executemany("INSERT INTO halves (system, first, second) VALUES (?, ?, ?)",
                   [(first + k, h[0].tobytes(), h[1].tobytes())
                    for k, h in enumerate(pending.system_halves) if h is not None])


def _append_parts(db: sqlite3.Connection, first: int, pending: Pending) -> None:
    pending._pad()
    db.executemany("INSERT INTO parts (system, vectors) VALUES (?, ?)",
                   [(first + k, np.ascontiguousarray(v, np.float32).tobytes())
                    for k, v in enumerate(pending.system_parts) if v is not None and len(v)])


def _append_hubness(db: sqlite3.Connection, first: int, pending: Pending,
                    fingerprint: str) -> None:
    """Each new system's hubness shift and its parts' (`search/hubness.py`), where the model
    has a bank; systems without parts get none (their ranking has no parts to correct)."""
    from scorelink.search import hubness

    bank = hubness.load_bank(fingerprint)
    if bank is None or not pending.systems:
        return
    pending._pad()
    own = hubness.shifts(bank, np.concatenate(pending.system_vectors))
    rows = []
    for k, v in enumerate(pending.system_parts):
        if v is not None and len(v):
            rows.append((first + k, float(own[k]), hubness.shifts(bank, v).tobytes()))
    db.executemany("INSERT INTO hubness (system, own, parts) VALUES (?, ?, ?)", rows)


def _save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, np.uint8)).save(path)
