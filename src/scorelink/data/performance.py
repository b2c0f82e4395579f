"""Human performances (MIDI + beat annotations) aligned to a kern score's measures.

A performance is a Disklavier MIDI file (real timing, velocities, pedals) with nASAP's beat
annotations (one line per beat: seconds, seconds, `b` or `db[,time signature,key]`). The
downbeats cut the performance into bars; `align_bars` pairs those bars with the measures of the
score in playing order by their notes (pitch content), not by their number or length alone,
choosing the repeat scheme (the score's expansion list, or its `norep` list, or the file order)
the notes fit best. `note_check` then compares, passage by passage, the notes performed with
the notes written.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from scorelink.data.humdrum import Kern
from scorelink.errors import ScoreError

EARLY = 0.05  # s: a note this much before a downbeat still belongs to the bar it begins
MERGE_PENALTY = 0.25  # DP cost of pairing one bar with two measures (or two bars with one)
SKIP_PENALTY = 1.0  # DP cost of a bar or a measure left unpaired
SECTION_PENALTY = 2.0  # DP cost of a whole section left out (a repeat or a trio not played)
SQUEEZED = 0.25  # a bar shorter than this fraction of the usual bar is a placeholder


@dataclass(frozen=True)
class PerformedNotes:
    onset: np.ndarray  # (N,) s, sorted
    offset: np.ndarray  # (N,) s
    pitch: np.ndarray  # (N,) MIDI
    velocity: np.ndarray  # (N,) 1..127
    controls: np.ndarray  # (K, 3) rows (s, controller, value): pedals


def read_midi(path: str | Path) -> PerformedNotes:
    """Notes and pedal changes of a MIDI file (all tracks and channels); ScoreError if broken."""
    import mido

    try:
        midi = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise ScoreError(f"{path}: not a readable MIDI file ({type(exc).__name__}: {exc})") from exc
    now, notes, controls, open_notes = 0.0, [], [], {}
    for msg in midi:  # merged tracks, times in seconds
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            open_notes.setdefault((msg.channel, msg.note), []).append((now, msg.velocity))
        elif msg.type in ("note_off", "note_on"):
            started = open_notes.get((msg.channel, msg.note))
            if started:
                onset, velocity = started.pop(0)
                notes.append((onset, now, msg.note, velocity))
        elif msg.type == "control_change" and msg.control in (64, 66, 67):
            controls.append((now, msg.control, msg.value))
    for (_, key), started in open_notes.items():  # never released: until the end
        notes.extend((onset, now, key, velocity) for onset, velocity in started)
    if not notes:
        raise ScoreError(f"{path}: no notes in the MIDI file")
    table = np.array(sorted(notes), dtype=np.float64)
    return PerformedNotes(table[:, 0], np.maximum(table[:, 1], table[:, 0] + 0.01),
                          table[:, 2].astype(np.int64), table[:, 3].astype(np.int64),
                          np.array(controls, dtype=np.float64).reshape(-1, 3))


def read_downbeats(path: str | Path) -> np.ndarray:
    """Seconds of the downbeats of an nASAP annotation file; ScoreError if it has none."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ScoreError(f"{path}: cannot read the annotations ({exc})") from exc
    times = []
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 3:
            raise ScoreError(f"{path}:{number}: expected 3 tab-separated fields, got {line!r}")
        if fields[2].split(",")[0] == "db":
            try:
                times.append(float(fields[0]))
            except ValueError as exc:
                raise ScoreError(f"{path}:{number}: not a time: {fields[0]!r}") from exc
    if len(times) < 2:
        raise ScoreError(f"{path}: fewer than two downbeats annotated")
    return np.array(times)


@dataclass(frozen=True)
class Alignment:
    scheme: str  # "repeats", "norep" or "file order"
    order: list[int]  # kern measure indices in playing order
    starts: np.ndarray  # (len(order),) s where each played measure begins
    end: float  # s, end of the last note
    cost: float  # mean DP cost per step (0 = every bar's notes are its measure's)


def unsqueeze(downbeats: np.ndarray) -> np.ndarray:
    """The downbeats without the placeholders of bars not played.

    nASAP annotates some performances without repeats (`*_no_repeat` folders) with the
    downbeats of the version with repeats: the bars not played are squeezed, evenly spaced,
    into a moment (51 bars of 208 in 0.9 s in sonata 32-1). A run of two or more bars each
    shorter than SQUEEZED times the usual bar (the upper quartile of the lengths: right while
    fewer than 3/4 of the bars are placeholders) becomes one bar (its first downbeat stays),
    which the alignment pairs with what is played there or leaves out."""
    downbeats = np.asarray(downbeats, dtype=np.float64)
    if len(downbeats) < 3:
        return downbeats
    lengths = np.diff(downbeats)
    short = lengths < SQUEEZED * np.percentile(lengths, 75)
    drop = np.zeros(len(downbeats), dtype=bool)
    i = 0
    while i < len(short):
        if not short[i]:
            i += 1
            continue
        j = i
        while j < len(short) and short[j]:
            j += 1
        if j - i >= 2:  # bars i..j-1 are squeezed: keep downbeat i, drop i+1..j-1
            drop[i + 1 : j] = True
        i = j
    return downbeats[~drop]


