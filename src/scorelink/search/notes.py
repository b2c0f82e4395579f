"""Match an audio clip against the notes of symbolic scores: chroma and pitch + subsequence DTW.

When a score was engraved from its notes (MusicXML, MEI, kern, LilyPond, or a dataset piece),
the index keeps them, and an audio query is compared with them directly:

- Features at FEATURE_FPS frames per second, two parts (`audio_features`, `notes_features`):
  12-bin chroma, and a pitch profile over the keyboard (one bin per semitone, PITCH_RANGE), so
  that music repeated an octave higher or over another bass is told apart (chroma alone scores
  such near-repeats alike). The clip's are read off the same 92-band spectrogram the model sees
  (each band's energy goes to the pitch classes, and to the semitones, of the FFT bins under its
  filter); the score's are the notes held for their durations, the pitch profile with the
  partials a piano sounds (PARTIALS). Each part is scaled to unit length per frame (loudness
  does not count) and weighted so that the cosine of two frames is (1 - PITCH_SHARE) times the
  chroma correlation plus PITCH_SHARE times the pitch correlation.
- With onsets=True (the matchers of notes read off scans, whose notes have onsets but no
  durations: `reading.read_matchers`), a third part: 12-bin chroma onsets, which pitch classes
  begin in the frame (the notes' onsets decaying over ONSET_DECAY; the clip's rises in
  magnitude), so that a path must meet the notes where they are struck, not only where their
  pitches sound (the idea of Ewert, Müller and Grosche's chroma onset features, ICASSP 2009:
  pedalled and held notes blur chroma, not onsets). The cosine is then (1 - ONSET_SHARE) times
  the two parts' plus ONSET_SHARE times the onsets' correlation.
- Candidates: each piece's score chroma is cut into *shingles* (windows of several lengths,
  from FEATURE_FPS * SHINGLE_SECONDS[0] to [-1] score seconds, described by the mean chroma
  of their quarters) searched by inner product; the clip, described the same way, finds the
  shingles whose length matches its tempo. Systems proposed by the passage model can be added.
- Alignment: subsequence DTW of the clip against the candidates' regions (a shingle and half a
  shingle either side, all regions in one pass), with steps (1, 1), (1, 2) and (2, 1) so that
  the clip may be played from half to double the score's tempo, anywhere in the region. Every
  end point gets the mean cosine distance along its best path and the score frame the path
  aligns to the clip's middle frame; the system holding that frame gets that cost.
- Jumps (`NoteMatcher(..., jumps=P)`, the read timelines of scans: `reading.READ_JUMPS`): a
  timeline that lays each system once in printed order does not hold a performance's repeats,
  so a path may also jump, for the penalty P, back to a piece's opening, where most repeats
  begin (an exposition's, a chorale's first lines'), from the stretch of aligned frames that
  holds the opening (`NoteMatcher._jumps`); each candidate piece's opening is added to the
  regions aligned. A score's own notes are laid as played and do not
  jump.

`NoteMatcher(index)` holds the features of one index (built once, in memory);
`matcher.match(spec)` returns {system id: cost} (lower is better, in [0, 2]).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from scorelink.constants import FPS

FEATURE_FPS = 10  # chroma frames per second (the spectrogram's FPS averaged in pairs)
_POOL = FPS // FEATURE_FPS
SHINGLE_SECONDS = tuple(2.5 * 2 ** (k / 2) for k in range(10))  # 2.5 ... 56.6 s of score time
SHINGLE_PARTS = 4  # a shingle is described by the mean chroma of each of its quarters
SHINGLE_HOP = 0.25  # of a shingle's length
SHINGLE_HITS = 100  # shingles kept per query before alignment: on 300 MSMD validation clips
# (simulated tempi 0.5-2), 40 missed the piece of 6 that aligning everything found, 100 of 1,
# 200 of none but took three times 40's CPU time at 10,000 systems
PITCH_RANGE = (24, 108)  # MIDI C1 .. B7: the pitch profile's semitones
PARTIALS = ((0, 1.0), (12, 0.5), (19, 0.33), (24, 0.25))  # (semitones above, weight) of a
# score note's pitch profile: fundamental, octave, twelfth, double octave
PITCH_SHARE = 0.5  # of a frame's cosine; system R@1 on validation clips at shares 0 / 0.3 /
# 0.5 / 0.7 (benchmarks/notes_quality.py --notes-only --stretch ... --pitch-share S, 300 clips,
# tempo 0.5-2): MSMD 87.7 / 88.7 / 90.0 / 89.3 %, the real-scan corpus 65.0 / 73.0 / 75.3 /
# 75.3 %, the chorales 97.7 % at every share
STEP_PENALTY = 0.0  # added per (1, 2) or (2, 1) step (a path off the score's tempo pays, so
# that warping cannot skip the frames where near-repeats differ). Tried on 2026-12-05: system
# R@1 of the notes path on validation clips of real renditions at tempo ratios 0.5-2
# (`notes_quality.py --notes-only --step-penalty P`), penalty 0 / 0.02 / 0.05 / 0.1 / 0.2:
# MSMD 88.8 / 89.2 / 89.6 / 89.8 / 88.4 % (500 clips); other clips (seed 1), 0 / 0.05 / 0.1:
# MSMD 84.9 / 85.1 / 85.4 (1,000), the real-scan corpus 78.7 / 79.7 / 81.0 (300), chorales
# 99.8 / 99.8 / 100.0 (500); every difference within its interval. At 0.1 the no-match
# calibration told true clips from the rest less well (99.3 % flagged at 95 % kept, 99.8 at 0),
# and MSMD test moved +0.2 [-0.8, +1.2]: left at 0
ONSET_SHARE = 0.15  # of a frame's cosine with onsets=True: the chroma onsets'. Chosen on
# validation clips against 0.3 (worse on engraved pages) and 0 (docs/reader.md, "Chroma
# onsets"): the read notes of the real scans' held-out movements, played by people, found 3.3
# [+0.3, +6.9] points more clips alone, and at the threshold keeping 95 % of true clips their
# no-match verdict flagged 77.5 % of the others, not 68.0 %; with a score's own notes (kern)
# no gain, so symbolic scores keep two parts
ONSET_DECAY = (1.0, 0.5, 0.25)  # an onset's weight in its frame and the two after it
SAME_ONSET = 0.03  # s: onsets this close are the same onset (`NoteMatcher.same_music`)
_STEPS = ((1, 1), (1, 2), (2, 1))  # (query, score) frames; weights below keep costs per frame
_EPS = 1e-3


@lru_cache(maxsize=1)
def band_chroma() -> np.ndarray:
    """(12, N_BINS) float32: how much of each spectrogram band goes to each pitch class.

    A band's filter covers a few FFT bins; each bin gives its filter weight to the pitch class
    nearest its frequency, tapered to nothing half a semitone away. Bands below 100 Hz, where
    neighbouring FFT bins lie more than a semitone apart, give nothing.
    """
    from scorelink.data.spectrogram import fft_frequencies, log_filterbank

    bank = log_filterbank()  # (1024, N_BINS)
    hz = fft_frequencies()
    out = np.zeros((12, bank.shape[1]), np.float64)
    ok = hz >= 100.0
    midi = 69 + 12 * np.log2(hz[ok] / 440.0)
    nearest = np.rint(midi)
    taper = np.clip(1 - 2 * np.abs(midi - nearest), 0, 1)
    pc = nearest.astype(np.int64) % 12
    for c in range(12):
        out[c] = (taper * (pc == c)) @ bank[ok]
    return out.astype(np.float32)


@lru_cache(maxsize=1)
def band_pitch() -> np.ndarray:
    """(semitones of PITCH_RANGE, N_BINS) float32: how much of each spectrogram band goes to
    each semitone (as `band_chroma`, without folding octaves). Low bands are wider than a
    semitone, so low notes spread over their neighbours; the bass still tells registers apart."""
    from scorelink.data.spectrogram import fft_frequencies, log_filterbank

    bank = log_filterbank()  # (1024, N_BINS)
    hz = fft_frequencies()
    ok = hz >= 30.0  # below C1's neighbourhood
    midi = 69 + 12 * np.log2(hz[ok] / 440.0)
    lo, hi = PITCH_RANGE
    out = np.zeros((hi - lo, bank.shape[1]), np.float64)
    for k, pitch in enumerate(range(lo, hi)):
        out[k] = np.clip(1 - np.abs(midi - pitch), 0, 1) @ bank[ok]
    return out.astype(np.float32)


def _unit(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Frames centred (minus their mean) and scaled to unit length: the cosine of two frames
    is then their correlation, and a flat frame (silence, noise) is all zeros, which matches
    nothing and mismatches nothing (cosine distance 1)."""
    x = x - x.mean(axis=axis, keepdims=True)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return (x / np.maximum(norm, _EPS)).astype(np.float32)


