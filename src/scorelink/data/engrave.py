"""Engrave a score with Verovio: page images, systems, noteheads and the performed note list.

Verovio does the engraving, the repeat expansion and the score timing (its *timemap*). What no
library gives us is the geometry in pixels: we read the SVG that Verovio writes (staff lines,
notehead glyph positions) and map it onto the rasterised page, and we merge tied notes into one
sounding note, because the timemap lists each tied note as its own onset.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from scorelink.constants import PAGE_HEIGHT, PAGE_WIDTH, STAFF_HEIGHT
from scorelink.errors import RenderError

# Verovio staff geometry: a staff space is 2 * unit * 10 = 180 SVG units with the default unit (9),
# so a five-line staff is 720 units tall. Choosing the page width in Verovio units so that 720 units
# become STAFF_HEIGHT px at PAGE_WIDTH px reproduces MSMD's engraving scale.
_STAFF_UNITS = 720
_PAGE_WIDTH_MM10 = round(_STAFF_UNITS / STAFF_HEIGHT * PAGE_WIDTH / 10)  # 2147 (tenths of mm)
_PAGE_HEIGHT_MM10 = round(_PAGE_WIDTH_MM10 * PAGE_HEIGHT / PAGE_WIDTH)
VEROVIO_OPTIONS = {
    "pageWidth": _PAGE_WIDTH_MM10,
    "pageHeight": _PAGE_HEIGHT_MM10,
    "header": "none",
    "footer": "none",
    "breaks": "auto",
    "spacingStaff": 8,  # two-staff piano systems of about 100-120 px, as in MSMD
    "xmlIdSeed": 1,  # deterministic element ids
}

# Notehead glyph widths in staff spaces (SMuFL, Leipzig): the SVG places a glyph by its left edge.
_NOTEHEAD_WIDTH = {"E0A2": 1.69, "E0A0": 2.0}
_DEFAULT_NOTEHEAD_WIDTH = 1.18

_SVG = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_TRANSLATE = re.compile(r"translate\(\s*([-\d.]+)[ ,]+([-\d.]+)\s*\)")
_LINE = re.compile(r"M\s*([-\d.]+)[ ,]+([-\d.]+)\s*L\s*([-\d.]+)[ ,]+([-\d.]+)")


@dataclass(frozen=True)
class System:
    """One line of music on a page. Coordinates in page pixels (PAGE_WIDTH wide)."""

    page: int  # 0-based page index
    index_on_page: int  # 0-based, top to bottom
    staff_top: float  # y of the top line of the top staff
    staff_bottom: float  # y of the bottom line of the bottom staff
    left: float
    right: float
    top: float  # staff lines and noteheads (ledger lines included)
    bottom: float

    @property
    def centre(self) -> float:
        """The y the passage strip is centred on: the middle of the staff lines."""
        return (self.staff_top + self.staff_bottom) / 2

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(top, left, bottom, right) in page pixels."""
        return (self.top, self.left, self.bottom, self.right)


@dataclass(frozen=True)
class Note:
    """A note as engraved: where its notehead is."""

    id: str
    system: int  # index into Engraving.systems
    measure: int  # 0-based measure index in engraving order (into Engraving.measures)
    x: float  # notehead centre, page pixels
    y: float


@dataclass(frozen=True)
class Measure:
    """A measure as engraved."""

    id: str  # the SVG/MEI element id
    label: str  # its number as the score gives it (MEI @n, MusicXML number): "12", "0" for a
    # pickup, "4a" for the second part of a measure split by a repeat sign
    system: int  # index into Engraving.systems


@dataclass(frozen=True)
class MeasureTimes:
    """The measures as played at the score's own tempo, repeats unfolded: parallel arrays of
    length K, in playing order."""

    measure: np.ndarray  # (K,) int, index into Engraving.measures
    start: np.ndarray  # (K,) float seconds
    end: np.ndarray  # (K,) float seconds

    def __len__(self) -> int:
        return len(self.measure)


