"""The paper's pairwise ranking loss (Eq. 1), all other items of the batch as negatives."""

from __future__ import annotations

import torch
from torch import nn


def triplet_hinge(anchor: torch.Tensor, positive: torch.Tensor, *, margin: float) -> torch.Tensor:
    """mean over i != k of max(0, margin + d(a_i, p_i) - d(a_i, p_k)), d = cosine distance.

    anchor, positive: (B, D) L2-normalised rows; row i of each is a matching pair.
    """
    if anchor.shape != positive.shape or anchor.ndim != 2 or len(anchor) < 2:
        raise ValueError(f"need two (B >= 2, D) batches of equal shape, got {anchor.shape}, "
                         f"{positive.shape}")
    distance = 1.0 - anchor.float() @ positive.float().T  # (B, B): d(a_i, p_k)
    matching = distance.diagonal()[:, None]  # (B, 1)
    hinge = torch.relu(margin + matching - distance)
    off_diagonal = ~torch.eye(len(anchor), dtype=torch.bool, device=anchor.device)
    return hinge[off_diagonal].mean()


class PassageLoss(nn.Module):
    """Eq. (1) with the sheet passage as anchor; `symmetric` adds the audio-anchored term."""

    def __init__(self, *, margin: float = 0.3, symmetric: bool = False):
        super().__init__()
        self.margin = margin
        self.symmetric = symmetric

    def forward(self, sheet: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        loss = triplet_hinge(sheet, audio, margin=self.margin)
        if self.symmetric:
            loss = (loss + triplet_hinge(audio, sheet, margin=self.margin)) / 2
        return loss
