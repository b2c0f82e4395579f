"""Cutting strips and spectrograms into snippet sequences."""

from __future__ import annotations

import numpy as np
import pytest

from scorelink.models.snippets import audio_snippets, halve_strip, n_snippets, sheet_snippets


def test_sheet_snippets_geometry():
    rng = np.random.default_rng(0)
    strip = rng.integers(0, 256, (160, 835)).astype(np.uint8)
    snippets = sheet_snippets(strip)
    ink = halve_strip(strip)  # (80, 418)
    assert ink.shape == (80, 418)
    assert snippets.shape == (6, 80, 90)  # 20 + 418 px covered by windows of 90 every 81
    assert np.all(snippets[0, :, :20] == 0)  # white left pad
    for k in range(6):
        for c in (0, 37, 89):
            x = k * 81 + c - 20
            expected = ink[:, x] if 0 <= x < 418 else np.zeros(80)
            np.testing.assert_allclose(snippets[k, :, c], expected)


def test_halving_averages_ink():
    strip = np.full((160, 4), 255, np.uint8)
    strip[0, 0] = 0  # one black pixel in the first 2x2 block
    ink = halve_strip(strip)
    assert ink.shape == (80, 2) and ink[0, 0] == pytest.approx(0.25) and ink.sum() == 0.25


def test_audio_snippets_geometry():
    spec = np.arange(92 * 45, dtype=np.float32).reshape(92, 45)
    snippets = audio_snippets(spec)
    assert snippets.shape == (3, 92, 20)
    np.testing.assert_array_equal(snippets[1], spec[:, 18:38])
    np.testing.assert_array_equal(snippets[2, :, :9], spec[:, 36:45])
    assert not snippets[2, :, 9:].any()  # zero padding at the end
    assert audio_snippets(np.ones((92, 3))).shape == (1, 92, 20)


def test_counts_and_bad_shapes():
    assert [n_snippets(n, size=20, hop=18) for n in (1, 20, 21, 38, 39)] == [1, 1, 2, 2, 3]
    with pytest.raises(ValueError):
        audio_snippets(np.zeros((80, 10)))
    with pytest.raises(ValueError):
        sheet_snippets(np.zeros((100, 835), np.uint8))
