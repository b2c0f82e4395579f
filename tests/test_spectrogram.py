"""The spectrogram against its definition (92 log bins, 20 fps, unit-area filters, log10(1 + x))."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import chirp

from scorelink.constants import FPS, FRAME_SIZE, N_BINS, SAMPLE_RATE
from scorelink.data import spectrogram as spec_module
from scorelink.data.spectrogram import (
    fft_frequencies,
    filterbank_bins,
    frame_centres,
    log_filterbank,
    log_frequencies,
    n_frames,
    spectrogram,
)

HOP = SAMPLE_RATE / FPS  # 1102.5 samples
SPACING = SAMPLE_RATE / 2048  # Hz per FFT bin


def _grid_from_definition() -> list[float]:
    """440 * 2**(k / 16) for every integer k that lands in [30, 6000] Hz, with a plain loop."""
    freqs, k = [], -200
    while (f := 440.0 * 2 ** (k / 16)) <= 6000:
        if f >= 30:
            freqs.append(f)
        k += 1
    return freqs


def _bands_from_definition() -> list[tuple[int, int, int]]:
    """(start, centre, stop) bins: nearest FFT bin of each grid frequency, duplicates merged."""
    bins = sorted({round(f / SPACING) for f in _grid_from_definition()})
    return [(bins[i], bins[i + 1], bins[i + 2]) for i in range(len(bins) - 2)]


def _reference_spectrogram(audio: np.ndarray) -> np.ndarray:
    """A slow, loop-by-loop version of the recipe (madmom's signal_frame semantics)."""
    bands = _bands_from_definition()
    hann = np.hanning(FRAME_SIZE)
    count = math.ceil(len(audio) / HOP)
    out = np.zeros((len(bands), count))
    for i in range(count):
        centre = int(i * HOP)
        frame = np.zeros(FRAME_SIZE)
        for j in range(FRAME_SIZE):
            s = centre - FRAME_SIZE // 2 + j
            if 0 <= s < len(audio):
                frame[j] = audio[s]
        mag = np.abs(np.fft.fft(frame * hann))[: FRAME_SIZE // 2]
        for b, (start, centre_bin, stop) in enumerate(bands):
            tri = np.zeros(FRAME_SIZE // 2)
            for k in range(start, stop):
                tri[k] = (
                    (k - start) / (centre_bin - start)
                    if k < centre_bin
                    else 1 - (k - centre_bin) / (stop - centre_bin)
                )
            out[b, i] = np.log10(1 + mag @ tri / tri.sum())
    return out


def test_bin_count():
    assert len(filterbank_bins()) == N_BINS == 92
    assert log_filterbank().shape == (FRAME_SIZE // 2, N_BINS) == (1024, 92)
    assert spectrogram(np.zeros(SAMPLE_RATE)).shape[0] == N_BINS


def test_band_edges_match_definition():
    np.testing.assert_allclose(log_frequencies(), _grid_from_definition(), rtol=1e-12)
    expected = _bands_from_definition()
    got = [tuple(row) for row in filterbank_bins().tolist()]
    assert got == expected
    np.testing.assert_allclose(fft_frequencies(), np.arange(1024) * SPACING)
    hz = fft_frequencies()[filterbank_bins()]  # (92, 3) Hz of start, centre, stop
    for band in (0, -1):
        np.testing.assert_allclose(hz[band], np.array(expected[band]) * SPACING)
    # lowest filter starts at bin 3 (32.3 Hz), highest ends at bin 550 (5921.6 Hz)
    assert expected[0] == (3, 4, 5) and expected[-1] == (504, 527, 550)
    assert hz[0, 0] == pytest.approx(32.30, abs=0.01)
    assert hz[-1, 2] == pytest.approx(5921.63, abs=0.01)


def test_filters_are_unit_area_triangles():
    bank = log_filterbank()
    assert bank.dtype == np.float32 and (bank >= 0).all()
    np.testing.assert_allclose(bank.sum(axis=0), 1.0, rtol=1e-6)
    for j, (start, centre, stop) in enumerate(filterbank_bins().tolist()):
        support = np.flatnonzero(bank[:, j])
        assert support[0] == start + 1 and support[-1] == stop - 1  # zero at start, < stop
        assert np.argmax(bank[:, j]) == centre
    assert log_filterbank() is log_filterbank() and not log_filterbank().flags.writeable


def test_frame_count():
    assert spectrogram(np.zeros(int(3.0 * SAMPLE_RATE))).shape == (N_BINS, 60)
    for n in (0, 1, 1102, 1103, 2205, 2206, 12345, 99_999):
        expected = math.ceil(n / HOP)
        assert n_frames(n) == expected
        assert spectrogram(np.zeros(n)).shape == (N_BINS, expected)


def test_frame_placement():
    """Frame i is centred on sample int(i * 1102.5); an impulse shows which window sees it."""
    np.testing.assert_array_equal(frame_centres(5), [0, 1102, 2205, 3307, 4410])
    hann = np.hanning(FRAME_SIZE)
    for i, offset in ((3, 500), (3, -700), (4, 1023), (0, 0), (1, -1)):
        audio = np.zeros(SAMPLE_RATE)
        audio[int(i * HOP) + offset] = 1.0
        spec = spectrogram(audio)
        # a unit impulse has a flat magnitude spectrum of height window[position]; unit-area
        # filters keep that height
        np.testing.assert_allclose(10.0 ** spec[:, i] - 1, hann[1024 + offset], rtol=1e-5)


def test_matches_slow_reference():
    rng = np.random.default_rng(1)
    audio = rng.uniform(-1, 1, 9000)  # 9 frames, both edges padded
    np.testing.assert_allclose(spectrogram(audio), _reference_spectrogram(audio), atol=2e-5)


def test_chunking_does_not_change_result(monkeypatch):
    audio = np.random.default_rng(2).standard_normal(5 * SAMPLE_RATE)
    whole = spectrogram(audio)
    monkeypatch.setattr(spec_module, "_CHUNK", 7)
    np.testing.assert_allclose(spectrogram(audio), whole, rtol=1e-6)  # BLAS may reorder sums


def test_sine_peaks_in_its_band():
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    spec = spectrogram(0.5 * np.sin(2 * np.pi * 440 * t))
    centres_hz = fft_frequencies()[filterbank_bins()[:, 1]]
    peak = np.argmax(spec[:, 2:-2], axis=0)  # every frame away from the edges
    assert (peak == np.argmin(np.abs(centres_hz - 440))).all()


def test_chirp_peak_rises():
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    spec = spectrogram(0.5 * chirp(t, f0=100, t1=4, f1=4000, method="logarithmic"))
    peaks = np.argmax(spec[:, 2:-2], axis=0)
    assert np.all(np.diff(peaks) >= 0)
    assert peaks[-1] - peaks[0] > 60  # 100 Hz -> 4 kHz is more than five octaves of 16 bands


def test_silence_dtype_and_range():
    silence = spectrogram(np.zeros(SAMPLE_RATE))
    assert silence.dtype == np.float32 and not silence.any()
    noisy = spectrogram(np.random.default_rng(0).uniform(-1, 1, SAMPLE_RATE).astype(np.float32))
    assert noisy.dtype == np.float32 and (noisy >= 0).all() and noisy.flags.c_contiguous


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="22050"):
        spectrogram(np.zeros(1000), sr=44_100)
    with pytest.raises(ValueError, match="mono"):
        spectrogram(np.zeros((2, 1000)))
    with pytest.raises(ValueError, match="floating"):
        spectrogram(np.zeros(1000, dtype=np.int16))