def _bars(perf: PerformedNotes, downbeats: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(starts, pitches of the notes beginning in each): a bar before the first downbeat when
    notes sound there (a pickup), one per downbeat."""
    starts = list(downbeats)
    if perf.onset[0] < downbeats[0] - EARLY:
        starts.insert(0, float(perf.onset[0]))
    starts = np.array(starts)
    bar = np.searchsorted(starts - EARLY, perf.onset, side="right") - 1
    return starts, [perf.pitch[bar == i] for i in range(len(starts))]


def _profile(pitches: list[np.ndarray]) -> np.ndarray:
    """(n, 140) unit vectors: a 128-bin pitch histogram and a 12-bin chroma histogram."""
    out = np.zeros((len(pitches), 140))
    for i, p in enumerate(pitches):
        p = np.asarray(p, dtype=np.int64)
        if len(p):
            hist = np.bincount(p, minlength=128)[:128].astype(np.float64)
            chroma = np.bincount(p % 12, minlength=12).astype(np.float64)
            out[i, :128] = hist / np.linalg.norm(hist)
            out[i, 128:] = chroma / np.linalg.norm(chroma)
    return out / np.sqrt(2)


def _cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cosine similarity of profiles; two empty bars cost 0, one empty 1."""
    sim = a @ b.T
    empty_a, empty_b = ~a.any(axis=1), ~b.any(axis=1)
    sim[np.ix_(empty_a, empty_b)] = 1.0
    return 1.0 - sim


def _dp(bars: list[np.ndarray], measures: list[np.ndarray],
        sections: list[tuple[int, int]]) -> tuple[float, list[tuple]]:
    """Align bars with measures (both in time order); returns (total cost, steps), each step
    (bars taken, measures taken, i, j) from the start. sections: [start, stop) runs of the
    measures that may be left out whole."""
    n, m = len(bars), len(measures)
    skips: dict[int, list[int]] = {}
    for a, b in sections:
        skips.setdefault(b, []).append(a)
    pb, pm = _profile(bars), _profile(measures)
    one = _cost(pb, pm)  # (n, m)
    two_m = _cost(pb, _profile([np.concatenate(measures[j : j + 2]) for j in range(m - 1)]))
    two_b = _cost(_profile([np.concatenate(bars[i : i + 2]) for i in range(n - 1)]), pm)
    # Row by row: the moves from earlier rows are vectorised; within a row (measures left out)
    # a running minimum does the single skips, then each section skip is applied in order.
    total = np.full((n + 1, m + 1), np.inf)
    move = np.zeros((n + 1, m + 1, 2), dtype=np.int32)
    ramp = SKIP_PENALTY * np.arange(m + 1)
    for i in range(n + 1):
        best = np.full(m + 1, np.inf)
        how = np.zeros((m + 1, 2), dtype=np.int32)
        if i == 0:
            best[0] = 0.0
        options = []
        if i:
            options.append((np.concatenate(([np.inf], total[i - 1, :-1] + one[i - 1])), 1, 1))
            options.append((total[i - 1] + SKIP_PENALTY, 1, 0))
            if m >= 2:
                options.append((np.concatenate(([np.inf, np.inf], total[i - 1, :-2]
                                                + two_m[i - 1] + MERGE_PENALTY)), 1, 2))
        if i >= 2:
            options.append((np.concatenate(([np.inf], total[i - 2, :-1] + two_b[i - 2]
                                            + MERGE_PENALTY)), 2, 1))
        for value, di, dj in options:
            better = value < best
            best[better] = value[better]
            how[better] = (di, dj)
        row = best.copy()
        _skip_chain(row, ramp, 0)
        for stop in sorted(skips):
            for start in skips[stop]:
                if row[start] + SECTION_PENALTY < row[stop]:
                    row[stop] = row[start] + SECTION_PENALTY
                    best[stop] = row[stop]  # counted as the way here
                    how[stop] = (0, stop - start)
                    _skip_chain(row, ramp, stop)
        left = row < best - 1e-9  # reached by leaving measures out one by one (not rounding)
        how[left] = (0, 1)
        total[i], move[i] = row, how
    steps, i, j = [], n, m
    while i or j:
        di, dj = move[i, j]
        i, j = i - int(di), j - int(dj)
        steps.append((int(di), int(dj), i, j))
    return float(total[n, m]), steps[::-1]


def _skip_chain(row: np.ndarray, ramp: np.ndarray, start: int) -> None:
    """row[j] = min over k <= j (k >= start) of row[k] + SKIP_PENALTY * (j - k), in place."""
    part = row[start:] - ramp[: len(row) - start]
    row[start:] = np.minimum.accumulate(part) + ramp[: len(row) - start]


def align_bars(kern: Kern, perf: PerformedNotes, downbeats: np.ndarray) -> Alignment:
    """The repeat scheme and measure start times that fit the performance's notes best
    (placeholder downbeats of bars not played are dropped first: `unsqueeze`)."""
    starts, bars = _bars(perf, unsqueeze(downbeats))
    end = float(perf.offset.max())
    schemes = {"repeats": kern.expansions.get(""), "norep": kern.expansions.get("norep"),
               "file order": None}
    best = None
    tried = set()
    for scheme, labels in schemes.items():
        if scheme != "file order" and labels is None:
            continue
        order = kern.expand(labels)
        if tuple(order) in tried:
            continue
        tried.add(tuple(order))
        measures = [np.array([n.pitch for n in kern.measures[k].notes], dtype=np.int64)
                    for k in order]
        total, steps = _dp(bars, measures, _sections(kern, order))
        cost = total / max(len(bars), len(measures))
        if best is None or cost < best[0]:
            best = (cost, scheme, order, steps)
    cost, scheme, order, steps = best
    bounds = np.append(starts, end)
    times = np.zeros(len(order))
    played = np.ones(len(order), dtype=bool)
    for di, dj, i, j in steps:
        if di == 0:
            played[j : j + dj] = False  # left out: not played
        if di == 0 or dj == 0:
            continue
        t0 = bounds[i] if i < len(starts) else end
        t1 = bounds[i + di] if di else t0
        lengths = [kern.measures[order[j + k]].duration for k in range(dj)]
        whole = sum(lengths, Fraction(0))
        for k in range(dj):  # two measures in one bar share it by their written lengths
            before = sum(lengths[:k], Fraction(0))
            times[j + k] = t0 + (t1 - t0) * float(before / whole) if whole else t0
    return Alignment(scheme, [k for k, p in zip(order, played, strict=True) if p],
                     times[played], end, cost)


def _sections(kern: Kern, order: list[int]) -> list[tuple[int, int]]:
    """[start, stop) runs of `order` that are one pass through one section."""
    runs, start = [], 0
    for pos in range(1, len(order) + 1):
        if pos == len(order) or order[pos] != order[pos - 1] + 1 or (
                kern.measures[order[pos]].section != kern.measures[order[pos - 1]].section):
            runs.append((start, pos))
            start = pos
    return runs


@dataclass(frozen=True)
class Span:
    """One time a system sounds in a performance."""

    system: int
    occurrence: int
    start: float  # s
    end: float
    measures: tuple[int, ...]  # kern measure indices played, in order


def system_spans(kern: Kern, alignment: Alignment) -> list[Span]:
    """Cut the played measures into runs on one system; a jump back (a repeat that starts
    inside the system) begins a new run, as `scorelink.data.passages.spans` does."""
    runs: list[list[int]] = []  # positions in alignment.order
    for pos, k in enumerate(alignment.order):
        system = kern.measures[k].system
        if runs:
            prev = alignment.order[runs[-1][-1]]
            if kern.measures[prev].system == system and k > prev:
                runs[-1].append(pos)
                continue
        runs.append([pos])
    spans, seen = [], {}
    for r, run in enumerate(runs):
        system = kern.measures[alignment.order[run[0]]].system
        start = float(alignment.starts[run[0]])
        end = float(alignment.starts[runs[r + 1][0]]) if r + 1 < len(runs) else alignment.end
        spans.append(Span(system, seen.get(system, 0), start, max(end, start),
                          tuple(alignment.order[p] for p in run)))
        seen[system] = seen.get(system, 0) + 1
    return spans


def note_check(kern: Kern, perf: PerformedNotes, span: Span) -> float:
    """F-measure of the pitches performed in the span against the pitches written in its
    measures (multisets: a pitch written three times matches three performed ones). Trills,
    grace notes and wrong notes cost a little; a span shifted by a bar costs much more."""
    written = np.concatenate([[n.pitch for n in kern.measures[k].notes] for k in span.measures]
                             + [np.zeros(0)]).astype(np.int64)
    inside = (perf.onset >= span.start - EARLY) & (perf.onset < span.end - EARLY)
    played = perf.pitch[inside]
    if len(written) == 0 and len(played) == 0:
        return 1.0
    common = np.minimum(np.bincount(written, minlength=128)[:128],
                        np.bincount(played, minlength=128)[:128]).sum()
    return float(2 * common / (len(written) + len(played)))
