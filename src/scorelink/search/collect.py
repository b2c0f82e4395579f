"""What goes into an index: a dataset's test collection, score files, page images, recordings.

Each function embeds its items and returns an `index.Pending` (vectors + metadata rows). A file
that cannot be indexed (no music found, unreadable, a score that cannot be read whole) is left
out and listed in `Pending.skipped` with its reason; the other files are indexed.
`scorelink.search.indexing.index_collection` puts them together.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from scorelink.constants import FPS
from scorelink.errors import ScoreError, ScorelinkError
from scorelink.progress import bar
from scorelink.search.embed import Embedder
from scorelink.search.index import Pending
from scorelink.search.reading import PX_PER_SECOND
from scorelink.search.recordings import AUDIO_SUFFIXES, read_audio, windows

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf")
# `from_dataset(read=...)` values that take the engraving's own noteheads in place of a
# reader's: each one's px per second of score time (`Dataset.noteheads`; None: by x)
ENGRAVED_HEADS = {"engraved": None, "timed": PX_PER_SECOND}


def page_path(piece: str, page: int) -> str:
    return f"pages/{piece}/page-{page + 1:03d}.png"


def from_dataset(root: str | Path, embedder: Embedder, *, split: str = "test",
                 tempo: float = 1.0, progress: bool = False,
                 recordings: bool = True, pieces: set[str] | None = None,
                 records: list[dict] | None = None, read: bool | str = False,
                 printed: bool = False) -> Pending:
    """The split's systems (sheet side) and its evaluation rendition's passages (audio side;
    recordings=False: the systems only); pieces: only these pieces of the split; records: these
    passages (one rendition of each piece) in place of the evaluation rendition's; read: the
    systems as scans would be indexed, with the noteheads the shipped note reader (or the one
    in the checkpoint `read` names; "engraved": where the engraving put them, a reader that
    never errs; "timed": the same placed by their score time, x = onset s x
    reading.PX_PER_SECOND, a reader that reads rhythm too) reads off their images in place of
    their notes; printed: each system's notes once, the systems laid end to end in printed
    order (`_dataset_notes`), as a read timeline lays them."""
    from scorelink.data.store import Dataset
    from scorelink.evaluate.retrieval import eval_records

    ds = Dataset(root)
    if records is None:
        records = eval_records(ds, split=split, tempo=tempo)
    if pieces is not None:
        records = [r for r in records if r["piece"] in pieces]
    pending = Pending()
    first: dict[tuple[str, int], dict] = {}
    for r in records:
        first.setdefault((r["piece"], r["system"]), r)
    systems = list(first.values())
    notes = _dataset_notes(ds, records, printed=printed)
    strips = [ds.strip(r) for r in systems]
    whole, *halves = _embed_strips(embedder, strips, progress)
    by_piece: dict[str, list[int]] = {}
    for k, r in enumerate(systems):
        by_piece.setdefault(r["piece"], []).append(k)
    held: list[np.ndarray] = [np.zeros((0, embedder.dim), np.float32)] * len(systems)
    for ks in bar(by_piece.values(), enabled=progress, desc="indexing parts", unit="piece"):
        ks = sorted(ks, key=lambda k: systems[k]["system"])  # reading order
        for k, v in zip(ks, piece_parts(embedder, [strips[k] for k in ks]), strict=True):
            held[k] = v
    pending.add_systems(
        [{"piece": r["piece"], "page": r["page"], "system": r["system"],
          "top": r["box"][0], "left": r["box"][1], "bottom": r["box"][2], "right": r["box"][3],
          "page_image": page_path(r["piece"], r["page"]), "source": f"dataset:{split}"}
         for r in systems],
        whole, [None] * len(systems) if read else [notes.get((r["piece"], r["system"]))
                                                   for r in systems],
        tuple(halves), held,
        [ds.noteheads(r, px_per_second=ENGRAVED_HEADS[read]) for r in systems]
        if read in ENGRAVED_HEADS
        else read_heads(strips, reader=read if isinstance(read, str) else None) if read
        else None)
    for piece, page in sorted({(r["piece"], r["page"]) for r in systems}):
        pending.pages[page_path(piece, page)] = ds.page(piece, page)
    by_rendition: dict[tuple[str, str], list[dict]] = {}
    for r in records if recordings else []:
        by_rendition.setdefault((r["piece"], r["rendition"]), []).append(r)
    for (piece, rendition), group in bar(by_rendition.items(), enabled=progress,
                                         desc="indexing recordings", unit="recording"):
        spec = ds.rendition_spec(group[0])
        flac = Path(ds.root) / "pieces" / piece / f"{rendition}.flac"
        pending.add_windows(
            [{"recording": f"{piece}/{rendition}", "start": r["start"],
              "end": r["end"],
              "audio_path": str(flac.resolve()) if flac.exists() else None,
              "piece": piece, "system": r["system"], "source": f"dataset:{split}"}
             for r in group],
            embedder.audio(spec, [(r["start_frame"], r["end_frame"]) for r in group]))
    return pending


def read_heads(strips: list[np.ndarray], *, reader: str | None = None) -> list[np.ndarray]:
    """The noteheads (n, 2) [x px, MIDI pitch] the note reader (the shipped one, or the
    checkpoint `reader`) reads off each strip of a system that has no notes
    (`models/reader.py`; the notes path aligns clips to them, `search/reading.py`)."""
    from scorelink.models.reader import load_reader, read_strips

    return read_strips(load_reader(reader), strips)


def piece_parts(embedder: Embedder, strips: list[np.ndarray]) -> list[np.ndarray]:
    """Per system of one piece (its strips in reading order), the vectors (p, D) of the parts
    whose middle it holds (`parts.embed_parts`: runs of the joined systems)."""
    from scorelink.search.parts import embed_parts

    found = embed_parts(embedder, [strips])
    return [found.vectors[found.owner == k] for k in range(len(strips))]


def _dataset_notes(ds, records: list[dict], *, printed: bool = False
                   ) -> dict[tuple[str, int], np.ndarray]:
    """(piece, system) -> its notes (n, 3) [onset s, offset s, pitch] as the rendition of
    `records` plays them (its tempo is the score time); a repeated system gets every pass.
    printed: each system's first pass only, the piece's systems laid end to end in printed
    order (each lasting its audio span): the order a read timeline knows (a reader sees no
    repeat signs), for measuring what playing order is worth (`benchmarks/no_match.py
    --printed`)."""
    from scorelink.data.store import notes_path

    def table(r: dict) -> np.ndarray:
        a, b = r["notes"]
        t = np.load(notes_path(ds.root, r["piece"], r["rendition"]), mmap_mode="r")[a:b]
        return np.stack([t["onset"], t["offset"], t["pitch"]], axis=1).astype(np.float64)

    if printed:
        first: dict[tuple[str, int], dict] = {}
        for r in sorted(records, key=lambda r: r["occurrence"]):
            first.setdefault((r["piece"], r["system"]), r)
        laid, at = {}, {}
        for (piece, system), r in sorted(first.items()):
            start = at.get(piece, 0.0)
            laid[(piece, system)] = table(r) + [start - r["start"], start - r["start"], 0]
            at[piece] = start + r["end"] - r["start"]
        return laid
    out: dict[tuple[str, int], list[np.ndarray]] = {}
    for r in records:
        out.setdefault((r["piece"], r["system"]), []).append(table(r))
    return {k: np.concatenate(v) for k, v in out.items()}


def _files(paths: Iterable[str | Path], suffixes: tuple[str, ...],
           what: str) -> list[tuple[Path, str]]:
    """(file, name) for every file given or found under a folder given. The name, which
    identifies the piece or recording in the index, is the file's path below the folder's parent
    without its suffix (`scans/book1/page-1`), or the stem of a file given on its own; names
    that repeat get `~2`, `~3`, ... so that two `take1.wav` in different folders stay apart."""
    from scorelink.data.sources import included_files

    found: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in suffixes)
            included = included_files(f for f in files if f.suffix.lower() == ".ly")
            files = [f for f in files if f.resolve() not in included]  # parts of another piece
            if not files:
                raise ScorelinkError(f"no {what} files ({', '.join(suffixes)}) under {p}")
            base = p.resolve().parent
            found += [(f, f.resolve().relative_to(base).with_suffix("").as_posix())
                      for f in files]
        elif p.is_file():
            if p.suffix.lower() not in suffixes:
                raise ScorelinkError(f"{p}: not a {what} file ({', '.join(suffixes)})")
            found.append((p, p.stem))
        else:
            raise ScorelinkError(f"{p} does not exist")
    out: list[tuple[Path, str]] = []
    seen: dict[str, int] = {}
    for f, name in found:
        seen[name] = seen.get(name, 0) + 1
        out.append((f, name if seen[name] == 1 else f"{name}~{seen[name]}"))
    return out


def from_scores(paths: Iterable[str | Path], embedder: Embedder, *,
                progress: bool = False) -> Pending:
    """Score files (engraved with Verovio, LilyPond files with LilyPond), page images and PDFs
    (systems found on the page). Files without music or that cannot be read are skipped."""
    from scorelink.data.sources import SCORE_SUFFIXES

    pending = Pending()
    files = _files(paths, SCORE_SUFFIXES + IMAGE_SUFFIXES, "score")
    for path, piece in bar(files, enabled=progress, desc="indexing scores", unit="file"):
        try:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                pages, systems = _image_systems(path)  # no notes: only pixels
            else:
                pages, systems = _engraved_systems(path)
            if not systems:
                raise ScoreError("no systems of music found")
        except ScorelinkError as exc:
            pending.skipped.append(_skip(path, exc))
            continue
        strips = [s["strip"] for s in systems]
        whole, *halves = embedder.sheet_with_halves(np.stack(strips))
        pending.add_systems(
            [{"piece": piece, "page": s["page"], "system": k, "top": s["box"][0],
              "left": s["box"][1], "bottom": s["box"][2], "right": s["box"][3],
              "page_image": page_path(piece, s["page"]), "source": str(path.resolve())}
             for k, s in enumerate(systems)],
            whole, [s.get("notes") for s in systems], tuple(halves),
            piece_parts(embedder, strips),
            read_heads(strips) if path.suffix.lower() in IMAGE_SUFFIXES else None)
        for i, page in enumerate(pages):
            pending.pages[page_path(piece, i)] = page
    return pending


def _engraved_systems(path: Path) -> tuple[list[np.ndarray], list[dict]]:
    from scorelink.data.engrave import engrave
    from scorelink.data.passages import strip
    from scorelink.data.sources import ScoreSource

    if path.suffix.lower() == ".ly":
        from scorelink.data.lilypond import engrave_lilypond

        # As `data build` engraves it, but with repeats as written: the pages a reader holds.
        eng = engrave_lilypond(path, unfold=False)
    else:
        data, zipped = ScoreSource(path.stem, str(path), "file").load()
        eng = engrave(data, zipped=zipped)
    notes, measures = system_notes(eng), system_measures(eng)
    return eng.pages, [{"page": s.page, "box": s.box, "strip": strip(eng.pages[s.page], s),
                        "notes": notes[k], "measures": measures[k]}
                       for k, s in enumerate(eng.systems)]


def system_notes(eng) -> list[np.ndarray]:
    """Per system of an Engraving, its performed notes (n, 3) [onset s, offset s, MIDI pitch]
    at the score's own tempo, repeats unfolded (a repeated system holds every pass)."""
    perf = eng.performance
    system = np.array([eng.notes[i].system for i in perf.note], dtype=np.int64)
    table = np.stack([perf.onset, perf.offset, perf.pitch], axis=1).astype(np.float64)
    return [table[system == k] for k in range(len(eng.systems))]


