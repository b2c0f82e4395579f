"""Align a recording to a score that has notes: chroma + DTW that may jump between places.

Where the score was engraved from its notes (MusicXML, MXL, kern, MEI, LilyPond, a dataset
piece), `align` decodes the systems from the notes instead of the pixels:

1. The score's notes (every system's, repeats unfolded as `collect.system_notes` gives them) make
   one *timeline* in playing order, cut into *units*: its measures where the engraver knows them,
   else its runs of notes on one system. Its chroma (`notes.notes_chroma`, 12 pitch classes at
   FEATURE_FPS frames a second) is stretched to the recording's global tempo; the recording's
   chroma is read off its spectrogram (`notes.audio_chroma`).
2. DTW of recording frames (rows) against timeline frames (columns), cost 1 - cosine per cell,
   counted once per recording frame. Steps (1, 1), (1, 2), (2, 1), (1, 3), (3, 1) follow the
   score at a third to three times the global tempo (frames passed over count at their own
   cost); a hold (1, 0) at HOLD_PENALTY lets the recording linger longer (fermatas). From the
   end of any unit the path may *jump* to the start of any unit at JUMP_PENALTY: a repeat the
   score does not write, da capo, a skipped repeat or section. Going on in playing order is
   free. Before the first note, and anywhere in between, the recording may be a *gap* (silence,
   applause, foreign audio) at GAP_COST a frame; the music is entered at the first unit for
   free, elsewhere at JUMP_PENALTY. The path may end anywhere.
3. The global tempo: the recording's sounding length over the timeline's, and that times
   TEMPO_TRIES, each decoded at a COARSE times lower frame rate; the cheapest is decoded at the
   full rate (every recording frame costs one cell, so totals compare).
4. The path gives every recording frame a timeline frame, hence a system and a measure: the
   system segments (a new one where the system changes, a pass through a system begins again,
   or the path jumps; under MIN_SEGMENT joined to the one before) and the measure times.
5. Checks: the recording must sound like the score (MISMATCH) and move through it
   (MIN_MOVING), else AlignError.

`align_notes(spec, systems)` returns an `align.Alignment` whose segments carry evidence "notes".
"""

from __future__ import annotations

import numpy as np

from scorelink.constants import FPS
from scorelink.search.notes import FEATURE_FPS, audio_chroma, notes_chroma, pool_frames

JUMP_PENALTY = 6.0  # in cost x frames: a jump must save this much (about 1 s of mismatch)
HOLD_PENALTY = 0.3  # added to a cell's cost for each frame the score stands still
GAP_COST = 0.8  # per frame left unassigned (a cell's cost is 1 - cosine: 1 for silence)
TEMPO_TRIES = (0.75, 1.0, 1.33)  # global tempi tried, relative to the length ratio
LOUD_DB = 30.0  # frames this far below the loudest (in spectrogram energy) count as silence
MIN_SEGMENT = 0.5  # s: a shorter segment joins the one before
COARSE = 3  # the global tempo is chosen on frames this many times longer
MISMATCH = 0.5  # mean cost per sounding frame (1 in a gap) above which the recording is not
# this score: 0.20-0.32 on renditions and real-timing performances, 0.37-1.0 for noise
MIN_MOVING = 0.3  # distinct score frames per aligned frame below which the recording is a
# steady sound (0.55-0.9 for music, under 0.25 for noise and tones)

_STEPS = ((1, 1), (1, 2), (2, 1), (1, 0), (1, 3), (3, 1))  # (recording, score) frames: codes
_JUMP, _GAP, _LEAD = 6, 7, 8  # codes: a jump from a unit's end; entering from a gap, the lead


