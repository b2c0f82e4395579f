"""Read a Humdrum **kern file into measures of notes, with its system breaks and repeats.

What a real-scan corpus needs from a kern file is small: every measure in file order, the
pitches and score times of its notes, which printed system it is on (`!!LO:LB:g=original` line
breaks, `!!LO:PB:g=original` page breaks), and the order in which sections are played (the
expansion lists `*>[A,A,B]` and `*>norep[A,B]`). music21's kern reader silently drops the music
of some movements, so the file is read here line by line, and `read_kern` checks the result
against the file itself: as many measures as barlines, as many notes as pitch tokens.

Times are in quarter notes (fractions.Fraction, exact). MIDI pitch: middle C (kern `c`) = 60.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from scorelink.errors import ScoreError

# A system or page break is a global layout comment (`!!`, all spines): a local one (`!` in one
# spine's column, as on a dynamics spine of sonata 4) is not a break of the printed page.
BREAK = re.compile(r"!!LO:(LB|PB):.*g=original")
_DURATION = re.compile(r"(\d+)(?:%(\d+))?(\.*)")
_PITCH = re.compile(r"([A-Ga-g])\1*([#\-n]*)")
_STEP = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


@dataclass(frozen=True)
class Note:
    onset: Fraction  # quarter notes from the start of its measure
    duration: Fraction  # quarter notes (0 for grace notes); ties are merged into the first note
    pitch: int  # MIDI
    grace: bool = False


@dataclass
class Measure:
    index: int  # in file order, 0-based (a pickup before the first barline is measure 0)
    label: str  # the number the file gives it ("" for a pickup)
    system: int  # printed system it is on, 0-based
    section: str  # expansion label active at its start ("" before the first one)
    duration: Fraction = Fraction(0)
    notes: list[Note] = field(default_factory=list)


@dataclass
class Kern:
    measures: list[Measure]
    expansions: dict[str, list[str]]  # "" (the default list) and "norep" -> section labels
    systems: int  # printed systems (breaks + 1)
    page_breaks: list[int]  # first system of each page after the first, where encoded
    tied: int = 0  # tied continuations read (merged into the notes they continue)
    staves: int = 2  # **kern spines at the start: staves per system
    labels: frozenset[str] = frozenset()  # every section label the file marks (*>X)

    def sections(self) -> dict[str, list[int]]:
        """label -> its measures (file order)."""
        out: dict[str, list[int]] = {}
        for m in self.measures:
            out.setdefault(m.section, []).append(m.index)
        return out

    def expand(self, labels: list[str] | None) -> list[int]:
        """Measure indices in playing order for a list of section labels (None: file order).

        Measures before the first label (rare) are played first. A section marked inside a
        measure and ended before its barline (sonata 28-2's lead-in `Bx` after the "Fin."
        ending) owns no measure: its notes sound with the measure it shares, so it adds none."""
        if labels is None:
            return [m.index for m in self.measures]
        sections = self.sections()
        missing = [lab for lab in labels if lab not in sections and lab not in self.labels]
        if missing:
            raise ScoreError(f"expansion names sections {missing} that the file does not have")
        order = list(sections.get("", []))
        for label in labels:
            order.extend(sections.get(label, []))
        return order


def read_kern(path: str | Path) -> Kern:
    """The measures, systems and expansion lists of a **kern file; raises ScoreError when it
    cannot be read, has no system breaks, or the result does not account for the whole file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ScoreError(f"cannot read {path}: {exc}") from exc
    kern = _parse(text.splitlines(), path)
    barlines = sum(1 for line in text.splitlines() if line.startswith("="))
    written = [m for m in kern.measures if m.label or m.notes]
    pickup = int(not kern.measures[0].label)
    # Every barline opens a measure but the last (the final double bar): with a pickup before
    # the first barline, as many measures as barlines.
    if len(kern.measures) != barlines - 1 + pickup:
        raise ScoreError(f"{path.name}: read {len(kern.measures)} measures for {barlines} "
                         "barlines")
    heads = _count_pitch_tokens(text)
    notes = sum(len(m.notes) for m in kern.measures) + kern.tied
    if notes != heads:
        raise ScoreError(f"{path.name}: read {notes} notes of {heads} in the file")
    if kern.systems < 2 or not written:
        raise ScoreError(f"{path.name}: no system breaks (!!LO:LB:g=original) in the file")
    return kern


