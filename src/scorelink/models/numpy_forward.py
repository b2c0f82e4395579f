"""The passage model's forward pass in NumPy, from weights exported to an .npz file.

A query embeds one clip or one system: a few dozen snippets, a few hundred million
multiply-adds. PyTorch does that in milliseconds but takes seconds to import, which made a
`scorelink search` call mostly start-up; ONNX Runtime would import faster but adds a dependency
and an export step that does not cover packed GRUs. So `search` runs the model here, in NumPy,
from weights the index keeps beside its vectors (`export`, written when the index is made).

    from scorelink.models.numpy_forward import NumpyPassageModel, export

    export(model, "model.npz", fingerprint=fp, name="shipped:rnn-chorales.pt")  # needs torch
    m = NumpyPassageModel.load("model.npz")                                     # does not
    feats = m.features("audio", snippets)          # (n, 92, 20) -> (n, snippet_dim)
    vecs = m.summarize("audio", feats, sequences)  # rows of feats per passage -> (B, D)

The same layers as `models/passage.py` in inference mode: each BatchNorm is folded into the
convolution before it (an exact rewrite), ELU, 2 x 2 max-pooling, the linear head, the CCA map
if any, a GRU or LSTM run over each passage's snippets up to its own length, the projection and
the L2 norm. `tests/test_numpy_forward.py` checks it against the PyTorch model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMAT = "scorelink-numpy-model"
VERSION = 1
SIDES = ("sheet", "audio")
_CHUNK = 16  # snippets per convolution batch (bounds the im2col buffer: ~6 MB a sheet snippet)


def export(model, path: str | Path, *, fingerprint: str, name: str) -> None:
    """Write a PassageModel's inference weights to `path` (.npz), atomically."""
    import torch
    from torch import nn

    arrays: dict[str, np.ndarray] = {}
    layers: dict[str, list[str]] = {}
    for side in SIDES:
        tower = getattr(model, side)
        ops: list[str] = []
        convs = [m for m in tower.cnn.features.modules()
                 if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.ELU, nn.MaxPool2d))]
        k = 0
        for i, m in enumerate(convs):
            if isinstance(m, nn.Conv2d):
                bn = convs[i + 1]
                same = tuple(v // 2 for v in m.kernel_size)
                if (not isinstance(bn, nn.BatchNorm2d) or m.bias is not None
                        or m.stride != (1, 1) or m.padding != same or m.groups != 1):
                    raise ValueError("expected 'same' convolutions without bias, each followed "
                                     "by BatchNorm")
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (out,)
                arrays[f"{side}.conv{k}.weight"] = _np(m.weight * scale[:, None, None, None])
                arrays[f"{side}.conv{k}.bias"] = _np(bn.bias - bn.running_mean * scale)
                ops.append(f"conv{k}")
                k += 1
            elif isinstance(m, nn.ELU):
                if m.alpha != 1.0:
                    raise ValueError("expected ELU with alpha 1")
                ops.append("elu")
            elif isinstance(m, nn.MaxPool2d):
                if m.kernel_size not in (2, (2, 2)) or m.stride not in (2, (2, 2)):
                    raise ValueError("expected 2 x 2 max-pooling")
                ops.append("pool")
        layers[side] = ops
        head = tower.cnn.head[1]  # Flatten, Linear, ELU
        arrays[f"{side}.head.weight"] = _np(head.weight)
        arrays[f"{side}.head.bias"] = _np(head.bias)
        if tower.cca is not None:
            arrays[f"{side}.cca.mean"] = _np(tower.cca.mean)
            arrays[f"{side}.cca.weight"] = _np(tower.cca.weight)
        for key in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            arrays[f"{side}.rnn.{key}"] = _np(getattr(tower.rnn, key))
        arrays[f"{side}.proj.weight"] = _np(tower.proj.weight)
        arrays[f"{side}.proj.bias"] = _np(tower.proj.bias)
    meta = {"format": FORMAT, "version": VERSION, "name": name, "fingerprint": fingerprint,
            "config": model.config.to_dict(), "layers": layers}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
    tmp.replace(path)


def _np(t) -> np.ndarray:
    return t.detach().cpu().float().numpy().copy()


class NumpyPassageModel:
    """An exported passage model: `features` and `summarize` per side, float32."""

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict):
        self.arrays = arrays
        self.meta = meta
        self.name: str = meta["name"]
        self.fingerprint: str = meta["fingerprint"]
        self.rnn: str = meta["config"]["rnn"]
        self.dim: int = meta["config"]["embed_dim"]

    @classmethod
    def load(cls, path: str | Path) -> NumpyPassageModel:
        """Read an `export`ed file; ValueError if it is not one (or of another version)."""
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        try:
            meta = json.loads(str(arrays.pop("meta")))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{path} is not an exported scorelink model") from exc
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"{path} is not an exported scorelink model of version {VERSION}")
        return cls(arrays, meta)

    def features(self, side: str, snippets: np.ndarray) -> np.ndarray:
        """(n, H, W) float32 snippets -> (n, snippet_dim) float32 (CNN, then CCA if any)."""
        out = [self._cnn(side, snippets[a:a + _CHUNK]) for a in range(0, len(snippets), _CHUNK)]
        feats = np.concatenate(out) if out else np.zeros((0, self._head(side)[0].shape[0]),
                                                         np.float32)
        if f"{side}.cca.mean" in self.arrays:
            feats = (feats - self.arrays[f"{side}.cca.mean"]) @ self.arrays[f"{side}.cca.weight"]
        return feats.astype(np.float32)

    def _head(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        return self.arrays[f"{side}.head.weight"], self.arrays[f"{side}.head.bias"]

    def _cnn(self, side: str, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)[..., None]  # (N, H, W, 1): channels last throughout
        for op in self.meta["layers"][side]:
            if op == "elu":
                x = _elu(x)
            elif op == "pool":
                n, h, w, c = x.shape
                x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
                x = x.max(axis=(2, 4))
            else:
                x = _conv(x, self.arrays[f"{side}.{op}.weight"], self.arrays[f"{side}.{op}.bias"])
        x = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # flatten as torch does: (C, H, W)
        weight, bias = self._head(side)
        return _elu(x @ weight.T + bias)

    def summarize(self, side: str, feats: np.ndarray, sequences: list[np.ndarray]) -> np.ndarray:
        """Each sequence (row indices into feats, in time order) -> one unit vector (B, D)."""
        if not sequences:
            return np.zeros((0, self.dim), np.float32)
        a = self.arrays
        w_ih, w_hh = a[f"{side}.rnn.weight_ih_l0"], a[f"{side}.rnn.weight_hh_l0"]
        b_ih, b_hh = a[f"{side}.rnn.bias_ih_l0"], a[f"{side}.rnn.bias_hh_l0"]
        hidden = w_hh.shape[1]
        lengths = np.array([len(s) for s in sequences])
        if lengths.min() < 1:
            raise ValueError("a passage without snippets")
        h = np.zeros((len(sequences), hidden), np.float32)
        c = np.zeros_like(h)  # LSTM cell state
        for t in range(int(lengths.max())):
            live = np.flatnonzero(lengths > t)  # passages still running at step t
            x = feats[[int(s[t]) for s in (sequences[i] for i in live)]]
            gi, gh = x @ w_ih.T + b_ih, h[live] @ w_hh.T + b_hh
            if self.rnn == "gru":  # torch's gate order: reset, update, new
                r = _sigmoid(gi[:, :hidden] + gh[:, :hidden])
                z = _sigmoid(gi[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])
                n = np.tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
                h[live] = (1 - z) * n + z * h[live]
            else:  # LSTM, torch's gate order: input, forget, cell, output
                g = gi + gh
                i_, f_ = _sigmoid(g[:, :hidden]), _sigmoid(g[:, hidden:2 * hidden])
                c[live] = f_ * c[live] + i_ * np.tanh(g[:, 2 * hidden:3 * hidden])
                h[live] = _sigmoid(g[:, 3 * hidden:]) * np.tanh(c[live])
        y = h @ a[f"{side}.proj.weight"].T + a[f"{side}.proj.bias"]
        norm = np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
        return (y / norm).astype(np.float32)


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'same' convolution of (N, H, W, C) by (O, C, k, k) (odd k), as one matrix product."""
    out, c, kh, kw = weight.shape
    n, h, w, _ = x.shape
    if kh == kw == 1:
        cols = x.reshape(-1, c)
        return (cols @ weight.reshape(out, c).T + bias).reshape(n, h, w, out)
    ph, pw = kh // 2, kw // 2
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))
    cols = windows.reshape(n * h * w, c * kh * kw)  # (N, H, W, C, kh, kw) -> rows
    return (cols @ weight.reshape(out, -1).T + bias).reshape(n, h, w, out)


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow
