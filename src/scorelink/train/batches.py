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


class PassageSnippets(TorchDataset):
    """records of a dataset folder -> (sheet (n_s, 80, 90), audio (n_a, 92, 20), index).

    Holds only the folder path and the records, so worker processes open the arrays
    themselves (memory-mapped) and nothing large is pickled.
    """

    def __init__(self, root: str | Path, records: list[dict], *, augment: bool = False):
        self.root = Path(root)
        self.records = records
        self.augment = augment
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
        return sheet_snippets(strip), audio_snippets(ds.spec(r)), i


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