def pool_frames(x: np.ndarray) -> np.ndarray:
    """(..., T // _POOL, _POOL): x's spectrogram frames (last axis, at FPS) in groups of
    _POOL, one group a FEATURE_FPS frame (a last incomplete group dropped), to reduce over
    the last axis."""
    t = x.shape[-1] // _POOL * _POOL
    return x[..., :t].reshape(*x.shape[:-1], -1, _POOL)


def _pooled(bands: np.ndarray, spec: np.ndarray) -> np.ndarray:
    """bands @ spec averaged over _POOL frames, scaled to unit frames."""
    return _unit(pool_frames(bands @ np.asarray(spec, np.float32)).mean(axis=-1))


def audio_chroma(spec: np.ndarray) -> np.ndarray:
    """(12, T // 2) unit chroma frames at FEATURE_FPS of a (N_BINS, T) spectrogram."""
    return _pooled(band_chroma(), spec)


def audio_onsets(spec: np.ndarray) -> np.ndarray:
    """(12, T // 2) unit chroma-onset frames at FEATURE_FPS of a (N_BINS, T) spectrogram: each
    band's rise in magnitude from the frame before, summed over the pooled frames, given to the
    pitch classes as `band_chroma` gives energy, and decayed as a score onset is (`_decayed`).
    The rise of the magnitude, not of the spectrogram's log10(1 + magnitude): a note struck
    again while it still sounds barely rises in the log, and a click that lifts quiet bands
    rises a lot (with the log's rise, a chord struck every quarter second fits the same chord
    held better than itself: `test_onsets_tell_a_repeated_chord_from_a_held_one`; on
    validation's real scans the two were level, docs/reader.md)."""
    s = np.expm1(np.log(10.0) * np.asarray(spec, np.float64))  # the filtered magnitudes
    rise = np.maximum(np.diff(s, axis=1, prepend=s[:, :1]), 0)
    return _unit(_decayed(pool_frames(band_chroma() @ rise).sum(axis=-1)))


