"""Recordings: read any audio file as 22,050 Hz mono, and cut it into overlapping windows.

Systems last from about 4 to 25 s, so a recording is indexed with windows of several lengths
in that range; window starts fall on the audio snippet grid (multiples of 18 frames), so
overlapping windows share their snippets when embedded.
"""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from scorelink.constants import AUDIO_SNIPPET_HOP, FPS, SAMPLE_RATE
from scorelink.errors import AudioError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
WINDOW_SECONDS = (4.5, 7.2, 10.8, 16.2, 24.3)  # multiples of the 0.9 s snippet hop
MIN_SECONDS = 1.0
MAX_QUERY_SECONDS = 120.0  # longer queries must say which part (--start/--end)
MAX_RECORDING_HOURS = 12.0
SILENCE_PEAK = 1e-4  # full scale = 1.0


def audio_info(path: str | Path, *, name: str | None = None) -> tuple[float, int]:
    """(duration in seconds, sample rate) without decoding the file. Messages call the file
    `name` (default: its path), e.g. the name of an upload kept in a temporary file."""
    import soundfile

    path = Path(path)
    name = name or str(path)
    if not path.is_file():
        raise AudioError(f"audio file {name} does not exist")
    try:
        info = soundfile.info(str(path))
    except Exception as exc:  # noqa: BLE001 - libsndfile reports every format problem alike
        raise AudioError(f"cannot read {name} as audio ({_why(exc, path)})") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{name} holds no audio")
    return info.frames / info.samplerate, info.samplerate


def _why(exc: Exception, path: Path) -> str:
    """libsndfile's reason, without the path it names (which may be a temporary file's)."""
    return str(getattr(exc, "error_string", None) or exc).replace(str(path), "the file")


def read_audio(path: str | Path, *, start: float | None = None, end: float | None = None,
               max_seconds: float | None = None, name: str | None = None) -> np.ndarray:
    """Samples of [start, end) seconds of a file as float32 mono at SAMPLE_RATE.

    Only that span is decoded. Raises AudioError for unreadable, truncated, silent or too
    short input, a span that ends before it starts or is longer than `max_seconds`. Messages
    call the file `name` (default: its path).
    """
    import soundfile

    path = Path(path)
    name = name or str(path)
    if start is not None and end is not None and end <= start:
        raise AudioError(f"{name}: the end ({end:g} s) must be after the start ({start:g} s)")
    duration, sr = audio_info(path, name=name)
    a = 0.0 if start is None else float(start)
    b = duration if end is None else min(float(end), duration)
    if a < 0 or a >= duration:
        raise AudioError(f"{name}: start {a:.1f} s is outside the recording (0-{duration:.1f} s)")
    if b - a < MIN_SECONDS:
        raise AudioError(f"{name}: {b - a:.2f} s of audio; at least {MIN_SECONDS:.0f} s needed")
    if max_seconds is not None and b - a > max_seconds:
        raise AudioError(f"{name}: {b - a:.0f} s is too long for one query (at most "
                         f"{max_seconds:.0f} s); choose a part with start and end "
                         "(--start/--end)")
    try:
        audio, sr = soundfile.read(str(path), start=int(a * sr), stop=int(b * sr),
                                   dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
        raise AudioError(f"cannot decode {name} ({_why(exc, path)})") from exc
    if len(audio) < MIN_SECONDS * sr:
        raise AudioError(f"{name}: only {len(audio) / sr:.2f} s could be decoded (truncated?)")
    mono = audio.mean(axis=1)
    if not np.isfinite(mono).all():
        raise AudioError(f"{name}: the audio holds invalid samples")
    if np.abs(mono).max() < SILENCE_PEAK:
        raise AudioError(f"{name}: the audio is silent")
    if sr != SAMPLE_RATE:
        from scipy.signal import resample_poly  # slow to import: only when needed

        g = gcd(int(sr), SAMPLE_RATE)
        mono = resample_poly(mono, SAMPLE_RATE // g, int(sr) // g).astype(np.float32)
    return mono


def windows(n_frames: int, *, seconds: tuple[float, ...] = WINDOW_SECONDS) -> list[tuple[int, int]]:
    """[start, end) frame spans of overlapping windows of each length (hop: a quarter of it,
    on the snippet grid). A recording shorter than a window length gets one window of its own
    length for that size; every recording gets at least one window."""
    spans: set[tuple[int, int]] = set()
    for s in seconds:
        length = int(round(s * FPS))
        hop = max(AUDIO_SNIPPET_HOP, (length // 4) // AUDIO_SNIPPET_HOP * AUDIO_SNIPPET_HOP)
        if n_frames <= length:
            spans.add((0, n_frames))
            continue
        last = n_frames - length
        starts = list(range(0, last + 1, hop))
        if starts[-1] != last:  # cover the end too (off the grid: a few more snippets)
            starts.append(last)
        spans.update((a, min(a + length, n_frames)) for a in starts)
    return sorted(spans)