def _no_measure_times() -> MeasureTimes:
    return MeasureTimes(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))


@dataclass(frozen=True)
class Performance:
    """The notes as sounded at the score's own tempo, repeats unfolded, ties merged.

    Parallel arrays of length N, sorted by onset.
    """

    note: np.ndarray  # (N,) int, index into Engraving.notes
    onset: np.ndarray  # (N,) float seconds
    offset: np.ndarray  # (N,) float seconds
    pitch: np.ndarray  # (N,) int MIDI pitch

    def __len__(self) -> int:
        return len(self.note)


@dataclass(frozen=True)
class Engraving:
    pages: list[np.ndarray]  # each (PAGE_HEIGHT, PAGE_WIDTH) uint8, 255 = white
    systems: list[System]
    notes: list[Note]
    performance: Performance
    # measures in engraving order and their playing times (empty where the engraver gives none,
    # as LilyPond's does not)
    measures: list[Measure] = field(default_factory=list)
    measure_times: MeasureTimes = field(default_factory=_no_measure_times)


@lru_cache(maxsize=1)
def _toolkit():
    """One Verovio toolkit per process (created on first use, never at import)."""
    import verovio

    verovio.enableLog(False)
    tk = verovio.toolkit()
    return tk


def engrave(data: str | bytes, *, zipped: bool = False) -> Engraving:
    """Engrave score data (MEI, MusicXML, Humdrum, ... as Verovio reads it; MXL with zipped=True).

    Raises RenderError when Verovio cannot load or lay out the score, or when its timemap
    refers to notes that are not on the pages.
    """
    tk = _toolkit()
    tk.resetOptions()
    tk.setOptions(VEROVIO_OPTIONS)
    if zipped:
        import base64

        ok = tk.loadZipDataBase64(base64.b64encode(data).decode())
    else:
        ok = tk.loadData(data if isinstance(data, str) else data.decode("utf-8"))
    if not ok or tk.getPageCount() == 0:
        raise RenderError("Verovio could not load the score")

    pages, systems, notes, measures = [], [], [], []
    for page_no in range(1, tk.getPageCount() + 1):
        svg = tk.renderToSVG(page_no)
        pages.append(_rasterise(svg))
        _read_geometry(svg, page=page_no - 1, systems=systems, notes=notes, measures=measures)
    if not notes:
        raise RenderError("the engraved score has no notes")
    timemap = tk.renderToTimemap({"includeMeasures": True})
    performance = _performance(tk, notes, timemap)
    if len(performance) == 0:
        raise RenderError("the score has no sounding notes")
    measures = [Measure(m.id, str(tk.getElementAttr(m.id).get("n", k + 1)), m.system)
                for k, m in enumerate(measures)]
    return Engraving(pages=pages, systems=systems, notes=notes, performance=performance,
                     measures=measures, measure_times=_measure_times(tk, measures, timemap))


def _rasterise(svg: str) -> np.ndarray:
    """SVG page -> (PAGE_HEIGHT, PAGE_WIDTH) uint8 grayscale on white."""
    import cairosvg
    from PIL import Image

    _register_fonts(svg)
    png = cairosvg.svg2png(
        bytestring=svg.encode(),
        output_width=PAGE_WIDTH,
        output_height=PAGE_HEIGHT,
        background_color="white",
    )
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.uint8)


# Verovio writes text that holds music symbols (the note of a tempo mark "♩ = 100", dynamics) in
# its SMuFL font (Leipzig), embedded in the SVG as a WOFF2 @font-face. CairoSVG ignores
# @font-face and asks fontconfig for the family by name; no system package ships Leipzig, so
# those symbols came out as empty boxes. `_register_fonts` gives the embedded font to fontconfig
# for this process (FcConfigAppFontAddFile; FreeType reads WOFF2), once per family, so that
# cairo draws the very font Verovio laid the text out with.
_FONT_FACE = re.compile(r"@font-face\s*\{\s*font-family:\s*'([^']+)';\s*src:\s*url\(data:[^,)]*"
                        r"base64,([A-Za-z0-9+/=]+)\)")
