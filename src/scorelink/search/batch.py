"""Many queries in one call (`scorelink search --queries FILE.jsonl`), with one model load.

The queries file holds one JSON object a line (blank lines are ignored):

    {"audio": "takes/one.flac", "start": 30, "end": 42}   start, end: optional, in seconds
    {"image": "scans/page-003.png", "system": 2}           system: from 1, top to bottom;
                                                           optional when the image shows one
    {"id": "q17", "audio": "clip.wav"}                     id: optional, any JSON value

Relative paths are read from the queries file's folder (from the working folder for standard
input). The whole file is checked before the model is loaded, so a typo in line 900 is told at
once. The answers are JSON Lines too, one a query and in the same order:

    {"query": {the query as given}, "results": [{"rank": 1, ...}, ...]}
    {"query": {...}, "error": "clip.wav: the audio is silent"}

The results are exactly what `search --json` answers for the query alone; an audio query's line
also says how confident the search is (`"confidence": {"confidence": 0.93, "threshold": 0.41,
"match": true, "message": ...}`; `"match": false`: no confident match, the music is probably
not in the index). A query that cannot
be answered (an unreadable file, silence, ...) answers with its error and the others go on.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from scorelink.errors import QueryError, ScorelinkError
from scorelink.search import confidence
from scorelink.search import query as search
from scorelink.search.confidence import Verdict
from scorelink.search.embed import Embedder
from scorelink.search.index import Index

KEYS = ("audio", "image", "start", "end", "system", "id")


@dataclass(frozen=True)
class Query:
    """One query: an audio file (and a span of it) or an image (and a system of it)."""

    given: dict  # as written in the queries file (echoed in the answer)
    audio: Path | None = None
    image: Path | None = None
    start: float | None = None  # seconds
    end: float | None = None
    system: int | None = None  # from 1


def parse_query(given: object, *, base: Path | None = None, where: str = "query") -> Query:
    """Check one query object and read its paths relative to `base`; QueryError names what is
    wrong (`where` says where it was found, e.g. "queries.jsonl line 3")."""
    if not isinstance(given, dict):
        raise QueryError(f"{where}: expected a JSON object such as {{\"audio\": \"clip.wav\"}}, "
                         f"not {json.dumps(given)[:60]}")
    unknown = sorted(set(given) - set(KEYS))
    if unknown:
        raise QueryError(f"{where}: unknown key {', '.join(map(repr, unknown))} (keys: "
                         f"{', '.join(KEYS)})")
    if ("audio" in given) == ("image" in given):
        raise QueryError(f"{where}: give either \"audio\" or \"image\" (a file)")
    kind = "audio" if "audio" in given else "image"
    if not isinstance(given[kind], str) or not given[kind]:
        raise QueryError(f"{where}: \"{kind}\" must be a file name")
    path = Path(given[kind])
    if base is not None and not path.is_absolute():
        path = base / path
    for key, allowed in (("start", "audio"), ("end", "audio"), ("system", "image")):
        if key in given and kind != allowed:
            raise QueryError(f"{where}: \"{key}\" belongs to an {allowed} query")
    start, end = (_seconds(given.get(key), key, where) for key in ("start", "end"))
    if start is not None and end is not None and end <= start:
        raise QueryError(f"{where}: end ({end:g} s) must be after start ({start:g} s)")
    system = given.get("system")
    if system is not None and (isinstance(system, bool) or not isinstance(system, int)
                               or system < 1):
        raise QueryError(f"{where}: \"system\" must be a whole number from 1, not "
                         f"{json.dumps(system)}")
    return Query(given=given, audio=path if kind == "audio" else None,
                 image=path if kind == "image" else None, start=start, end=end, system=system)


def _seconds(value: object, key: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e12:
        raise QueryError(f"{where}: \"{key}\" must be seconds, 0 or more, not "
                         f"{json.dumps(value)}")
    return float(value)


def read_queries(path: str | Path) -> list[Query]:
    """Every query of a JSON Lines file ("-": standard input), all checked; QueryError names
    the first bad line."""
    if str(path) == "-":
        lines, base, name = sys.stdin.read().splitlines(), Path.cwd(), "standard input"
    else:
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise QueryError(f"cannot read the queries file {path} ({exc})") from exc
        base, name = path.parent, str(path)
    queries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            given = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QueryError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
        queries.append(parse_query(given, base=base, where=where))
    if not queries:
        raise QueryError(f"{name} holds no queries")
    return queries


def answer(index: Index, embedder: Embedder, q: Query, *, top: int = 10,
           by: str = "passage") -> list[dict]:
    """The results of one query, best first: systems for audio, recording places for an image;
    with by="piece", pieces ranked by their best passage."""
    return answer_judged(index, embedder, q, top=top, by=by)[0]


def answer_judged(index: Index, embedder: Embedder, q: Query, *, top: int = 10,
                  by: str = "passage") -> tuple[list[dict], Verdict | None]:
    """`answer` and, for an audio query, the search's verdict on it (`search/confidence.py`:
    a calibrated confidence and whether it is a confident match); None for an image query."""
    from scorelink.search.recordings import MAX_QUERY_SECONDS, read_audio

    depth = 0 if by == "piece" else top  # by piece: rank every hit, then keep `top` pieces
    verdict = None
    if q.audio is not None:
        samples = read_audio(q.audio, start=q.start, end=q.end, max_seconds=MAX_QUERY_SECONDS)
        hits, verdict = confidence.search_audio(index, embedder, samples, top=depth)
    else:
        hits = search.search_sheet(index, embedder, search.image_strip(q.image, system=q.system),
                                   top=depth)
    return (search.by_piece(hits, top=top) if by == "piece" else hits), verdict


def answer_all(index: Index, embedder: Embedder, queries: Iterable[Query], *, top: int = 10,
               by: str = "passage") -> Iterator[dict]:
    """One answer a query, in order: {"query", "results"} (audio: and "confidence", the
    verdict's `to_dict`) or {"query", "error"}."""
    for q in queries:
        try:
            results, verdict = answer_judged(index, embedder, q, top=top, by=by)
            line = {"query": q.given, "results": results}
            if verdict is not None:
                line["confidence"] = verdict.to_dict()
            yield line
        except ScorelinkError as exc:
            yield {"query": q.given, "error": str(exc)}
