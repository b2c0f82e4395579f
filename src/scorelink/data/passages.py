"""Passages: one system of the page <-> the span of audio that plays it.

Sheet side: a STRIP_HEIGHT-px window of the page centred on the system's staff lines.
Audio side: from the first onset of the system to the first onset of the next system played
(the last one to the end of its last note). Repeats are followed as performed, so a system
played twice gives two passages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scorelink.constants import FPS, PAGE_WIDTH, STRIP_HEIGHT
from scorelink.data.engrave import Engraving, System


@dataclass(frozen=True)
class Span:
    """One time a system sounds. Times in seconds at the score tempo."""

    system: int  # index into Engraving.systems
    occurrence: int  # 0 for the first time this system sounds, 1 for the second, ...
    start: float
    end: float
    first: int  # performed notes [first, stop) of Engraving.performance
    stop: int


def spans(engraving: Engraving) -> list[Span]:
    """Cut the performance into system spans, in time order, without overlap.

    A new span starts where the performance moves to another system, or jumps back to an
    earlier measure of the same system (a repeat that begins inside the system).
    """
    perf = engraving.performance
    notes = engraving.notes
    system = np.array([notes[i].system for i in perf.note])
    measure = np.array([notes[i].measure for i in perf.note])
    # Notes of one chord may be listed in any order; compare measures at distinct onsets only.
    breaks = [0]
    for k in range(1, len(perf)):
        new_system = system[k] != system[k - 1]
        jump_back = measure[k] < measure[k - 1] and perf.onset[k] > perf.onset[k - 1]
        if new_system or jump_back:
            breaks.append(k)
    breaks.append(len(perf))

    result: list[Span] = []
    seen: dict[int, int] = {}
    for a, b in zip(breaks[:-1], breaks[1:], strict=True):
        s = int(system[a])
        end = float(perf.onset[b]) if b < len(perf) else float(perf.offset.max())
        result.append(Span(s, seen.get(s, 0), float(perf.onset[a]), end, a, b))
        seen[s] = seen.get(s, 0) + 1
    return result


def strip(page: np.ndarray, system: System) -> np.ndarray:
    """(STRIP_HEIGHT, PAGE_WIDTH) uint8 window centred on the system; white beyond the page."""
    top = int(round(system.centre)) - STRIP_HEIGHT // 2
    out = np.full((STRIP_HEIGHT, PAGE_WIDTH), 255, dtype=np.uint8)
    a, b = max(top, 0), min(top + STRIP_HEIGHT, page.shape[0])
    out[a - top : b - top] = page[a:b, :PAGE_WIDTH]
    return out


def strip_top(system: System) -> int:
    """Page y of the strip's first row (strip y = page y - strip_top)."""
    return int(round(system.centre)) - STRIP_HEIGHT // 2


def frame_of(seconds: np.ndarray | float) -> np.ndarray | int:
    """Spectrogram frame whose centre is nearest to a time in seconds."""
    return np.round(np.asarray(seconds) * FPS).astype(np.int64)