def _decayed(x: np.ndarray) -> np.ndarray:
    """x (K, T) with each frame's value carried into the frames after it by ONSET_DECAY."""
    out = x * ONSET_DECAY[0]
    for k, w in enumerate(ONSET_DECAY[1:], 1):
        out[:, k:] += w * x[:, :-k]
    return out


def audio_features(spec: np.ndarray, *, onsets: bool = False) -> np.ndarray:
    """(12 + semitones, T // 2) frames at FEATURE_FPS of a (N_BINS, T) spectrogram: chroma and
    pitch profile, weighted by PITCH_SHARE (unit length); with onsets, 12 rows more, the chroma
    onsets (`audio_onsets`, ONSET_SHARE)."""
    return _weighted(audio_chroma(spec), _pooled(band_pitch(), spec),
                     audio_onsets(spec) if onsets else None)


def _weighted(chroma: np.ndarray, pitch: np.ndarray, onsets: np.ndarray | None = None
              ) -> np.ndarray:
    parts = [np.sqrt(1 - PITCH_SHARE) * chroma, np.sqrt(PITCH_SHARE) * pitch]
    if onsets is not None:
        parts = [np.sqrt(1 - ONSET_SHARE) * p for p in parts] + [np.sqrt(ONSET_SHARE) * onsets]
    return np.concatenate(parts).astype(np.float32)


def _note_frames(notes: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, end) frames of notes (n, 3) on a timeline of n_frames: onset rounded down,
    offset up, at least one frame each (within the timeline)."""
    a = np.clip(np.floor(notes[:, 0] * FEATURE_FPS).astype(np.int64), 0, n_frames)
    b = np.clip(np.ceil(notes[:, 1] * FEATURE_FPS).astype(np.int64), 0, n_frames)
    return a, np.maximum(b, np.minimum(a + 1, n_frames))


def notes_chroma(notes: np.ndarray, n_frames: int | None = None) -> np.ndarray:
    """(12, n_frames) unit chroma frames at FEATURE_FPS of notes (n, 3) [onset s, offset s,
    MIDI pitch], time 0 at frame 0 (by default, up to the last offset)."""
    notes = np.asarray(notes, np.float64).reshape(-1, 3)
    if n_frames is None:
        n_frames = int(np.ceil(notes[:, 1].max() * FEATURE_FPS)) + 1 if len(notes) else 0
    roll = np.zeros((12, n_frames + 1), np.float64)
    a, b = _note_frames(notes, n_frames)
    pc = notes[:, 2].astype(np.int64) % 12
    np.add.at(roll, (pc, a), 1.0)  # note on ... (as differences, summed below)
    np.add.at(roll, (pc, b), -1.0)  # ... note off
    return _unit(np.cumsum(roll, axis=1)[:, :n_frames])


def notes_features(notes: np.ndarray, n_frames: int | None = None, *,
                   onsets: bool = False) -> np.ndarray:
    """(12 + semitones, n_frames) frames at FEATURE_FPS of notes (n, 3) [onset s, offset s,
    MIDI pitch], as `audio_features`: chroma, and the pitch profile with PARTIALS; with onsets,
    the chroma onsets (`notes_onsets`) too."""
    chroma = notes_chroma(notes, n_frames)
    n = chroma.shape[1]
    return _weighted(chroma, notes_pitch(notes, 0, n, n),
                     notes_onsets(notes, n) if onsets else None)


def notes_onsets(notes: np.ndarray, n_frames: int) -> np.ndarray:
    """(12, n_frames) unit chroma-onset frames at FEATURE_FPS of notes (n, 3) [onset s, offset
    s, MIDI pitch]: 1 where a pitch class is struck (once, however many octaves strike it),
    decayed over ONSET_DECAY."""
    notes = np.asarray(notes, np.float64).reshape(-1, 3)
    struck = np.zeros((12, n_frames), np.float64)
    if n_frames:
        a = np.clip(np.floor(notes[:, 0] * FEATURE_FPS).astype(np.int64), 0, n_frames - 1)
        struck[notes[:, 2].astype(np.int64) % 12, a] = 1.0
    return _unit(_decayed(struck))


def notes_pitch(notes: np.ndarray, lo: int, hi: int, n_frames: int) -> np.ndarray:
    """(semitones, hi - lo) unit pitch-profile frames lo..hi of notes (n, 3) whose timeline has
    n_frames (frames cut as `notes_chroma` cuts them): the frames of `notes_features`, for a
    stretch of a piece only (the matcher computes them for the frames it aligns)."""
    return _pitch_rows(*_frames_and_pitches(notes, n_frames), lo, hi)


def _frames_and_pitches(notes: np.ndarray, n_frames: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first frame, end frame, MIDI pitch) of each of notes (n, 3) on a timeline of n_frames
    (`_note_frames`)."""
    notes = np.asarray(notes, np.float64).reshape(-1, 3)
    return (*_note_frames(notes, n_frames), notes[:, 2].astype(np.int64))


