"""Embed system strips and audio spans with a passage (RNN) model, for indexing and queries.

Many overlapping windows of one recording share most of their snippets, so the audio side runs
the CNN once per distinct snippet (keyed by its first frame, and by its end when the window cuts
it short) and only the GRU per window: the result equals embedding each window on its own.

`Embedder` runs the PyTorch model. `NumpyEmbedder` runs the same model in NumPy from the weights
an index keeps (`model.npz`, models/numpy_forward.py): `scorelink search` uses it, so a query
does not pay for importing PyTorch (`for_index` picks). Importing this module imports neither.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scorelink.constants import AUDIO_SNIPPET_FRAMES, AUDIO_SNIPPET_HOP, N_BINS, STRIP_HEIGHT
from scorelink.errors import CheckpointError
from scorelink.models.snippets import n_snippets, sheet_snippets

if TYPE_CHECKING:
    import torch

    from scorelink.models.numpy_forward import NumpyPassageModel
    from scorelink.models.passage import PassageModel
    from scorelink.search.index import Index

MODEL_FILE = "model.npz"  # in an index folder: its model's weights for NumpyEmbedder


def fingerprint(model: torch.nn.Module) -> str:
    """sha256 of the model's weights and shape: an index answers only queries of this model."""
    h = hashlib.sha256(repr(sorted(model.config.to_dict().items())).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class EmbedderBase:
    """Cuts strips and spectrogram spans into snippet sequences; subclasses run the model:
    `_features(side, snippets)` -> (n, snippet_dim) and `_summaries(side, feats, sequences)`
    -> (len(sequences), D) unit vectors."""

    dim: int

    def sheet(self, strips: np.ndarray) -> np.ndarray:
        """(n, 160, W) uint8 system strips -> (n, D) float32 unit vectors."""
        strips = np.asarray(strips)
        if strips.ndim != 3 or strips.shape[1] != STRIP_HEIGHT:
            raise ValueError(f"expected (n, {STRIP_HEIGHT}, width) strips, got {strips.shape}")
        if not len(strips):
            return np.zeros((0, self.dim), np.float32)
        cut = [sheet_snippets(s) for s in strips]
        feats = self._features("sheet", np.concatenate(cut))
        bounds = np.cumsum([0] + [len(c) for c in cut])
        return self._summaries("sheet", feats,
                               [np.arange(bounds[i], bounds[i + 1]) for i in range(len(cut))])

    def sheet_with_halves(self, strips: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n, 160, W) uint8 system strips -> unit vectors (n, D) of each whole system (as
        `sheet`), of its first half and of its second half: runs of its sheet snippets, the
        middle snippet of an odd count in both (`search/align.py` places system boundaries
        with them). The CNN runs once per snippet."""
        cut = [sheet_snippets(s) for s in np.asarray(strips)]
        if not cut:
            return tuple(np.zeros((0, self.dim), np.float32) for _ in range(3))
        bounds = np.cumsum([0] + [len(c) for c in cut])
        runs: tuple[list, list, list] = ([], [], [])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            half = (b - a + 1) // 2
            runs[0].append(np.arange(a, b))
            runs[1].append(np.arange(a, a + half))
            runs[2].append(np.arange(b - half, b))
        snippets = np.concatenate(cut)
        return tuple(self.sheet_runs(snippets, r) for r in runs)

    def sheet_runs(self, snippets: np.ndarray, sequences: list[np.ndarray]) -> np.ndarray:
        """(n, 80, 90) float32 sheet snippets and runs of their rows -> (len(sequences), D)
        unit vectors, each run summarised as a strip of those snippets would be (the CNN runs
        once per snippet; `search/parts.py`)."""
        if not len(sequences):
            return np.zeros((0, self.dim), np.float32)
        feats = self._features("sheet", np.asarray(snippets, np.float32))
        return self._summaries("sheet", feats, [np.asarray(s) for s in sequences])

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
        feats = self._features("audio", snippets)
        return self._summaries("audio", feats, sequences)


class Embedder(EmbedderBase):
    """A PyTorch passage model in eval mode plus the cutting of strips and spectrogram spans."""

    def __init__(self, model: PassageModel, *, name: str = "", bf16: bool | None = None,
                 batch_size: int = 64):
        from scorelink.precision import use_bf16

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
        from scorelink import checkpoint

        model, _ = checkpoint.load_model(path, kind="rnn")
        name = str(path) if path else f"shipped:{checkpoint.SHIPPED}"
        return cls(model, name=name, **kwargs)

    def export(self, path: str | Path) -> None:
        """Write the model's weights for NumpyEmbedder (an index's MODEL_FILE)."""
        from scorelink.models.numpy_forward import export

        export(self.model, path, fingerprint=self.fingerprint, name=self.name)

    def _autocast(self):
        import torch

        if self.bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _features(self, side: str, snippets: np.ndarray) -> torch.Tensor:
        """(n, H, W) float32 snippets -> (n, snippet_dim) float32 CNN features, batched."""
        import torch

        tower = getattr(self.model, side)
        out = []
        step = self.batch_size * 8
        with torch.no_grad():
            for a in range(0, len(snippets), step):
                x = torch.from_numpy(snippets[a:a + step])[:, None]
                x = x.contiguous(memory_format=torch.channels_last)
                with self._autocast():
                    out.append(tower.features(x).float())
        return torch.cat(out)

    def _summaries(self, side: str, feats: torch.Tensor,
                   sequences: list[np.ndarray]) -> np.ndarray:
        """Each sequence (rows of feats) -> one unit vector, (len(sequences), D) float32."""
        import torch

        tower = getattr(self.model, side)
        out = []
        with torch.no_grad():
            for a in range(0, len(sequences), self.batch_size):
                chunk = sequences[a:a + self.batch_size]
                rows = torch.from_numpy(np.concatenate(chunk))
                lengths = torch.tensor([len(s) for s in chunk])
                out.append(tower.summarize(feats[rows], lengths).float())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return torch.cat(out).numpy()


class NumpyEmbedder(EmbedderBase):
    """The same embeddings from an exported model, in NumPy (float32; no PyTorch import)."""

    def __init__(self, model: NumpyPassageModel):
        self.model = model
        self.name = model.name
        self.fingerprint = model.fingerprint
        self.dim = model.dim

    @classmethod
    def load(cls, path: str | Path) -> NumpyEmbedder:
        from scorelink.models.numpy_forward import NumpyPassageModel

        try:
            return cls(NumpyPassageModel.load(path))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: cannot read the exported model ({exc})") from exc

    def _features(self, side: str, snippets: np.ndarray) -> np.ndarray:
        return self.model.features(side, snippets)

    def _summaries(self, side: str, feats: np.ndarray, sequences: list[np.ndarray]) -> np.ndarray:
        return self.model.summarize(side, feats, sequences)


def for_index(index: Index, checkpoint: str | Path | None = None) -> EmbedderBase:
    """The embedder for queries of `index`: its exported model in NumPy where it keeps one
    (and no other checkpoint is asked for), else the PyTorch model it names (or `checkpoint`).
    Raises when the model is not the one the index was made with."""
    exported = index.root / MODEL_FILE
    if checkpoint is None and exported.is_file():
        embedder: EmbedderBase = NumpyEmbedder.load(exported)
    else:
        name = index.info["model"]["name"]
        embedder = Embedder.load(checkpoint or (None if name.startswith("shipped:") else name))
    index.check_model(embedder.fingerprint)
    return embedder
