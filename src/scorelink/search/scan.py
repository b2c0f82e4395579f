"""Make a scanned page look like an engraved one before anything reads it.

`normalise_page` is applied to every page read from a file (`scorelink.search.pages.load_pages`:
the index, the search, the web page and the real-scan dataset all read pages there), so a model
sees scans the way it saw its training pages: white paper, black ink, nothing outside the page.

- Paper: each pixel is divided by the paper's brightness around it (the brightest level within
  BACKGROUND px, smoothed), so grey, off-white or unevenly lit paper (a shadow at the fold,
  curl) becomes white while ink stays dark. A white page is left exactly as it is.
- Borders: dark bands along the page edges (a scanner's black border, the edge of the next page)
  are whitened, from the outermost column or row that is dark along most of the page.
- Speckle: isolated specks of at most SPECKLE px are whitened (a staccato dot is larger).

Skew is not undone here: the staff analysis measures it and the strips are cut along it.
"""

from __future__ import annotations

import numpy as np

BACKGROUND = 41  # px at PAGE_WIDTH: wider than any beam or notehead cluster, narrower than a shadow
EDGE = 0.06  # share of the width (height) searched for border bands at each side
BORDER_DARK = 0.5  # a border column (row) is dark along at least this share of the page
BORDER_BAND = 4  # px: a border band at least this thick (staff lines are thinner) ...
EDGE_LINE = 0.015  # ... or a thinner line this close to the edge (a page edge, a scanner line)
SPECKLE = 6  # px: specks this small (halo included), touching no other ink, are scan noise
_DARK = 128
_INK = 224  # anything darker than this is ink (or a speck's halo), not paper


def normalise_page(page: np.ndarray) -> np.ndarray:
    """(H, W) uint8 page -> (H, W) uint8 page on white paper, borders and speckle removed."""
    from scipy.ndimage import maximum_filter, uniform_filter

    gray = np.asarray(page)
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"normalise_page takes a 2-D uint8 page, got {gray.dtype} {gray.shape}")
    if gray.size == 0:
        return gray.copy()
    out = _whiten_borders(gray)
    paper = maximum_filter(out, size=BACKGROUND, mode="nearest").astype(np.float32)
    paper = uniform_filter(paper, size=BACKGROUND, mode="nearest")
    level = np.maximum(paper, 1.0)
    scaled = np.where(paper >= 255.0, out, np.clip(np.rint(out * (255.0 / level)), 0, 255))
    out = scaled.astype(np.uint8)
    return _remove_speckle(out)


def _whiten_borders(gray: np.ndarray) -> np.ndarray:
    """Whiten from each page edge to the innermost border band near it: rows (columns) within
    EDGE of the edge, dark along BORDER_DARK of the page, in a band at least BORDER_BAND px
    thick or within EDGE_LINE of the edge. A staff line is dark along the page too, but thin,
    and never that close to the edge."""
    out = gray.copy()
    dark = gray < _DARK
    height, width = gray.shape
    for axis, size in ((0, width), (1, height)):  # columns, then rows
        solid = dark.mean(axis=axis) >= BORDER_DARK  # per column (axis 0) or per row (axis 1)
        reach = max(1, int(EDGE * size))
        line = max(1, int(EDGE_LINE * size))
        border = np.zeros(size, dtype=bool)
        for start, stop in _runs(solid):
            near_edge = start < line or stop > size - line
            if (stop - start >= BORDER_BAND or near_edge) and (
                    start < reach or stop > size - reach):
                border[start:stop] = True
        near = np.flatnonzero(border[:reach])
        far = np.flatnonzero(border[size - reach :])
        cut_a = int(near.max()) + 1 if len(near) else 0
        cut_b = size - reach + int(far.min()) if len(far) else size
        if axis == 0:
            out[:, :cut_a] = 255
            out[:, cut_b:] = 255
        else:
            out[:cut_a] = 255
            out[cut_b:] = 255
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True."""
    step = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(step == 1), np.flatnonzero(step == -1), strict=True))


def _remove_speckle(gray: np.ndarray) -> np.ndarray:
    from scipy.ndimage import label

    # Specks are found among all the ink, faint included: the anti-aliased edge of a glyph
    # joins a small dark fragment to its glyph, which is large.
    labels, count = label(gray < _INK, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return gray
    sizes = np.bincount(labels.ravel())
    small = sizes <= SPECKLE
    small[0] = False
    out = gray.copy()
    out[small[labels]] = 255
    return out
