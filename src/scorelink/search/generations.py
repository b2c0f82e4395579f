"""The files of an index folder's generations (`search/index.py`): the writer's lock, what an
interrupted write leaves behind, and whether a newer generation was committed.

A writer holds IDX/.lock, an exclusive `flock`: the system releases it when the process ends,
even by `kill -9`, so a lock held means a writer at work, never a dead one. Files of a
generation other than the committed one, found while nobody holds the lock, are orphans.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = ".lock"  # held by a writer
# the files of one generation, and SQLite's companions of the metadata file
_GENERATION_FILE = re.compile(r"(?:meta-(\d+)\.sqlite(?:-journal|-wal|-shm)?"
                              r"|(?:sheet|audio)-(\d+)\.faiss)")


def signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@contextmanager
def writer_lock(root: Path, *, wait: bool) -> Iterator[bool]:
    """Hold root/.lock exclusively; yields False (holding nothing) when another process holds
    it and wait=False, or where it cannot be taken (a read-only folder, a system without
    flock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not a POSIX system
        yield False
        return
    try:
        fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def remove_orphans(root: str | Path) -> list[str]:
    """Remove the files an interrupted write left in an index folder (files of a generation
    other than the committed one, a half-written index.json.tmp), unless a writer is at work.
    Returns the names removed."""
    root = Path(root)
    with writer_lock(root, wait=False) as mine:
        return remove_orphans_locked(root) if mine else []


def remove_orphans_locked(root: Path) -> list[str]:
    """`remove_orphans` for a caller holding the lock (a writer, before it writes)."""
    try:  # read under the lock: no writer can commit meanwhile
        generation = json.loads((root / "index.json").read_text())["generation"]
    except (OSError, ValueError, KeyError, TypeError):
        return []  # not readable: leave everything as it is
    removed = []
    for path in root.iterdir():
        match = _GENERATION_FILE.fullmatch(path.name)
        orphan = path.name == "index.json.tmp" or (
            match is not None and int(match.group(1) or match.group(2)) != generation)
        if orphan and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return sorted(removed)


def remove_abandoned_builds(root: Path) -> None:
    """Remove ROOT.partial-PID folders (a new index being built) of processes that are gone."""
    for path in root.parent.glob(glob.escape(root.name) + ".partial-*"):
        pid = path.name.rpartition("-")[2]
        if pid.isdigit() and path.is_dir() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, another user's (or a system without signals)
        return True
    return True
