"""Where scores come from: the built-in corpus (music21's) or a folder of the user's files.

A `ScoreSource` names one piece and knows how to produce data that Verovio engraves.
Bach chorales are four vocal parts; we lay them out as a two-staff keyboard score
(soprano and alto as two voices of the upper staff, tenor and bass of the lower).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

from scorelink.errors import ScoreError

# Solo keyboard pieces of music21's corpus, engraved as they are.
KEYBOARD_PIECES = (
    "joplin/maple_leaf_rag.mxl",
    "mozart/k545/movement1_exposition.mxl",
    "chopin/mazurka06-2.krn",
    "schumann_clara/polonaise_op1n1.mxl",
    "schumann_clara/polonaise_op1n2.mxl",
    "schumann_clara/polonaise_op1n3.mxl",
    "schumann_clara/polonaise_op1n4.mxl",
    "cpebach/h186.mxl",
)
CORPORA = ("chorales",)  # built in; MSMD: msmd_sources()
# Score files Verovio engraves (measures and all); LilyPond's are engraved by LilyPond.
VEROVIO_SUFFIXES = (".musicxml", ".xml", ".mxl", ".krn", ".mei")
SCORE_SUFFIXES = VEROVIO_SUFFIXES + (".ly",)
MSMD_SPLITS = ("train", "valid", "test")  # MSMD v1.1 (its test_v1 list is not used)


@dataclass(frozen=True)
class ScoreSource:
    """One piece: `piece` is its dataset-wide id, `origin` a corpus name or a file path."""

    piece: str
    origin: str
    kind: str  # "chorale" (music21, reduced to keyboard), "file" (Verovio) or "lilypond"
    split: str | None = None  # a split fixed by the corpus (MSMD's); None: assigned by seed

    def load(self) -> tuple[str | bytes, bool]:
        """Score data for `engrave`: (data, zipped). Raises ScoreError."""
        try:
            if self.kind == "chorale":
                return _chorale_as_keyboard(self.origin), False
            return _load_file(Path(self.origin))
        except ScoreError:
            raise
        except Exception as exc:  # music21 raises many types on broken input
            raise ScoreError(f"cannot read {self.origin}: {type(exc).__name__}: {exc}") from exc


def corpus_sources(name: str) -> list[ScoreSource]:
    """Built-in corpus: Bach's chorales (350 distinct, Riemenschneider order) + keyboard pieces."""
    if name not in CORPORA:
        raise ScoreError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
    from music21 import corpus

    chorales = corpus.chorales.Iterator(
        numberingSystem="riemenschneider", returnType="filename"
    )
    # Riemenschneider's 371 numbers include 21 chorales printed twice, which music21 maps to the
    # same file: keep each once, or the same music would land in two splits.
    unique = dict.fromkeys(chorales)
    sources = [ScoreSource(_piece_id(c), c, "chorale") for c in unique]
    for work in KEYBOARD_PIECES:
        path = corpus.getWork(work)
        sources.append(ScoreSource(_piece_id(work.rsplit(".", 1)[0]), str(path), "file"))
    return sources


