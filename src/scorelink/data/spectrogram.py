"""The paper's 92-bin log-frequency spectrogram (madmom's LogarithmicFilteredSpectrogram recipe).

madmom is unmaintained, so the recipe is re-implemented here with numpy:

- 2,048-sample Hann frames (``np.hanning``), 20 frames per second. Frame ``i`` is centred on
  sample ``int(i * hop)`` with ``hop = 22050 / 20 = 1102.5`` samples (madmom's default origin,
  which truncates the fractional position), and signal outside ``[0, len)`` reads as zeros.
  A signal of ``n`` samples gives ``ceil(n / hop)`` frames.
- Magnitude of the real FFT, keeping the ``frame_size // 2 = 1024`` bins below Nyquist
  (bin ``k`` is ``k * sr / frame_size`` Hz).
- Triangular filters on a 16-bands-per-octave grid ``440 * 2**(k / 16)`` Hz restricted to
  [30, 6000] Hz. Every grid frequency goes to its nearest FFT bin, repeated bins are merged,
  and each run of three consecutive bins (start, centre, stop) makes one filter covering bins
  ``[start, stop)`` with its apex at ``centre``. Each filter is normalised to unit area.
  This gives 92 filters (``constants.N_BINS``).
- ``log10(1 + x)`` of the filtered magnitudes.

The result is ``(N_BINS, frames)`` float32, frequency first, as the networks consume it.
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

__all__ = [
    "FREF",
    "fft_frequencies",
    "filterbank_bins",
    "frame_centres",
    "log_filterbank",
    "log_frequencies",
    "n_frames",
    "spectrogram",
]

FREF = 440.0  # Hz, reference frequency of the log grid (A4)
_CHUNK = 1024  # frames per FFT batch: bounds memory (~20 MiB) for recordings of any length


def log_frequencies(
    *,
    bands_per_octave: int = BANDS_PER_OCTAVE,
    fmin: float = FMIN,
    fmax: float = FMAX,
    fref: float = FREF,
) -> np.ndarray:
    """Log-spaced grid frequencies in Hz.

    Returns a 1-D float64 array, ascending, of every ``fref * 2**(k / bands_per_octave)``
    (integer ``k``) with ``fmin <= f <= fmax``. With the defaults: 122 values, 31.32-5919.91 Hz.
    """
    lo = int(np.floor(np.log2(fmin / fref) * bands_per_octave))
    hi = int(np.ceil(np.log2(fmax / fref) * bands_per_octave))
    freqs = fref * 2.0 ** (np.arange(lo, hi + 1) / bands_per_octave)
    return freqs[(freqs >= fmin) & (freqs <= fmax)]


def fft_frequencies(*, sr: int = SAMPLE_RATE, frame_size: int = FRAME_SIZE) -> np.ndarray:
    """Centre frequencies in Hz of the magnitude bins kept, shape ``(frame_size // 2,)``.

    Bin ``k`` is at ``k * sr / frame_size`` Hz (0 to just below Nyquist; Nyquist is dropped).
    """
    return np.fft.fftfreq(frame_size, 1.0 / sr)[: frame_size // 2]


def filterbank_bins(
    *,
    sr: int = SAMPLE_RATE,
    frame_size: int = FRAME_SIZE,
    bands_per_octave: int = BANDS_PER_OCTAVE,
    fmin: float = FMIN,
    fmax: float = FMAX,
    fref: float = FREF,
) -> np.ndarray:
    """FFT-bin triples ``(start, centre, stop)`` of the triangular filters.

    Returns an int64 array of shape ``(n_filters, 3)`` (``(92, 3)`` with the defaults), indices
    into :func:`fft_frequencies`. Each :func:`log_frequencies` value is mapped to its nearest
    FFT bin (ties go to the upper bin), bins hit by several grid frequencies are merged into
    one, and consecutive triples of the remaining ascending bins form the filters.
    """
    bins_hz = fft_frequencies(sr=sr, frame_size=frame_size)
    freqs = log_frequencies(bands_per_octave=bands_per_octave, fmin=fmin, fmax=fmax, fref=fref)
    upper = np.clip(np.searchsorted(bins_hz, freqs), 1, len(bins_hz) - 1)
    lower_nearer = freqs - bins_hz[upper - 1] < bins_hz[upper] - freqs
    bins = np.unique(upper - lower_nearer.astype(np.int64))
    if len(bins) < 3:
        raise ValueError(f"{len(bins)} distinct FFT bins in [{fmin}, {fmax}] Hz; need at least 3")
    return np.stack([bins[:-2], bins[1:-1], bins[2:]], axis=1).astype(np.int64)


@lru_cache(maxsize=8)
def log_filterbank(
    *,
    sr: int = SAMPLE_RATE,
    frame_size: int = FRAME_SIZE,
    bands_per_octave: int = BANDS_PER_OCTAVE,
    fmin: float = FMIN,
    fmax: float = FMAX,
    fref: float = FREF,
) -> np.ndarray:
    """Matrix of unit-area triangular filters, shape ``(frame_size // 2, n_filters)``.

    ``(1024, 92)`` float32 with the defaults; multiply magnitude frames ``(T, 1024)`` by it.
    Filter ``j`` with bins ``(start, centre, stop)`` rises linearly from 0 at ``start`` to its
    apex at ``centre`` and falls towards 0 at ``stop`` (exclusive); its weights sum to 1.
    The result is cached and read-only.
    """
    triples = filterbank_bins(
        sr=sr,
        frame_size=frame_size,
        bands_per_octave=bands_per_octave,
        fmin=fmin,
        fmax=fmax,
        fref=fref,
    )
    bank = np.zeros((frame_size // 2, len(triples)), dtype=np.float64)
    for j, (start, centre, stop) in enumerate(triples.tolist()):
        if stop - start < 2:  # too narrow for a triangle (cannot happen after merging): one bin
            centre, stop = start, start + 1
        bank[start:centre, j] = np.linspace(0.0, 1.0, centre - start, endpoint=False)
        bank[centre:stop, j] = np.linspace(1.0, 0.0, stop - centre, endpoint=False)
    bank /= bank.sum(axis=0, keepdims=True)
    bank = bank.astype(np.float32)
    bank.flags.writeable = False
    return bank


def n_frames(n_samples: int, *, sr: int = SAMPLE_RATE, fps: int = FPS) -> int:
    """Number of frames for ``n_samples`` samples: ``ceil(n_samples / (sr / fps))``."""
    return -(-int(n_samples) * fps // sr)  # exact integer ceil


def frame_centres(count: int, *, sr: int = SAMPLE_RATE, fps: int = FPS) -> np.ndarray:
    """Sample index on which each of ``count`` frames is centred, int64 of shape ``(count,)``.

    Frame ``i`` is centred on ``int(i * sr / fps)`` (floor of its time in samples, as madmom):
    ``0, 1102, 2205, 3307, ...`` at 22,050 Hz and 20 fps. Frame ``i`` covers samples
    ``[centre - frame_size // 2, centre + frame_size // 2)``.
    """
    return np.arange(count, dtype=np.int64) * sr // fps


def spectrogram(audio: np.ndarray, *, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Log-filtered magnitude spectrogram of mono audio.

    Args:
        audio: 1-D floating-point samples (nominally in [-1, 1]) at ``SAMPLE_RATE`` Hz.
        sr: sample rate of ``audio`` in Hz; must equal ``SAMPLE_RATE`` (22,050).

    Returns:
        float32 array of shape ``(N_BINS, n_frames(len(audio)))`` = ``(92, T)``: row ``b`` is
        log-frequency band ``b`` (ascending), column ``t`` the frame centred at ``t / FPS``
        seconds; values are ``log10(1 + filtered magnitude)`` >= 0 (0 for silence).

    Raises:
        ValueError: ``sr`` is not ``SAMPLE_RATE``, or ``audio`` is not 1-D floating point.
    """
    if sr != SAMPLE_RATE:
        raise ValueError(f"expected audio at {SAMPLE_RATE} Hz, got {sr} Hz (resample first)")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (samples,), got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"expected floating-point audio in [-1, 1], got dtype {audio.dtype}")

    bank = log_filterbank()
    half = FRAME_SIZE // 2
    count = n_frames(len(audio))
    # Sample s of the audio sits at index s + half of `padded`, so the frame centred on c starts
    # at index c. The last centre is < len(audio), so len(audio) + FRAME_SIZE samples suffice.
    padded = np.zeros(len(audio) + FRAME_SIZE, dtype=np.float32)
    padded[half : half + len(audio)] = audio
    windows = np.lib.stride_tricks.sliding_window_view(padded, FRAME_SIZE)
    starts = frame_centres(count)
    hann = np.hanning(FRAME_SIZE).astype(np.float32)

    out = np.empty((N_BINS, count), dtype=np.float32)
    for a in range(0, count, _CHUNK):
        frames = windows[starts[a : a + _CHUNK]] * hann  # (chunk, FRAME_SIZE), a copy
        # numpy's FFT, not scipy.fft (the same pocketfft; float32 results agree to ~1e-6):
        # importing scipy.fft took a third of a `scorelink search` call's CPU time
        mag = np.abs(np.fft.rfft(frames, axis=1)[:, :half])
        out[:, a : a + _CHUNK] = (mag @ bank).T
    np.log10(1.0 + out, out=out)
    return out
