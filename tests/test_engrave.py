"""Pages engraved with Verovio (scorelink.data.engrave): symbols inside text are drawn."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np

from scorelink.constants import PAGE_WIDTH
from scorelink.data.engrave import _toolkit, engrave

# One staff, two bars, a metronome mark "quarter = 100" above the first bar.
TEMPO_SCORE = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>P</part-name>
</score-part></part-list><part id="P1"><measure number="1"><attributes><divisions>1</divisions>
<time><beats>4</beats><beat-type>4</beat-type></time><clef><sign>G</sign><line>2</line></clef>
</attributes><direction placement="above"><direction-type><metronome>
<beat-unit>quarter</beat-unit><per-minute>100</per-minute></metronome></direction-type>
<sound tempo="100"/></direction>
<note><pitch><step>C</step><octave>5</octave></pitch><duration>4</duration><type>whole</type>
</note></measure><measure number="2"><note><pitch><step>D</step><octave>5</octave></pitch>
<duration>4</duration><type>whole</type></note></measure></part></score-partwise>
"""


def _solid_blocks(ink: np.ndarray, size: int = 3) -> int:
    """How many size x size windows of the boolean image are all ink."""
    windows = np.lib.stride_tricks.sliding_window_view(ink, (size, size))
    return int(windows.all(axis=(2, 3)).sum())


def test_tempo_mark_note_is_drawn_not_an_empty_box():
    page = engrave(TEMPO_SCORE).pages[0]
    svg = _toolkit().renderToSVG(1)  # the page just engraved, to find where the mark is
    # Verovio writes the mark as <text x y> whose first run is the note in its music font
    mark = re.search(r'class="tempo">\s*<text x="(\d+)" y="(\d+)".*?font-family="Leipzig" '
                     r'font-size="(\d+)px">(.)</tspan>', svg, re.S)
    assert mark is not None, "no tempo mark with a music-font symbol in the SVG"
    x, y, size = (int(v) for v in mark.groups()[:3])
    assert mark.group(4) == "\uECA5"  # SMuFL metNoteQuarterUp
    view_width = float(re.search(r'class="definition-scale"[^>]*viewBox="0 0 (\d+)', svg)[1])
    margin = [float(v) for v in re.search(r'class="page-margin" transform="translate\((\d+), '
                                          r'(\d+)\)', svg).groups()]
    scale = PAGE_WIDTH / view_width  # px per SVG unit
    # The glyph's box (Leipzig metrics, 1000 units per em): 302 wide, from 126 below the
    # baseline to 668 above it; a little beyond, for antialiasing.
    left, right = (margin[0] + x) * scale - 1, (margin[0] + x + 0.302 * size) * scale + 1
    top, bottom = (margin[1] + y - 0.68 * size) * scale, (margin[1] + y + 0.14 * size) * scale
    region = page[int(top):int(np.ceil(bottom)), int(left):int(np.ceil(right))]
    ink = region < 128
    # A quarter note: a stem and a filled notehead. A missing glyph is an empty box whose
    # outline is one or two pixels thick: no solid 3 x 3 block of ink anywhere in it.
    assert _solid_blocks(ink) >= 4, f"no filled notehead in the tempo mark:\n{ink.astype(int)}"
    assert ink[: ink.shape[0] // 2].any(), "no stem above the notehead"


# Two staves in D major: a chord, a written natural, a tie, an accidental that lasts the bar,
# a section played twice (an expansion), an ottava line, a low octave.
KERN_SCORE = """**kern\t**kern
*staff2\t*staff1
*>[A,A,B]\t*>[A,A,B]
*>A\t*>A
*clefF4\t*clefG2
*k[f#c#]\t*k[f#c#]
*M4/4\t*M4/4
=1-\t=1-
4D\t4d 4f#
4A\t4an
4F#\t[4cc#
4D\t4cc#]
=2\t=2
2G\t4b-
.\t4b
2GG\t2dd
*>B\t*>B
=3\t=3
*\t*8va
4D\t4ccc
4E\t4ddd#
4F\t4eee
4G\t4fff
*\t*X8va
=4\t=4
1DD\t1d 1f# 1a
==\t==
*-\t*-
"""


def _key_score(tmp_path) -> str:
    """MusicXML in E-flat major with accidentals that last the bar and an ottava line,
    written by music21."""
    from music21 import key, meter, note, spanner, stream

    part = stream.Part()
    part.append([key.Key("E-"), meter.TimeSignature("4/4")])
    pitches = ["E-4", "A4", "A4", "B-4", "C#5", "C5", "D5", "E-5", "F#5", "G5", "A-5", "B5"]
    notes = [note.Note(p, quarterLength=1) for p in pitches]
    part.append(notes)
    part.insert(0, spanner.Ottava(notes[8], notes[10]))
    score = stream.Score([part])
    path = tmp_path / "key.musicxml"
    score.write("musicxml", fp=str(path))
    return path.read_text()


def test_pitches_read_at_once_equal_verovio_note_by_note(tmp_path, monkeypatch):
    """The performance with pitches read from the MEI in one pass equals the one with every
    pitch asked of Verovio note by note (the reference: the reader leaves every note out)."""
    from scorelink.data import mei_pitch

    scores = {"kern": KERN_SCORE, "musicxml": _key_score(tmp_path), "tempo": TEMPO_SCORE}
    fast = {name: engrave(data).performance for name, data in scores.items()}
    read = {}
    for name, data in scores.items():
        engrave(data)  # leaves the score loaded in the toolkit
        read[name] = mei_pitch.spelled_pitches(ET.fromstring(_toolkit().getMEI()))
    monkeypatch.setattr(mei_pitch, "spelled_pitches", lambda root: ({}, set()))
    for name, data in scores.items():
        slow = engrave(data).performance
        for field in ("note", "onset", "offset", "pitch"):
            assert np.array_equal(getattr(fast[name], field), getattr(slow, field)), (name, field)
        assert len(read[name][0]) > 0.5 * len(slow), f"{name}: most pitches should be read"
    assert len(fast["kern"]) > 26  # the section played twice
    assert read["kern"][1], "the notes under the ottava are left to Verovio"
