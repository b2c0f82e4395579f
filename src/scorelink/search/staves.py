"""Staves and systems of a score page: find_systems(page) -> [SystemBox].

The staff analysis is written here because no maintained Python library does it on its own:
optical music recognition systems (Audiveris, oemer) find staves only inside a whole recognition
pipeline, with its own runtime and model weights. The method is the textbook one (Fujinaga 2004;
Cardoso et al. 2009): the commonest vertical black run is the staff-line thickness and the
commonest black + white pair the staff-line distance; dark pixels in thin vertical runs are
projected onto rows after the shear that makes the projection sharpest (which undoes skew); five
evenly spaced, continuous peaks make a staff; staves joined by a vertical stroke (the system's
start barline, a bracket, barlines drawn through) make a system. Lines are looked for in a copy
of the page blurred along its rows, which averages scan noise out and keeps lines.

A scanned page is not skewed as one piece: a curled page or one that lay unevenly on the glass
tilts its top and bottom systems differently (by up to a degree on the Beethoven scans). So
the skew is also measured in bands of the page about a system tall, and each band whose skew
differs is looked at again under its own shear; where staves found under different shears
cover the same lines, the one with the most continuous, then the longest lines wins.

Coordinates are continuous page pixels: row r spans [r, r + 1), as in the dataset's boxes.
Five-line staves only: percussion (one-line) staves and tablature are not found.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np

_SKEW_RANGE = 5.0  # degrees searched either way
_LINE_BLUR = 5  # px, horizontal blur before looking for staff lines
_MIN_SPACE = 4  # px, the smallest staff-line distance read at PAGE_WIDTH (16-px staves)
_SAMPLE = 100_000  # thin-run pixels the skew is judged on, at most
_BAND = 24  # staff-line distances: bands whose own skew is measured (a system and its gap)
_BAND_SKEW = 2.0  # degrees either way of the page's skew searched in a band
_SMALL_STAFF = 0.8  # a staff less tall than this share of the median is small (a footnote)


@dataclass(frozen=True)
class SystemBox:
    """A system found on a page, in page pixels (staff lines only; notes may stick out)."""

    top: float  # top line of the top staff (highest point when the page is skewed)
    bottom: float  # bottom line of the bottom staff (lowest point)
    left: float  # where the staff lines begin
    right: float  # and end
    staves: int
    staff_height: float  # px from first to fifth line, mean over the staves
    skew: float = 0.0  # degrees; positive when the lines fall to the right

    @property
    def centre(self) -> float:
        """The y the strip is centred on: the middle of the staff lines, halfway across."""
        return (self.top + self.bottom) / 2


def find_systems(page: np.ndarray, *, staves_per_system: int | None = None) -> list[SystemBox]:
    """The systems of a (H, W) uint8 grayscale page, top to bottom; [] when it has no staves.

    Skew (up to a few degrees, and varying down the page), scan noise, text, lyrics and titles
    are tolerated; a small staff joined to no other (a footnote, an ossia) is left out. When no
    vertical stroke joins any two staves of the page, staves are grouped by the larger gaps
    between them, or each is a system when the gaps are even. staves_per_system: when known
    (a piano score: 2) and the page's staves divide by it, staves are grouped by that number
    from the top instead (stems and pencil strokes between systems cannot join them then); and
    a first or last system short of staves at the edge of the ink (a scan cropped through it)
    gets a box that reaches where its missing staves would be (`staves` counts those found).
    """
    from scipy.ndimage import uniform_filter1d

    gray = np.asarray(page)
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"find_systems takes a 2-D uint8 page, got {gray.dtype} {gray.shape}")
    if gray.size == 0 or int(gray.max()) - int(gray.min()) < 48:
        return []  # blank, or too faint to hold anything
    dark = gray < _ink_threshold(gray)  # strokes of any direction
    # Lines are looked for in a copy blurred along the rows: staff lines keep their contrast
    # while scan noise is averaged out, and faint lines split over two rows stay above it.
    smooth = np.rint(uniform_filter1d(gray.astype(np.float32), _LINE_BLUR, axis=1))
    smooth = smooth.astype(np.uint8)
    lined = smooth < _ink_threshold(smooth)

    thickness, distance = _run_statistics(lined)
    if distance < _MIN_SPACE or thickness * 2 > distance:
        return []
    thin = _thin_runs(lined, max(thickness + 2, 2 * thickness), distance)  # (H, W) bool
    ink = np.where(thin, (255 - smooth.astype(np.float32)) / 255, 0).astype(np.float32)
    staves = _find_staves(thin, (ink, lined, dark), distance)
    if not staves:
        return []
    joined = _joined_by_strokes(staves, dark, distance)
    # A staff much smaller than the page's others and joined to none of them is a footnote
    # (a variant printed below the music), an ossia or an incipit: not a system of the music.
    # (A smaller staff inside a system, a violin part over the piano, is joined to it.)
    heights = np.array([s.lines[-1] - s.lines[0] for s in staves])
    alone = [not (k > 0 and joined[k - 1]) and not (k < len(joined) and joined[k])
             for k in range(len(staves))]
    aside = (heights < _SMALL_STAFF * np.median(heights)) & np.array(alone)
    if aside.any() and not aside.all():
        staves = [s for s, out in zip(staves, aside, strict=True) if not out]
        joined = _joined_by_strokes(staves, dark, distance)
    if staves_per_system and len(staves) % staves_per_system == 0:
        joined = [(k + 1) % staves_per_system != 0 for k in range(len(staves) - 1)]
    elif not any(joined):  # nothing drawn between staves: go by the spacing
        joined = _joined_by_gaps(staves)
    groups = [[0]]
    for k, join in enumerate(joined, start=1):
        if join:
            groups[-1].append(k)
        else:
            groups.append([k])

    # A system cut by the page's edge (a scan cropped through the bottom staff) keeps its
    # place: its box reaches where its missing staves would be, as far apart as in the page's
    # whole systems, so that its strip is centred on the system, not on the staves left. The
    # edge is where the ink ends (a scan may be padded with white below the cut).
    inked = np.flatnonzero(dark.any(axis=1))
    first_ink, last_ink = (int(inked[0]), int(inked[-1]) + 1) if len(inked) else (0, 0)
    centre = gray.shape[1] / 2
    steps = [staves[k + 1].y(0, centre) - staves[k].y(0, centre)
             for g in groups if len(g) == staves_per_system for k in g[:-1]]
    step = float(np.median(steps)) if steps else 0.0
    systems = []
    for n, group in enumerate(groups):
        first, last = staves[group[0]], staves[group[-1]]
        left = min(staves[k].left for k in group)
        right = max(staves[k].right for k in group)
        slope = float(np.mean([staves[k].slope for k in group]))
        top = min(first.y(0, x) for x in (left, right))
        bottom = max(last.y(4, x) for x in (left, right))
        missing = (staves_per_system or 0) - len(group)
        if step and missing > 0 and n == len(groups) - 1 and (
                bottom + missing * step > last_ink - distance):
            bottom += missing * step
        elif step and missing > 0 and n == 0 and top - missing * step < first_ink + distance:
            top -= missing * step
        systems.append(SystemBox(
            top=top,
            bottom=bottom,
            left=float(left),
            right=float(right),
            staves=len(group),
            staff_height=float(np.mean([staves[k].lines[-1] - staves[k].lines[0]
                                        for k in group])),
            skew=float(np.degrees(np.arctan(slope))),
        ))
    return systems


@dataclass(frozen=True)
class _Sheared:
    """The page sheared so that its staff lines are rows (see `_shear`); each (H', W)."""

    ink: np.ndarray  # float32 darkness of the thin-run pixels, the stuff staff lines are made of
    lined: np.ndarray  # bool, dark in the page blurred along rows
    dark: np.ndarray  # bool, dark in the page itself
    slope: float  # of the shear
    origin: int  # page row of the frame's row 0 at the shear's centre column


@dataclass(frozen=True)
class _Staff:
    lines: tuple[float, ...]  # five y in the sheared frame
    left: int
    right: int  # exclusive
    continuity: float  # share of [left, right) where the most broken line is dark
    slope: float  # of the frame's shear
    origin: int  # page y = frame y + origin + slope * (x - centre)
    centre: float  # the shear's centre column
    length: float = 0.0  # px of line ink in the five rows (the sharper the shear, the more)

    def y(self, line: int, x: float) -> float:
        """Page y of the line-th line (0 = top) at column x."""
        return self.lines[line] + self.origin + self.slope * (x - self.centre)


def _otsu(gray: np.ndarray) -> int:
    """Otsu's threshold: the gray level that best splits the histogram in two classes."""
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    weight = np.cumsum(hist)
    mass = np.cumsum(hist * np.arange(256))
    below, above = weight[:-1], weight[-1] - weight[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mass[-1] * below / weight[-1] - mass[:-1]) ** 2 / (below * above)
    return int(np.nanargmax(between)) + 1  # dark = gray < threshold


def _ink_threshold(gray: np.ndarray) -> int:
    """Halfway between Otsu's threshold and white, so that thin anti-aliased lines stay dark,
    but kept three standard deviations below the paper, so that its grain stays white."""
    otsu = _otsu(gray)
    paper = gray[gray >= otsu]
    level = float(np.median(paper))
    spread = 1.4826 * float(np.median(np.abs(paper - level)))  # robust standard deviation
    return max(otsu, min((otsu + 256) // 2, int(level - 3 * spread)))


def _vertical_runs(dark: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column, first row and length of every vertical run of dark pixels, column by column."""
    padded = np.zeros((dark.shape[1], dark.shape[0] + 2), dtype=np.int8)
    padded[:, 1:-1] = dark.T
    step = np.diff(padded, axis=1)
    col, start = np.nonzero(step == 1)  # sorted by column, then row
    _, stop = np.nonzero(step == -1)
    return col, start, stop - start


def _run_statistics(dark: np.ndarray) -> tuple[int, int]:
    """(staff-line thickness, staff-line distance) in px: the commonest vertical black run and
    the commonest black run + white run below it (Cardoso et al.)."""
    col, start, length = _vertical_runs(dark)
    same = col[1:] == col[:-1]
    pair = (start[1:] - start[:-1])[same]  # black run + the white run that follows it
    if len(pair) == 0:
        return 0, 0
    return int(np.argmax(np.bincount(length))), int(np.argmax(np.bincount(pair)))


def _thin_runs(dark: np.ndarray, longest: int, distance: int) -> np.ndarray:
    """Dark pixels in vertical runs no longer than a staff line may be (noteheads, stems,
    barlines, text strokes and photos are longer)."""
    longest = max(1, min(longest, distance - 2))
    col, start, length = _vertical_runs(dark)
    keep = length <= longest
    marks = np.zeros((dark.shape[1], dark.shape[0] + 1), dtype=np.int32)
    np.add.at(marks, (col[keep], start[keep]), 1)
    np.add.at(marks, (col[keep], start[keep] + length[keep]), -1)
    return np.cumsum(marks, axis=1)[:, :-1].T > 0


def _skew_slope(thin: np.ndarray, *, around: float = 0.0, span: float = _SKEW_RANGE) -> float:
    """tan of the angle (degrees around +- span) whose shear gives the sharpest row projection
    of the thin runs."""
    ys, xs = np.nonzero(thin)
    if len(ys) == 0:
        return float(np.tan(np.radians(around)))
    step = max(1, len(ys) // _SAMPLE)  # a sample is enough to judge sharpness
    ys, xs = ys[::step], xs[::step].astype(np.float64) - thin.shape[1] / 2
    reach = int(np.ceil(abs(thin.shape[1] * np.tan(np.radians(abs(around) + span)))))

    def sharpness(angle: float) -> float:
        rows = ys - np.rint(np.tan(np.radians(angle)) * xs).astype(np.int64) + reach
        return float(np.sum(np.bincount(rows).astype(np.float64) ** 2))

    best, coarse = around, int(np.ceil(span / 0.25)) * 2 + 1  # 0.25 degrees apart at most
    for width, count in ((span, coarse), (2 * span / (coarse - 1), 21)):  # then 10x finer
        angles = best + np.linspace(-width, width, count)
        # Ties (shears too small to move a pixel) go to the angle nearest `around`.
        best = max(sorted(angles, key=lambda a: abs(a - around)), key=sharpness)
    return float(np.tan(np.radians(best)))


def _find_staves(thin: np.ndarray, layers: tuple[np.ndarray, np.ndarray, np.ndarray],
                 distance: int) -> list[_Staff]:
    """The staves of the page, top to bottom: found under the page's skew, and under each
    band's own skew where that differs by a pixel or more across the page. Where staves found
    under different shears overlap, the one with the most continuous, then the longest lines
    wins (as among candidates of one shear: ledger lines above a staff, say)."""
    height, width = thin.shape
    overall = _skew_slope(thin)
    candidates = _staves_under(overall, slice(0, height), layers, distance)
    band = _BAND * distance
    for top in range(0, max(height - band // 2, 1), band // 2):
        rows = slice(top, min(top + band, height))
        if np.count_nonzero(thin[rows]) < 2 * width:  # not even two lines across
            continue
        slope = _skew_slope(thin[rows], around=float(np.degrees(np.arctan(overall))),
                            span=_BAND_SKEW)
        if abs(slope - overall) * width < 1.0:
            continue
        # Staves the band cuts are left to the band that holds them whole.
        inner = (rows.start + distance if rows.start > 0 else -np.inf,
                 rows.stop - distance if rows.stop < height else np.inf)
        candidates += [s for s in _staves_under(slope, rows, layers, distance)
                       if s.y(0, width / 2) >= inner[0] and s.y(4, width / 2) <= inner[1]]
    staves: list[_Staff] = []
    for staff in sorted(candidates, key=lambda s: (-round(s.continuity / 0.05), -s.length)):
        a, b = staff.y(0, width / 2), staff.y(4, width / 2)
        if all(b < other.y(0, width / 2) or a > other.y(4, width / 2) for other in staves):
            staves.append(staff)
    return sorted(staves, key=lambda s: s.y(0, width / 2))


def _staves_under(slope: float, rows: slice,
                  layers: tuple[np.ndarray, np.ndarray, np.ndarray],
                  distance: int) -> list[_Staff]:
    """Candidate staves in page rows `rows` (ink, lined, dark layers) sheared by `slope`."""
    ink, lined, dark = (layer[rows] for layer in layers)
    sheared, offset = _shear(ink, slope)
    frame = _Sheared(sheared, _shear(lined, slope)[0] > 0, _shear(dark, slope)[0] > 0,
                     slope, rows.start - offset)
    lines, lengths, widths = _staff_lines(frame.ink, distance)
    return _staves(lines, lengths, widths, frame, distance)


def _shear(values: np.ndarray, slope: float) -> tuple[np.ndarray, int]:
    """Move each column up by slope * (x - W / 2) so skewed lines become rows; returns the
    sheared (H + 2 offset, W) float32 array and the row offset added on top."""
    height, width = values.shape
    shift = np.rint(slope * (np.arange(width) - width / 2)).astype(np.int64)
    offset = int(np.abs(shift).max(initial=0))
    out = np.zeros((height + 2 * offset, width), dtype=np.float32)
    ys, xs = np.nonzero(values)
    out[ys - shift[xs] + offset, xs] = values[ys, xs]
    return out, offset


def _staff_lines(ink: np.ndarray,
                 distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Staff-line candidates: rows whose count of thin-run pixels is long enough and a clear
    peak within half a staff-line distance either way (flat bands such as noise, pictures or
    text are not peaks). Returns their y (sheared frame, continuous), length and thickness
    in px."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    counts = np.count_nonzero(ink, axis=1).astype(np.float64)
    weight = ink.sum(axis=1, dtype=np.float64)
    size = 2 * max(1, distance // 2) + 1
    floor = minimum_filter1d(counts, size, mode="constant", cval=0.0)
    peak = (counts == maximum_filter1d(counts, size, mode="constant", cval=0.0)) & (
        counts - floor >= np.maximum(3.0 * distance, 0.5 * counts))  # a bar is longer
    peak[1:] &= ~peak[:-1]  # a flat top counts once
    ys, widths = [], []
    for y in np.flatnonzero(peak):
        a, b = y, y + 1  # the rows with at least half the ink of the peak's
        while a > 0 and y - a < distance // 2 and weight[a - 1] >= 0.5 * weight[y]:
            a -= 1
        while b < len(counts) and b - y < distance // 2 and weight[b] >= 0.5 * weight[y]:
            b += 1
        widths.append(b - a)
        last = y  # the flat top may be several rows
        while last + 1 < len(counts) and counts[last + 1] == counts[y]:
            last += 1
        a, b = max(a, y - 1), min(b, last + 2)  # centroid of the core, not what touches it
        ys.append(float(np.sum((np.arange(a, b) + 0.5) * weight[a:b]) / np.sum(weight[a:b])))
    return np.array(ys), counts[peak], np.array(widths)


def _staves(lines: np.ndarray, lengths: np.ndarray, widths: np.ndarray, frame: _Sheared,
            distance: int) -> list[_Staff]:
    """Candidate staves: five evenly spaced lines that run side by side. Candidates may overlap
    (ledger lines above a staff, say): `_find_staves` chooses among them."""
    candidates: list[_Staff] = []
    dark_length = [np.count_nonzero(frame.lined[max(int(y) - 1, 0) : int(y) + 2].any(axis=0))
                   for y in lines]  # columns where the line's rows are dark (thin or not)
    for i, y0 in enumerate(lines):
        for j in np.flatnonzero((lines > y0 + 0.6 * distance) & (lines < y0 + 1.6 * distance)):
            chosen = _evenly_spaced(lines, i, int(j))
            # Each line is long, as thin runs or under beams and chords: on a staff crowded
            # with beamed chords an outer line shows few thin runs, yet is dark all along.
            if chosen is None or min(max(lengths[k], dark_length[k]) for k in chosen) < (
                    0.25 * lengths[chosen].max()):
                continue
            gap = (lines[chosen[-1]] - y0) / 4
            if np.median(widths[chosen]) > max(3.0, 0.35 * gap):
                continue  # bands too thick to be lines: text
            staff = _extent(tuple(float(lines[k]) for k in chosen), frame, distance)
            # A sixth line as continuous at the same spacing means ruled paper, not a staff.
            # (Ledger lines, however many, have gaps between the notes.)
            if staff is None or any(_solid_line(y, staff, frame.dark)
                                    for y in (y0 - gap, y0 + 5 * gap)):
                continue
            candidates.append(replace(staff, length=float(lengths[chosen].sum())))
    return candidates


def _evenly_spaced(lines: np.ndarray, first: int, second: int) -> list[int] | None:
    """Indices of five lines spaced like the first two, or None."""
    chosen, y0, gap = [first, second], lines[first], lines[second] - lines[first]
    for k in (2, 3, 4):
        near = int(np.argmin(np.abs(lines - (y0 + k * gap))))
        if abs(lines[near] - (y0 + k * gap)) > max(1.5, 0.2 * gap):
            return None
        chosen.append(near)
        gap = (lines[near] - y0) / k  # the spacing, better known with every line
    return chosen


def _extent(lines: tuple[float, ...], frame: _Sheared, distance: int) -> _Staff | None:
    """The columns where at least three of the five lines have thin-run ink (gaps left by
    noteheads, stems and barlines bridged), widened over the barlines that end the staff;
    None when that is too short for a staff or its lines are not continuous."""
    rows = [slice(max(int(y) - 1, 0), int(y) + 2) for y in lines]  # the line's row, +- 1
    present = sum((frame.ink[r].max(axis=0) > 0).astype(np.int32) for r in rows) >= 3
    cols = np.flatnonzero(present)
    if len(cols) == 0:
        return None
    # Where every line is dark but not thin, beams or chords cover the lines: a gap in
    # `present` longer than a notehead or two is bridged when it is covered like that.
    covered = sum(frame.lined[r].any(axis=0).astype(np.int32) for r in rows) >= 4
    covered_before = np.concatenate(([0], np.cumsum(covered)))
    gap_covered = (covered_before[cols[1:]] - covered_before[cols[:-1] + 1]) / np.maximum(
        np.diff(cols) - 1, 1)
    breaks = np.flatnonzero((np.diff(cols) > 2 * distance) & (gap_covered < 0.9))
    firsts = np.concatenate(([0], breaks + 1))
    lasts = np.concatenate((breaks, [len(cols) - 1]))
    k = int(np.argmax(cols[lasts] - cols[firsts]))
    start, stop = int(cols[firsts[k]]), int(cols[lasts[k]]) + 1
    if stop - start < max(4 * distance, 0.05 * frame.ink.shape[1]):
        return None
    # Staff lines run all along the staff; ledger lines that happen to line up do not.
    continuity = min(float(frame.lined[r, start:stop].any(axis=0).mean()) for r in rows)
    if continuity < 0.75:
        return None
    # On a curled page the lines bend away from the shear's rows near the ends: follow them.
    start, left_bend = _follow(lines, frame, start, -1, distance)
    stop, right_bend = _follow(lines, frame, stop - 1, 1, distance)
    stop += 1
    left, right = start, stop  # widened over the barlines that end the staff
    while left > 0 and _barline(lines, frame, left - 1, left_bend) and start - left < distance:
        left -= 1
    while (right < frame.dark.shape[1] and _barline(lines, frame, right, right_bend)
           and right - stop < distance):
        right += 1
    return _Staff(lines, left, right, continuity, frame.slope, frame.origin,
                  frame.ink.shape[1] / 2)


def _follow(lines: tuple[float, ...], frame: _Sheared, end: int, step: int,
            distance: int) -> tuple[int, int]:
    """Follow the five lines from column `end`, where they were last found, in direction
    `step` (+1 right, -1 left), as they bend by up to half a line distance from their rows
    (a pixel a column at most), across gaps of up to two distances (noteheads, barlines) and
    beams that cover them. Returns the last column where at least three of the lines have
    thin-run ink, and the bend there in rows."""
    limit = max(1, distance // 2)
    bends = range(-limit, limit + 1)
    ys = [int(y) for y in lines]

    def lines_with(layer: np.ndarray) -> np.ndarray:  # (bends, W): lines with ink, per column
        return np.array([sum(layer[max(y + b - 1, 0) : max(y + b + 2, 0)].any(axis=0)
                             .astype(np.int32) for y in ys) for b in bends])

    thin = lines_with(frame.ink > 0) >= 3
    covered = lines_with(frame.lined) >= 4  # a beam or chord over the lines
    bend, last, gap, under = 0, end, 0, 0
    x = end + step
    while 0 <= x < thin.shape[1] and gap <= 2 * distance and under <= 8 * distance:
        found = next((b for b in (bend, bend - 1, bend + 1)
                      if abs(b) <= limit and thin[b + limit, x]), None)
        if found is not None:
            bend, last, gap, under = found, x, 0, 0
        elif covered[bend + limit, x]:
            under += 1
        else:
            gap += 1
        x += step
    return last, bend


def _barline(lines: tuple[float, ...], frame: _Sheared, x: int, bend: int) -> bool:
    """Whether column x is dark on at least four of the lines (bent by `bend` rows)."""
    return sum(bool(frame.dark[max(int(y) + bend - 1, 0) : max(int(y) + bend + 2, 0), x].any())
               for y in lines) >= 4


def _solid_line(y: float, staff: _Staff, dark: np.ndarray) -> bool:
    """Whether row y (+- 1) is dark along 90 % of the staff, as a staff line is."""
    if not 1 <= y < dark.shape[0] - 1:
        return False
    row = slice(int(y) - 1, int(y) + 2)
    return float(dark[row, staff.left : staff.right].any(axis=0).mean()) >= 0.9


def _joined_by_strokes(staves: list[_Staff], dark: np.ndarray, distance: int) -> list[bool]:
    """For each two staves in a row, whether a vertical stroke joins them: the system's start
    barline or bracket, or a barline drawn through (dark along 90 % of the rows between the
    two staves, column by column, on the page)."""
    joined = []
    height, width = dark.shape
    for upper, lower in pairwise(staves):
        left = max(min(upper.left, lower.left) - distance, 0)
        right = min(max(upper.right, lower.right) + distance, width)
        xs = np.arange(left, right)
        a = np.clip(np.ceil(upper.y(4, xs)).astype(np.int64), 0, height)
        b = np.clip(np.floor(lower.y(0, xs)).astype(np.int64), 0, height)
        if len(xs) < 3 or (b - a).min() < 2:
            joined.append(False)
            continue
        top, bottom = int(a.min()), int(b.max())
        band = dark[top:bottom, left:right]
        leaning = band.copy()  # barlines may lean a little
        leaning[:, 1:] |= band[:, :-1]
        leaning[:, :-1] |= band[:, 1:]
        above = np.concatenate((np.zeros((1, len(xs)), np.int64), np.cumsum(leaning, axis=0)))
        cols = np.arange(len(xs))
        share = (above[b - top, cols] - above[a - top, cols]) / (b - a)
        joined.append(bool(share[1:-1].max() >= 0.9))
    return joined


def _joined_by_gaps(staves: list[_Staff]) -> list[bool]:
    """For each two staves in a row, whether the gap between them is one of the smaller ones,
    when the gaps fall clearly in two sizes (else no staff is joined to the next)."""
    gaps = np.array([b.lines[0] - a.lines[-1] for a, b in pairwise(staves)])
    if len(gaps) == 0 or gaps.max() < 1.4 * max(gaps.min(), 1.0):
        return [False] * len(gaps)
    order = np.sort(gaps)
    cut = int(np.argmax(order[1:] / np.maximum(order[:-1], 1.0)))  # the largest jump
    return [bool(gap <= (order[cut] + order[cut + 1]) / 2) for gap in gaps]