_registered_fonts: set[str] = set()


def _register_fonts(svg: str) -> None:
    """Make the fonts embedded in `svg` available to cairo (see _FONT_FACE). Where that cannot
    be done (no fontconfig, no writable cache), the page is drawn as before: symbols in text
    as boxes."""
    if "@font-face" not in svg:
        return
    for match in _FONT_FACE.finditer(svg):
        family = match.group(1)
        if family in _registered_fonts:
            continue
        _registered_fonts.add(family)
        fontconfig = _fontconfig()
        try:
            path = _font_file(family, match.group(2))
        except (OSError, RuntimeError):  # RuntimeError: no home folder to cache it in
            continue
        if fontconfig is not None:
            fontconfig.FcConfigAppFontAddFile(None, str(path).encode())


def _font_file(family: str, data: str) -> Path:
    """The font's file in the user's cache, named by its content (written once, kept)."""
    import base64
    import hashlib
    import os
    import tempfile

    raw = base64.b64decode(data)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scorelink/fonts"
    name = re.sub(r"[^A-Za-z0-9]+", "-", family)
    path = cache / f"{name}-{hashlib.sha256(raw).hexdigest()[:16]}.woff2"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache, delete=False) as f:  # atomic: workers race
            f.write(raw)
        Path(f.name).replace(path)
    return path


@lru_cache(maxsize=1)
def _fontconfig():
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("fontconfig")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    lib.FcConfigAppFontAddFile.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return lib


def _read_geometry(svg: str, *, page: int, systems: list[System], notes: list[Note],
                   measures: list[Measure]) -> None:
    """Append the systems, notes and measures (labels still empty) found in one page's SVG
    (converted to page pixels)."""
    root = ET.fromstring(svg)
    inner = root.find(f"{_SVG}svg")
    margin = root.find(f".//{_SVG}g[@class='page-margin']")
    if inner is None or margin is None:
        raise RenderError("unexpected SVG layout from Verovio")
    view_width = float(inner.get("viewBox").split()[2])
    scale = PAGE_WIDTH / view_width  # px per SVG unit
    mx, my = (float(v) for v in _TRANSLATE.search(margin.get("transform")).groups())
    staff_space = _STAFF_UNITS / 4 * scale

    for index_on_page, sys_el in enumerate(_iter_class(margin, "system")):
        ys, xs = [], []
        for staff in _iter_class(sys_el, "staff"):
            for path in staff.findall(f"{_SVG}path"):
                m = _LINE.match(path.get("d", ""))
                if m:
                    x1, y1, x2, y2 = (float(v) for v in m.groups())
                    if y1 == y2:
                        ys.append(y1)
                        xs.extend((x1, x2))
        if not ys:
            continue
        system_index = len(systems)
        system_notes: list[Note] = []
        for measure in _iter_class(sys_el, "measure"):
            measure_index = len(measures)
            measures.append(Measure(measure.get("id", ""), "", system_index))
            for note_el in _iter_class(measure, "note"):
                head = note_el.find(f"{_SVG}g[@class='notehead']/{_SVG}use")
                if head is None:
                    continue
                hx, hy = (float(v) for v in _TRANSLATE.search(head.get("transform")).groups())
                glyph = head.get(_XLINK_HREF, "#")[1:5]
                width = _NOTEHEAD_WIDTH.get(glyph, _DEFAULT_NOTEHEAD_WIDTH) * _STAFF_UNITS / 4
                system_notes.append(
                    Note(
                        id=note_el.get("id"),
                        system=system_index,
                        measure=measure_index,
                        x=(hx + width / 2 + mx) * scale,
                        y=(hy + my) * scale,
                    )
                )
        staff_top, staff_bottom = (min(ys) + my) * scale, (max(ys) + my) * scale
        head_ys = [n.y for n in system_notes]
        systems.append(
            System(
                page=page,
                index_on_page=index_on_page,
                staff_top=staff_top,
                staff_bottom=staff_bottom,
                left=(min(xs) + mx) * scale,
                right=(max(xs) + mx) * scale,
                top=min([staff_top, *head_ys]) - staff_space / 2,
                bottom=max([staff_bottom, *head_ys]) + staff_space / 2,
            )
        )
        notes.extend(system_notes)


