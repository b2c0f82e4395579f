"""Benchmark: Verovio engraving with the notes' pitches read from its MEI at once, against
asking Verovio note by note (what `engrave` did before), side by side.

    python benchmarks/engrave_speed.py ../shared/data/beethoven/kern/sonata23-1.krn

Each score is engraved twice in a row by `scorelink.data.engrave.engrave`: once as it is
(`mei_pitch.spelled_pitches` reads the pitches, Verovio is asked only for the notes it leaves
out), once with the reader leaving every note out, so that every pitch is asked of
`getMIDIValuesForElement`. The two performances (notes, onsets, offsets, pitches) must be
identical. Prints a Markdown table of CPU seconds (process time, which the load of other
processes on the machine barely changes) and wall-clock seconds.
"""

from __future__ import annotations

import argparse
import time
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import numpy as np
from _machine import machine  # benchmarks/_machine.py

from scorelink.data import engrave as engraving
from scorelink.data import mei_pitch


def timed(data: str, *, every_note: bool) -> tuple[float, float, engraving.Performance]:
    """(CPU s, wall s, performance) of one engraving."""
    reader = mei_pitch.spelled_pitches
    if every_note:
        mei_pitch.spelled_pitches = lambda root: ({}, set())
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        eng = engraving.engrave(data)
        return time.process_time() - cpu, time.perf_counter() - wall, eng.performance
    finally:
        mei_pitch.spelled_pitches = reader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scores", nargs="+", type=Path, help="kern/MusicXML/MEI files")
    args = parser.parse_args()
    print(f"{date.today()}, {machine()}\n")
    print("| score | notes played | asked of Verovio | note by note: CPU s (wall) | "
          "read at once: CPU s (wall) | CPU ratio |")
    print("|---|---|---|---|---|---|")
    for path in args.scores:
        data = path.read_text()
        slow_cpu, slow_wall, slow = timed(data, every_note=True)
        fast_cpu, fast_wall, fast = timed(data, every_note=False)
        for field in ("note", "onset", "offset", "pitch"):
            if not np.array_equal(getattr(slow, field), getattr(fast, field)):
                raise SystemExit(f"{path.name}: the performances differ in {field}")
        _, unsure = mei_pitch.spelled_pitches(ET.fromstring(engraving._toolkit().getMEI()))
        print(f"| {path.name} | {len(fast)} | {len(unsure)} notes | {slow_cpu:.1f} "
              f"({slow_wall:.1f}) | {fast_cpu:.1f} ({fast_wall:.1f}) | "
              f"{slow_cpu / fast_cpu:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
