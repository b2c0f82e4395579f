"""Embed system strips and audio spans with a passage (RNN) model, for indexing and queries.

Many overlapping windows of one recording share most of their snippets, so the audio side runs
the CNN once per distinct snippet (keyed by its first frame, and by its end when the window cuts
it short) and only the GRU per window: the result equals embedding each window on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import numpy as np
import torch

from scorelink import checkpoint
from scorelink.constants import AUDIO_SNIPPET_FRAMES, AUDIO_SNIPPET_HOP, N_BINS, STRIP_HEIGHT
from scorelink.errors import CheckpointError
from scorelink.models.passage import PassageModel
from scorelink.models.snippets import n_snippets, sheet_snippets
from scorelink.precision import use_bf16


def fingerprint(model: torch.nn.Module) -> str:
    """sha256 of the model's weights and shape: an index answers only queries of this model."""
    h = hashlib.sha256(repr(sorted(model.config.to_dict().items())).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class Embedder:
    """A passage model in eval mode plus the cutting of strips and spectrogram spans."""

    def __init__(self, model: PassageModel, *, name: str = "", bf16: bool | None = None,
                 batch_size: int = 64):
        if getattr(model, "kind", None) != "rnn":
            raise CheckpointError("search needs a passage (RNN) model, not the snippet baseline")
        self.model = model.eval()
        self.name = name
        self.fingerprint = fingerprint(model)
        self.dim = model.config.embed_dim
        self.bf16 = use_bf16(bf16)  # None: where the CPU runs bfloat16 natively
        self.batch_size = batch_size

    @classmethod
    def load(cls, path: str | Path | None = None, **kwargs) -> Embedder:
        """From a checkpoint file; None: the shipped model."""
        model, _ = checkpoint.load_model(path, kind="rnn")
        name = str(path) if path else f"shipped:{checkpoint.SHIPPED}"
        return cls(model, name=name, **kwargs)

    def _autocast(self):
        if self.bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def _features(self, tower, snippets: np.ndarray) -> torch.Tensor:
        """(n, H, W) float32 snippets -> (n, snippet_dim) float32 CNN features, batched."""
        out = []
        step = self.batch_size * 8
        for a in range(0, len(snippets), step):
            x = torch.from_numpy(snippets[a:a + step])[:, None]
            x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                out.append(tower.features(x).float())
        return torch.cat(out)

    @torch.no_grad()
    def _summaries(self, tower, feats: torch.Tensor, sequences: list[np.ndarray]) -> np.ndarray:
        """Each sequence (rows of feats) -> one unit vector, (len(sequences), D) float32."""
        out = []
        for a in range(0, len(sequences), self.batch_size):
            chunk = sequences[a:a + self.batch_size]
            rows = torch.from_numpy(np.concatenate(chunk))
            lengths = torch.tensor([len(s) for s in chunk])
            out.append(tower.summarize(feats[rows], lengths).float())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return torch.cat(out).numpy()

    def sheet(self, strips: np.ndarray) -> np.ndarray:
        """(n, 160, W) uint8 system strips -> (n, D) float32 unit vectors."""
        strips = np.asarray(strips)
        if strips.ndim != 3 or strips.shape[1] != STRIP_HEIGHT:
            raise ValueError(f"expected (n, {STRIP_HEIGHT}, width) strips, got {strips.shape}")
        if not len(strips):
            return np.zeros((0, self.dim), np.float32)
        cut = [sheet_snippets(s) for s in strips]
        feats = self._features(self.model.sheet, np.concatenate(cut))
        bounds = np.cumsum([0] + [len(c) for c in cut])
        return self._summaries(self.model.sheet, feats,
                               [np.arange(bounds[i], bounds[i + 1]) for i in range(len(cut))])

    def audio(self, spec: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
        """(92, T) spectrogram and [start, end) frame spans -> (len(spans), D) unit vectors.

        Equal to embedding `spec[:, start:end]` alone for each span (snippets past the end of a
        span are zero-padded, not filled with the audio that follows).
        """
        if spec.ndim != 2 or spec.shape[0] != N_BINS:
            raise ValueError(f"expected a ({N_BINS}, frames) spectrogram, got {spec.shape}")
        keys: dict[tuple[int, int], int] = {}  # (first frame, end frame) -> snippet row
        sequences = []
        for start, end in spans:
            end = min(end, spec.shape[1])
            if end <= start:
                raise ValueError(f"empty span [{start}, {end}) of a {spec.shape[1]}-frame input")
            n = n_snippets(end - start, size=AUDIO_SNIPPET_FRAMES, hop=AUDIO_SNIPPET_HOP)
            seq = []
            for j in range(n):
                a = start + j * AUDIO_SNIPPET_HOP
                b = min(a + AUDIO_SNIPPET_FRAMES, end)  # cut short at the span's end
                key = (a, b if b < a + AUDIO_SNIPPET_FRAMES else -1)
                seq.append(keys.setdefault(key, len(keys)))
            sequences.append(np.array(seq))
        snippets = np.zeros((len(keys), N_BINS, AUDIO_SNIPPET_FRAMES), np.float32)
        for (a, b), row in keys.items():
            b = a + AUDIO_SNIPPET_FRAMES if b < 0 else b
            snippets[row, :, : b - a] = spec[:, a:b]
        feats = self._features(self.model.audio, snippets)
        return self._summaries(self.model.audio, feats, sequences)
