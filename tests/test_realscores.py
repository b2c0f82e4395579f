"""The real-scan corpus: kern reading, performance alignment, scans, the build (tiny, generated)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from scorelink.data.humdrum import read_kern
from scorelink.data.performance import (
    PerformedNotes,
    align_bars,
    note_check,
    system_spans,
    unsqueeze,
)
from scorelink.errors import ScoreError

# A pickup, a repeated section A (two systems), a section B (one system); a tie, a chord,
# a spine split. Each measure has its own pitches so that a shift by one bar is visible.
KERN = """**kern\t**kern
*>[A,A,B]\t*>[A,A,B]
*>norep[A,B]\t*>norep[A,B]
*>A\t*>A
*M2/4\t*M2/4
4C\t4c
=1\t=1
4D\t4d 4f
4E\t[4e
=2\t=2
4F\t4e]
*\t*^
4G\t4g\t4b
=3\t=3\t=3
4A\t4a\t4cc
*\t*v\t*v
4B\t4b
!!LO:LB:g=original
=4\t=4
2c\t2dd
=5:|!\t=5:|!
*>B\t*>B
2d\t2ee
=6\t=6
!!LO:LB:g=original
2e\t2ff
=7\t=7
2f\t2gg
==\t==
*-\t*-
"""


def _kern(tmp_path: Path, text: str = KERN) -> Path:
    path = tmp_path / "sonata01-1.krn"
    path.write_text(text)
    return path


def test_kern_reader_reads_every_measure(tmp_path):
    kern = read_kern(_kern(tmp_path))
    assert [m.label for m in kern.measures] == ["", "1", "2", "3", "4", "5", "6", "7"]
    assert kern.systems == 3
    assert [m.system for m in kern.measures] == [0, 0, 0, 0, 1, 1, 1, 2]
    assert [m.section for m in kern.measures] == ["A"] * 5 + ["B"] * 3
    assert kern.measures[0].duration == 1 and kern.measures[3].duration == 2
    tied = [n for n in kern.measures[1].notes if n.pitch == 64]
    assert len(tied) == 1 and tied[0].duration == 2  # e tied over the barline: one note
    assert sorted(n.pitch for n in kern.measures[1].notes) == [50, 52, 62, 64, 65]
    assert sorted(n.pitch for n in kern.measures[3].notes) == [57, 59, 69, 71, 72]  # split
    assert kern.measures[3].notes[0].onset == Fraction(0)
    assert kern.expand(kern.expansions[""]) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6, 7]
    assert kern.expand(kern.expansions["norep"]) == list(range(8))


def test_a_section_inside_one_measure_owns_none(tmp_path):
    """Sonata 28-2's expansion names `Bx`, a lead-in marked after the "Fin." ending's last
    notes and ended before the next barline: it adds no measure; an unknown label still fails."""
    text = KERN.replace("*>[A,A,B]", "*>[A,A,Bx,B]").replace(
        "2c\t2dd\n=5:|!", "4c\t4dd\n*>Bx\t*>Bx\n4c\t4dd\n=5:|!")
    kern = read_kern(_kern(tmp_path, text))
    assert "Bx" in kern.labels and "Bx" not in kern.sections()
    assert kern.expand(kern.expansions[""]) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(ScoreError, match="Zz"):
        kern.expand(["A", "Zz"])


def test_a_local_layout_comment_is_not_a_system_break(tmp_path):
    """`!LO:LB` in one spine's column (sonata 4, movement 1 has one on its dynamics spine, in
    the middle of a measure) breaks no printed system: only global `!!LO:LB` comments do."""
    local = KERN.replace("4E\t[4e\n", "4E\t[4e\n!\t!LO:LB:g=original\n")
    assert read_kern(_kern(tmp_path, local)).systems == read_kern(_kern(tmp_path)).systems == 3


def test_kern_without_breaks_or_with_a_broken_line_fails(tmp_path):
    with pytest.raises(ScoreError, match="no system breaks"):
        read_kern(_kern(tmp_path, KERN.replace("!!LO:LB:g=original\n", "")))
    with pytest.raises(ScoreError, match="columns"):
        read_kern(_kern(tmp_path, KERN.replace("4A\t4a\t4cc", "4A\t4a")))
    with pytest.raises(ScoreError, match="cannot read"):
        read_kern(tmp_path / "missing.krn")


def _play(kern, order: list[int], *, seconds_per_quarter: float = 0.5, pickup_db: bool = False):
    """A performance of the measures in `order` (notes at their written times, a little
    rubato) and its downbeats; pickup_db: the pickup is annotated as a downbeat too."""
    rng = np.random.default_rng(0)
    now, rows, downbeats = 0.2, [], []
    for k in order:
        m = kern.measures[k]
        if m.label or pickup_db:
            downbeats.append(now)
        tempo = seconds_per_quarter * rng.uniform(0.9, 1.1)
        for n in m.notes:
            onset = now + float(n.onset) * tempo + rng.uniform(-0.01, 0.01)
            rows.append((onset, onset + max(float(n.duration), 0.1) * tempo, n.pitch, 64))
        now += float(m.duration) * tempo
    rows.sort()
    t = np.array(rows)
    perf = PerformedNotes(t[:, 0], t[:, 1], t[:, 2].astype(int), t[:, 3].astype(int),
                          np.zeros((0, 3)))
    return perf, np.array(downbeats)


@pytest.mark.parametrize("scheme", ["repeats", "norep"])
@pytest.mark.parametrize("pickup_db", [False, True])
def test_bars_are_aligned_by_their_notes(tmp_path, scheme, pickup_db):
    """Repeats as performed, and no shift by a bar when the pickup is annotated as a bar (the
    mistake a count of downbeats makes)."""
    kern = read_kern(_kern(tmp_path))
    order = kern.expand(kern.expansions["" if scheme == "repeats" else "norep"])
    perf, downbeats = _play(kern, order, pickup_db=pickup_db)
    alignment = align_bars(kern, perf, downbeats)
    assert alignment.scheme == scheme and alignment.order == order
    spans = system_spans(kern, alignment)
    expected = [0, 1, 0, 1, 2] if scheme == "repeats" else [0, 1, 2]
    assert [s.system for s in spans] == expected
    assert [s.occurrence for s in spans] == ([0, 0, 1, 1, 0] if scheme == "repeats"
                                             else [0, 0, 0])
    assert all(note_check(kern, perf, s) == 1.0 for s in spans)
    # The check sees a shift: the same spans one bar late score lower.
    late = [type(s)(s.system, s.occurrence, s.start + 1.0, s.end + 1.0, s.measures)
            for s in spans[:-1]]
    assert min(note_check(kern, perf, s) for s in late) < 0.8


def test_a_section_left_out_is_found(tmp_path):
    """A performance that skips the repeat of A and plays B (a `_no_repeat` folder)."""
    kern = read_kern(_kern(tmp_path))
    order = [0, 1, 2, 3, 4, 5, 6, 7]
    perf, downbeats = _play(kern, order)
    alignment = align_bars(kern, perf, downbeats)
    assert alignment.order == order


def test_squeezed_downbeats_of_bars_not_played_are_dropped(tmp_path):
    """nASAP's `_no_repeat` annotations keep the downbeats of the repeat not played, squeezed
    evenly into one bar (sonata 32-1: 51 bars in 0.9 s): the bars played are still found."""
    kern = read_kern(_kern(tmp_path))
    order = kern.expand(kern.expansions["norep"])
    perf, downbeats = _play(kern, order)
    extra = len(kern.expand(kern.expansions[""])) - len(order)
    squeezed = np.linspace(downbeats[2], downbeats[3], extra + 2)[1:-1]
    annotated = np.sort(np.concatenate([downbeats, squeezed]))
    assert len(annotated) == len(downbeats) + extra
    np.testing.assert_array_equal(unsqueeze(annotated), downbeats)
    alignment = align_bars(kern, perf, annotated)
    assert alignment.order == order
    assert all(note_check(kern, perf, s) == 1.0 for s in system_spans(kern, alignment))


def test_a_single_short_bar_is_kept():
    """One short bar (a pickup measure, a fermata-less cadence bar) is music, not a placeholder."""
    downbeats = np.array([0.0, 2.0, 4.0, 4.3, 6.3, 8.3, 8.35, 8.4, 10.4])
    np.testing.assert_array_equal(unsqueeze(downbeats),
                                  [0.0, 2.0, 4.0, 4.3, 6.3, 8.3, 8.4, 10.4])


# --- scans -------------------------------------------------------------------


def _page(systems: int = 2, *, space: int = 7, left: int = 40, right: int = 800) -> np.ndarray:
    """An A4 page with `systems` two-staff systems (staves 4 * space px tall, a start line and
    barlines) from x = left to right."""
    page = np.full((1181, 835), 255, dtype=np.uint8)
    rng = np.random.default_rng(1)
    for s in range(systems):
        top = 120 + 260 * s
        for staff in (0, 1):
            y0 = top + staff * 10 * space
            for line in range(5):
                page[y0 + space * line : y0 + space * line + 2, left:right] = 0
            for x in rng.integers(left + 20, right - 20, 30):  # noteheads
                y = y0 + int(rng.integers(0, 5)) * space - 2
                page[y : y + 6, x : x + 8] = 0
        page[top : top + 14 * space + 2, left : left + 2] = 0  # start line
        for x in np.linspace(left, right - 2, 5)[1:].astype(int):
            page[top : top + 14 * space + 2, x : x + 2] = 0
    return page


def test_grey_paper_is_found_as_the_white_page():
    from scorelink.search.pages import system_strips
    from scorelink.search.scan import normalise_page
    from scorelink.search.staves import find_systems

    white = _page(3)
    grey = np.where(white == 255, 240, white).astype(np.uint8)  # paper at 240/255
    assert np.array_equal(normalise_page(white), white)
    assert np.array_equal(normalise_page(grey), white)
    boxes = find_systems(normalise_page(grey))
    assert len(boxes) == 3
    strips = system_strips(normalise_page(grey), boxes)
    assert np.array_equal(strips, system_strips(white, find_systems(white)))


def test_pages_read_from_files_are_normalised(tmp_path):
    """The index, the search and the dataset read pages through load_pages: a grey scan comes
    out as its white original."""
    from PIL import Image

    from scorelink.search.pages import load_pages

    white = _page(3)
    Image.fromarray(np.where(white == 255, 240, white).astype(np.uint8)).save(tmp_path / "g.png")
    (page,) = load_pages(tmp_path / "g.png")
    assert np.array_equal(page, white)


def test_borders_and_speckle_are_removed():
    from scorelink.search.scan import normalise_page
    from scorelink.search.staves import find_systems

    white = _page(3)
    scan = white.copy()
    scan[:, :25] = 0  # a black scanner border on the left
    scan[:, 828:830] = 0  # a dark line along the right edge, joining every staff
    rng = np.random.default_rng(2)
    ys, xs = rng.integers(0, 1181, 300), rng.integers(30, 820, 300)
    scan[ys, xs] = 0  # speckle
    clean = normalise_page(scan)
    assert clean[:, :25].min() == 255 and clean[:, 828:].min() == 255
    assert (clean != white).mean() < 0.001
    assert len(find_systems(clean)) == 3


def test_enlarged_systems_keep_their_right_end():
    """Staves of 24 px are enlarged to 28 px: the system, 790 px wide, is narrowed to fit the
    strip instead of losing its right end (its last barline stays in the strip)."""
    from scorelink.search.pages import system_strips
    from scorelink.search.staves import find_systems

    wide = _page(2, space=6, left=25, right=815)
    boxes = find_systems(wide)
    assert len(boxes) == 2 and abs(boxes[0].staff_height - 24) < 1.5
    for strip in system_strips(wide, boxes):
        (again,) = find_systems(strip)
        assert abs(again.staff_height - 28) < 1.5
        dark = np.flatnonzero((strip < 128).mean(axis=0) > 0.3)
        barlines = 1 + np.count_nonzero(np.diff(dark) > 3)  # groups of dark columns
        assert barlines == 5  # the start line and the four barlines, the last one included
        assert again.right < 835 - 2 and again.right - again.left > 0.9 * (835 - 20)


def _rotated_systems(angles: list[float], space: int = 6) -> tuple[np.ndarray, list[float]]:
    """A page of len(angles) systems (as _page), each rotated about its own centre by its
    angle in degrees (counter-clockwise): a curled page tilts its systems differently.
    Returns the page and each system's centre row."""
    from PIL import Image

    flat = _page(len(angles), space=space)
    page = np.full_like(flat, 255)
    centres = []
    for s, angle in enumerate(angles):
        top = 120 + 260 * s
        alone = np.full_like(flat, 255)
        alone[top - 60 : top + 14 * space + 62] = flat[top - 60 : top + 14 * space + 62]
        centre = top + (14 * space + 2) / 2
        turned = Image.fromarray(alone).rotate(angle, resample=Image.Resampling.BICUBIC,
                                               center=(420, centre), fillcolor=255)
        page = np.minimum(page, np.asarray(turned))
        centres.append(centre)
    return page, centres


