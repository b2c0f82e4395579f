"""MIDI pitches of a score's notes read from the MEI that Verovio writes, all at once.

Verovio's `getMIDIValuesForElement` finds its note by walking the whole document, so asking it
note by note costs time quadratic in the length of the score (33 of 52 s of CPU engraving
sonata 23's first movement). The MEI Verovio writes spells every note out (pname, oct and a
written or gestural accidental, which its importers fill in from the key and the measure), so
the pitch is read from there in one pass. What the spelling alone may not give is left to
Verovio (the caller asks it for those notes): notes under an ottava line (the staff's
measures from the line's first to its last note), a transposing staff, a note with no
accidental in a score with a key signature, an accidental this reader does not know.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

MEI = "{http://www.music-encoding.org/ns/mei}"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
STEPS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
ALTERS = {"n": 0, "s": 1, "f": -1, "ss": 2, "x": 2, "ff": -2, "xs": 3, "sx": 3, "ts": 3,
          "tf": -3, "nf": -1, "ns": 1}


def spelled_pitches(root: ET.Element) -> tuple[dict[str, int], set[str]]:
    """(note id -> MIDI pitch for the notes whose spelling gives their sounding pitch, ids of
    the notes it may not). `root`: the parsed MEI of `toolkit.getMEI()`."""
    if any(el.get("trans.semi") or el.get("trans.diat") for tag in ("scoreDef", "staffDef")
           for el in root.iter(f"{MEI}{tag}")):
        return {}, {n.get(XML_ID) for n in root.iter(f"{MEI}note")}  # transposing: ask all
    keyed = _has_key_signature(root)
    where: dict[str, tuple[int, str]] = {}  # note id -> (measure number in order, staff n)
    notes: list[tuple[int, str, ET.Element]] = []
    for m, measure in enumerate(root.iter(f"{MEI}measure")):
        for staff in measure.iter(f"{MEI}staff"):
            for note in staff.iter(f"{MEI}note"):
                where[note.get(XML_ID)] = (m, staff.get("n", ""))
                notes.append((m, staff.get("n", ""), note))
    ottavas = _ottava_spans(root, where)
    pitches: dict[str, int] = {}
    unsure: set[str] = set()
    for m, staff, note in notes:
        nid = note.get(XML_ID)
        pitch = _pitch(note, keyed)
        if pitch is None or any(s == staff and a <= m <= b for s, a, b in ottavas):
            unsure.add(nid)
        else:
            pitches[nid] = pitch
    return pitches, unsure


def _pitch(note: ET.Element, keyed: bool) -> int | None:
    if note.get("pnum"):
        return int(note.get("pnum"))
    pname = note.get("pname.ges") or note.get("pname")
    octave = note.get("oct.ges") or note.get("oct")
    if pname not in STEPS or octave is None or not octave.lstrip("-").isdigit():
        return None
    accid = note.get("accid.ges") or note.get("accid")
    if accid is None:
        child = note.find(f"{MEI}accid")
        if child is not None:
            accid = child.get("accid.ges") or child.get("accid")
    if accid is None and keyed:
        return None  # the key may alter it
    if accid is not None and accid not in ALTERS:
        return None
    return 12 * (int(octave) + 1) + STEPS[pname] + ALTERS.get(accid or "n", 0)


def _has_key_signature(root: ET.Element) -> bool:
    for tag in ("scoreDef", "staffDef"):
        for el in root.iter(f"{MEI}{tag}"):
            if el.get("key.sig", "0") not in ("0", "none"):
                return True
    return any(el.get("sig", "0") not in ("0", "none") or el.find(f"{MEI}keyAccid") is not None
               for el in root.iter(f"{MEI}keySig"))


def _ottava_spans(root: ET.Element, where: dict[str, tuple[int, str]]
                  ) -> list[tuple[str, int, int]]:
    """(staff n, first measure, last measure) of every ottava line; a line whose ends are not
    notes found here covers its staff (or every staff) to the end."""
    last = max((m for m, _ in where.values()), default=0)
    spans = []
    for m, measure in enumerate(root.iter(f"{MEI}measure")):
        for octave in measure.iter(f"{MEI}octave"):
            start = where.get((octave.get("startid") or "").lstrip("#"))
            end = where.get((octave.get("endid") or "").lstrip("#"))
            staves = set((octave.get("staff") or "").split()) | ({start[1]} if start else set())
            staves = staves or {s for _, s in where.values()}
            first = start[0] if start else m
            for staff in staves:
                spans.append((staff, min(first, m), end[0] if end else last))
    return spans
