"""The snippet CNNs of the paper's Table 1: one snippet in, one 32-d vector out."""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """[3x3 conv -> BatchNorm -> ELU] x 2 -> 2x2 max-pool."""
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ELU()]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class SnippetCNN(nn.Module):
    """(N, 1, H, W) snippets -> (N, out_dim) vectors.

    Four conv blocks (channels e.g. 24, 48, 96, 96), a 1x1 conv to 32 channels with BatchNorm
    and ELU, flatten, a linear layer to `out_dim` and ELU (Table 1).
    """

    def __init__(self, input_hw: tuple[int, int], channels: tuple[int, ...], out_dim: int = 32):
        super().__init__()
        blocks, c_in = [], 1
        for c in channels:
            blocks.append(_block(c_in, c))
            c_in = c
        self.features = nn.Sequential(
            *blocks, nn.Conv2d(c_in, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ELU()
        )
        h, w = input_hw
        for _ in channels:
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"input {input_hw} too small for {len(channels)} pooling blocks")
        self.input_hw = input_hw
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * h * w, out_dim), nn.ELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
