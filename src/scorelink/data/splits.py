"""Splits by piece (never by passage) and the renditions each piece gets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from scorelink.constants import TEST_TEMPI, TRAIN_TEMPI
from scorelink.data.synthesize import TEST_SOUNDFONT, TRAIN_SOUNDFONTS, VALID_SOUNDFONT

SPLITS = ("train", "valid", "test")
VALID_FRACTION = 0.1
TEST_FRACTION = 0.2  # about MSMD's 325 / 48 / 94


def _key(seed: int, piece: str) -> str:
    return hashlib.sha256(f"{seed}:{piece}".encode()).hexdigest()


def assign_splits(pieces: list[str], *, seed: int) -> dict[str, str]:
    """piece -> "train" | "valid" | "test", deterministic from the seed and the piece names.

    Pieces are ordered by a seeded hash; the first 20 % are test, the next 10 % valid. With three
    or more pieces every split gets at least one.
    """
    if len(set(pieces)) != len(pieces):
        raise ValueError("piece names must be unique")
    order = sorted(pieces, key=lambda p: _key(seed, p))
    n = len(order)
    n_test = round(n * TEST_FRACTION)
    n_valid = round(n * VALID_FRACTION)
    if n >= 3:
        n_test, n_valid = max(n_test, 1), max(n_valid, 1)
    split = {p: "test" for p in order[:n_test]}
    split.update({p: "valid" for p in order[n_test : n_test + n_valid]})
    split.update({p: "train" for p in order[n_test + n_valid :]})
    return split


@dataclass(frozen=True)
class Rendition:
    soundfont: str
    tempo: float

    @property
    def name(self) -> str:
        return f"{self.soundfont}@{self.tempo:.2f}"


def plan_renditions(piece: str, split: str, *, seed: int, n_train: int = 4,
                    train_soundfonts: tuple[str, ...] = TRAIN_SOUNDFONTS,
                    valid_soundfont: str = VALID_SOUNDFONT,
                    test_soundfont: str = TEST_SOUNDFONT,
                    valid_tempi: tuple[float, ...] = (1.0,)) -> list[Rendition]:
    """The performances to synthesise for one piece.

    train: `n_train` distinct (timbre, tempo) pairs, every training timbre at least once
    (when n_train >= their number), tempo from TRAIN_TEMPI. valid: `valid_soundfont` at tempo
    1.0, and at the other ratios of `valid_tempi` (to tune what must hold at every tempo on
    real slow and fast renditions rather than resampled ones). test: `test_soundfont`, the
    held-out timbre, at every tempo ratio of TEST_TEMPI (1.0 is the main test rendition).
    """
    if split == "valid":
        return [Rendition(valid_soundfont, float(t)) for t in valid_tempi]
    if split == "test":
        return [Rendition(test_soundfont, t) for t in TEST_TEMPI]
    if split != "train":
        raise ValueError(f"unknown split {split!r}")
    timbres = tuple(train_soundfonts)
    max_renditions = len(timbres) * len(TRAIN_TEMPI)
    if not 1 <= n_train <= max_renditions:
        raise ValueError(f"renditions per training piece must be in 1..{max_renditions}")
    rng = np.random.default_rng(int(_key(seed, piece)[:16], 16))
    fonts = list(rng.permutation(timbres))
    while len(fonts) < n_train:
        fonts.append(timbres[rng.integers(len(timbres))])
    chosen: list[Rendition] = []
    for font in fonts[:n_train]:
        free = [t for t in TRAIN_TEMPI if Rendition(font, t) not in chosen]
        if not free:  # this timbre has every tempo already: take another timbre
            font = next(f for f in timbres
                        if any(Rendition(f, t) not in chosen for t in TRAIN_TEMPI))
            free = [t for t in TRAIN_TEMPI if Rendition(font, t) not in chosen]
        chosen.append(Rendition(str(font), float(free[rng.integers(len(free))])))
    return chosen
