"""Cached snippet features: train the recurrent stage of a passage model whose CNNs are frozen.

With the snippet CNNs frozen (RNN-FZ), a passage's CNN outputs never change, so they are
computed once per training passage and the GRUs train on the cached (n, 32) sequences: an
epoch costs a GRU pass instead of a CNN pass over every snippet (the CNNs are ~97 % of the
compute). Input augmentations still apply: each passage is cached in `views` independently
augmented versions (tempo, timbre, crop, sheet shift, as the dataset draws them), and every
epoch draws one view per passage.

The cache is written to the run folder (`features.pt`), keyed by the CNN weights it was made
with, so a resumed run reuses it and a run started from other weights recomputes it.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from scorelink.train.batches import collate


def cnn_fingerprint(model: torch.nn.Module) -> str:
    """A hash of the two CNNs' weights and BatchNorm statistics (what the features depend on)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if ".cnn." in f".{name}":
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]


class FeatureCache:
    """Snippet features of every training passage, `views` augmented versions of each.

    sheet[v] / audio[v]: (total snippets, snippet_dim) float16 rows of view v, passages one
    after another; *_start[v][i], *_length[v][i] locate passage i's rows.
    """

    def __init__(self, sheet, sheet_start, sheet_length, audio, audio_start, audio_length,
                 fingerprint: str):
        self.sheet, self.sheet_start, self.sheet_length = sheet, sheet_start, sheet_length
        self.audio, self.audio_start, self.audio_length = audio, audio_start, audio_length
        self.fingerprint = fingerprint

    @property
    def views(self) -> int:
        return len(self.sheet)

    def __len__(self) -> int:
        return len(self.sheet_start[0])

    @classmethod
    @torch.no_grad()
    def compute(cls, model, dataset: Dataset, *, views: int, batch_size: int = 64,
                workers: int = 0, seed: int = 0, device: str | torch.device = "cpu",
                autocast=None, channels_last: bool = True, progress: bool = True
                ) -> FeatureCache:
        """Run the frozen CNNs (eval mode) over `views` passes of `dataset` (PassageSnippets
        items, augmented as the dataset is set up to)."""
        from tqdm import tqdm

        was_training = model.training
        model.eval()
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        out: dict[str, list] = {k: [] for k in ("sheet", "ss", "sl", "audio", "as", "al")}
        try:
            for view in range(views):
                torch.manual_seed(seed * 1_000_003 + 7919 * (view + 1))  # the view's draws
                loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate,
                                    sampler=SequentialSampler(dataset), num_workers=workers)
                rows = {"sheet": [], "audio": []}
                lengths = {"sheet": [], "audio": []}
                bar = tqdm(loader, desc=f"caching features, view {view + 1}/{views}",
                           unit="batch", disable=not progress, leave=False)
                for batch in bar:
                    with autocast() if autocast else contextlib.nullcontext():
                        for side, tower in (("sheet", model.sheet), ("audio", model.audio)):
                            x = batch[side].to(device, memory_format=fmt)
                            rows[side].append(tower.cnn(x).float().cpu().half())
                    lengths["sheet"].append(batch["sheet_lengths"])
                    lengths["audio"].append(batch["audio_lengths"])
                for side, key in (("sheet", "s"), ("audio", "a")):
                    n = torch.cat(lengths[side])
                    out[side].append(torch.cat(rows[side]))
                    out[key + "s"].append(torch.cumsum(n, 0) - n)
                    out[key + "l"].append(n)
        finally:
            model.train(was_training)
        return cls(out["sheet"], out["ss"], out["sl"], out["audio"], out["as"], out["al"],
                   cnn_fingerprint(model))

    def batch(self, index: torch.Tensor, view: torch.Tensor) -> dict[str, torch.Tensor]:
        """Passages `index` (B,), each in its view `view` (B,): concatenated float32 features
        and lengths, as `collate` gives snippets."""
        out = {}
        for side, (rows, starts, lengths) in (
                ("sheet", (self.sheet, self.sheet_start, self.sheet_length)),
                ("audio", (self.audio, self.audio_start, self.audio_length))):
            parts, ns = [], []
            for i, v in zip(index.tolist(), view.tolist(), strict=True):
                s, n = int(starts[v][i]), int(lengths[v][i])
                parts.append(rows[v][s:s + n])
                ns.append(n)
            out[side] = torch.cat(parts).float()  # (sum n, snippet_dim)
            out[f"{side}_lengths"] = torch.tensor(ns)
        return out

    @torch.no_grad()
    def embed(self, model, *, view: int = 0, batch_size: int = 256,
              device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
        """(sheet (N, D), audio (N, D)) embeddings of every cached passage in `view`: the
        model's CCA layers (if any) and recurrent summaries over the cached CNN outputs."""
        was_training = model.training
        model.eval()
        out: dict[str, list] = {"sheet": [], "audio": []}
        try:
            for k in range(0, len(self), batch_size):
                index = torch.arange(k, min(k + batch_size, len(self)))
                batch = self.batch(index, torch.full_like(index, view))
                for side, tower in (("sheet", model.sheet), ("audio", model.audio)):
                    out[side].append(summarize_features(tower, batch[side].to(device),
                                                        batch[f"{side}_lengths"]).cpu())
        finally:
            model.train(was_training)
        return torch.cat(out["sheet"]).numpy(), torch.cat(out["audio"]).numpy()

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"sheet": self.sheet, "sheet_start": self.sheet_start,
                    "sheet_length": self.sheet_length, "audio": self.audio,
                    "audio_start": self.audio_start, "audio_length": self.audio_length,
                    "fingerprint": self.fingerprint}, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> FeatureCache:
        d = torch.load(path, weights_only=True)
        return cls(d["sheet"], d["sheet_start"], d["sheet_length"], d["audio"],
                   d["audio_start"], d["audio_length"], d["fingerprint"])


def summarize_features(tower, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """A tower's embedding from its CNN's outputs (sum(lengths), snippet_dim) -> (B, D)."""
    if tower.cca is not None:
        feats = tower.cca(feats)
    return tower.summarize(feats, lengths)


def random_views(n: int, views: int, *, seed: int, epoch: int) -> np.ndarray:
    """The view each of n passages shows in this epoch (deterministic, so a resumed run draws
    what the uninterrupted one would have)."""
    return np.random.default_rng([seed, epoch, 17]).integers(0, views, n)
