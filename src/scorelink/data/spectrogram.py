"""The paper's 92-bin log-frequency spectrogram (madmom's LogarithmicFilteredSpectrogram recipe).

madmom is unmaintained, so the recipe is written here with numpy: 2048-sample Hann frames at 20
frames per second (frames centred on their time, zero padding at the edges), magnitude STFT,
triangular filters on a 16-bands-per-octave grid from 30 Hz to 6 kHz (A4 = 440 Hz), bands that
fall on the same FFT bin merged, each filter normalised to unit area, then log10(1 + x).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from scorelink.constants import (
    BANDS_PER_OCTAVE,
    FMAX,
    FMIN,
    FPS,
    FRAME_SIZE,
    N_BINS,
    SAMPLE_RATE,
)

FREF = 440.0  # Hz, the log grid goes through A4
_CHUNK = 4096  # frames per FFT batch (bounds memory for long recordings)


def log_frequencies(
    *, bands_per_octave: int = BANDS_PER_OCTAVE, fmin: float = FMIN, fmax: float = FMAX,
    fref: float = FREF,
) -> np.ndarray:
    """Centre frequencies (Hz) fref * 2**(k / bands_per_octave) that lie in [fmin, fmax]."""
    lo = np.floor(np.log2(fmin / fref) * bands_per_octave)
    hi = np.ceil(np.log2(fmax / fref) * bands_per_octave)
    freqs = fref * 2.0 ** (np.arange(lo, hi + 1) / bands_per_octave)
    return freqs[(freqs >= fmin) & (freqs <= fmax)]


def fft_frequencies(*, sr: int = SAMPLE_RATE, frame_size: int = FRAME_SIZE) -> np.ndarray:
    """Frequencies (Hz) of the frame_size // 2 magnitude bins we keep."""
    return np.fft.fftfreq(frame_size, 1.0 / sr)[: frame_size // 2]


def filterbank_bins(*, sr: int = SAMPLE_RATE, frame_size: int = FRAME_SIZE) -> np.ndarray:
    """(n_filters, 3) FFT-bin triples (start, centre, stop) of the triangular filters.

    Each log frequency goes to its nearest FFT bin; repeated bins are merged, and every three
    consecutive bins make one filter.
    """
    bins_hz = fft_frequencies(sr=sr, frame_size=frame_size)
    freqs = log_frequencies()
    idx = np.clip(np.searchsorted(bins_hz, freqs), 1, len(bins_hz) - 1)
    nearer_left = freqs - bins_hz[idx - 1] < bins_hz[idx] - freqs
    idx = np.unique(idx - nearer_left)
    return np.stack([idx[:-2], idx[1:-1], idx[2:]], axis=1)


@lru_cache(maxsize=4)
def log_filterbank(*, sr: int = SAMPLE_RATE, frame_size: int = FRAME_SIZE) -> np.ndarray:
    """(frame_size // 2, n_filters) float32 matrix of unit-area triangular filters."""
    triples = filterbank_bins(sr=sr, frame_size=frame_size)
    bank = np.zeros((frame_size // 2, len(triples)), dtype=np.float64)
    for j, (start, centre, stop) in enumerate(triples):
        if stop - start < 2:  # too narrow for a triangle: one bin
            centre, stop = start, start + 1
        bank[start:centre, j] = np.linspace(0, 1, centre - start, endpoint=False)
        bank[centre:stop, j] = np.linspace(1, 0, stop - centre, endpoint=False)
        bank[:, j] /= bank[:, j].sum()
    bank.flags.writeable = False
    return bank.astype(np.float32)


def n_frames(n_samples: int, *, sr: int = SAMPLE_RATE) -> int:
    """Frames for a signal: one every 1/FPS s, the last one starting inside the signal."""
    return int(np.ceil(n_samples / (sr / FPS)))


def spectrogram(audio: np.ndarray, *, sr: int = SAMPLE_RATE) -> np.ndarray:
    """(N_BINS, frames) float32 log-filtered magnitude spectrogram of mono audio in [-1, 1]."""
    audio = np.asarray(audio, dtype=np.float32)
    if sr != SAMPLE_RATE:
        raise ValueError(f"expected audio at {SAMPLE_RATE} Hz, got {sr} Hz (resample first)")
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (samples,), got {audio.shape}")
    bank = log_filterbank()
    assert bank.shape[1] == N_BINS
    count = n_frames(len(audio))
    half = FRAME_SIZE // 2
    padded = np.concatenate([np.zeros(half, np.float32), audio, np.zeros(FRAME_SIZE, np.float32)])
    # frame i is centred on sample round(i * hop), i.e. starts at that index of `padded`
    starts = np.round(np.arange(count) * (sr / FPS)).astype(np.int64)
    window = np.hanning(FRAME_SIZE).astype(np.float32)
    out = np.empty((count, N_BINS), dtype=np.float32)
    offsets = np.arange(FRAME_SIZE)
    for a in range(0, count, _CHUNK):
        frames = padded[starts[a : a + _CHUNK, None] + offsets] * window
        mag = np.abs(np.fft.rfft(frames, axis=1)[:, :half]).astype(np.float32)
        out[a : a + _CHUNK] = mag @ bank
    return np.log10(1.0 + out).T.copy()
