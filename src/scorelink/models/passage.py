"""The passage model: snippet CNN -> GRU over the snippet sequence -> linear -> L2 norm.

One tower per modality. Variable-length passages are batched as packed sequences, so padding
never enters a GRU state: the embedding of a passage is the same alone or in any batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from scorelink.constants import (
    AUDIO_SNIPPET_FRAMES,
    N_BINS,
    SHEET_SNIPPET_HEIGHT,
    SHEET_SNIPPET_WIDTH,
)
from scorelink.models.cca import CCAProjection
from scorelink.models.encoders import SnippetCNN


@dataclass(frozen=True)
class PassageModelConfig:
    """Shape of the passage model. Presets: `paper` (Table 1, ~0.83 M parameters), `tiny`."""

    channels: tuple[int, ...] = (24, 48, 96, 96)
    snippet_dim: int = 32
    hidden: int = 128
    embed_dim: int = 64  # the paper sweeps 16 ... 1024
    rnn: str = "gru"  # or "lstm"
    cca: bool = False  # a CCA layer after the CNN (RNN-*-CCA: copied from a refined BL)

    def __post_init__(self) -> None:
        if self.rnn not in ("gru", "lstm"):
            raise ValueError(f"rnn must be gru or lstm, not {self.rnn!r}")
        if not 16 <= self.embed_dim <= 1024:
            raise ValueError(f"embed_dim must be in 16..1024, not {self.embed_dim}")
        object.__setattr__(self, "channels", tuple(self.channels))

    @classmethod
    def preset(cls, name: str, **overrides) -> PassageModelConfig:
        presets = {
            "paper": {},
            "tiny": {"channels": (4, 8, 8, 8), "snippet_dim": 8, "hidden": 16, "embed_dim": 16},
        }
        if name not in presets:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(presets)}")
        return cls(**{**presets[name], **overrides})

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}


class Tower(nn.Module):
    """Snippet CNN + recurrent summary for one modality."""

    def __init__(self, input_hw: tuple[int, int], config: PassageModelConfig):
        super().__init__()
        self.cnn = SnippetCNN(input_hw, config.channels, config.snippet_dim)
        self.cca = CCAProjection(config.snippet_dim) if config.cca else None
        rnn = nn.GRU if config.rnn == "gru" else nn.LSTM
        self.rnn = rnn(config.snippet_dim, config.hidden, batch_first=True)
        self.proj = nn.Linear(config.hidden, config.embed_dim)

    def features(self, snippets: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) snippets -> (N, snippet_dim) float32 vectors (CNN, then CCA if any)."""
        feats = self.cnn(snippets).float()  # (N, 32)
        return self.cca(feats) if self.cca is not None else feats

    def summarize(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """feats: (sum(lengths), snippet_dim) of B passages in order; lengths: (B,) -> (B, D)."""
        batch, longest = len(lengths), int(lengths.max())
        # scatter the flat snippet features into a (B, T, 32) padded batch
        starts = torch.cumsum(lengths, 0) - lengths
        steps = torch.arange(longest, device=feats.device)
        valid = steps[None, :] < lengths[:, None].to(feats.device)  # (B, T)
        index = (starts.to(feats.device)[:, None] + steps[None, :])[valid]
        padded = feats.new_zeros(batch, longest, feats.shape[1])
        padded[valid] = feats[index]
        packed = pack_padded_sequence(padded, lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        with torch.autocast(feats.device.type, enabled=False):  # the recurrence stays in fp32
            _, state = self.rnn(packed)
        hidden = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
        return F.normalize(self.proj(hidden[-1]), dim=-1)  # (B, D)

    def forward(self, snippets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """snippets: (sum(lengths), 1, H, W) of B passages in order; lengths: (B,) -> (B, D)."""
        return self.summarize(self.features(snippets), lengths)


class PassageModel(nn.Module):
    """Two towers mapping sheet and audio passages into one embedding space."""

    kind = "rnn"

    def __init__(self, config: PassageModelConfig | None = None):
        super().__init__()
        self.config = config or PassageModelConfig()
        self.sheet = Tower((SHEET_SNIPPET_HEIGHT, SHEET_SNIPPET_WIDTH), self.config)
        self.audio = Tower((N_BINS, AUDIO_SNIPPET_FRAMES), self.config)

    def embed_sheet(self, snippets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(sum(lengths), 1, 80, 90) sheet snippets -> (B, embed_dim) unit vectors."""
        return self.sheet(snippets, lengths)

    def embed_audio(self, snippets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(sum(lengths), 1, 92, 20) audio snippets -> (B, embed_dim) unit vectors."""
        return self.audio(snippets, lengths)

    def forward(self, sheet, sheet_lengths, audio, audio_lengths):
        return self.embed_sheet(sheet, sheet_lengths), self.embed_audio(audio, audio_lengths)


def widen_snippets(model: PassageModel, snippet_dim: int, *, seed: int = 0) -> PassageModel:
    """The same model with wider snippet vectors, computing the same function.

    Each CNN's last linear layer gains output rows (initialised at random, as PyTorch
    initialises a new layer) and each GRU's input weights gain the matching columns, set to
    zero, so every embedding is unchanged until training moves them (a function-preserving
    widening, as Net2Net's (Chen et al. 2016), by hand because no library widens a GRU).
    """
    old = model.config
    if snippet_dim < old.snippet_dim:
        raise ValueError(f"snippet vectors can only grow: {old.snippet_dim} -> {snippet_dim}")
    if old.cca:
        raise ValueError("a model with a CCA layer after its CNNs cannot be widened")
    with torch.random.fork_rng(devices=[]):  # the new rows' draw, the global stream untouched
        torch.manual_seed(seed)
        wide = PassageModel(replace(old, snippet_dim=snippet_dim))
    state = wide.state_dict()
    with torch.no_grad():
        for name, value in model.state_dict().items():
            target = state[name]
            if name.endswith("rnn.weight_ih_l0"):  # (gates x hidden, snippet_dim)
                target.zero_()
                target[:, :value.shape[1]] = value
            elif target.shape != value.shape:  # the CNN head's rows: the old ones first
                target[:value.shape[0]] = value
            else:
                target.copy_(value)
    wide.load_state_dict(state)
    return wide.train(model.training)
