"""The CCA layer of Dorfer et al. (2018): a linear map per modality fitted after training.

Canonical correlation analysis finds projections of the two views' snippet vectors whose
coordinates are maximally correlated pair by pair. Fitted on training pairs, it is applied to
each snippet vector before the L2 norm (snippet model) or before the GRU (passage model).

Written here because the layer is a closed form of a few lines (regularised whitening + one
SVD, as in the paper's reference [28]); scikit-learn's CCA is an iterative PLS variant without
the covariance regularisation the method specifies, and would add a dependency for nothing.
"""

from __future__ import annotations

import torch
from torch import nn

REG = 1e-3  # added to the covariance diagonals (REFERENCE.md)


class CCAProjection(nn.Module):
    """x -> (x - mean) @ weight. The identity until `set` is called."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("weight", torch.eye(dim))

    def set(self, mean: torch.Tensor, weight: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.weight.copy_(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):  # a fitted map: keep it in fp32
            return (x.float() - self.mean) @ self.weight


def _inv_sqrt(cov: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag(values.clamp_min(1e-12).rsqrt()) @ vectors.T


def fit_cca(x: torch.Tensor, y: torch.Tensor, reg: float = REG):
    """Fit CCA on paired rows of x (N, D) and y (N, D).

    Returns (mean_x, W_x, mean_y, W_y, correlations): projected views (x - mean_x) @ W_x and
    (y - mean_y) @ W_y have identity (regularised) covariance and per-coordinate correlations
    `correlations`, in decreasing order.
    """
    if x.shape != y.shape or x.shape[0] < 2:
        raise ValueError(f"need paired rows of equal width, got {tuple(x.shape)}, {tuple(y.shape)}")
    x, y = x.double(), y.double()
    n, dim = x.shape
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    eye = torch.eye(dim, dtype=x.dtype)
    sxx = xc.T @ xc / (n - 1) + reg * eye
    syy = yc.T @ yc / (n - 1) + reg * eye
    sxy = xc.T @ yc / (n - 1)
    tx, ty = _inv_sqrt(sxx), _inv_sqrt(syy)
    u, s, vh = torch.linalg.svd(tx @ sxy @ ty)
    return mx.float(), (tx @ u).float(), my.float(), (ty @ vh.T).float(), s.float()