class Timeline:
    """A score's notes in playing order: chroma frames and what each frame belongs to.

    systems: the score's systems (`collect.score_systems` dicts with "notes" (n, 3) [onset s,
    offset s, MIDI pitch] in unfolded score time and optionally "measures"; without measures,
    optionally "passes": [(start, end)] score seconds of each time the system is played).
    """

    def __init__(self, systems: list[dict]):
        notes, owner = [], []
        for k, s in enumerate(systems):
            n = np.asarray(s.get("notes") if s.get("notes") is not None else np.zeros((0, 3)),
                           np.float64).reshape(-1, 3)
            notes.append(n)
            owner.append(np.full(len(n), k))
        notes, owner = np.concatenate(notes), np.concatenate(owner)
        if not len(notes):
            raise ValueError("the score has no notes")
        order = np.argsort(notes[:, 0], kind="stable")
        self.notes, owner = notes[order], owner[order]
        self.t0 = float(self.notes[:, 0].min())
        self.seconds = float(self.notes[:, 1].max()) - self.t0  # score time, unfolded
        # units: (start, end) score seconds from t0, system, measure (index, label) or None
        measures = sorted(((m["start"], k, m) for k, s in enumerate(systems)
                           for m in s.get("measures") or []), key=lambda x: (x[0], x[1]))
        passes = sorted((a, b, k) for k, s in enumerate(systems) for a, b in s.get("passes", []))
        if measures:
            self.units = [(m["start"] - self.t0, m["end"] - self.t0, k,
                           (m["index"], m["label"])) for _, k, m in measures]
        elif passes:
            self.units = [(a - self.t0, b - self.t0, k, None) for a, b, k in passes]
        else:  # runs of notes on one system, each from its first onset to the next run's
            cuts = np.flatnonzero(np.diff(owner) != 0) + 1
            starts = np.r_[0, cuts]
            onsets = self.notes[starts, 0] - self.t0
            ends = np.r_[onsets[1:], self.seconds]
            self.units = [(float(a), float(b), int(owner[i]), None)
                          for a, b, i in zip(onsets, ends, starts, strict=True)]
        # a unit that begins a pass through its system (where a system segment begins): on
        # another system than the unit before, or a measure that goes back in the score
        self.new_pass = np.array([
            k == 0 or u[2] != self.units[k - 1][2] or u[3] is None
            or u[3][0] <= self.units[k - 1][3][0] for k, u in enumerate(self.units)])

    def frames(self, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """At `scale` recording seconds per score second: (chroma (12, F), unit (F,) index of
        the unit each frame belongs to (-1 before the first), starts (U,) first frame of each
        unit, ends (U,) one past its last frame)."""
        n = int(np.ceil(self.seconds * scale * FEATURE_FPS)) + 1
        shifted = (self.notes - [self.t0, self.t0, 0]) * [scale, scale, 1]
        chroma = notes_chroma(shifted, n)
        starts = np.array([round(a * scale * FEATURE_FPS) for a, *_ in self.units], np.int64)
        starts = np.minimum(starts, n - 1)
        unit = np.searchsorted(starts, np.arange(n), side="right") - 1
        ends = np.r_[starts[1:], n]
        ends = np.maximum(ends, starts + 1)
        return chroma, unit, starts, ends


def _sounding(spec: np.ndarray) -> np.ndarray:
    """(T // 2,) bool: the FEATURE_FPS frames of a (N_BINS, T) log spectrogram within LOUD_DB
    of the loudest."""
    energy = pool_frames(np.asarray(spec, np.float64).sum(axis=0)).mean(axis=-1)
    if not len(energy) or energy.max() <= 0:
        return np.zeros(len(energy), bool)
    level = 10 * np.log10(np.maximum(energy, 1e-12))
    return level >= level.max() - LOUD_DB


def sounding_seconds(spec: np.ndarray) -> float:
    """How long a (N_BINS, T) log spectrogram sounds: frames within LOUD_DB of the loudest."""
    return float(_sounding(spec).sum()) / FEATURE_FPS


def decode(query: np.ndarray, score: np.ndarray, starts: np.ndarray, ends: np.ndarray, *,
           jump_penalty: float = JUMP_PENALTY, hold_penalty: float = HOLD_PENALTY,
           gap_cost: float = GAP_COST) -> tuple[np.ndarray, np.ndarray, float]:
    """DTW with jumps of a recording's (12, N) unit chroma against a timeline's (12, F).

    starts, ends: (U,) the units' first frames and one past their last (a jump goes from a
    unit's last frame to any unit's first). States: the timeline's frames, a gap before the
    music (the lead) and a gap after some music. Returns (frame (N,) the timeline frame of each
    recording frame, -1 in a gap; entered (N,) True where the path entered a unit by a jump or
    from a gap; total cost).
    """
    n, m = query.shape[1], score.shape[1]
    inf = np.float32(np.inf)
    starts = np.asarray(starts, np.int64)
    last = np.asarray(ends, np.int64) - 1
    lead_cost = np.full(len(starts), np.float32(jump_penalty))  # from the lead gap: ...
    lead_cost[0] = 0.0  # ... free into the first unit
    code = np.zeros((n, m), np.int8)
    jump_from = np.zeros(n, np.int64)  # per row: the unit end a jump into the row leaves
    gap_from = np.full(n, -2, np.int64)  # per row: -2 the gap went on, j: music left at j
    st = score.astype(np.float32)
    steps = np.full((len(_STEPS), m), inf, np.float32)  # the row's candidates by step
    prev3 = np.full(m, inf, np.float32)
    d1 = np.full(m, inf, np.float32)  # the previous row's cells, and the one before
    d2 = np.full(m, inf, np.float32)
    prev2 = np.full(m, inf, np.float32)
    prev = np.full(m, inf, np.float32)
    gap = inf  # the gap after music, at the previous row
    lead = 0.0  # the lead gap at the previous row (0 before the first row)
    columns = np.arange(m)
    chunk = 256
    for a in range(0, n, chunk):
        dist = 1.0 - query[:, a:a + chunk].T.astype(np.float32) @ st  # (rows, F)
        for r, d in enumerate(dist):
            i = a + r
            steps[0, 1:] = prev[:-1]
            steps[1, 2:] = prev[:-2]
            # (2, 1), (3, 1): the frames passed over sit on the landing column too, at their cost
            np.add(prev2[:-1], d1[1:], out=steps[2, 1:])
            np.add(prev, hold_penalty, out=steps[3])
            steps[4, 3:] = prev[:-3]
            np.add(prev3[:-1], d1[1:] + d2[1:], out=steps[5, 1:])
            kind = steps.argmin(0).astype(np.int8)
            best = steps[kind, columns]
            # entering a unit's first frame: a jump from the cheapest unit end, or from a gap
            k = int(np.argmin(prev[last]))
            jump_from[i] = last[k]
            entry = np.stack([np.full(len(starts), prev[last[k]] + jump_penalty, np.float32),
                              np.full(len(starts), gap + jump_penalty, np.float32),
                              lead + lead_cost])  # (3, U): codes _JUMP, _GAP, _LEAD
            how = entry.argmin(0)
            value = entry[how, np.arange(len(starts))]
            take = value < best[starts]
            best[starts[take]] = value[take]
            kind[starts[take]] = _JUMP + how[take]
            j = int(np.argmin(prev))
            if prev[j] < gap:
                gap, gap_from[i] = float(prev[j]), j
            gap += gap_cost
            lead += gap_cost
            code[i] = kind
            prev3, prev2, prev = prev2, prev, best + d
            d2, d1 = d1, d
    # the end: anywhere in the music, or in a gap
    j = int(np.argmin(prev))
    ends_in = min((float(prev[j]), "music"), (gap, "gap"), (lead, "lead"))
    total, state = ends_in
    frame = np.full(n, -1, np.int64)
    entered = np.zeros(n, bool)
    i = n - 1
    while i >= 0 and state != "lead":
        if state == "gap":
            if gap_from[i] >= 0:
                state, j = "music", int(gap_from[i])
            i -= 1
            continue
        frame[i] = j
        c = int(code[i, j])
        if c >= _JUMP:
            entered[i] = True
            if c == _JUMP:
                j = int(jump_from[i])
            state = {_JUMP: "music", _GAP: "gap", _LEAD: "lead"}[c]
            i -= 1
            continue
        di, dj = _STEPS[c]
        frame[max(i - di + 1, 0):i] = j  # (2, 1), (3, 1): the frames in between
        i, j = i - di, j - dj
    return frame, entered, total


def _pool(chroma: np.ndarray, k: int) -> np.ndarray:
    """(12, T // k) unit chroma frames: the means of k frames."""
    from scorelink.search.notes import _unit

    t = chroma.shape[1] // k * k
    return _unit(chroma[:, :t].reshape(12, -1, k).mean(axis=2))


def has_notes(systems: list[dict]) -> bool:
    """Whether a score's systems carry notes (a score engraved from its notes; a system of
    rests alone may have none, and is then never placed)."""
    return bool(systems) and all(s.get("notes") is not None for s in systems) and any(
        len(s["notes"]) for s in systems)


def align_notes(spec: np.ndarray, systems: list[dict], *, jump_penalty: float = JUMP_PENALTY,
                hold_penalty: float = HOLD_PENALTY, gap_cost: float = GAP_COST,
                tempi: tuple[float, ...] = TEMPO_TRIES):
    """Align a (N_BINS, T) spectrogram to a score's systems (`collect.score_systems`, with
    notes) by their notes. Returns an `align.Alignment` (evidence "notes") with the system
    segments and gaps in played order, its measures where the score has them, and as its
    matrix each system's best chroma similarity along time (display).

    Raises align.AlignError when the recording does not sound like the score: the mean cost of
    its sounding frames (1 for a frame left to a gap) above MISMATCH, or a path that hardly
    moves through the score (MIN_MOVING)."""
    from scorelink.search.align import AlignError, Alignment, Segment
    from scorelink.search.measures import MeasureSegment

    line = Timeline(systems)
    query = audio_chroma(spec)  # (12, N)
    n = query.shape[1]
    if n < 2:
        raise AlignError("the recording is too short to align")
    ratio = max(sounding_seconds(spec), 1.0) / max(line.seconds, 1.0)
    options = dict(jump_penalty=jump_penalty / COARSE, hold_penalty=hold_penalty,
                   gap_cost=gap_cost)
    coarse = _pool(query, COARSE)
    tried = []  # the global tempi decoded at a COARSE times lower frame rate: the cheapest wins
    for t in tempi:
        chroma, _, starts, ends = line.frames(ratio * t / COARSE)
        tried.append((decode(coarse, chroma, starts, ends, **options)[2], ratio * t))
    scale = min(tried)[1]
    chroma, unit, starts, ends = line.frames(scale)
    frame, entered, _ = decode(query, chroma, starts, ends, jump_penalty=jump_penalty,
                               hold_penalty=hold_penalty, gap_cost=gap_cost)
    music = frame >= 0
    if not music.any():
        raise AlignError("no part of the recording sounds like the score's notes")
    cost = 1.0 - np.einsum("cn,cn->n", query[:, music], chroma[:, frame[music]])  # (n music,)
    per_frame = np.full(n, np.nan)
    per_frame[music] = cost
    # how well the score explains the recording: the mean cost of its sounding frames, a frame
    # left to a gap counting as a full mismatch (1)
    sounding = _sounding(spec)[:n]
    fit = float(np.where(music, per_frame, 1.0)[sounding].mean()) if sounding.any() else 1.0
    # and whether it moves through the score: a steady sound (noise, a tone) holds one place
    moving = len(np.unique(frame[music])) / max(int(music.sum()), 1)
    if fit > MISMATCH or moving < MIN_MOVING:
        why = (f"its notes explain the recording's pitch content at {1 - fit:.2f}, below "
               f"{1 - MISMATCH:.2f}" if fit > MISMATCH else
               "the recording stays on one sound instead of moving through the score")
        raise AlignError(f"the recording does not sound like this score ({why}); is it music, "
                         "and this piece?")
    u = np.where(music, unit[np.maximum(frame, 0)], -1)  # (N,) unit of each frame, -1 gap
    system = np.array([line.units[k][2] for k in range(len(line.units))])
    sys_of = np.where(u >= 0, system[np.maximum(u, 0)], -1)
    seconds = spec.shape[1] / FPS

    def t(i: int) -> float:
        return min(i / FEATURE_FPS, seconds)

    # system segments: runs of one system (or of gap), broken by a jump or a new pass
    begins = np.zeros(n, bool)
    begins[1:] = (u[1:] != u[:-1]) & (u[1:] >= 0) & line.new_pass[np.maximum(u[1:], 0)]
    begins |= entered & (u >= 0)
    segments = []
    a = 0
    for i in range(1, n + 1):
        if i == n or sys_of[i] != sys_of[a] or begins[i]:
            s = int(sys_of[a])
            if s < 0:
                segments.append(Segment(-1, t(a), t(i), 0.0, 0.0))
            else:
                c = float(np.nanmean(per_frame[a:i]))
                segments.append(Segment(s, t(a), t(i), 1.0 - c, confidence(c, gap_cost)))
            a = i
    segments = _merge_short(segments)
    # measures: runs of one unit not broken by a jump, where the units are measures
    measures = []
    if line.units and line.units[0][3] is not None:
        a = 0
        for i in range(1, n + 1):
            if i == n or u[i] != u[a] or entered[i]:
                k = int(u[a])
                if k >= 0:
                    index, label = line.units[k][3]
                    measures.append(MeasureSegment(index, label, int(system[k]), t(a), t(i),
                                                   round(float(np.nanmean(per_frame[a:i])), 4)))
                a = i
    display = np.full((n, len(systems)), np.nan, np.float32)  # (N, S): best match per system
    fsys = system[np.maximum(unit, 0)]
    for s in range(len(systems)):
        cols = np.flatnonzero(fsys == s)
        if len(cols):
            display[:, s] = (query.T @ chroma[:, cols]).max(axis=1)
    return Alignment(segments, display, step_seconds=1 / FEATURE_FPS, measures=measures,
                     evidence="notes")


def _merge_short(segments: list) -> list:
    """Segments shorter than MIN_SEGMENT (a reverb tail entering the next pass, a stray frame)
    joined to the segment before them."""
    from dataclasses import replace

    out = []
    for seg in segments:
        if out and seg.end - seg.start < MIN_SEGMENT:
            out[-1] = replace(out[-1], end=seg.end)
        else:
            out.append(seg)
    return out


def confidence(cost: float, gap_cost: float = GAP_COST) -> float:
    """0..1 from a segment's mean cost along the path (0 at the gap's cost or worse, 1 for a
    perfect match). Not calibrated."""
    return float(np.clip(1.0 - cost / gap_cost, 0.0, 1.0))
