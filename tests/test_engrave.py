"""Pages engraved with Verovio (scorelink.data.engrave): symbols inside text are drawn."""

from __future__ import annotations

import re

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
