"""Notes read off a score's image, as the notes path of search takes them.

A scan or a page image has no notes; the note reader (`scorelink.models.reader`) finds its
noteheads' pitches and x positions. Those are turned into notes (onset, offset, pitch) on a
timeline made of x: a piece's systems laid end to end in reading order, PX_PER_SECOND px of
strip to a second of "score time". Engravers give a note room by its duration (not in
proportion, but monotonically), so x is a rough clock; the notes matcher's DTW bends by half to
double, and the timeline is also offered at READ_SCALES (the piece read as slower and faster)
because a piece's px per second varies too: on the engraved training systems of the chorales
the median px per second of score time between successive onsets was 76 (10-90 % of pieces:
68-85), on MSMD's 79 (43-136; `benchmarks/reader_stats.py`, docs/reader.md).

A read note lasts until the next onset of its system (the reader gives no durations).
"""

from __future__ import annotations

import numpy as np

PX_PER_SECOND = 78.0  # strip px per second of score time (above)
READ_SCALES = (0.5, 1.0, 2.0)  # the timeline also read at these factors of its time
SAME_ONSET_PX = 6.0  # noteheads closer than this in x start together (a chord's seconds)
LAST_NOTE = 0.5  # s: how long the last note of a system lasts
READ_SHINGLE_HITS = 200  # shingles a query keeps per timeline (notes: SHINGLE_HITS, 100). Read
# notes describe their shingles less faithfully than a score's notes, so in a large collection a
# clip's own system falls out of the best 100 (validation clips against 2,414 systems, the
# chorales' and MSMD's validation pieces among 140 mutopia-extra pieces: of the 17 true clips
# whose piece was found at 278 systems and lost at 2,414, 7 did not have it among their 50
# lowest costs at all). `benchmarks/no_match.py --data DIR/chorales-vt --data DIR/msmd-vt --split
# valid --clips 150 --noise 25 --tempi 0.5,0.66,1,1.33,2 --read --distractors
# DIR/mutopia-r1:train:140`, 2026-12-07, hits 100 / 200 / 300: the piece right for 92.7 / 95.0 /
# 96.0 % of the 300 true clips (none lost), others flagged at the threshold that keeps 95 % of
# them 85.3 / 93.3 / 93.3 %; at 278 systems (no distractors) 100 / 200: 97.7 / 98.3 % and
# 98.9 / 99.2 %. A query at 10,000 read systems takes about 1.5 times as long at 200 as at 100
# (`search_speed.py --notes-only --read`, with the verdict p50 633-663 -> 886-996 ms), about
# twice at 300: 200.

READ_JUMPS: float | None = 3.0  # a read timeline may jump back to a piece's opening, for this
# penalty (summed cosine distance, `notes.subsequence_dtw`): it lays each system once in printed
# order (the reader sees no repeat signs), a performance replays repeats, most of them from the
# opening. On validation (`benchmarks/no_match.py --data DIR/chorales-vt --data DIR/msmd-vt
# --split valid --clips 150 --noise 25 --tempi 0.5,0.66,1,1.33,2 --read --jumps 3|off
# --distractors DIR/mutopia-r1:train:0,140`, 2026-12-08; docs/reader.md) the true clips' system
# right went from 91.3 to 93.3 % at 278 systems read as scans and from 88.0 to 90.7 % at 2,414
# (none lost), the held-out real scans' stayed (90.0 %). Jumps to every system's start were
# tried first: they lost real-scan clips to a movement's recapitulation.


def onset_groups(x: np.ndarray) -> np.ndarray:
    """(n,) sorted x -> (n,) the x of each note's onset: the first x of its run of heads no
    more than SAME_ONSET_PX apart."""
    if not len(x):
        return x
    starts = np.r_[True, np.diff(x) > SAME_ONSET_PX]
    return x[starts][np.cumsum(starts) - 1]


