"""The dataset folder: a JSON Lines manifest plus per-piece arrays (see docs/dataset.md).

Reading one passage memory-maps only the arrays of its piece and rendition, so it never reads
the whole dataset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from scorelink.data.synthesize import (
    LEGACY_TRAIN_SOUNDFONTS,
    LEGACY_VALID_SOUNDFONT,
    TEST_SOUNDFONT,
    shares_samples,
)
from scorelink.errors import DatasetError

FORMAT = "scorelink-dataset"
VERSION = 1
NOTE_DTYPE = np.dtype(
    [
        ("passage", "<i4"),  # index of the passage (manifest record) within its rendition
        ("onset", "<f4"),  # seconds in the rendition's audio
        ("offset", "<f4"),
        ("onset_frame", "<i4"),  # spectrogram frame of the onset (absolute in the rendition)
        ("pitch", "<i2"),  # MIDI
        ("x", "<f4"),  # notehead centre in strip pixels (strip x == page x)
        ("y", "<f4"),
    ]
)


def piece_dir(root: Path, piece: str) -> Path:
    return root / "pieces" / piece


def spec_path(root: Path, piece: str, rendition: str) -> Path:
    return piece_dir(root, piece) / f"{rendition}.spec.npy"


def notes_path(root: Path, piece: str, rendition: str) -> Path:
    return piece_dir(root, piece) / f"{rendition}.notes.npy"


def strips_path(root: Path, piece: str) -> Path:
    return piece_dir(root, piece) / "strips.npy"


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def write_jsonl(path: Path, records: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass(frozen=True)
class Passage:
    """One passage as the models see it."""

    record: dict
    strip: np.ndarray  # (STRIP_HEIGHT, PAGE_WIDTH) uint8, 255 = white
    spec: np.ndarray  # (N_BINS, frames) float32
    notes: np.ndarray  # structured NOTE_DTYPE; onset_frame relative to the passage start


class Dataset:
    """A built dataset folder: `Dataset(path).records(split="test")`, `.passage(record)`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "dataset.json"
        if not self.root.is_dir():
            raise DatasetError(f"dataset folder {self.root} does not exist")
        if not meta_path.exists():
            raise DatasetError(f"{self.root} is not a scorelink dataset (no dataset.json)")
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{meta_path} is corrupt: {exc}") from exc
        if self.meta.get("format") != FORMAT or self.meta.get("version") != VERSION:
            raise DatasetError(
                f"{self.root} is format {self.meta.get('format')!r} version "
                f"{self.meta.get('version')!r}; this scorelink reads {FORMAT!r} version {VERSION}"
            )
        manifest = self.root / "manifest.jsonl"
        if not manifest.exists():
            raise DatasetError(f"{self.root} has no manifest.jsonl (build not finished?)")
        self._records = read_jsonl(manifest)
        if not self._records:
            raise DatasetError(f"{self.root} has no passages")

    def __len__(self) -> int:
        return len(self._records)

    @property
    def valid_soundfont(self) -> str:
        """The timbre of the validation rendition."""
        return with_legacy_settings(self.meta.get("config", {}))["valid_soundfont"]

    @property
    def test_soundfont(self) -> str:
        """The held-out timbre of the test renditions."""
        return with_legacy_settings(self.meta.get("config", {}))["test_soundfont"]

    @property
    def validates_on_a_training_piano(self) -> bool:
        """Whether the validation rendition plays a training piano's samples: then validation
        cannot tell how a model copes with a piano it never heard (csound-grand, the default
        until 2026-12-06, plays timgm6mb-grand's; legacy datasets validated on fluidr3-grand)."""
        settings = with_legacy_settings(self.meta.get("config", {}))
        return shares_samples(settings["valid_soundfont"], settings["train_soundfonts"])

    def records(self, **where: Any) -> list[dict]:
        """Manifest records whose fields equal the given values, e.g. split="test", tempo=1.0."""
        return [r for r in self._records if all(r.get(k) == v for k, v in where.items())]

    def __iter__(self) -> Iterator[dict]:
        return iter(self._records)

    def record(self, passage_id: str) -> dict:
        for r in self._records:
            if r["passage_id"] == passage_id:
                return r
        raise DatasetError(f"no passage {passage_id!r} in {self.root}")

    def strip(self, record: dict) -> np.ndarray:
        return np.asarray(_mmap(strips_path(self.root, record["piece"]))[record["strip"]])

    def spec(self, record: dict) -> np.ndarray:
        """(N_BINS, frames) float32 spectrogram of the passage."""
        spec = self.rendition_spec(record)
        return np.asarray(spec[:, record["start_frame"] : record["end_frame"]], dtype=np.float32)

    def rendition_spec(self, record: dict) -> np.ndarray:
        """(N_BINS, all frames) float16 memory map of the record's whole rendition."""
        return _mmap(spec_path(self.root, record["piece"], record["rendition"]))

    def notes(self, record: dict) -> np.ndarray:
        """The passage's notes (NOTE_DTYPE), onset_frame counted from the passage's start."""
        a, b = record["notes"]
        notes = np.array(self.rendition_notes(record)[a:b])
        notes["onset_frame"] -= record["start_frame"]
        return notes

    def noteheads(self, record: dict, *, px_per_second: float | None = None) -> np.ndarray:
        """(n, 2) float64 [x px on the strip, MIDI pitch]: where the engraving put the heads
        of the notes the passage strikes (a tied note's continuation is not struck and has no
        x). What the note reader learns to read, and what a reader that never errs reads.
        With px_per_second, x is when the note sounds in the rendition (onset s x
        px_per_second), as a reader that also read rhythm would place it on its timeline."""
        notes = self.rendition_notes(record)[slice(*record["notes"])]
        struck = np.isfinite(notes["x"])
        x = notes["x"][struck] if px_per_second is None else notes["onset"][struck] * px_per_second
        return np.stack([x, notes["pitch"][struck]], axis=1).astype(np.float64)

    def rendition_notes(self, record: dict) -> np.ndarray:
        """The memory map of every note the record's whole rendition plays (NOTE_DTYPE,
        onset_frame counted from the rendition's start)."""
        return _mmap(notes_path(self.root, record["piece"], record["rendition"]))

    def passage(self, record: dict) -> Passage:
        return Passage(record, self.strip(record), self.spec(record), self.notes(record))

    def page(self, piece: str, page: int) -> np.ndarray:
        """(PAGE_HEIGHT, PAGE_WIDTH) uint8 page image (0-based page index)."""
        from PIL import Image

        path = piece_dir(self.root, piece) / "pages" / f"page-{page + 1:03d}.png"
        return np.asarray(Image.open(path).convert("L"))


def with_legacy_settings(config: dict) -> dict:
    """A build config as stored in dataset.json, with the soundfont settings that datasets
    built before they were settings (their dataset.json names none) had."""
    return {"train_soundfonts": LEGACY_TRAIN_SOUNDFONTS, "valid_soundfont": LEGACY_VALID_SOUNDFONT,
            "test_soundfont": TEST_SOUNDFONT, **config}


@lru_cache(maxsize=256)
def _mmap(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