def folder_sources(folder: str | Path) -> list[ScoreSource]:
    """Every MusicXML / MXL / Humdrum kern / MEI / LilyPond file under `folder`, in path order.

    A LilyPond file that another one `\\include`s is part of that piece, not a piece itself.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ScoreError(f"score folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in SCORE_SUFFIXES)
    included = included_files(p for p in files if p.suffix.lower() == ".ly")
    files = [p for p in files if p.resolve() not in included]
    if not files:
        raise ScoreError(f"no score files ({', '.join(SCORE_SUFFIXES)}) under {root}")
    return [
        ScoreSource(_piece_id(str(p.relative_to(root).with_suffix(""))), str(p),
                    "lilypond" if p.suffix.lower() == ".ly" else "file")
        for p in files
    ]


def msmd_sources(msmd_dir: str | Path) -> list[ScoreSource]:
    """MSMD's pieces from their LilyPond sources, with the paper's split (`splits.json`)."""
    import json

    root = Path(msmd_dir)
    try:
        table = json.loads((root / "splits.json").read_text())
    except (OSError, ValueError) as exc:
        raise ScoreError(f"{root} has no readable splits.json (MSMD's split): {exc}") from exc
    return [ScoreSource(entry["piece"], str(root / entry["source"]), "lilypond", split)
            for split in MSMD_SPLITS for entry in table.get(split, [])]


_INCLUDE = re.compile(r'\\include\s+"([^"]+)"')


def included_files(ly_files) -> set[Path]:
    """The files that LilyPond files include (resolved paths)."""
    found = set()
    for ly in ly_files:
        for name in _INCLUDE.findall(ly.read_text(errors="replace")):
            found.add((ly.parent / name).resolve())
    return found


def _piece_id(name: str) -> str:
    """A filesystem-safe, readable id: 'bach/bwv269' -> 'bach-bwv269'."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", name).strip("-")


def _load_file(path: Path) -> tuple[str | bytes, bool]:
    suffix = path.suffix.lower()
    if suffix == ".mxl":
        return path.read_bytes(), True
    if suffix == ".krn":
        # Verovio reads kern, but its repeat expansion of kern refers to ids that its own
        # engraving does not use; music21's kern reader + MusicXML keeps notes and timing linked.
        from music21 import converter

        return _to_musicxml(converter.parse(str(path), format="humdrum")), False
    return path.read_text(encoding="utf-8"), False


def _to_musicxml(score) -> str:
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    return GeneralObjectExporter(score).parse().decode("utf-8")


def _chorale_as_keyboard(name: str) -> str:
    """A four-part chorale as MusicXML for two staves, two voices each."""
    from music21 import clef, corpus, layout, stream

    score = corpus.parse(name)
    parts = list(score.parts)
    if len(parts) < 4:
        raise ScoreError(f"{name}: expected four voices, found {len(parts)} parts")
    upper = _two_voice_staff(parts[0], parts[1], clef.TrebleClef())
    lower = _two_voice_staff(parts[2], parts[3], clef.BassClef())
    keyboard = stream.Score()
    keyboard.insert(0, upper)
    keyboard.insert(0, lower)
    keyboard.insert(0, layout.StaffGroup([upper, lower], symbol="brace", barTogether=True))
    return _to_musicxml(keyboard)


def _two_voice_staff(top, bottom, staff_clef):
    """Copy of part `top` whose measures hold voice 1 = top's notes, voice 2 = bottom's.

    Starting from a copy of `top` keeps its barlines, repeats and volta brackets. Putting the
    lower part in a second voice (rather than appending its notes to the measure) is what keeps
    the alto under the soprano instead of after it.
    """
    from music21 import clef, instrument, stream

    staff = copy.deepcopy(top)
    staff.partName = None
    staff.partAbbreviation = None
    for el in list(staff.recurse().getElementsByClass((clef.Clef, instrument.Instrument))):
        el.activeSite.remove(el)
    measures = list(staff.getElementsByClass(stream.Measure))
    lower = list(bottom.getElementsByClass(stream.Measure))
    if len(measures) != len(lower):
        raise ScoreError(f"voices have {len(measures)} and {len(lower)} measures")
    for m_top, m_bottom in zip(measures, lower, strict=True):
        voices = []
        for number, source in ((1, m_top), (2, m_bottom)):
            voice = stream.Voice(id=str(number))
            for n in list(source.notesAndRests):
                offset = n.offset
                n = copy.deepcopy(n) if source is m_bottom else n
                if source is m_top:
                    m_top.remove(n)
                n.lyrics = []
                voice.insert(offset, n)
            voices.append(voice)
        for voice in voices:
            m_top.insert(0, voice)
    measures[0].insert(0, staff_clef)
    return staff
