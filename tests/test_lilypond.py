"""LilyPond sources (MSMD's engraver): a small Mutopia piece end to end, and a score written
for the test whose notes, ties, repeats and timing are known exactly.

tests/fixtures/mutopia-air/air.ly: J. S. Bach, Air BWV Anh. 131, from the Mutopia Project
(Mutopia-2006/05/17-767), Creative Commons Attribution-ShareAlike 2.5, unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scorelink.data.build import BuildConfig, build
from scorelink.data.lilypond import check_lilypond, engrave_lilypond
from scorelink.data.passages import spans
from scorelink.data.sources import folder_sources
from scorelink.data.store import Dataset

AIR = Path(__file__).parent / "fixtures" / "mutopia-air"

# Two staves at quarter = 120 (0.5 s per beat); the first bar is repeated (volta), the g is
# tied over a barline, the last beat is a chord. The music lives in an included file, in the
# syntax of LilyPond 2.10 (`\sustainDown` became `\sustainOn`): convert-ly must update it.
# Point-and-click is switched off, both ways Mutopia files do it: the engraver turns it on.
MUSIC = r"""\version "2.10.0"
upper = \relative c'' { \repeat volta 2 { c4 d e f } g2. ~ g4 ~ g2 <c, e g>2 }
lower = \relative c { \clef bass \repeat volta 2 { c1\sustainDown } c1\sustainUp c1 }
"""
MAIN = r"""\version "2.10.0"
#(ly:set-option 'point-and-click #f)
\pointAndClickOff
\include "music.ly"
\score {
  \new PianoStaff << \new Staff { \tempo 4 = 120 \upper } \new Staff \lower >>
  \layout { }
  \midi { }
}
"""


@pytest.fixture(scope="module")
def air_dataset(tmp_path_factory) -> Path:
    check_lilypond()  # fails (does not skip) with an install hint when LilyPond is missing
    out = tmp_path_factory.mktemp("ly") / "air"
    report = build(folder_sources(AIR), out, config=BuildConfig(source="test:air"),
                   workers=1, progress=False)
    assert report.built == 1 and not report.failed, report
    return out


def test_mutopia_piece_noteheads_and_onsets_agree(air_dataset):
    ds = Dataset(air_dataset)
    records = ds.records()
    assert records and {r["piece"] for r in records} == {"air"}
    # two systems on the page, each sounding once (the hand-made repeat signs are not played)
    for rendition in {r["rendition"] for r in records}:
        assert [r["system"] for r in ds.records(rendition=rendition)] == [0, 1]
    for r in records:
        notes = ds.notes(r)
        assert len(notes) > 0
        # every note of the system sounds inside the system's audio span
        assert np.all(notes["onset"] >= r["start"] - 1e-4) and np.all(notes["onset"] < r["end"])
        # every notehead inside the system's box, and on ink in the strip
        top, left, bottom, right = r["box"]
        page_y = notes["y"] + r["strip_top"]
        assert np.all((notes["x"] >= left) & (notes["x"] <= right))
        assert np.all((page_y >= top) & (page_y <= bottom))
        strip = ds.strip(r)
        for x, y in zip(notes["x"], notes["y"], strict=True):
            xi, yi = int(round(x)), int(round(y))
            assert strip[yi - 2 : yi + 3, xi - 2 : xi + 3].min() < 100, (r["passage_id"], x, y)
        # within a system, later onsets sit further right (one staff's notes: same pitch order)
        order = np.argsort(notes["onset"], kind="stable")
        assert np.corrcoef(notes["onset"][order], notes["x"][order])[0, 1] > 0.9
    # the first note (c'' after a dotted-half rest, quarter = 128) sounds at 3 beats
    first = ds.notes(ds.records(rendition=records[0]["rendition"])[0])
    assert first["onset"][0] == pytest.approx(3 * 60 / 128 / records[0]["tempo"], abs=1e-3)


def test_ties_repeats_tempo_and_includes(tmp_path):
    check_lilypond()
    folder = tmp_path / "scores"
    folder.mkdir()
    (folder / "music.ly").write_text(MUSIC)
    (folder / "main.ly").write_text(MAIN)
    sources = folder_sources(folder)
    assert [(s.piece, s.kind) for s in sources] == [("main", "lilypond")]  # music.ly is included

    eng = engrave_lilypond(sources[0].origin)
    perf = eng.performance
    # upper: c d e f twice (the volta unfolded), one tied g, a three-note chord; lower: c x 4
    assert len(perf) == 8 + 1 + 3 + 4
    assert len(eng.notes) == 8 + 3 + 3 + 4  # the tied g is engraved three times
    run = (perf.onset < 4.0) & (perf.pitch > 60)
    np.testing.assert_allclose(perf.onset[run], np.arange(8) * 0.5)  # quarter = 120
    assert list(perf.pitch[run]) == [72, 74, 76, 77] * 2
    g = np.flatnonzero(perf.pitch == 79)[0]
    assert (perf.onset[g], perf.offset[g]) == pytest.approx((4.0, 7.0))  # one note, tie merged
    chord = np.isclose(perf.onset, 7.0) & (perf.pitch > 60)
    assert sorted(perf.pitch[chord]) == [72, 76, 79]
    np.testing.assert_allclose(perf.onset[perf.pitch == 48], [0.0, 2.0, 4.0, 6.0])

    # noteheads: higher pitch higher on the page, later further right, the repeat engraved anew
    heads = [eng.notes[i] for i in perf.note[run]]
    assert len({(n.x, n.y) for n in heads}) == 8
    for bar in (heads[:4], heads[4:]):
        assert [n.y for n in bar] == sorted((n.y for n in bar), reverse=True)
    assert [n.x for n in heads] == sorted(n.x for n in heads)
    cuts = spans(eng)
    assert [c.system for c in cuts] == list(range(len(eng.systems)))  # unfolded: each once

    # as written: the repeated bar engraved once, with repeat signs, and played once
    written = engrave_lilypond(sources[0].origin, unfold=False)
    assert len(written.notes) == len(eng.notes) - 4 - 1
    assert len(written.performance) == len(perf) - 4 - 1
    for span in cuts:
        box = eng.systems[span.system]
        for k in range(span.first, span.stop):
            n = eng.notes[perf.note[k]]
            assert n.system == span.system and box.top <= n.y <= box.bottom


# A source that performs from a \score of its own: two silent bars first (as Schubert's
# Impromptu D. 899/3 in MSMD does), through articulate.ly (which would play the trill out as
# many notes), doubled an octave lower (as a Bach fugue in MSMD does for an organ-like sound:
# notes that are not written, left out of the audio), and that draws its second bar's
# noteheads rescaled (as a Rachmaninoff prelude in MSMD squeezes dense bars), which nests them
# in SVG scale groups.
SEPARATE_MIDI = r"""\version "2.18.0"
\include "articulate.ly"
squeeze = \override NoteHead.stencil =
  #(lambda (grob) (ly:stencil-scale (ly:note-head::print grob) 0.9 1.1))