def system_measures(eng) -> list[list[dict]]:
    """Per system of an Engraving, its measures as played at the score's own tempo, repeats
    unfolded: {"index": 0-based measure in the score, "label": its number as printed,
    "start", "end": score seconds}, in playing order (empty lists where the engraver gives no
    measures)."""
    out: list[list[dict]] = [[] for _ in eng.systems]
    times = eng.measure_times
    for m, a, b in zip(times.measure.tolist(), times.start.tolist(), times.end.tolist(),
                       strict=True):
        measure = eng.measures[m]
        out[measure.system].append({"index": m, "label": measure.label, "start": a, "end": b})
    return out


def _image_systems(path: Path) -> tuple[list[np.ndarray], list[dict]]:
    from scorelink.search.pages import load_pages, system_strips
    from scorelink.search.staves import find_systems

    pages = load_pages(path)
    systems = []
    for i, page in enumerate(pages):
        found = find_systems(page)
        if not found:
            continue
        strips = system_strips(page, found)
        systems += [{"page": i, "box": (b.top, b.left, b.bottom, b.right), "strip": s}
                    for b, s in zip(found, strips, strict=True)]
    return pages, systems


def from_recordings(paths: Iterable[str | Path], embedder: Embedder, *,
                    progress: bool = False) -> Pending:
    """Recordings cut into overlapping windows of several lengths. Files that cannot be read
    as audio are skipped."""
    from scorelink.data.spectrogram import spectrogram

    pending = Pending()
    files = _files(paths, AUDIO_SUFFIXES, "audio")
    for path, name in bar(files, enabled=progress, desc="indexing recordings", unit="file"):
        try:
            spec = spectrogram(read_audio(path))
        except ScorelinkError as exc:
            pending.skipped.append(_skip(path, exc))
            continue
        spans = windows(spec.shape[1])
        pending.add_windows(
            [{"recording": name, "start": a / FPS, "end": b / FPS,
              "audio_path": str(path.resolve()), "source": str(path.resolve())}
             for a, b in spans],
            embedder.audio(spec, spans))
    return pending


