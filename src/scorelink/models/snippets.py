"""Cut passages into the snippet sequences the encoders read (numpy; no torch needed).

Sheet: the 160 px strip is halved to 80 px, padded with 20 px of white on the left and white on
the right, and cut into 80 x 90 snippets every 81 px. Audio: 92 x 20 spectrogram snippets (1 s)
every 18 frames, zero-padded at the end. Sheet pixels become ink in [0, 1] (white = 0), so white
padding and zero padding are the same value.
"""

from __future__ import annotations

import math

import numpy as np

from scorelink.constants import (
    AUDIO_SNIPPET_FRAMES,
    AUDIO_SNIPPET_HOP,
    N_BINS,
    SHEET_LEFT_PAD,
    SHEET_SCALE,
    SHEET_SNIPPET_HEIGHT,
    SHEET_SNIPPET_HOP,
    SHEET_SNIPPET_WIDTH,
    STRIP_HEIGHT,
)


def n_snippets(length: int, *, size: int, hop: int) -> int:
    """Windows of `size` every `hop` needed to cover `length` (at least one)."""
    return max(1, math.ceil(max(length - size, 0) / hop) + 1)


def halve_strip(strip: np.ndarray) -> np.ndarray:
    """(STRIP_HEIGHT, W) uint8 page pixels -> (80, ceil(W / 2)) float32 ink in [0, 1]."""
    if strip.ndim != 2 or strip.shape[0] != STRIP_HEIGHT:
        raise ValueError(f"expected a ({STRIP_HEIGHT}, width) strip, got {strip.shape}")
    ink = 1.0 - strip.astype(np.float32) / 255.0
    if ink.shape[1] % SHEET_SCALE:
        ink = np.pad(ink, ((0, 0), (0, SHEET_SCALE - ink.shape[1] % SHEET_SCALE)))
    h, w = ink.shape
    return ink.reshape(h // SHEET_SCALE, SHEET_SCALE, w // SHEET_SCALE, SHEET_SCALE).mean((1, 3))


def sheet_snippets(strip: np.ndarray) -> np.ndarray:
    """(STRIP_HEIGHT, W) uint8 strip -> (n, 80, 90) float32 snippets, left to right."""
    ink = halve_strip(strip)
    ink = np.pad(ink, ((0, 0), (SHEET_LEFT_PAD, 0)))
    n = n_snippets(ink.shape[1], size=SHEET_SNIPPET_WIDTH, hop=SHEET_SNIPPET_HOP)
    width = (n - 1) * SHEET_SNIPPET_HOP + SHEET_SNIPPET_WIDTH
    ink = np.pad(ink, ((0, 0), (0, width - ink.shape[1])))
    starts = np.arange(n) * SHEET_SNIPPET_HOP
    cols = starts[:, None] + np.arange(SHEET_SNIPPET_WIDTH)  # (n, 90)
    out = ink[:, cols].transpose(1, 0, 2)  # (n, 80, 90)
    assert out.shape[1:] == (SHEET_SNIPPET_HEIGHT, SHEET_SNIPPET_WIDTH)
    return np.ascontiguousarray(out)


def audio_snippets(spec: np.ndarray) -> np.ndarray:
    """(92, T) spectrogram -> (n, 92, 20) float32 snippets in time order."""
    if spec.ndim != 2 or spec.shape[0] != N_BINS:
        raise ValueError(f"expected a ({N_BINS}, frames) spectrogram, got {spec.shape}")
    spec = np.asarray(spec, dtype=np.float32)
    n = n_snippets(spec.shape[1], size=AUDIO_SNIPPET_FRAMES, hop=AUDIO_SNIPPET_HOP)
    length = (n - 1) * AUDIO_SNIPPET_HOP + AUDIO_SNIPPET_FRAMES
    spec = np.pad(spec, ((0, 0), (0, length - spec.shape[1])))
    cols = np.arange(n)[:, None] * AUDIO_SNIPPET_HOP + np.arange(AUDIO_SNIPPET_FRAMES)
    return np.ascontiguousarray(spec[:, cols].transpose(1, 0, 2))


def sheet_window(strip: np.ndarray, x: float, *, scale: float = 1.0, shift: int = 0) -> np.ndarray:
    """(80, 90) float32 ink: the 160 x 180 px of the strip centred on column x, halved.

    scale > 1 zooms out (takes a larger region), shift moves the window down by `shift` px;
    both are the snippet model's augmentation. White beyond the strip.
    """
    from PIL import Image

    h = int(round(STRIP_HEIGHT * scale))
    w = int(round(2 * SHEET_SNIPPET_WIDTH * scale))
    top = (STRIP_HEIGHT - h) // 2 + shift
    left = int(round(x)) - w // 2
    region = np.full((h, w), 255, dtype=np.uint8)
    ys = slice(max(top, 0), min(top + h, strip.shape[0]))
    xs = slice(max(left, 0), min(left + w, strip.shape[1]))
    if ys.stop > ys.start and xs.stop > xs.start:  # else the window lies beyond the strip
        region[ys.start - top : ys.stop - top, xs.start - left : xs.stop - left] = strip[ys, xs]
    if (h, w) != (STRIP_HEIGHT, 2 * SHEET_SNIPPET_WIDTH):
        size = (2 * SHEET_SNIPPET_WIDTH, STRIP_HEIGHT)
        region = np.asarray(Image.fromarray(region).resize(size, Image.BILINEAR))
    return halve_strip(region)


def audio_window(spec: np.ndarray, frame: int) -> np.ndarray:
    """(92, 20) float32: the spectrogram frames centred on `frame`, zeros beyond the ends."""
    half = AUDIO_SNIPPET_FRAMES // 2
    out = np.zeros((spec.shape[0], AUDIO_SNIPPET_FRAMES), dtype=np.float32)
    a, b = max(frame - half, 0), min(frame + half, spec.shape[1])
    if b > a:
        out[:, a - (frame - half) : b - (frame - half)] = spec[:, a:b]
    return out
