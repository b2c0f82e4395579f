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
    """`notes.NoteMatcher`s of read noteheads, one per READ_SCALES: heads {system id: (n, 2)
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
        out.append(NoteMatcher(timed, {i: piece[i] for i in timed}))
    return out
