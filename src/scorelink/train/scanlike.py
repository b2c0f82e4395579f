"""Sheet strips made to look scanned: a training augmentation (`scan_augment`, off by default).

Engraved training strips are clean anti-aliased renderings; a scan read by the search
(`scorelink.search.pages.load_pages`) is a 1-bit image at another resolution, resampled to
PAGE_WIDTH, with paper grain, specks, strokes thickened or thinned by the scanner's threshold,
and skew left over after deskewing. `normalise_page` makes the paper white and removes borders
and small specks; what it cannot undo is imitated here, in the order a scan makes it:

1. the strip turns by a fraction of a degree (skew left after deskewing, curl);
2. at twice the resolution it is blurred (the scanner's optics) and, for most strips,
   thresholded to 1 bit at a random level (strokes come out thicker or thinner, edges jagged),
   and dark specks fall on it;
3. it is averaged back to its size (the resampling to PAGE_WIDTH) and its paper and ink are set
   to random levels near white and black (what normalisation leaves of grey paper).
"""

from __future__ import annotations

import numpy as np

SCAN_SKEW = 0.4  # degrees either way
SCAN_BLUR = (0.3, 1.0)  # px at twice the resolution, Gaussian sigma
SCAN_ONE_BIT = 0.7  # share of strips thresholded to 1 bit ...
SCAN_THRESHOLD = (0.45, 0.65)  # ... at this level (0 black, 1 white): ink thicker when higher
SCAN_SPECKS = 4e-4  # at most this share of (double-resolution) pixels get a dark speck
SCAN_PAPER = (0.88, 1.0)  # paper level after normalisation
SCAN_INK = (0.0, 0.2)  # ink level


def scan_like(strip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W) uint8 strip -> (H, W) uint8 strip as if cut from a scanned page."""
    from scipy.ndimage import gaussian_filter, rotate

    strip = np.asarray(strip)
    if strip.ndim != 2 or strip.dtype != np.uint8:
        raise ValueError(f"scan_like takes a 2-D uint8 strip, got {strip.dtype} {strip.shape}")
    height, width = strip.shape
    x = strip.astype(np.float32) / 255  # 1 = paper
    x = rotate(x, rng.uniform(-SCAN_SKEW, SCAN_SKEW), reshape=False, order=1, mode="constant",
               cval=1.0)
    x = np.repeat(np.repeat(x, 2, axis=0), 2, axis=1)  # twice the resolution
    x = gaussian_filter(x, rng.uniform(*SCAN_BLUR))
    if rng.random() < SCAN_ONE_BIT:
        x = (x > rng.uniform(*SCAN_THRESHOLD)).astype(np.float32)
    specks = int(rng.uniform(0, SCAN_SPECKS) * x.size)
    ys, xs = rng.integers(0, x.shape[0] - 1, specks), rng.integers(0, x.shape[1] - 1, specks)
    for dy in (0, 1):  # 2 x 2 specks, a pixel at the strip's own resolution
        for dx in (0, 1):
            x[ys + dy, xs + dx] = 0.0
    x = x.reshape(height, 2, width, 2).mean(axis=(1, 3))
    paper, ink = rng.uniform(*SCAN_PAPER), rng.uniform(*SCAN_INK)
    return np.clip(np.rint((ink + (paper - ink) * x) * 255), 0, 255).astype(np.uint8)
