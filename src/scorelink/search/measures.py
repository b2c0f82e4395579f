"""Measure-level times of a recording aligned to a score that has notes.

The system-level alignment (`align.py`) says which system sounds when, to about a grid step
(0.9 s). Where the score was engraved from its notes (MusicXML, MXL, kern, MEI), each aligned
stretch is refined to measures:

1. Consecutive segments of one system (a system played twice in a row may come as one segment
   or two) make one *stretch* of the recording.
2. The score's playing order (repeats unfolded) is cut into *blocks*: maximal runs of measures
   on one system. A stretch of system s is matched against every block of s.
3. Match: subsequence DTW of the block's note chroma (`notes.notes_chroma`, the score time
   scaled by the recording's global tempo, as the system segments give it and as the whole
   recording against the whole score gives it: both tried, the better kept) against the
   recording's chroma (`notes.audio_chroma`) around the stretch, with steps (1, 1), (1, 2),
   (2, 1): the block is played whole, from half to double that tempo, starting and ending
   anywhere near the stretch. The block with the lowest mean cost wins (the k-th stretch of a
   system prefers its k-th block when blocks sound alike).
4. The DTW path maps each measure's start and end in score time to the recording.

`refine(spec, alignment, systems)` returns `MeasureSegment`s in played order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scorelink.search.notes import FEATURE_FPS, audio_chroma, notes_chroma

PAD_SECONDS = 2.0  # the recording searched around a stretch: this much either side ...
PAD_SHARE = 0.25  # ... plus this share of the stretch's length
ORDER_TIE = 1e-3  # cost added per place a block lies from the stretch's place in order


@dataclass(frozen=True)
class MeasureSegment:
    """One measure played: where in the recording, and which measure of the score."""

    measure: int  # 0-based index of the measure in the score (engraving order)
    label: str  # its number as the score gives it ("12"; "0" for a pickup)
    system: int  # 0-based reading-order index of its system
    start: float  # seconds in the recording
    end: float
    cost: float  # mean cosine distance of the DTW path of its block (0 best, 2 worst)


@dataclass(frozen=True)
class _Block:
    system: int
    start: float  # score seconds
    end: float
    measures: list[dict]  # {"index", "label", "start", "end"} in playing order


def blocks(systems: list[dict]) -> list[_Block]:
    """The score's playing order cut into maximal runs of measures on one system."""
    played = sorted(((m["start"], k, m) for k, s in enumerate(systems)
                     for m in s.get("measures", [])), key=lambda x: (x[0], x[1]))
    out: list[_Block] = []
    for _, k, m in played:
        if out and out[-1].system == k:
            out[-1].measures.append(m)
        else:
            out.append(_Block(k, m["start"], m["end"], [m]))
    return [_Block(b.system, b.measures[0]["start"], b.measures[-1]["end"], b.measures)
            for b in out]


def _stretches(alignment) -> list[tuple[int, float, float]]:
    """(system, start s, end s) of consecutive segments of one system, gaps between allowed."""
    out: list[list] = []
    for seg in alignment.systems:
        if out and out[-1][0] == seg.system:
            out[-1][2] = seg.end
        else:
            out.append([seg.system, seg.start, seg.end])
    return [tuple(s) for s in out]


