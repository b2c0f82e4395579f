"""Notehead targets for real scans, so that the note reader learns from printed pages too.

A scan's systems come with their written notes (the real-scan corpus's kern encodings, measure
by measure) but not with where on the strip each notehead sits. The written chords are in time
order, and on a printed system time runs left to right, so the reader itself can place them: a
monotonic alignment of the system's chords to the strip's output columns, scored by the reader's
probability of each written pitch there (`place`). Where the reader finds most of a system's
written notes at the places the alignment gives, those places become the system's targets
(`scan_systems`); a system the reader cannot yet explain is left out, rather than taught with
guessed places. The targets are made again with the model being trained at every epoch, so what
it learns from engravings brings more scans in.

Hand-written: the alignment is a small dynamic programme over (chord, column) whose score no
sequence library computes (a set of pitches against a column's 88 probabilities); CTC would
need one symbol per frame, and a chord is several at once.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter1d

from scorelink.models.reader import LOWEST, PITCHES, READER_STRIDE, NoteReader, probabilities

MIN_GAP = 1  # output columns between successive chords' heads (4 px)
FOUND = 0.3  # a placed note the reader gives at least this probability is found there
KEEP_FOUND = 0.6  # a system is a training system when this share of its notes is found
EPS = 1e-3


def written_chords(measures: list, system: int) -> list[np.ndarray]:
    """The MIDI pitches struck together, in time order, of one printed system's measures
    (`data.humdrum.Measure`s). Grace notes are left out: their small heads sit before the beat
    their time stamp gives."""
    at: dict[Fraction, list[int]] = {}
    now = Fraction(0)
    for m in measures:
        if m.system == system:
            for n in m.notes:
                if not n.grace and LOWEST <= n.pitch < LOWEST + PITCHES:
                    at.setdefault(now + n.onset, []).append(n.pitch)
        now += m.duration
    return [np.unique(at[t]) for t in sorted(at)]


def place(chords: list[np.ndarray], probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Align chords (time order) to output columns left to right.

    probs: (columns, PITCHES) reader probabilities. Returns (the column of each chord, each
    chord's notes' probabilities at it, concatenated). A chord's score at a column is the sum
    of log probabilities of its pitches, each half its own and half the best of it and its
    neighbours (a chord's heads are not all on one column: seconds are set side by side)."""
    n, columns = len(chords), len(probs)
    if n == 0 or columns < n * MIN_GAP:
        return np.zeros(0, np.int64), np.zeros(0)
    near = maximum_filter1d(probs, size=3, axis=0)
    logs = np.log((near + probs) / 2 + EPS)  # the column itself breaks a tie with its neighbours
    score = np.stack([logs[:, c - LOWEST].sum(axis=1) for c in chords])  # (n, columns)
    best = np.full((n, columns), -np.inf)
    back = np.zeros((n, columns), np.int64)  # where chord i - 1 sits
    best[0] = score[0]
    for i in range(1, n):
        prev = best[i - 1]
        run = np.maximum.accumulate(prev)  # best of chord i - 1 at or before each column
        new = np.r_[True, prev[1:] > run[:-1]]
        arg = np.maximum.accumulate(np.where(new, np.arange(columns), 0))  # ... and where
        best[i, MIN_GAP:] = score[i, MIN_GAP:] + run[:-MIN_GAP]
        back[i, MIN_GAP:] = arg[:-MIN_GAP]
    cols = np.zeros(n, np.int64)
    cols[-1] = int(np.argmax(best[-1]))
    for i in range(n - 1, 0, -1):
        cols[i - 1] = back[i, cols[i]]
    found = np.concatenate([near[c, chord - LOWEST] for c, chord in zip(cols, chords,
                                                                        strict=True)])
    return cols, found


def scan_systems(root: str | Path, split: str, model: NoteReader, kern_dir: str | Path, *,
                 keep: float = KEEP_FOUND, batch: int = 8
                 ) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict]:
    """(strip, notes (n, 2) [x px, MIDI pitch]) of each system of a real-scan dataset's split
    whose written notes the model finds at least `keep` of where `place` puts them (see the
    module), and counts of what was kept. kern_dir holds the kern files the dataset was built
    from (its pieces' `origin`)."""
    from scorelink.data.humdrum import read_kern
    from scorelink.data.store import Dataset

    ds = Dataset(root)
    wanted: dict[str, dict[int, dict]] = {}
    for r in ds.records(split=split):
        wanted.setdefault(r["piece"], {}).setdefault(r["system"], r)
    items = []  # (strip, chords)
    for piece, by_system in wanted.items():
        info = json.loads((Path(root) / "pieces" / piece / "piece.json").read_text())
        measures = read_kern(Path(kern_dir) / Path(info["origin"]).name).measures
        for system, record in sorted(by_system.items()):
            chords = written_chords(measures, system)
            if chords:
                items.append((ds.strip(record), chords))
    was_training = model.training
    model.eval()
    probs = probabilities(model, [s for s, _ in items], batch=batch)
    model.train(was_training)
    out, notes_total, notes_found = [], 0, 0
    for (strip, chords), p in zip(items, probs, strict=True):
        cols, found = place(chords, p)
        notes_total += sum(len(c) for c in chords)
        if len(found) == 0 or np.mean(found >= FOUND) < keep:
            continue
        notes_found += int((found >= FOUND).sum())
        x = (np.repeat(cols, [len(c) for c in chords]) + 0.5) * READER_STRIDE
        out.append((strip, np.stack([x, np.concatenate(chords)], axis=1).astype(np.float64)))
    return out, {"systems": len(items), "kept": len(out), "notes": notes_total,
                 "found_in_kept": notes_found}