def _skip(path: Path, exc: Exception) -> dict:
    reason = str(exc)
    for prefix in (f"{path}: ", f"{path.resolve()}: "):
        reason = reason.removeprefix(prefix)
    return {"path": str(path), "reason": reason}


def _embed_strips(embedder: Embedder, strips: list[np.ndarray], progress: bool,
                  chunk: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`embedder.sheet_with_halves` over the strips in chunks (a progress bar's steps): the
    systems' vectors and their halves' vectors."""
    if not strips:
        return tuple(np.zeros((0, embedder.dim), np.float32) for _ in range(3))
    parts = []
    with bar(total=len(strips), enabled=progress, desc="indexing systems", unit="system") as b:
        for a in range(0, len(strips), chunk):
            parts.append(embedder.sheet_with_halves(np.stack(strips[a:a + chunk])))
            b.update(len(parts[-1][0]))
    return tuple(np.concatenate([part[k] for part in parts]) for k in range(3))


def score_systems(path: str | Path) -> list[dict]:
    """The systems of ONE score in reading order: `path` is a score file (engraved with
    Verovio), a PDF, a page image, or a folder of page images/PDFs read in name order as
    consecutive pages. Each system: {"page": 0-based page across the files, "on_page": 0-based
    top to bottom, "box": (top, left, bottom, right), "strip": (160, W) uint8}; a system
    engraved from a symbolic score also has "notes" and "measures" (`system_notes`,
    `system_measures`). Raises ScoreError when no system of music is found."""
    from scorelink.data.sources import SCORE_SUFFIXES

    path = Path(path)
    if path.is_dir():
        files = sorted((f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES),
                       key=lambda f: f.name)
        if not files:
            raise ScoreError(f"no page images or PDFs ({', '.join(IMAGE_SUFFIXES)}) in {path}")
    elif not path.is_file():
        raise ScoreError(f"{path} does not exist")
    elif path.suffix.lower() not in SCORE_SUFFIXES + IMAGE_SUFFIXES:
        raise ScoreError(f"{path}: not a score ({', '.join(SCORE_SUFFIXES + IMAGE_SUFFIXES)})")
    else:
        files = [path]
    systems: list[dict] = []
    first_page = 0
    for f in files:
        if f.suffix.lower() in IMAGE_SUFFIXES:
            pages, found = _image_systems(f)
        else:
            pages, found = _engraved_systems(f)
        on_page: dict[int, int] = {}
        for s in found:  # both readers give systems page by page, top to bottom
            k = on_page[s["page"]] = on_page.get(s["page"], -1) + 1
            systems.append({**s, "page": first_page + s["page"], "on_page": k})
        first_page += len(pages)
    if not systems:
        raise ScoreError(f"{path}: no staves of music found; is it printed music?")
    return systems
