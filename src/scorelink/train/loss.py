"""The paper's pairwise ranking loss (Eq. 1), all other items of the batch as negatives, and
the contrastive (InfoNCE) loss beside it."""

from __future__ import annotations

import torch
from torch import nn


def triplet_hinge(anchor: torch.Tensor, positive: torch.Tensor, *, margin: float,
                  same: torch.Tensor | None = None, hardest: int = 0) -> torch.Tensor:
    """mean over i != k of max(0, margin + d(a_i, p_i) - d(a_i, p_k)), d = cosine distance.

    anchor, positive: (B, D) L2-normalised rows; row i of each is a matching pair.
    same: (B,) group ids (e.g. the system a passage shows); p_k of the anchor's own group is no
    negative (another rendition of the same system cannot be pushed away from it).
    hardest: 0 averages over every negative (the paper); k > 0 over the k largest terms of
    each anchor (k = 1 is VSE++'s hardest negative, Faghri et al. 2018).
    """
    if anchor.shape != positive.shape or anchor.ndim != 2 or len(anchor) < 2:
        raise ValueError(f"need two (B >= 2, D) batches of equal shape, got {anchor.shape}, "
                         f"{positive.shape}")
    distance = 1.0 - anchor.float() @ positive.float().T  # (B, B): d(a_i, p_k)
    matching = distance.diagonal()[:, None]  # (B, 1)
    hinge = torch.relu(margin + matching - distance)
    negative = ~torch.eye(len(anchor), dtype=torch.bool, device=anchor.device)
    if same is not None:
        negative &= same[:, None] != same[None, :]
    if not hardest:
        return hinge[negative].sum() / negative.sum().clamp(min=1)
    # per anchor, the k largest terms among its negatives (an anchor with fewer has zeros)
    top = torch.where(negative, hinge, torch.zeros_like(hinge)).topk(
        min(hardest, len(anchor) - 1), dim=1).values
    return top.mean()


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, *, temperature: float,
             same: torch.Tensor | None = None) -> torch.Tensor:
    """mean over i of -log softmax_k(cos(a_i, p_k) / temperature)[i] (van den Oord et al. 2018).

    Not in the paper. Unlike the hinge, whose mean over negatives falls to almost nothing once
    most of them lie beyond the margin (docs/model.md), every negative keeps a gradient in
    proportion to how near it is. anchor, positive, same: as for `triplet_hinge` (another
    rendition of the anchor's system is left out of its softmax).
    """
    if anchor.shape != positive.shape or anchor.ndim != 2 or len(anchor) < 2:
        raise ValueError(f"need two (B >= 2, D) batches of equal shape, got {anchor.shape}, "
                         f"{positive.shape}")
    logits = anchor.float() @ positive.float().T / temperature
    if same is not None:
        other = same[:, None] == same[None, :]
        other.fill_diagonal_(False)
        logits = logits.masked_fill(other, float("-inf"))
    target = torch.arange(len(anchor), device=anchor.device)
    return nn.functional.cross_entropy(logits, target)


class PassageLoss(nn.Module):
    """Eq. (1) with the sheet passage as anchor; `symmetric` adds the audio-anchored term.

    temperature > 0: InfoNCE at that temperature in place of Eq. (1) (margin and hardest unused).
    """

    def __init__(self, *, margin: float = 0.3, symmetric: bool = False, hardest: int = 0,
                 temperature: float = 0.0):
        super().__init__()
        self.margin = margin
        self.symmetric = symmetric
        self.hardest = hardest
        self.temperature = temperature

    def _term(self, anchor: torch.Tensor, positive: torch.Tensor,
              same: torch.Tensor | None) -> torch.Tensor:
        if self.temperature > 0:
            return info_nce(anchor, positive, temperature=self.temperature, same=same)
        return triplet_hinge(anchor, positive, margin=self.margin, same=same,
                             hardest=self.hardest)

    def forward(self, sheet: torch.Tensor, audio: torch.Tensor,
                same: torch.Tensor | None = None) -> torch.Tensor:
        loss = self._term(sheet, audio, same)
        if self.symmetric:
            loss = (loss + self._term(audio, sheet, same)) / 2
        return loss