def _parse(lines: list[str], path: Path) -> Kern:
    kinds: list[str] = []  # the exclusive interpretation of each column
    remaining: list[Fraction] = []  # time left of each column's current event
    sounding: dict[int, list] = {}  # pitch -> the tied note being lengthened
    counts = [0]  # tied continuations read
    expansions: dict[str, list[str]] = {}
    measures = [Measure(0, "", 0, "")]
    system, page_breaks, pending_break, pending_page = 0, [], False, False
    section, staves, labels = "", 0, set()
    now = Fraction(0)  # within the current measure
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        if line.startswith("!"):
            if BREAK.match(line):
                pending_break = True
                pending_page = pending_page or "LO:PB" in line
            continue
        tokens = line.split("\t")
        if line.startswith("**"):
            kinds = [t[2:] for t in tokens]
            remaining = [Fraction(0)] * len(tokens)
            staves = kinds.count("kern")
            continue
        if len(tokens) != len(kinds):
            raise ScoreError(f"{path.name}:{number}: {len(tokens)} columns, expected "
                             f"{len(kinds)}")
        if line.startswith("*"):
            kinds, remaining = _spine_ops(tokens, kinds, remaining)
            first = tokens[0]
            if first.startswith("*>") and "[" in first:
                name, _, rest = first[2:].partition("[")
                expansions[name] = [x for x in rest.rstrip("]").split(",") if x]
            elif first.startswith("*>"):
                section = first[2:]
                labels.add(section)
                if not measures[-1].notes and measures[-1].duration == 0:
                    measures[-1].section = section
            continue
        if line.startswith("="):
            measures[-1].duration = now
            if pending_break:
                system += 1
                if pending_page:
                    page_breaks.append(system)
            pending_break = pending_page = False
            label = re.sub(r"[^0-9a-z]", "", tokens[0][1:])
            measures.append(Measure(len(measures), label, system, section))
            now = Fraction(0)
            continue
        now += _data_line(tokens, kinds, remaining, measures[-1], now, sounding, counts, path,
                          number)
    measures[-1].duration = now
    if not measures[-1].notes and now == 0:
        measures.pop()  # after the final barline
    if not measures[0].notes and measures[0].duration == 0:
        measures.pop(0)  # no pickup
    for i, m in enumerate(measures):
        m.index = i
        m.notes = [Note(Fraction(a), Fraction(b), int(c), bool(d)) for a, b, c, d in m.notes]
    return Kern(measures, expansions, system + 1, page_breaks, counts[0], staves,
                frozenset(labels))


def _spine_ops(tokens: list[str], kinds: list[str],
               remaining: list[Fraction]) -> tuple[list[str], list[Fraction]]:
    """Columns after a line of spine splits (*^), merges (*v) and ends (*-)."""
    if not any(t in ("*^", "*v", "*-") for t in tokens):
        return kinds, remaining
    new_kinds, new_rest = [], []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t == "*^":
            new_kinds += [kinds[i]] * 2
            new_rest += [remaining[i]] * 2
        elif t == "*v":
            j = i
            while j + 1 < len(tokens) and tokens[j + 1] == "*v":
                j += 1
            new_kinds.append(kinds[i])
            new_rest.append(max(remaining[i : j + 1]))
            i = j
        elif t != "*-":
            new_kinds.append(kinds[i])
            new_rest.append(remaining[i])
        i += 1
    return new_kinds, new_rest


def _data_line(tokens, kinds, remaining, measure: Measure, now: Fraction,
               sounding: dict[int, list], counts: list[int], path: Path, number: int) -> Fraction:
    """Read one data line into `measure` (notes as lists [onset, duration, pitch, grace],
    turned into Note at the end); returns the time to the next line."""
    for col, (token, kind) in enumerate(zip(tokens, kinds, strict=True)):
        if kind != "kern" or token == ".":
            continue
        for sub in token.split(" "):
            grace = "q" in sub or "Q" in sub
            match = _DURATION.search(sub)
            if match is None and not grace:
                raise ScoreError(f"{path.name}:{number}: no duration in {sub!r}")
            duration = Fraction(0) if grace else _duration(match)
            if not grace:
                remaining[col] = duration
            pitch = None if "r" in sub else _pitch(sub)
            if pitch is None:
                continue
            if "_" in sub or "]" in sub:  # a tie goes on: lengthen the note it continues
                counts[0] += 1
                tied = sounding.get(pitch)
                if tied is not None:
                    tied[1] += duration
                if "]" in sub:
                    sounding.pop(pitch, None)
                continue
            note = [now, duration, pitch, grace]
            measure.notes.append(note)
            if "[" in sub:
                sounding[pitch] = note
    kern_rest = [r for r, k in zip(remaining, kinds, strict=True) if k == "kern" and r > 0]
    step = min(kern_rest) if kern_rest else Fraction(0)
    for i in range(len(remaining)):
        remaining[i] = max(Fraction(0), remaining[i] - step)
    return step


def _duration(match: re.Match) -> Fraction:
    reciprocal = int(match.group(1))
    base = Fraction(8) if reciprocal == 0 else Fraction(4, reciprocal)
    if match.group(2):
        base *= int(match.group(2))
    dots = len(match.group(3))
    return base * (2 - Fraction(1, 2**dots))


def _pitch(token: str) -> int | None:
    match = _PITCH.search(token)
    if match is None:
        return None
    letters = token[match.start() : match.start() + len(match.group(0)) - len(match.group(2))]
    step = _STEP[letters[0].lower()]
    octave = 3 + len(letters) if letters[0].islower() else 4 - len(letters)
    alter = match.group(2).count("#") - match.group(2).count("-")
    return 12 * (octave + 1) + step + alter


def _count_pitch_tokens(text: str) -> int:
    """Notes written in the **kern columns of the file, counted independently of the parser."""
    count, kinds = 0, []
    for line in text.splitlines():
        if line.startswith("**"):
            kinds = [t[2:] for t in line.split("\t")]
        if not line or line[0] in "!*=":
            if line.startswith("*") and any(t in ("*^", "*v", "*-") for t in line.split("\t")):
                kinds = _spine_ops(line.split("\t"), kinds, [Fraction(0)] * len(kinds))[0]
            continue
        for token, kind in zip(line.split("\t"), kinds, strict=False):
            if kind == "kern" and token != ".":
                count += sum(1 for sub in token.split(" ")
                             if "r" not in sub and _PITCH.search(sub))
    return count