def _pitch_rows(a: np.ndarray, b: np.ndarray, pitch: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """`notes_pitch` of notes given by their (first, end) frames and MIDI pitches."""
    here = (a < hi) & (b > lo)  # sounding in the stretch
    a, b, pitch = np.maximum(a[here], lo) - lo, np.minimum(b[here], hi) - lo, pitch[here]
    bottom, top = PITCH_RANGE
    width = hi - lo + 1
    cells, weights = [], []  # note on ... and off (as differences, summed below), per partial
    for above, weight in PARTIALS:
        k = pitch + above - bottom
        ok = (k >= 0) & (k < top - bottom)
        cells += [k[ok] * width + a[ok], k[ok] * width + b[ok]]
        weights += [np.full(ok.sum(), weight), np.full(ok.sum(), -weight)]
    # one bincount, summing each cell in the order separate np.add.at calls would
    roll = np.bincount(np.concatenate(cells), np.concatenate(weights),
                       minlength=(top - bottom) * width).reshape(top - bottom, width)
    return _unit(np.cumsum(roll, axis=1)[:, :hi - lo])


def describe(chroma: np.ndarray) -> np.ndarray:
    """(K * SHINGLE_PARTS,) unit vector: the mean features of each part of (K, T) frames."""
    edges = np.linspace(0, chroma.shape[1], SHINGLE_PARTS + 1).round().astype(np.int64)
    parts = [chroma[:, a:max(b, a + 1)].mean(axis=1)
             for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return _unit(np.concatenate(parts))


@dataclass
class _Piece:
    start: int  # first frame in the concatenated score timeline
    frames: int
    systems: np.ndarray  # (frames,) system id sounding at each frame
    notes: np.ndarray  # (n, 3) its notes, time 0 at its frame 0
    t0: float = 0.0  # the score time of its frame 0 (its first onset), as the index keeps it

    @cached_property
    def note_frames(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`_frames_and_pitches` of its notes, kept: every query's pitch rows
        (`NoteMatcher.features`) start from them."""
        return _frames_and_pitches(self.notes, self.frames)


class NoteMatcher:
    """Score features, shingles and DTW for the systems of one index that have notes.

    The chroma of every score is computed once and kept (12 floats a frame, and 12 more for
    its chroma onsets with onsets=True: `notes_features`); the pitch rows, seven times as many,
    are computed from the notes for the frames a query aligns against, so that an index of
    10,000 systems keeps about 50 MB, not 400. Queries are a clip's `audio_features` with the
    same `onsets`.
    """

    def __init__(self, system_notes: dict[int, np.ndarray], system_piece: dict[int, str], *,
                 hits: int = SHINGLE_HITS, onsets: bool = False, jumps: float | None = None):
        self.hits = hits  # shingles kept per query (`candidates`)
        self.with_onsets = onsets  # the features' third part (`notes_features`)
        self.jumps = jumps  # None, or the penalty of a jump back to a piece's opening
        by_piece: dict[str, list[tuple[int, np.ndarray]]] = {}
        for sid, notes in system_notes.items():
            by_piece.setdefault(system_piece[sid], []).append((sid, np.asarray(notes)))
        chroma, struck, labels, self.pieces = [], [], [], {}
        start = 0
        gap = np.full(FEATURE_FPS, -1, np.int64)  # a second of nothing between pieces
        for piece, parts in sorted(by_piece.items()):
            notes = np.concatenate([n for _, n in parts])
            owner = np.concatenate([np.full(len(n), sid) for sid, n in parts])
            order = np.argsort(notes[:, 0], kind="stable")
            notes, owner = notes[order], owner[order]
            t0 = notes[:, 0].min()
            notes = notes - [t0, t0, 0]
            c = notes_chroma(notes)
            # the system at each frame: the one whose latest note began at or before it
            onset_frame = np.floor(notes[:, 0] * FEATURE_FPS).astype(np.int64)
            at = np.searchsorted(onset_frame, np.arange(c.shape[1]), side="right") - 1
            systems = owner[np.maximum(at, 0)]
            self.pieces[piece] = _Piece(start, c.shape[1], systems, notes, float(t0))
            chroma += [c, np.zeros((12, len(gap)), np.float32)]
            if onsets:
                struck += [notes_onsets(notes, c.shape[1]), np.zeros((12, len(gap)), np.float32)]
            labels += [systems, gap]
            start += c.shape[1] + len(gap)
        self.chroma = np.concatenate(chroma, axis=1) if chroma else np.zeros((12, 0), np.float32)
        self.onsets = np.concatenate(struck, axis=1) if struck else None
        self.labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        self._shingles = None

    def __len__(self) -> int:
        return len(self.pieces)

    @cached_property
    def plays(self) -> dict[int, int]:
        """System id -> how many times the score plays it (separate stretches of the
        timeline: a system inside a repeat, or replayed by a da capo, twice or more)."""
        starts = np.flatnonzero(np.r_[True, self.labels[1:] != self.labels[:-1]])
        ids, counts = np.unique(self.labels[starts], return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts, strict=True) if i >= 0}

    @cached_property
    def systems(self) -> set[int]:
        """The ids of the systems that have notes (asked for by every query: computed once)."""
        return set(np.unique(self.labels[self.labels >= 0]).tolist())

    # -- candidates ---------------------------------------------------------------------------
    def _build_shingles(self):
        import faiss

        self._shingles = []
        csum = np.concatenate([np.zeros((12, 1)),
                               np.cumsum(self.chroma, axis=1, dtype=np.float64)], axis=1)
        for seconds in SHINGLE_SECONDS:
            length = int(round(seconds * FEATURE_FPS))
            hop = max(1, int(length * SHINGLE_HOP))
            starts, ends = [], []
            for p in self.pieces.values():  # a piece shorter than a shingle: one, all of it
                last = max(p.start, p.start + p.frames - length)
                here = list(range(p.start, last + 1, hop))
                if here[-1] != last:
                    here.append(last)
                starts += here
                ends += [min(a + length, p.start + p.frames) for a in here]
            starts = np.array(starts, np.int64)
            vectors = _window_parts(csum, starts, np.array(ends, np.int64))
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(vectors)
            self._shingles.append((length, starts, index))

    def candidates(self, query: np.ndarray, *, hits: int | None = None) -> list[tuple[int, int]]:
        """Score frame regions [a, b) worth aligning (K, N) query features against, found by
        their chroma (the first 12 rows: the alignment checks the pitch): the best `hits`
        shingles (default: the matcher's)."""
        if self._shingles is None:
            self._build_shingles()
        hits = self.hits if hits is None else hits
        n = query.shape[1]
        q = describe(query[:12])[None]
        found = []  # (similarity, start, length)
        for length, starts, index in self._shingles:
            if not 0.5 / 1.2 <= length / n <= 2 * 1.2:  # tempo half to double, and a margin
                continue
            sims, ids = index.search(q, min(hits, index.ntotal))
            found += [(s, int(starts[i]), length)
                      for s, i in zip(sims[0], ids[0], strict=True) if i >= 0]
        found.sort(key=lambda f: -f[0])
        return [(a - length // 2, a + length + length // 2) for _, a, length in found[:hits]]

    def system_regions(self, system_ids) -> list[tuple[int, int]]:
        """Score frame regions around the given systems (for candidates from the model)."""
        wanted = np.isin(self.labels, np.fromiter(system_ids, np.int64))
        frames = np.flatnonzero(wanted)
        if not len(frames):
            return []
        cuts = np.flatnonzero(np.diff(frames) > 1) + 1
        pad = 10 * FEATURE_FPS
        return [(int(f[0]) - pad, int(f[-1]) + 1 + pad) for f in np.split(frames, cuts)]

    # -- alignment ----------------------------------------------------------------------------
    def features(self, columns: np.ndarray) -> np.ndarray:
        """(12 + semitones [+ 12], len(columns)) score features (`notes_features`) of timeline
        frames `columns` (-1 and the gaps between pieces: zeros)."""
        chroma = np.where(columns >= 0, self.chroma[:, np.maximum(columns, 0)], 0)
        onsets = (None if self.onsets is None else
                  np.where(columns >= 0, self.onsets[:, np.maximum(columns, 0)], 0)
                  .astype(np.float32))
        pitch = np.zeros((PITCH_RANGE[1] - PITCH_RANGE[0], len(columns)), np.float32)
        pieces = list(self.pieces.values())  # in timeline order
        owner = self._piece_of(columns)
        owner[columns < 0] = -1
        order = np.argsort(owner, kind="stable")  # the columns of each piece, together
        bounds = np.flatnonzero(np.diff(owner[order])) + 1
        for at in np.split(order, bounds):
            if not len(at) or owner[at[0]] < 0:
                continue
            p = pieces[owner[at[0]]]
            at = at[columns[at] < p.start + p.frames]
            if len(at):
                local = columns[at] - p.start
                lo, hi = int(local.min()), int(local.max()) + 1
                pitch[:, at] = _pitch_rows(*p.note_frames, lo, hi)[:, local - lo]
        return _weighted(chroma.astype(np.float32), pitch, onsets)

    def match(self, spec: np.ndarray, **kwargs) -> dict[int, float]:
        """`match_features` of a (N_BINS, T) spectrogram's `audio_features`."""
        return self.match_features(audio_features(spec, onsets=self.with_onsets), **kwargs)

    def match_features(self, query: np.ndarray, *, extra: list[tuple[int, int]] | None = None,
                       exhaustive: bool = False, spans: dict | None = None) -> dict[int, float]:
        """{system id: cost} for a clip's `audio_features` (computed once for every matcher
        of an index): the lowest mean cosine distance of an alignment whose middle lies in the
        system, over the candidate regions (or over every score with exhaustive=True).
        `spans`, if given, receives {system id: (first, last)}: the timeline frames where that
        alignment starts and ends (`same_music`)."""
        if query.shape[1] < 2 or not self.pieces:
            return {}
        if exhaustive:
            regions = [(0, self.chroma.shape[1])]
        else:
            regions = self.candidates(query) + list(extra or [])
        if self.jumps is not None and not exhaustive:
            regions += self._opening_regions(regions, query.shape[1])
        columns = _merge(regions, self.chroma.shape[1])
        if not len(columns):
            return {}
        barrier = (columns < 0) | (self.labels[columns] < 0)
        jumps = None if self.jumps is None else self._jumps(columns, barrier)
        cost, start, middle = subsequence_dtw(query, self.features(columns), barrier=barrier,
                                              jumps=jumps)
        ok = np.isfinite(cost)
        systems = self.labels[columns[middle[ok]]]
        firsts, lasts = columns[start[ok]], columns[np.flatnonzero(ok)]
        out: dict[int, float] = {}
        for s, c, a, b in zip(systems.tolist(), cost[ok].tolist(), firsts.tolist(),
                              lasts.tolist(), strict=True):
            if s >= 0 and c < out.get(s, np.inf):
                out[s] = c
                if spans is not None:
                    spans[s] = (a, b)
        return out

    @cached_property
    def _starts(self) -> np.ndarray:
        """(pieces,) each piece's first frame in the timeline (its opening), in timeline order."""
        return np.array([p.start for p in self.pieces.values()], np.int64)

    def _piece_of(self, frames: np.ndarray) -> np.ndarray:
        """(len(frames),) the timeline order of the piece holding each frame."""
        return np.searchsorted(self._starts, frames, side="right") - 1

    # -- jumps (a timeline in printed order: `reading.read_matchers`) ---------------------------

    def _opening_regions(self, regions: list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
        """The first 2 n + 2 frames (a clip of n frames at up to double speed) of every piece a
        candidate region touches: where a clip that crosses a repeat goes on after it jumps
        back, so that the alignment has it to jump to."""
        pieces = list(self.pieces.values())
        touched = {int(k) for k in self._piece_of(np.array([max(a, 0) for a, _ in regions]))}
        return [(pieces[k].start, pieces[k].start + 2 * n + 2) for k in sorted(touched) if k >= 0]

    def _jumps(self, columns: np.ndarray, barrier: np.ndarray) -> tuple:
        """`subsequence_dtw`'s jumps for timeline frames `columns`: (the piece of each column,
        the columns of the pieces' first frames, the penalty). A barrier column (-1, between
        separate regions) counts as the first piece's, so it splits a piece's regions into
        groups of their own: a jump reaches the opening only from the stretch of aligned
        frames that holds it (its own region, or one merged with it). A known limit, measured
        as it is (docs/reader.md, "Jumps back to the opening"); the barrier columns given the
        piece before them would let a jump come from any region of the piece."""
        groups = self._piece_of(np.maximum(columns, 0))
        targets = np.flatnonzero(~barrier & np.isin(columns, self._starts))
        return groups, targets, float(self.jumps)

    def same_music(self, first: int, last: int, own: int | None = None) -> set[int]:
        """The other systems that hold the music of timeline frames first..last note for note:
        where the notes whose onsets fall in that stretch start again elsewhere in the piece,
        every onset (within SAME_ONSET) and pitch the same, and the stretch's middle then lies
        in another system than `own` (by default the system at the stretch's middle). No
        recording can tell those apart from it (music printed twice: a written-out repeat, a
        returning strain)."""
        pieces = list(self.pieces.values())  # in timeline order
        k = int(self._piece_of(np.array([first]))[0])
        if k < 0 or first >= pieces[k].start + pieces[k].frames:
            return set()
        p = pieces[k]
        order = np.lexsort((p.notes[:, 2], p.notes[:, 0]))
        onsets, pitches = p.notes[order, 0], p.notes[order, 2]
        w0, w1 = (first - p.start) / FEATURE_FPS, (last + 1 - p.start) / FEATURE_FPS

        def inside(a: float, b: float) -> np.ndarray:
            return np.flatnonzero((onsets >= a + SAME_ONSET) & (onsets < b - SAME_ONSET))

        def system_at(t: float) -> int:
            return int(p.systems[int(np.clip(t * FEATURE_FPS, 0, p.frames - 1))])

        here = inside(w0, w1)
        if len(here) < 2:
            return set()
        mid = (w0 + w1) / 2
        own, found = system_at(mid) if own is None else own, set()
        for j in np.flatnonzero(pitches == pitches[here[0]]):
            shift = onsets[j] - onsets[here[0]]
            if abs(shift) < 10 * SAME_ONSET:
                continue
            there = inside(w0 + shift, w1 + shift)
            if (len(there) == len(here) and np.array_equal(pitches[there], pitches[here])
                    and np.abs(onsets[there] - shift - onsets[here]).max() < SAME_ONSET):
                found.add(system_at(mid + shift))
        return found - {own}


def _window_parts(csum: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(len(starts), 12 * SHINGLE_PARTS) descriptors of the frames [start, end) (as
    `describe`), from the chroma's cumulative sums (12, frames + 1) (a zero column first)."""
    parts = []
    for k in range(SHINGLE_PARTS):
        a = starts + np.round((ends - starts) * k / SHINGLE_PARTS).astype(np.int64)
        b = np.maximum(starts + np.round((ends - starts) * (k + 1) / SHINGLE_PARTS)
                       .astype(np.int64), a + 1)
        parts.append(((csum[:, b] - csum[:, a]) / (b - a)).T)  # (S, 12)
    v = np.concatenate(parts, axis=1) + _EPS
    return np.ascontiguousarray(v / np.linalg.norm(v, axis=1, keepdims=True), np.float32)


def _merge(regions: list[tuple[int, int]], total: int) -> np.ndarray:
    """Column indices of the union of regions, with a barrier column (-1) between separate
    runs so that no alignment crosses from one region into another."""
    spans = sorted((max(0, a), min(total, b)) for a, b in regions if min(total, b) > max(0, a))
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    if not merged:
        return np.zeros(0, np.int64)
    return np.concatenate([np.r_[np.arange(a, b), -1] for a, b in merged])[:-1]


def subsequence_dtw(query: np.ndarray, score: np.ndarray, *,
                    barrier: np.ndarray | None = None, jumps: tuple | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align all of query (K, N) to any part of score (K, M), no path crossing a column where
    barrier (M,) is True. Returns (cost (M,), start (M,), middle (M,)): for a path ending at
    score frame m, the mean cosine distance per query frame along the best path (inf where
    none), the score frame where it starts and the score frame where it reaches the query's
    middle frame (N // 2; a (2, 1) step over it: where it lands). Steps (1, 1), (1, 2),
    (2, 1) bound the tempo ratio to [1/2, 2]; a (2, 1) step counts its frame twice, so every
    path's cost sums one term per query frame, plus STEP_PENALTY per step off the diagonal.

    jumps (groups (M,), each run of equal values one group; targets; penalty): a path may also
    go from any column to a target column of the same group in one query frame, for the
    penalty, as a performance jumps back to a repeat's start (JumpDTW, Fremerey, Müller and
    Clausen, ISMIR 2010; a path then starts where its first stretch starts).
    """
    n, m = query.shape[1], score.shape[1]
    half = n // 2
    dist = 1.0 - query.T.astype(np.float32) @ score.astype(np.float32)  # (N, M)
    skips = np.zeros(m, bool)  # a (1, 2) step into column j passes over column j - 1
    if barrier is not None:
        dist[:, barrier] = np.inf
        skips[1:] = barrier[:-1]
    skip_at = np.flatnonzero(skips)
    twice = dist + dist  # a (2, 1) step's cost (equal to 2 * dist, to the bit)
    inf = np.float32(np.inf)
    here = np.arange(m, dtype=np.int64)
    # Rows are updated in place (out= buffers, no temporaries): this loop is most of a notes
    # query's time. Each path's start and middle frames travel packed in one int64 (start in
    # the high 32 bits, middle in the low), so that one selection carries both.
    prev2 = np.full(m, inf, np.float32)  # row i - 2
    prev2_at = np.zeros(m, np.int64)
    prev = dist[0].copy()  # row i - 1 (row 0: a path may start anywhere)
    prev_at = (here << 32) | here  # the middle: meaningful from row `half` on
    spare = np.empty(m, np.float32)  # the buffer row i is written into
    c11, c12, c21 = (np.full(m, inf, np.float32) for _ in range(3))  # stay inf where no step
    pick11, pick12 = np.empty(m, bool), np.empty(m, bool)
    plan = _jump_plan(jumps) if jumps is not None else None
    for i in range(1, n):
        # candidates: (1,1) from prev[j-1], (1,2) from prev[j-2], (2,1) from prev2[j-1] (x2)
        np.add(prev[:-1], dist[i, 1:], out=c11[1:])
        np.add(prev[:-2], dist[i, 2:], out=c12[2:])
        np.add(prev2[:-1], twice[i, 1:], out=c21[1:])
        if STEP_PENALTY:
            c12[2:] += STEP_PENALTY
            c21[1:] += STEP_PENALTY
        c12[skip_at] = inf
        best = np.minimum(c11, c12, out=spare)
        np.minimum(best, c21, out=best)
        if jumps is not None:  # from the best column of the target's group
            jumped = _jump(prev, dist[i], plan, best)
        np.equal(best, c11, out=pick11)  # ties: (1,1) first, then (1,2), then (2,1)
        np.equal(best, c12, out=pick12)
        at = np.zeros(m, np.int64)
        at[1:] = prev2_at[:-1]
        np.copyto(at[2:], prev_at[:-2], where=pick12[2:])
        at[:2][pick12[:2]] = 0
        np.copyto(at[1:], prev_at[:-1], where=pick11[1:])
        at[:1][pick11[:1]] = 0
        if jumps is not None and len(jumped[0]):
            to, source = jumped
            at[to] = prev_at[source]
            pick11[to], pick12[to] = True, False  # a one-frame step, as (1, 1), for the middle
        if i - 1 <= half <= i:  # the step that reaches row `half` (a (2, 1) step over it:
            lands = np.ones(m, bool) if i == half else ~(pick11 | pick12)  # where it lands)
            at[lands] = (at[lands] & ~_LOW) | here[lands]  # sets the middle
        spare, prev2, prev2_at = prev2, prev, prev_at  # row i - 2's buffer is free again
        prev, prev_at = best, at
    return prev / n, prev_at >> 32, prev_at & _LOW


_LOW = np.int64(0xFFFFFFFF)  # the low 32 bits of a packed (start, middle)


def _jump_plan(jumps: tuple) -> tuple:
    """`subsequence_dtw`'s jumps (groups, targets, penalty) -> (the first column of each
    group, each column's group counted from 0, the targets, their groups, the penalty)."""
    groups, targets, penalty = jumps
    change = np.r_[False, groups[1:] != groups[:-1]]
    group_at = np.cumsum(change)
    return np.flatnonzero(np.r_[True, change[1:]]), group_at, targets, group_at[targets], \
        np.float32(penalty)


def _jump(prev: np.ndarray, dist_row: np.ndarray, plan: tuple, best: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """One row of `subsequence_dtw`'s jumps (`_jump_plan`): lowers best (in place) at the
    targets that a jump from the lowest column of their group reaches more cheaply; returns
    (those targets, the columns they jump from)."""
    firsts, group_at, targets, target_group, penalty = plan
    lowest = np.minimum.reduceat(prev, firsts)  # per group
    cost = lowest[target_group] + dist_row[targets] + penalty
    better = cost < best[targets]
    if not better.any():
        return targets[:0], targets[:0]
    to, g = targets[better], target_group[better]
    best[to] = cost[better]
    ties = np.flatnonzero(prev == lowest[group_at])  # the lowest column of each group: its
    groups_tied, first = np.unique(group_at[ties], return_index=True)  # first, by column
    source = np.zeros(len(firsts), np.int64)
    source[groups_tied] = ties[first]
    return to, source[g]
