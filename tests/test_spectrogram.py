"""The spectrogram against its definition (92 log bins, 20 fps, log10(1 + x))."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import chirp

from scorelink.constants import FPS, N_BINS, SAMPLE_RATE
from scorelink.data.spectrogram import (
    filterbank_bins,
    log_filterbank,
    n_frames,
    spectrogram,
)


def _bands_from_definition():
    """Filter (start, centre, stop) bins computed from scratch, with a plain loop."""
    spacing = SAMPLE_RATE / 2048  # Hz per FFT bin
    freqs, k = [], -200
    while True:
        f = 440.0 * 2 ** (k / 16)
        if f > 6000:
            break
        if f >= 30:
            freqs.append(f)
        k += 1
    bins = sorted({int(round(f / spacing)) for f in freqs})
    return [(bins[i], bins[i + 1], bins[i + 2]) for i in range(len(bins) - 2)], spacing


def test_bin_count_and_band_edges():
    expected, spacing = _bands_from_definition()
    got = [tuple(int(v) for v in row) for row in filterbank_bins()]
    assert len(got) == N_BINS == 92
    assert got == expected
    # the lowest filter starts near 30 Hz, the highest ends just below 6 kHz
    assert got[0][0] * spacing == pytest.approx(32.3, abs=0.1)
    assert got[-1][2] * spacing == pytest.approx(5921.6, abs=0.1)


def test_filters_have_unit_area():
    bank = log_filterbank()
    assert bank.shape == (1024, N_BINS)
    np.testing.assert_allclose(bank.sum(axis=0), 1.0, rtol=1e-5)
    assert (bank >= 0).all()


def test_frame_count_and_rate():
    assert spectrogram(np.zeros(3 * SAMPLE_RATE)).shape == (N_BINS, 3 * FPS)
    for n in (1, 1102, 1103, 12345, 99999):
        expected = int(np.ceil(n / (SAMPLE_RATE / FPS)))
        assert spectrogram(np.zeros(n)).shape[1] == n_frames(n) == expected


def test_sine_peaks_in_its_band():
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    spec = spectrogram(0.5 * np.sin(2 * np.pi * 440 * t))
    centres = filterbank_bins()[:, 1] * SAMPLE_RATE / 2048
    peak = np.argmax(spec[:, 10:-10].mean(axis=1))
    assert peak == np.argmin(np.abs(centres - 440))


def test_chirp_rises():
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    spec = spectrogram(0.5 * chirp(t, f0=100, t1=4, f1=4000, method="logarithmic"))
    peaks = np.argmax(spec[:, 2:-2], axis=0)
    assert np.all(np.diff(peaks) >= 0)
    assert peaks[-1] - peaks[0] > 60  # 100 Hz -> 4 kHz is more than five octaves


def test_silence_dtype_and_range():
    spec = spectrogram(np.zeros(SAMPLE_RATE))
    assert spec.dtype == np.float32 and not spec.any()
    noisy = spectrogram(np.random.default_rng(0).uniform(-1, 1, SAMPLE_RATE))
    assert (noisy >= 0).all()


def test_rejects_other_rates_and_stereo():
    with pytest.raises(ValueError, match="22050"):
        spectrogram(np.zeros(1000), sr=44100)
    with pytest.raises(ValueError, match="mono"):
        spectrogram(np.zeros((2, 1000)))
