"""The snippet baseline (BL): Dorfer et al.'s two-tower snippet model as adapted by the paper.

One sheet snippet centred on a notehead (160 x 180 px of the strip, halved to 80 x 90) and one
audio snippet centred on that note's onset (92 x 20 frames) map to 32-d unit vectors. A passage
is retrieved by letting each of its snippets vote for the passages of its nearest neighbours.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scorelink.constants import (
    AUDIO_SNIPPET_FRAMES,
    N_BINS,
    SHEET_SNIPPET_HEIGHT,
    SHEET_SNIPPET_WIDTH,
)
from scorelink.models.cca import CCAProjection
from scorelink.models.encoders import SnippetCNN


@dataclass(frozen=True)
class SnippetModelConfig:
    """Shape of the snippet model. Presets: `paper` (Table 1 CNNs, 32-d), `tiny`."""

    channels: tuple[int, ...] = (24, 48, 96, 96)
    embed_dim: int = 32
    cca: bool = False  # a fitted CCA layer after the CNN (`scorelink refine-cca`)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))

    @classmethod
    def preset(cls, name: str, **overrides) -> SnippetModelConfig:
        presets = {"paper": {}, "tiny": {"channels": (4, 8, 8, 8), "embed_dim": 16}}
        if name not in presets:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(presets)}")
        return cls(**{**presets[name], **overrides})

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}


class SnippetTower(nn.Module):
    def __init__(self, input_hw: tuple[int, int], config: SnippetModelConfig):
        super().__init__()
        self.cnn = SnippetCNN(input_hw, config.channels, config.embed_dim)
        self.cca = CCAProjection(config.embed_dim) if config.cca else None

    def features(self, snippets: torch.Tensor) -> torch.Tensor:
        """Snippet vectors before the CCA layer and the L2 norm (what CCA is fitted on)."""
        return self.cnn(snippets).float()

    def forward(self, snippets: torch.Tensor) -> torch.Tensor:
        feats = self.features(snippets)
        if self.cca is not None:
            feats = self.cca(feats)
        return F.normalize(feats, dim=-1)


class SnippetModel(nn.Module):
    kind = "snippet"

    def __init__(self, config: SnippetModelConfig | None = None):
        super().__init__()
        self.config = config or SnippetModelConfig()
        self.sheet = SnippetTower((SHEET_SNIPPET_HEIGHT, SHEET_SNIPPET_WIDTH), self.config)
        self.audio = SnippetTower((N_BINS, AUDIO_SNIPPET_FRAMES), self.config)

    def embed_sheet(self, snippets: torch.Tensor) -> torch.Tensor:
        """(N, 1, 80, 90) -> (N, embed_dim) unit vectors."""
        return self.sheet(snippets)

    def embed_audio(self, snippets: torch.Tensor) -> torch.Tensor:
        """(N, 1, 92, 20) -> (N, embed_dim) unit vectors."""
        return self.audio(snippets)

    def forward(self, sheet: torch.Tensor, audio: torch.Tensor):
        return self.embed_sheet(sheet), self.embed_audio(audio)
