"""Passages as snippet sequences for the passage model, and batches of them.

A batch concatenates the snippets of all its passages along the first axis and keeps each
passage's length, which is what the packed GRU needs (no padding ever reaches the model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler

from scorelink.constants import STRIP_HEIGHT
from scorelink.models.snippets import audio_snippets, sheet_snippets

SHEET_SHIFT = 5  # px: training augmentation, random vertical shift of the strip
# Timbre augmentation (optional): a random smooth equaliser curve and a random gain, so the
# audio encoder sees more piano colours than the three training soundfonts.
TIMBRE_GAIN_DB = 6.0  # global gain, uniform in +-6 dB
TIMBRE_TILT_DB = 6.0  # linear tilt from the lowest to the highest bin, +-6 dB
TIMBRE_BUMPS_DB = 3.0  # three cosine components over the bins, +-3 dB each


class PassageSnippets(TorchDataset):
    """records of a dataset folder -> (sheet (n_s, 80, 90), audio (n_a, 92, 20), index).

    Holds only the folder path and the records, so worker processes open the arrays
    themselves (memory-mapped) and nothing large is pickled. `first_index` is added to the
    index an item reports, so that several folders joined in one ConcatDataset number their
    passages as one list.
    """

    def __init__(self, root: str | Path, records: list[dict], *, augment: bool = False,
                 timbre: bool = False, tempo: float = 0.0, first_index: int = 0):
        self.root = Path(root)
        self.records = records
        self.first_index = first_index
        self.augment = augment
        self.timbre = timbre
        self.tempo = tempo
        self._ds = None

    def __len__(self) -> int:
        return len(self.records)

    def _dataset(self):
        if self._ds is None:
            from scorelink.data.store import Dataset

            self._ds = Dataset(self.root)
        return self._ds

    def __getitem__(self, i: int):
        ds, r = self._dataset(), self.records[i]
        strip = ds.strip(r)
        if self.augment:
            strip = _shift_rows(strip, int(torch.randint(-SHEET_SHIFT, SHEET_SHIFT + 1, ())))
        spec = ds.spec(r)
        if self.timbre or self.tempo > 1.0:
            # seeded from torch's generator, which the DataLoader seeds per worker and epoch
            rng = np.random.default_rng(int(torch.randint(2**31, ())))
            if self.timbre:
                spec = recolour(spec, rng)
            if self.tempo > 1.0 and rng.random() < 0.5:  # half the passages keep their tempo
                spec = stretch(spec, float(np.exp(rng.uniform(-1, 1) * np.log(self.tempo))))
        return sheet_snippets(strip), audio_snippets(spec), self.first_index + i


def stretch(spec: np.ndarray, rho: float) -> np.ndarray:
    """The passage played rho times as fast: frames linearly interpolated along time (a
    global tempo change; at 20 fps onsets smear by at most one frame)."""
    frames = spec.shape[1]
    n = max(1, round(frames / rho))
    pos = np.linspace(0.0, frames - 1, n)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, frames - 1)
    w = (pos - lo).astype(np.float32)
    return (spec[:, lo] * (1 - w) + spec[:, hi] * w).astype(np.float32)


def recolour(spec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The spectrogram as if played by another instrument colour: magnitudes times a random
    smooth gain curve over frequency (global gain + tilt + three cosines), back through the
    log10(1 + x) compression of the spectrogram."""
    n = spec.shape[0]
    pos = np.linspace(0.0, 1.0, n)
    db = rng.uniform(-TIMBRE_GAIN_DB, TIMBRE_GAIN_DB) + rng.uniform(-1, 1) * TIMBRE_TILT_DB * (
        pos - 0.5)
    for k in (1, 2, 3):
        db = db + rng.uniform(-TIMBRE_BUMPS_DB, TIMBRE_BUMPS_DB) * np.cos(
            np.pi * k * pos + rng.uniform(0, 2 * np.pi))
    gain = (10.0 ** (db / 20.0)).astype(np.float32)[:, None]
    magnitude = np.power(np.float32(10.0), spec) - 1.0
    return np.log10(1.0 + magnitude * gain).astype(np.float32)


def _shift_rows(strip: np.ndarray, shift: int) -> np.ndarray:
    """Move the strip content down by `shift` rows (up if negative), filling with white."""
    if shift == 0:
        return strip
    out = np.full_like(strip, 255)
    if shift > 0:
        out[shift:] = strip[: STRIP_HEIGHT - shift]
    else:
        out[:shift] = strip[-shift:]
    return out


def collate(items: list[tuple[np.ndarray, np.ndarray, int]]) -> dict[str, torch.Tensor]:
    """Concatenate snippet sequences; lengths say where each passage's snippets are."""
    sheets, audios, index = zip(*items, strict=True)
    return {
        "sheet": torch.from_numpy(np.concatenate(sheets))[:, None],  # (sum n_s, 1, 80, 90)
        "sheet_lengths": torch.tensor([len(s) for s in sheets]),
        "audio": torch.from_numpy(np.concatenate(audios))[:, None],  # (sum n_a, 1, 92, 20)
        "audio_lengths": torch.tensor([len(a) for a in audios]),
        "index": torch.tensor(index),
    }


class EpochSampler(Sampler[int]):
    """`count` passages drawn at random each epoch (a fresh permutation, repeated as needed).

    Deterministic from (seed, epoch, rank), so every process of a distributed run draws its own
    share, and a resumed run draws what the uninterrupted one would have.
    """

    def __init__(self, n: int, count: int, *, seed: int, rank: int = 0, world: int = 1):
        self.n, self.count, self.seed, self.rank, self.world = n, count, seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.count // self.world

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        reps = -(-self.count // self.n)
        order = torch.cat([torch.randperm(self.n, generator=g) for _ in range(reps)])
        yield from order[: len(self) * self.world][self.rank :: self.world].tolist()
