"""Training pairs of the snippet baseline, from the dataset's note-level alignment.

One pair per distinct onset of a training passage: the audio snippet centred on the onset, the
sheet snippet centred on the noteheads struck then. Augmentation (Dorfer et al.): sheet scale
0.95-1.05, vertical shift up to 5 px, onset shift up to 1 frame; with `timbre`, the audio
snippet recoloured as the passage model's `timbre_augment` does (not in the paper).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from scorelink.constants import PAGE_WIDTH
from scorelink.models.snippets import audio_window, sheet_window
from scorelink.train.batches import recolour

SCALE_RANGE = (0.95, 1.05)
SHIFT_PX = 5
ONSET_SHIFT = 1


def note_pairs(ds, records: list[dict]) -> np.ndarray:
    """(P, 3) rows of (record index, absolute onset frame, notehead x), one per distinct onset.

    Noteheads beyond the page's width are left out: a line that LilyPond could not fit runs
    past the right edge of the page (6 of MSMD's 6,990 systems), and has no ink there.
    """
    rows = []
    for i, r in enumerate(records):
        notes = ds.notes(r)
        on_page = (notes["x"] >= 0) & (notes["x"] < PAGE_WIDTH)
        for frame in np.unique(notes["onset_frame"][on_page]):
            x = float(notes["x"][on_page & (notes["onset_frame"] == frame)].mean())
            rows.append((i, r["start_frame"] + int(frame), x))
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


class NoteSnippets(TorchDataset):
    """Index i -> {"sheet": (1, 80, 90), "audio": (1, 92, 20)} of one onset."""

    def __init__(self, root: str | Path, records: list[dict], *, augment: bool = False,
                 timbre: bool = False):
        from scorelink.data.store import Dataset

        self.root, self.records, self.augment, self.timbre = Path(root), records, augment, timbre
        self.pairs = note_pairs(Dataset(root), records)
        self._ds = None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        from scorelink.data.store import Dataset

        if self._ds is None:
            self._ds = Dataset(self.root)
        row, frame, x = self.pairs[i]
        record = self.records[int(row)]
        scale, shift, onset = 1.0, 0, int(frame)
        if self.augment:
            lo, hi = SCALE_RANGE
            scale = lo + (hi - lo) * float(torch.rand(()))
            shift = int(torch.randint(-SHIFT_PX, SHIFT_PX + 1, ()))
            onset += int(torch.randint(-ONSET_SHIFT, ONSET_SHIFT + 1, ()))
        sheet = sheet_window(self._ds.strip(record), x, scale=scale, shift=shift)
        audio = audio_window(self._ds.rendition_spec(record), onset)
        if self.timbre:  # seeded from torch's generator, which the DataLoader seeds per worker
            audio = recolour(audio, np.random.default_rng(int(torch.randint(2**31, ()))))
        return {"sheet": torch.from_numpy(sheet)[None], "audio": torch.from_numpy(audio)[None],
                "index": i}