def refine(spec: np.ndarray, alignment, systems: list[dict]) -> list[MeasureSegment]:
    """Measure times for an `align.Alignment` of the (N_BINS, T) spectrogram `spec` to the
    score whose systems (`collect.score_systems`) carry "notes" and "measures"; [] when the
    score has none (scans, page images, LilyPond)."""
    score_blocks = blocks(systems)
    stretches = _stretches(alignment)
    if not score_blocks or not stretches:
        return []
    by_system: dict[int, list[_Block]] = {}
    for b in score_blocks:
        by_system.setdefault(b.system, []).append(b)
    # the recording's global tempo (recording seconds per score second), two ways: from the
    # system segments, and from the whole recording against the whole score as written; each
    # stretch is matched at both and keeps the better (a decoder that gave a system too long a
    # stretch misleads the first, a performance that skips repeats the second)
    ratios = [(b - a) / np.mean([x.end - x.start for x in by_system[s]])
              for s, a, b in stretches if s in by_system]
    if not ratios:
        return []
    played = sum(b.end - b.start for b in score_blocks)
    tempi = [float(np.median(ratios)), stretches[-1][2] / played]
    if abs(np.log(tempi[1] / tempi[0])) < np.log(1.1):
        tempi = tempi[:1]
    chroma = audio_chroma(spec)  # (12, T') at FEATURE_FPS
    out: list[MeasureSegment] = []
    seen: dict[int, int] = {}
    for s, a, b in stretches:
        if s not in by_system:
            continue
        place = seen.get(s, 0)
        seen[s] = place + 1
        pad = PAD_SECONDS + PAD_SHARE * (b - a)
        lo = max(0, int((a - pad) * FEATURE_FPS))
        hi = min(chroma.shape[1], int(np.ceil((b + pad) * FEATURE_FPS)))
        best = None
        for tempo in tempi:
            for k, block in enumerate(by_system[s]):
                query = _block_chroma(systems[s]["notes"], block, tempo)
                cost, path = dtw_path(query, chroma[:, lo:hi])
                if path is None:
                    continue
                cost += ORDER_TIE * abs(k - place)
                if best is None or cost < best[0]:
                    best = (cost, block, path, tempo)
        if best is None:
            continue
        cost, block, path, tempo = best
        for m in block.measures:
            start = _recording_frame(path, (m["start"] - block.start) * tempo * FEATURE_FPS)
            end = _recording_frame(path, (m["end"] - block.start) * tempo * FEATURE_FPS)
            out.append(MeasureSegment(m["index"], m["label"], s, (lo + start) / FEATURE_FPS,
                                      (lo + end) / FEATURE_FPS, round(float(cost), 4)))
    # stretches searched with overlapping margins may disagree by a frame or two at a seam
    for k in range(1, len(out)):
        if out[k].start < out[k - 1].end and out[k].start >= out[k - 1].start:
            prev = out[k - 1]
            out[k - 1] = MeasureSegment(prev.measure, prev.label, prev.system, prev.start,
                                        out[k].start, prev.cost)
    return out


def _block_chroma(notes: np.ndarray, block: _Block, tempo: float) -> np.ndarray:
    """(12, frames) chroma of a system's notes sounding in the block, at the recording's
    tempo, time 0 at the block's start."""
    notes = np.asarray(notes, np.float64).reshape(-1, 3)
    inside = notes[(notes[:, 0] >= block.start - 1e-6) & (notes[:, 0] < block.end - 1e-6)]
    shifted = inside - [block.start, block.start, 0]
    shifted[:, 1] = np.minimum(shifted[:, 1], block.end - block.start)
    shifted[:, :2] *= tempo
    frames = max(2, int(round((block.end - block.start) * tempo * FEATURE_FPS)))
    return notes_chroma(shifted, frames)


def _recording_frame(path: np.ndarray, score_frame: float) -> int:
    """The recording frame where the path reaches a score frame (past its end: after the
    path's last frame)."""
    f = int(round(score_frame))
    if f >= path[-1, 0] + 1:
        return int(path[-1, 1]) + 1
    k = int(np.searchsorted(path[:, 0], f, side="left"))
    return int(path[k, 1])


def dtw_path(query: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray | None]:
    """Subsequence DTW of all of `query` (12, N) against part of `target` (12, M) (unit chroma
    frames), steps (1, 1), (1, 2), (2, 1) in (query, target) frames.

    Returns (mean cosine distance per query frame, path (L, 2) of (query frame, target frame)
    increasing in both); (inf, None) when no path exists (the target under half the query).
    `notes.subsequence_dtw` computes the same costs without the path, for many targets at once
    (with its STEP_PENALTY at 0, as shipped).
    """
    n, m = query.shape[1], target.shape[1]
    if n == 0 or m == 0:
        return float("inf"), None
    dist = 1.0 - query.T.astype(np.float32) @ target.astype(np.float32)  # (N, M)
    inf = np.float32(np.inf)
    acc = np.full((n, m), inf, np.float32)
    step = np.zeros((n, m), np.int8)  # 0: (1,1), 1: (1,2), 2: (2,1); row 0: path start
    acc[0] = dist[0]
    for i in range(1, n):
        c11 = np.r_[inf, acc[i - 1, :-1]] + dist[i]
        c12 = np.r_[inf, inf, acc[i - 1, :-2]] + dist[i]
        c21 = (np.r_[inf, acc[i - 2, :-1]] + 2 * dist[i]) if i >= 2 else np.full(m, inf)
        stacked = np.stack([c11, c12, c21])
        step[i] = stacked.argmin(0)
        acc[i] = stacked.min(0)
    j = int(acc[-1].argmin())
    if not np.isfinite(acc[-1, j]):
        return float("inf"), None
    cost = float(acc[-1, j]) / n
    cells = [(n - 1, j)]
    i = n - 1
    while i > 0:
        di, dj = ((1, 1), (1, 2), (2, 1))[step[i, j]]
        i, j = i - di, j - dj
        cells.append((i, j))
    return cost, np.array(cells[::-1], np.int64)