music = \relative c'' { c4\trill d e f | %(second)s g a b c }
\score { \new Staff { \tempo 4 = 120 \music } \layout { } }
\score {
  << \new Staff \articulate { \tempo 4 = 120 s1 s1 \music }
     \new Staff { s1 s1 \transpose c c, \music } >>
  \midi { }
}
"""


def test_separate_midi_score_articulate_and_rescaled_noteheads(tmp_path):
    check_lilypond()
    engravings = []
    for name, second in (("plain", ""), ("squeezed", r"\squeeze")):
        (tmp_path / f"{name}.ly").write_text(SEPARATE_MIDI % {"second": second})
        engravings.append(engrave_lilypond(tmp_path / f"{name}.ly"))
    plain, squeezed = engravings
    for eng in engravings:
        perf = eng.performance
        assert list(perf.pitch) == [72, 74, 76, 77, 79, 81, 83, 84]  # the trill as written
        np.testing.assert_allclose(perf.onset, 4.0 + np.arange(8) * 0.5)  # after the silence
    # the rescaled noteheads are found on their ink (a scale group moves what it holds), at
    # the height of the plain ones, left to right
    assert len(squeezed.notes) == len(plain.notes) == 8
    for a, b in zip(plain.notes, squeezed.notes, strict=True):
        assert abs(a.y - b.y) < 1.0
    page = squeezed.pages[0]
    for n in squeezed.notes:
        x, y = int(round(n.x)), int(round(n.y))
        assert page[y - 1 : y + 2, x - 1 : x + 2].min() < 100, (n.id, x, y)  # on ink
    xs = [squeezed.notes[i].x for i in squeezed.performance.note]  # in time order
    assert xs == sorted(xs)


# Syntax of LilyPond 2.10 that convert-ly leaves alone and 2.24 rejects, each met in MSMD: a
# LaTeX tagline joined with "+", the beaming functions of 2.12, a bare \context Voice before
# settings, a Scheme number before a bar check, \applyMusic #unfold-repeats.
OLD_SYNTAX = r"""\version "2.10.0"
\header {
  footer = "Mutopia-2004/11/15-496"
  tagline = "\\small " + \footer + " typeset"
}
beams = { #(override-auto-beam-setting '(end * * * *) 1 4 'Staff) }
music = \context Staff \relative c'' {
  \context Voice = "upper"
  \override Script.avoid-slur = #'inside
  \beams \ottava #1 c8 d e f \ottava #0| g2 | \repeat volta 2 { a4 b c2 }
}
\score { \music \layout { } }
\score { \applyMusic #unfold-repeats \music \midi { } }
"""


def test_old_syntax_convert_ly_leaves_alone(tmp_path):
    check_lilypond()
    (tmp_path / "old.ly").write_text(OLD_SYNTAX)
    eng = engrave_lilypond(tmp_path / "old.ly")
    assert list(eng.performance.pitch) == [72, 74, 76, 77, 79, 81, 83, 84, 81, 83, 84]
    assert len(eng.notes) == 11


def _engrave_text(tmp_path: Path, name: str, text: str):
    """Engrave a LilyPond source written for the test."""
    check_lilypond()
    source = tmp_path / name
    source.write_text(text)
    return engrave_lilypond(source)


# Music that starts with grace notes (as Minkus's Bayadère in MSMD does): LilyPond's MIDI plays
# them first and the whole piece after them, so every MIDI note runs behind the engraved score.
GRACE_START = r"""\version "2.24.0"
\score {
  \new Staff \relative c'' { \tempo 4 = 60 \acciaccatura { d16 e } c4 d \acciaccatura f8 e4 f | g1 }
  \layout { }
  \midi { }
}
"""


def test_music_that_starts_with_grace_notes(tmp_path):
    eng = _engrave_text(tmp_path, "grace.ly", GRACE_START)
    perf = eng.performance
    # the five written notes sound, one second apart after the lead-in of the grace notes;
    # the grace notes themselves are left out of the audio
    assert list(perf.pitch) == [72, 74, 76, 77, 79]
    np.testing.assert_allclose(np.diff(perf.onset), [1.0, 1.0, 1.0, 1.0], atol=0.02)
    assert 0.0 < perf.onset[0] < 0.5
    assert len(set(perf.note)) == 5


# Two movements engraved as two scores and performed from a \score of their own that plays
# them in turn (as Satie's Enfantillages pittoresques in MSMD does); the second movement's
# repeat is written with its type quoted (`\repeat "volta"`, as Sousa's Transit of Venus does).
MOVEMENTS = r"""\version "2.24.0"
one = \relative c'' { \tempo 4 = 60 c4 d e f | g1 }
two = \relative c'' { \repeat "volta" 2 { a4 b c d } }
\book {
  \score { \new Staff \one \layout { } }
  \score { \new Staff \two \layout { } }
  \score { \new Staff \unfoldRepeats { \one \two } \midi { } }
}
"""


def test_movements_engraved_apart_and_performed_together(tmp_path):
    eng = _engrave_text(tmp_path, "movements.ly", MOVEMENTS)
    perf = eng.performance
    # movement two starts after the two bars of movement one; its repeat is unfolded on the
    # page (eight noteheads) as in the audio
    assert list(perf.pitch) == [72, 74, 76, 77, 79] + [69, 71, 72, 74] * 2
    np.testing.assert_allclose(perf.onset, [0, 1, 2, 3, 4] + list(range(8, 16)), atol=0.02)
    assert len(eng.notes) == 5 + 8 and len(set(perf.note)) == 13


def test_version_after_the_music(tmp_path):
    """A source may say its \\version last (Rimsky-Korsakov's in MSMD does): our settings
    must still come before the score."""
    eng = _engrave_text(tmp_path, "version-last.ly",
                        "\\score { \\relative c'' { \\tempo 4 = 60 c4 d e f } \\layout { } "
                        "\\midi { } }\n\\version \"2.10.33\"\n")
    assert len(eng.systems) == 1 and len(eng.notes) == 4
    np.testing.assert_allclose(eng.performance.onset, [0, 1, 2, 3], atol=0.02)


# Engraved from `\keepWithTag #'layout`, performed from `\keepWithTag #'midi`, whose version
# writes the tremolo out as other notes (as Mussorgsky's Pictures in MSMD do).
TAGGED = r"""\version "2.18.0"
music = \relative c'' {
  \tempo 4 = 60 c4 \tag #'layout { d2.:16 } \tag #'midi { \repeat unfold 12 e16 } }
\score { \new Staff \keepWithTag #'layout \music \layout { } }
\score { \new Staff \keepWithTag #'midi \music \midi { } }
"""


def test_tagged_performance_plays_the_engraved_version(tmp_path):
    perf = _engrave_text(tmp_path, "tagged.ly", TAGGED).performance
    assert list(perf.pitch) == [72, 74]  # the written (tremolo) d, not the midi tag's e16 run
    np.testing.assert_allclose(perf.onset[:2], [0.0, 1.0], atol=0.02)


# Glyphs of every path through LilyPond's SVG glyph lookup: noteheads, rests, clefs,
# accidentals and flags at three sizes (grace notes, one larger notehead), and glyph strings
# in the music font (dynamics, the time signature, a fingering).
GLYPHS = r"""\version "2.24.0"
\score {
  \new PianoStaff <<
    \new Staff \relative c'' { \time 3/8 \acciaccatura dis16 cis8\f-3 r16 bes' \grace { aes16 }
                               g8\sfz | <c, eis gis>4.\fermata \mark \markup { \italic "rit." } }
    \new Staff \relative c { \clef bass \time 3/8 c8\pp r c16. d32 |
                             \clef treble \once \override NoteHead.font-size = #0.5 c''4. }
  >>
  \layout { }
}
"""


def test_svg_glyph_index_changes_nothing_in_the_svg(tmp_path):
    """Our faster `cache-font` must draw exactly what LilyPond's own draws."""
    import re
    import subprocess

    from scorelink.data.lilypond import _SVG_GLYPH_INDEX

    check_lilypond()
    svgs = {}
    for name, extra in (("plain", ""), ("indexed", _SVG_GLYPH_INDEX)):
        source = tmp_path / f"{name}.ly"
        source.write_text(GLYPHS.replace('"2.24.0"\n', '"2.24.0"\n' + extra, 1))
        run = subprocess.run(["lilypond", "-dbackend=svg", "-o", name, source.name],
                             cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        # point-and-click links name the file and line, which differ between the two
        svgs[name] = re.sub(r'textedit://[^"]*', "", (tmp_path / f"{name}.svg").read_text())
    assert svgs["plain"].count("<path") > 20  # the glyphs are drawn as paths
    assert svgs["indexed"] == svgs["plain"]
