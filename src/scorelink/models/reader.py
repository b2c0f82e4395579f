"""The note reader: a system's strip in, the pitches of its noteheads along x out.

Scans and page images carry no notes, so the notes path of search (`search/notes.py`) could not
use them; this small model reads them. A CNN turns the strip (STRIP_HEIGHT x W, ink = 1) into
one feature vector per READER_STRIDE columns, keeping where on the staves a mark lies (the
height is flattened, not pooled away); a bidirectional GRU along the system carries what is
written once and holds for many notes (clefs, key signatures, accidentals within a bar); a
linear layer gives, per column, the logits of the keyboard's 88 pitches: is a notehead of that
pitch here. Trained on engraved training systems whose noteheads' positions and pitches the
engraving gives (`scorelink.train.reader`).

Hand-written because no library on PyPI reads printed music into pitches without fetching its
weights at run time (oemer and its kin download checkpoints), and this one only has to place
pitches along x, not recover rhythm or voices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from scorelink.constants import STRIP_HEIGHT
from scorelink.models.reader_file import shipped_reader_path

LOWEST = 21  # MIDI A0: pitch row 0
PITCHES = 88
READER_STRIDE = 4  # strip columns per output column
READ_THRESHOLD = 0.7  # a notehead where its pitch's probability reaches this: the F1 of pitches
# on the validation systems is highest at 0.7 of 0.6, 0.7, 0.8 (the shipped reader, epoch 16:
# chorales 88.4 / 89.3 / 88.9 %, MSMD 85.6 / 87.0 / 86.7 %; epochs 11 and 13 the same;
# docs/reader.md)


@dataclass(frozen=True)
class ReaderConfig:
    channels: tuple[int, ...] = (16, 32, 64, 96)  # conv blocks; the first two halve the width
    hidden: int = 256  # per column, before the GRU
    gru: int = 128  # per direction


def _block(c_in: int, c_out: int, pool: tuple[int, int]) -> nn.Sequential:
    """3x3 conv -> BatchNorm -> ELU -> max-pool (one conv a block: a strip is wide, and two
    took 4.5 times the CPU time)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ELU(), nn.MaxPool2d(pool))


class NoteReader(nn.Module):
    """(B, 1, STRIP_HEIGHT, W) strips (ink 1, paper 0) -> (B, W // READER_STRIDE, PITCHES)
    logits."""

    def __init__(self, config: ReaderConfig = ReaderConfig()):
        super().__init__()
        self.config = config
        pools = [(2, 2), (2, 2)] + [(2, 1)] * (len(config.channels) - 2)
        blocks, c_in, h = [], 1, STRIP_HEIGHT
        for c, pool in zip(config.channels, pools, strict=True):
            blocks.append(_block(c_in, c, pool))
            c_in, h = c, h // pool[0]
        self.cnn = nn.Sequential(*blocks)
        self.project = nn.Sequential(nn.Linear(c_in * h, config.hidden), nn.ELU())
        self.gru = nn.GRU(config.hidden, config.gru, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * config.gru, PITCHES)

    def forward(self, strips: torch.Tensor) -> torch.Tensor:
        f = self.cnn(strips)  # (B, C, h, W / 4)
        b, c, h, w = f.shape
        f = self.project(f.permute(0, 3, 1, 2).reshape(b, w, c * h))  # (B, W / 4, hidden)
        f, _ = self.gru(f)  # (B, W / 4, 2 gru)
        return self.out(f)

    def payload(self) -> dict:
        return {"kind": "note-reader", "config": asdict(self.config),
                "state": self.state_dict()}

    @classmethod
    def from_payload(cls, payload: dict) -> NoteReader:
        config = payload["config"]
        model = cls(ReaderConfig(**{**config, "channels": tuple(config["channels"])}))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in payload["state"].items()})  # shipped as float16
        return model.eval()


def output_columns(width: int) -> int:
    """The output columns that cover a strip `width` px wide (the last one maybe in part)."""
    return -(-width // READER_STRIDE)


def as_input(strips: list[np.ndarray]) -> torch.Tensor:
    """uint8 strips (STRIP_HEIGHT, W_k) -> (B, 1, STRIP_HEIGHT, W) float ink, right-padded
    with paper to the widest (a multiple of READER_STRIDE)."""
    width = max(s.shape[1] for s in strips)
    width += -width % READER_STRIDE
    x = np.zeros((len(strips), 1, STRIP_HEIGHT, width), np.float32)
    for k, s in enumerate(strips):
        x[k, 0, :, :s.shape[1]] = 1.0 - s.astype(np.float32) / 255
    return torch.from_numpy(x)


def peaks(probs: np.ndarray, *, threshold: float = READ_THRESHOLD) -> np.ndarray:
    """(columns, PITCHES) probabilities -> (n, 2) float [x px, MIDI pitch] notes: each run of
    columns over the threshold for one pitch is one notehead, at the run's centre."""
    above = probs >= threshold
    edges = np.diff(np.pad(above.astype(np.int8), ((1, 1), (0, 0))), axis=0)  # (columns+1, P)
    starts, ends = np.nonzero(edges.T == 1), np.nonzero(edges.T == -1)  # (pitch, column)
    pitch, a, b = starts[0], starts[1], ends[1]  # both sorted by pitch, then column
    x = (a + b) / 2 * READER_STRIDE  # the run's centre, in strip px
    order = np.lexsort((pitch, x))
    return np.stack([x[order], pitch[order] + LOWEST], axis=1).astype(np.float64)


@torch.no_grad()
def probabilities(model: NoteReader, strips: list[np.ndarray], *, batch: int = 8
                  ) -> list[np.ndarray]:
    """Each uint8 strip's (output_columns(W), PITCHES) notehead probabilities, in batches of
    `batch` strips (the model is used as it is: call .eval() first for reading)."""
    out = []
    for k in range(0, len(strips), batch):
        group = strips[k:k + batch]
        probs = torch.sigmoid(model(as_input(group))).numpy()
        out += [p[:output_columns(s.shape[1])] for s, p in zip(group, probs, strict=True)]
    return out


def read_strips(model: NoteReader, strips: list[np.ndarray], *, batch: int = 8,
                threshold: float = READ_THRESHOLD) -> list[np.ndarray]:
    """The noteheads (n, 2) [x px, MIDI pitch] of each uint8 strip (STRIP_HEIGHT, W)."""
    return [peaks(p, threshold=threshold) for p in probabilities(model, strips, batch=batch)]


@lru_cache(maxsize=2)
def load_reader(path: str | None = None) -> NoteReader:
    """A trained note reader: the checkpoint at `path` (`scorelink.train.reader` writes
    best.pt), by default the one shipped with the package."""
    from scorelink.errors import CheckpointError

    path = path or str(shipped_reader_path())
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError) as exc:
        raise CheckpointError(f"no note reader at {path} ({exc})") from exc
    if payload.get("kind") != "note-reader":
        raise CheckpointError(f"{path} is not a note reader's checkpoint")
    return NoteReader.from_payload(payload)