def timeline(heads: list[np.ndarray], *, scale: float = 1.0) -> list[np.ndarray]:
    """A piece's systems in reading order, each its noteheads (n, 2) [x px, MIDI pitch] ->
    each its notes (n, 3) [onset s, offset s, MIDI pitch] on one timeline: system k starts one
    onset gap after system k - 1's last onset; seconds are px / PX_PER_SECOND * scale."""
    out, at = [], 0.0
    gaps = [np.diff(np.unique(onset_groups(np.sort(h[:, 0])))) for h in heads if len(h)]
    gap = float(np.median(np.concatenate(gaps))) if gaps and len(np.concatenate(gaps)) else 20.0
    for h in heads:
        h = h[np.argsort(h[:, 0], kind="stable")]
        if not len(h):
            out.append(np.zeros((0, 3)))
            continue
        onset = onset_groups(h[:, 0])
        distinct = np.unique(onset)
        after = np.searchsorted(distinct, onset, side="right")
        offset = np.where(after < len(distinct), distinct[np.minimum(after, len(distinct) - 1)],
                          onset + LAST_NOTE * PX_PER_SECOND)
        t0 = at - distinct[0]
        out.append(np.stack([(onset + t0) / PX_PER_SECOND * scale,
                             (offset + t0) / PX_PER_SECOND * scale, h[:, 1]], axis=1))
        at += distinct[-1] - distinct[0] + gap
    return out


def read_matchers(heads: dict[int, np.ndarray], piece: dict[int, str]) -> list:
    """`notes.NoteMatcher`s of read noteheads, one per READ_SCALES, with chroma onsets (read
    notes have onsets and no durations: `notes.ONSET_SHARE`): heads {system id: (n, 2)
    [x px, MIDI pitch]}, piece {system id: its piece}; a piece's systems are read in the order
    of their ids (reading order, as indexes number them)."""
    from scorelink.search.notes import NoteMatcher

    by_piece: dict[str, list[int]] = {}
    for i in sorted(heads):
        by_piece.setdefault(piece[i], []).append(i)
    out = []
    for scale in READ_SCALES if heads else ():
        timed = {}
        for ids in by_piece.values():
            timed.update(zip(ids, timeline([heads[i] for i in ids], scale=scale), strict=True))
        out.append(NoteMatcher(timed, {i: piece[i] for i in timed}, hits=READ_SHINGLE_HITS,
                               onsets=True, jumps=READ_JUMPS))
    return out


REFINE_PAD = 2.0  # s: how far the read notes may move a system's start (`refine_starts`)
REFINE_MIN_NOTES = 4  # a system with fewer read notes keeps the image's start


def read_systems(strips: list[np.ndarray], reader: str | None = None) -> list[np.ndarray]:
    """A score's system strips in reading order -> each system's read notes (n, 3) [onset s,
    offset s, MIDI pitch] on one x timeline (`timeline`)."""
    from scorelink.search.collect import read_heads

    return timeline(read_heads(strips, reader=reader))


def refine_starts(spec: np.ndarray, segments: list, notes: list[np.ndarray]) -> list:
    """Sharpen an image alignment's system starts with notes read off the systems.

    segments: `align.Segment`s in played order (gaps included); notes: each system's read
    notes (`read_systems`). Each system segment's read notes, stretched to the segment's length,
    are aligned by subsequence DTW (half to double that tempo) to the recording within
    REFINE_PAD of the segment; the segment starts where they start, and the segment before
    ends there. The image decides which system sounds (it holds the whole recording together);
    the notes say when it begins (on validation the image placed 73-74 % of the chorales' and
    MSMD's system onsets within 0.5 s and the refined starts 93-95 %; docs/align.md)."""
    from dataclasses import replace

    from scorelink.search.notes import FEATURE_FPS, audio_features, notes_features, subsequence_dtw

    feats = audio_features(spec)
    out = list(segments)
    for k, seg in enumerate(out):
        if seg.system < 0 or seg.end - seg.start < 1.0:
            continue
        n = notes[seg.system]
        if len(n) < REFINE_MIN_NOTES:
            continue
        local = n - [n[0, 0], n[0, 0], 0]
        scale = (seg.end - seg.start) / max(float(local[:, 1].max()), 1e-3)
        query = notes_features(local * [scale, scale, 1])
        lo = max(0, int((seg.start - REFINE_PAD) * FEATURE_FPS))
        hi = min(feats.shape[1], int((seg.end + REFINE_PAD) * FEATURE_FPS))
        if hi - lo <= query.shape[1] // 2 + 2:
            continue
        cost, start, _ = subsequence_dtw(query, feats[:, lo:hi])
        end = int(np.argmin(cost))
        if not np.isfinite(cost[end]):
            continue
        moved = (lo + int(start[end])) / FEATURE_FPS
        before = out[k - 1] if k else None
        floor = before.start + 0.1 if before is not None else 0.0
        if abs(moved - seg.start) > REFINE_PAD or moved <= floor or moved >= seg.end - 0.1:
            continue
        out[k] = replace(seg, start=moved)
        if before is not None and abs(before.end - seg.start) < 1e-6:
            out[k - 1] = replace(before, end=moved)
    return out