def test_systems_tilted_differently_are_all_found():
    """The top and bottom systems of a curled page are tilted by a degree or more against the
    page's skew (sonata 8, 12, 22 of the Beethoven scans lost staves there): each band of the
    page is searched under its own skew."""
    from scorelink.search.staves import find_systems

    angles = [1.2, 0.0, 0.0, -1.0]
    page, centres = _rotated_systems(angles)
    for per_system in (None, 2):
        boxes = find_systems(page, staves_per_system=per_system)
        assert [b.staves for b in boxes] == [2, 2, 2, 2]
        for box, angle, centre in zip(boxes, angles, centres, strict=True):
            assert abs(box.skew + angle) < 0.1
            assert abs(box.centre - centre) < 2
            assert box.left < 45 and box.right > 795  # the whole width, not a slice of it


def test_lines_that_bend_at_the_end_are_followed():
    """A page curled at its right edge: the last 100 px of every line rise by up to 3 px.
    The systems still end at their last barline (a strip is scaled by the system's width)."""
    from scorelink.search.staves import find_systems

    page = _page(2, space=6)
    for x in range(700, 835):
        rise = min(3, (x - 700) // 30)
        page[: page.shape[0] - rise, x] = page[rise:, x]
    for box in find_systems(page, staves_per_system=2):
        assert box.staves == 2 and abs(box.right - 800) < 4


def test_a_small_staff_alone_is_not_a_system():
    """A footnote printed below the music on a small staff (a variant, as on a page of sonata
    24) joins no system: it is not one (a movement's count would be one too many)."""
    from scorelink.search.staves import find_systems

    page = _page(2, space=6)
    for line in range(5):  # a staff of 4-px spaces, 200 px long, with a few notes
        page[900 + 4 * line : 901 + 4 * line, 100:300] = 0
    page[898:904, 150:156] = page[906:912, 220:226] = 0
    for per_system in (None, 2):
        boxes = find_systems(page, staves_per_system=per_system)
        assert [b.staves for b in boxes] == [2, 2]


# --- the build -----------------------------------------------------------------


def _corpus(tmp_path: Path) -> Path:
    """Two movements: sonata01-1 (kern, a 3-system scan, two performances, one of them a broken
    MIDI file) and sonata02-1 (kern, no scan)."""
    import mido
    from PIL import Image

    root = tmp_path / "beethoven"
    (root / "kern").mkdir(parents=True)
    (root / "pdf").mkdir()
    (root / "kern" / "sonata01-1.krn").write_text(KERN)
    (root / "kern" / "sonata02-1.krn").write_text(KERN)
    Image.fromarray(_page(3)).save(root / "pdf" / "sonata01-1.pdf", resolution=72.0)
    kern = read_kern(root / "kern" / "sonata01-1.krn")
    perf, downbeats = _play(kern, kern.expand(kern.expansions[""]))
    folder = root / "asap" / "Beethoven" / "Piano_Sonatas" / "1-1"
    folder.mkdir(parents=True)
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    events = sorted([(t, 1, p) for t, p in zip(perf.onset, perf.pitch, strict=True)]
                    + [(t, 0, p) for t, p in zip(perf.offset, perf.pitch, strict=True)])
    now = 0.0
    for t, on, p in events:  # 120 bpm: 960 ticks a second
        track.append(mido.Message("note_on", note=int(p), velocity=70 * on,
                                  time=int(round((t - now) * 960))))
        now += int(round((t - now) * 960)) / 960
    midi.save(folder / "Good01.mid")
    (folder / "Good01_annotations.txt").write_text(
        "".join(f"{t}\t{t}\tdb\n" for t in downbeats))
    (folder / "Broken02.mid").write_bytes(b"not a midi file")
    (folder / "Broken02_annotations.txt").write_text("0.0\t0.0\tdb\n1.0\t1.0\tdb\n")
    return root


def test_build_with_bad_files_goes_on_and_resumes(tmp_path):
    from scorelink.data.beethoven import beethoven_sources
    from scorelink.data.build import BuildConfig, build
    from scorelink.data.store import Dataset

    root = _corpus(tmp_path)
    config = BuildConfig(source="corpus:beethoven")
    out = tmp_path / "data"
    report = build(beethoven_sources(root), out, config=config, workers=1, progress=False)
    assert report.built == 1
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    reasons = {(f["piece"], f.get("performance")): f["reason"] for f in failures}
    assert "does not exist" in reasons[("sonata02-1", None)]
    assert "not a readable MIDI" in reasons[("sonata01-1", "Broken02")]
    ds = Dataset(out)
    records = ds.records(piece="sonata01-1")
    assert [r["system"] for r in records] == [0, 1, 0, 1, 2]  # the repeat, as performed
    assert all(r["note_check"] >= 0.95 for r in records)
    assert ds.strip(records[0]).shape == (160, 835)
    info = json.loads((out / "pieces" / "sonata01-1" / "piece.json").read_text())
    (timeline,) = [p["timeline"] for p in info["performances"]]
    assert [t[0] for t in timeline] == [0, 1, 0, 1, 2]
    again = build(beethoven_sources(root), out, config=config, workers=1, progress=False)
    assert again.skipped == 1 and again.built == 0 and len(again.failed) == 1  # retried
    assert len((out / "failures.jsonl").read_text().splitlines()) == 2  # both still listed
    # the note reader's training places each system's written notes on its scanned strip
    from scorelink.models.reader import NoteReader
    from scorelink.train.scan_targets import scan_systems, written_chords

    split = records[0]["split"]
    placed, counts = scan_systems(out, split, NoteReader(), root / "kern", keep=0.0)
    assert counts["systems"] == counts["kept"] == 3
    kern = read_kern(root / "kern" / "sonata01-1.krn")
    for system, (strip, notes) in enumerate(placed):
        written = np.concatenate(written_chords(kern.measures, system))
        assert sorted(notes[:, 1]) == sorted(written)
        assert (notes[:, 0] > 0).all() and (notes[:, 0] < strip.shape[1]).all()
        assert (np.diff(notes[:, 0]) >= 0).all()  # chords left to right in time order


def test_a_scan_whose_count_disagrees_fails_the_movement(tmp_path):
    """One system fewer on the scan than in the kern: the movement fails with both counts and
    the count on each page, and nothing of it is written (the k-th system found is matched to
    the k-th kern system, so a guess would shift every later one)."""
    from PIL import Image

    from scorelink.data.beethoven import beethoven_sources, scan_systems
    from scorelink.data.build import BuildConfig, build

    root = tmp_path / "beethoven"
    (root / "kern").mkdir(parents=True)
    (root / "pdf").mkdir()
    (root / "kern" / "sonata01-1.krn").write_text(KERN)  # 3 systems
    first, second = Image.fromarray(_page(2)), Image.fromarray(_page(0))
    first.save(root / "pdf" / "sonata01-1.pdf", resolution=72.0, save_all=True,
               append_images=[second])
    with pytest.raises(ScoreError, match=r"2 systems found on the scan, the kern has 3 "
                                         r"\(per page: 2 0\)"):
        scan_systems(root / "pdf" / "sonata01-1.pdf", 3)
    out = tmp_path / "data"
    report = build(beethoven_sources(root), out, config=BuildConfig(source="corpus:beethoven"),
                   workers=1, progress=False)
    assert report.built == 0
    (failure,) = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert failure["piece"] == "sonata01-1" and "the kern has 3" in failure["reason"]
    assert not (out / "pieces" / "sonata01-1").exists()


def test_a_scan_holding_the_next_movement_keeps_the_first(tmp_path, monkeypatch):
    """sonata30-1.pdf holds movements 1 and 2 (the corpus's README): with both movements'
    counts listed the first movement's systems are kept; any other count still fails."""
    from PIL import Image

    from scorelink.data import beethoven

    pdf = tmp_path / "sonata01-1.pdf"
    first, second = Image.fromarray(_page(2)), Image.fromarray(_page(0))
    first.save(pdf, resolution=72.0, save_all=True, append_images=[second])
    monkeypatch.setitem(beethoven.SHARED_SCANS, "sonata01-1.pdf", (1, 1))
    pages, found, strips = beethoven.scan_systems(pdf, 1)
    assert len(found) == len(strips) == 1 and found[0][0] == 0 and len(pages) == 1
    monkeypatch.setitem(beethoven.SHARED_SCANS, "sonata01-1.pdf", (1, 2))
    with pytest.raises(ScoreError, match="2 systems found on the scan, the kern has 1"):
        beethoven.scan_systems(pdf, 1)


def test_a_staff_crowded_with_chords_is_found():
    """Chords of sixteenths on its outer lines (sonata 16, as beamed chords fill an upper staff)
    leave those lines few thin runs, but they are dark all along: the staff is found, and its
    system has both staves."""
    from scorelink.search.staves import find_systems

    space = 6
    page = _page(2, space=space)
    top = 120  # the upper staff of the first system
    for x in range(60, 790, 10):
        for line in (0, 4):  # noteheads on the top and bottom lines, 7 px of every 10
            y = top + line * space
            page[y - 2 : y + 3, x : x + 7] = 0
        page[top - 3 * space : top + 4 * space, x + 6] = 0  # their stems
    boxes = find_systems(page, staves_per_system=2)
    assert [b.staves for b in boxes] == [2, 2]
    assert abs(boxes[0].top - top) < 1.5 and abs(boxes[1].top - (top + 260)) < 1.5


def test_a_system_cut_by_the_page_edge_keeps_its_place():
    """A scan cropped through the last system's lower staff (as pages of sonatas 18 and 21 are):
    the system is still counted, and its box reaches where the lost staff would be, so that its
    strip is centred on the system."""
    from scorelink.search.staves import find_systems

    whole = _page(2, space=6)
    (_, second) = find_systems(whole, staves_per_system=2)
    cut = whole[: 120 + 260 + 10 * 6 + 9]  # two lines of the lower staff left: no staff
    boxes = find_systems(cut, staves_per_system=2)
    assert [b.staves for b in boxes] == [2, 1]
    assert abs(boxes[1].top - second.top) < 1.5 and abs(boxes[1].centre - second.centre) < 1.5


def test_two_systems_close_together_stay_apart():
    """Two systems whose gap is smaller than the one between a system's own staves, joined by a
    pencil stroke: with the staves per system known they are still two systems of two staves."""
    from scorelink.search.staves import find_systems

    one = _page(1, space=6)  # staves at rows 120 and 180, the system 86 px tall
    page = np.minimum(one, np.roll(one, 104, axis=0))  # the next one 18 px below it
    page[200:230, 400] = 90  # a pencil stroke from the first system to the second
    boxes = find_systems(page, staves_per_system=2)
    assert [b.staves for b in boxes] == [2, 2]
    assert abs(boxes[0].top - 120) < 1.5 and abs(boxes[1].top - 224) < 1.5