def _iter_class(element: ET.Element, cls: str):
    """Descendant <g> elements of one class, in document order."""
    for el in element.iter(f"{_SVG}g"):
        if cls in (el.get("class") or "").split():
            yield el


def _measure_times(tk, measures: list[Measure], timemap: list[dict]) -> MeasureTimes:
    """Verovio's timemap (repeats expanded) -> when each measure is played: from its
    `measureOn` event to the next one (the last: to the end of the timemap)."""
    index = {m.id: i for i, m in enumerate(measures)}
    played, starts = [], []
    for event in timemap:
        if "measureOn" in event:
            notated = tk.getNotatedIdForElement(event["measureOn"])
            if notated not in index:
                raise RenderError(f"played measure {notated} is not on the engraved pages")
            played.append(index[notated])
            starts.append(event["tstamp"] / 1000)
    if not played:
        return _no_measure_times()
    ends = [*starts[1:], max(e["tstamp"] for e in timemap) / 1000]
    return MeasureTimes(np.array(played, np.int64), np.array(starts), np.array(ends))


def _performance(tk, notes: list[Note], timemap: list[dict]) -> Performance:
    """Verovio's timemap (repeats expanded) -> sounding notes, tied notes merged."""
    from scorelink.data.mei_pitch import spelled_pitches

    index = {n.id: i for i, n in enumerate(notes)}
    mei = ET.fromstring(tk.getMEI())
    continuations = _tie_continuations(mei)
    spelled, _ = spelled_pitches(mei)  # the notes it leaves out are asked of Verovio, one by one
    onsets: dict[str, float] = {}
    rows: list[list] = []  # [note index, onset s, offset s, pitch]
    sounding: dict[tuple[int, float], int] = {}  # (pitch, offset ms) -> row, to extend ties
    for event in timemap:
        t = event["tstamp"]
        for eid in event.get("on", []):
            onsets[eid] = t
        for eid in event.get("off", []):
            if eid not in onsets:
                continue
            notated = tk.getNotatedIdForElement(eid)
            if notated not in index:
                raise RenderError(f"performed note {eid} is not on the engraved pages")
            pitch = spelled.get(notated)
            if pitch is None:
                pitch = int(tk.getMIDIValuesForElement(eid)["pitch"])
            start = onsets.pop(eid)
            row = sounding.pop((pitch, start), None) if notated in continuations else None
            if row is not None:  # a tied note: the sound goes on, no new onset
                rows[row][2] = t / 1000
            else:
                row = len(rows)
                rows.append([index[notated], start / 1000, t / 1000, pitch])
            sounding[(pitch, t)] = row
    if not rows:
        return Performance(*(np.zeros(0, dtype) for dtype in (np.int64, float, float, np.int64)))
    rows.sort(key=lambda r: (r[1], r[3]))
    arr = np.array(rows, dtype=float)
    return Performance(
        note=arr[:, 0].astype(np.int64),
        onset=arr[:, 1],
        offset=np.maximum(arr[:, 2], arr[:, 1] + 0.01),
        pitch=arr[:, 3].astype(np.int64),
    )


def _tie_continuations(root: ET.Element) -> set[str]:
    """Ids of notes that continue a tie (their onset is not struck again); `root`: the
    parsed MEI."""
    ns = "{http://www.music-encoding.org/ns/mei}"
    xml_id = "{http://www.w3.org/XML/1998/namespace}id"
    ids = {tie.get("endid", "").lstrip("#") for tie in root.iter(f"{ns}tie")}
    ids.update(n.get(xml_id) for n in root.iter(f"{ns}note") if n.get("tie") in ("m", "t"))
    ids.discard("")
    return ids
