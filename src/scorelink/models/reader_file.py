"""Where the shipped note reader lives, and its digest: no torch needed (search judges a
query's read-notes calibration by the digest without loading the reader)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

SHIPPED_READER = "reader.pt"  # in scorelink/weights


def shipped_reader_path() -> Path:
    return Path(str(resources.files("scorelink") / "weights" / SHIPPED_READER))


@lru_cache(maxsize=4)
def reader_digest(path: str | None = None) -> str:
    """The first 12 hex digits of the SHA-256 of a reader's checkpoint file (by default the
    shipped one): what a read calibration was fitted with (`search/confidence.py`)."""
    import hashlib

    return hashlib.sha256(Path(path or shipped_reader_path()).read_bytes()).hexdigest()[:12]
