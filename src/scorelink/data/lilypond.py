"""Engrave a LilyPond score (MSMD's sources are Mutopia .ly files) into the same `Engraving`
as the Verovio engraver, so that building, training and search need no change.

LilyPond does the engraving and the performance (its MIDI file: ties merged, tempo marks
applied). What no tool gives us is the link between the two, and the geometry in pixels:

- a few lines inserted after the source's `\\version` tag make LilyPond tag every notehead in
  the SVG (`output-attributes`) and log every note event of the layout with its score moment,
  MIDI pitch and source location (a small Scheme engraver, written here because LilyPond's
  own `event-listener.ly` drops the file name, which pieces made of several files need);
- with point-and-click on, each notehead in the SVG links to the same source location;
- MIDI notes are matched to logged events by (moment, pitch), events to noteheads by source
  location (in engraving order when one location is engraved several times, as unfolded
  repeats are); systems come from LilyPond's own staff symbols and system-start delimiters
  in the SVG.

Repeats: `\\repeat volta` and `\\repeat percent` are rewritten as `\\repeat unfold`, so the pages
and the audio both play them as often as written. Repeats marked by hand (`repeatCommands`) and
da capo texts are not played by LilyPond's MIDI either, so pages and audio stay in step.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scorelink.constants import PAGE_WIDTH
from scorelink.data.engrave import Engraving, Note, Performance, System
from scorelink.errors import RenderError, ToolMissingError

TIMEOUT = 300  # s per LilyPond run
MIDI_TICKS_PER_WHOLE = 4 * 384  # LilyPond writes 384 ticks per quarter note
MIN_MATCHED = 0.9  # share of MIDI notes that must find their notehead
_NOTES_LOG = "scorelink-notes.txt"
_HEAD_CLASS = "scorelink-notehead"
_STAFF_CLASS = "scorelink-staff"
_START_CLASS = "scorelink-system-start"  # the brace / bar / bracket that joins a system's staves
# Inserted into the main file by `_prepare` (after its \version line where that comes first;
# see the module docstring), in two parts.
#
# _SVG_GLYPH_INDEX speeds up LilyPond's SVG backend without changing a byte of its output. For
# every glyph it draws, LilyPond 2.24 (scm/lily/output-svg.scm, `cache-font`) copies the whole
# SVG font file, compiles a regular expression for the glyph's name and searches the file with
# it (its own comment: "it would be better to ... store them in a hash table"): 80 % of an SVG
# run, five times the time of a PDF run. We replace `cache-font` with one that indexes each
# font's <glyph> elements once by name and remembers each drawn glyph's path, then hands the
# single element to LilyPond's own `extract-glyph`. No library offers this, hence Scheme here.
# A LilyPond whose SVG backend lacks these functions is left as it is.
_SVG_GLYPH_INDEX = r"""
#(let ((svg (resolve-module '(lily output-svg))))
  (if (and-map (lambda (name) (module-variable svg name))
               '(cache-font extract-glyph extract-glyph-info svg-defs cached-file-contents))
   (let* ((match:substring (module-ref (resolve-module '(ice-9 regex)) 'match:substring))
          (extract-glyph (module-ref svg 'extract-glyph))
          (extract-glyph-info (module-ref svg 'extract-glyph-info))
          (svg-defs (module-ref svg 'svg-defs))
          (file-contents (module-ref svg 'cached-file-contents))
          (fonts (make-hash-table))
          (paths (make-hash-table))
          (name-re (make-regexp "[[:space:]]glyph-name=\"([^\"]*)\"")))
     (define (glyphs-of file)  ; name -> the first self-closed <glyph .../> of that name
       (or (hash-ref fonts file)
           (let ((table (make-hash-table))
                 (text (svg-defs (file-contents file))))
             (let loop ((at 0))
               (let* ((start (string-contains text "<glyph" at))
                      (end (and start (string-contains text "/>" start))))
                 (if end
                     (let* ((element (substring text start (+ end 2)))
                            (open? (string-index element #\> 0 (- (string-length element) 1)))
                            (name (and (not open?) (regexp-exec name-re element))))
                       (if (and name (not (hash-ref table (match:substring name 1))))
                           (hash-set! table (match:substring name 1) element))
                       (loop (+ end 2))))))
             (hash-set! fonts file table)
             table)))
     (module-define! svg 'cache-font
       (lambda (file size glyph)
         (if (list? glyph)  ; a glyph of a string: its offset moves the pen, nothing to keep
             (extract-glyph-info (hash-ref (glyphs-of file) (car (reverse glyph)) "")
                                 glyph size)
             (let ((key (list file size glyph)))
               (or (hash-ref paths key)
                   (let ((path (extract-glyph (hash-ref (glyphs-of file) glyph "")
                                              glyph size)))
                     (hash-set! paths key path)
                     path)))))))))
"""
# The rest: the two beaming functions of LilyPond 2.12, gone since 2.14 and beyond convert-ly,
# become no-ops (beams follow the default rules, the notes stay the same); the note-event log;
# the SVG classes that mark noteheads, staff symbols and system starts.
_SETTINGS = _SVG_GLYPH_INDEX + r"""
#(define (override-auto-beam-setting . args) (make-music 'SequentialMusic 'elements '()))
#(define (revert-auto-beam-setting . args) (make-music 'SequentialMusic 'elements '()))
#(define scorelink-port (open-output-file "%(log)s"))
#(define scorelink-scores (make-hash-table))
#(define (scorelink-score context)  ; 0, 1, ...: the engraved scores in the order engraved
   (let ((score (ly:context-find context 'Score)))
     (or (hashq-ref scorelink-scores score)
         (let ((n (hash-count (const #t) scorelink-scores)))
           (hashq-set! scorelink-scores score n)
           n))))
#(define (scorelink-log-end context)
   (let ((now (ly:context-current-moment context)))
     (format scorelink-port "end\t~a\t~a\t~a\n" (scorelink-score context)
             (ly:moment-main-numerator now) (ly:moment-main-denominator now))
     (force-output scorelink-port)))
#(define (scorelink-log-note context event)
   (let ((origin (ly:event-property event 'origin))
         (pitch (ly:event-property event 'pitch))
         (duration (ly:event-property event 'duration))
         (now (ly:context-current-moment context)))
     (if (and (ly:input-location? origin) (ly:pitch? pitch) (ly:duration? duration))
         (let ((loc (ly:input-file-line-char-column origin))
               (len (ly:duration-length duration)))
           (format scorelink-port "~a\t~a\t~a\t~a\t~a\t~a\t~a\t~a\t~a\t~a\n"
                   (ly:moment-main-numerator now) (ly:moment-main-denominator now)
                   (ly:moment-grace-numerator now) (+ 60 (ly:pitch-semitones pitch))
                   (ly:moment-main-numerator len) (ly:moment-main-denominator len)
                   (cadr loc) (caddr loc) (scorelink-score context) (car loc))
           (force-output scorelink-port)))))
\layout {
  \context { \Score
    \override NoteHead.output-attributes = #'((class . "%(cls)s"))
    \override StaffSymbol.output-attributes = #'((class . "%(staff)s"))
    \override SystemStartBrace.output-attributes = #'((class . "%(start)s"))
    \override SystemStartBar.output-attributes = #'((class . "%(start)s"))
    \override SystemStartBracket.output-attributes = #'((class . "%(start)s"))
    \override SystemStartSquare.output-attributes = #'((class . "%(start)s"))
    \consists #(lambda (context)
                 (make-engraver ((finalize engraver) (scorelink-log-end context)))) }
  \context { \Voice \consists
    #(lambda (context)
       (make-engraver
         (listeners ((note-event engraver event) (scorelink-log-note context event))))) }
}
"""
# `\repeat volta 2`, also with the type quoted (`\repeat "volta" 2`, as some Mutopia files do)
_REPEAT = re.compile(r"\\repeat\s+(\"?)(volta|percent)\1(?![\w-])")
_KEEP_LAYOUT = re.compile(r"\\keepWithTag\s*#'layout(?![\w-])")
_KEEP_MIDI = re.compile(r"(\\keepWithTag\s*#')midi(?![\w-])")
_VERSION = re.compile(r"^\s*\\version\s+\"[^\"]*\"[^\n]*\n?", re.M)
_SVG = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_TRANSLATE = re.compile(r"translate\(\s*([-\d.]+)[ ,]+([-\d.]+)\s*\)")
_TRANSFORM = re.compile(r"(translate|scale)\(([^)]*)\)")
_TEXTEDIT = re.compile(r"textedit://(.+):(\d+):(\d+):(\d+)$")
_NOTEHEAD_HALF_WIDTH = 0.6  # staff spaces: the glyph is placed by its left edge


@dataclass(frozen=True)
class _Head:
    page: int
    x: float  # page px, notehead centre
    y: float
    location: tuple[str, int, int]  # (file name, line, char)
    system: int | None  # index into the page's systems, from the SVG's order (see _noteheads)


def check_lilypond() -> None:
    for tool, package in (("lilypond", "lilypond"), ("convert-ly", "lilypond"),
                          ("rsvg-convert", "librsvg2-bin")):
        if shutil.which(tool) is None:
            raise ToolMissingError(
                f"{tool} is not installed; install it with: sudo apt-get install {package}")


def engrave_lilypond(path: str | Path, unfold: bool = True) -> Engraving:
    """Engrave a LilyPond file (and the files it includes, from its folder).

    `unfold=False` engraves volta/percent repeats as written (signs, played once): the pages
    a reader sees, but systems and audio no longer correspond one to one.

    Raises RenderError when LilyPond fails, writes no MIDI (no \\midi block), or when the
    performed notes cannot be tied to the engraved noteheads.
    """
    check_lilypond()
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="scorelink-ly-") as tmp:
        work = Path(tmp) / "src"
        shutil.copytree(path.parent, work, ignore=shutil.ignore_patterns(
            "*.pdf", "*.midi", "*.mid", "*.png", "*.ps"))
        main = work / path.name
        _prepare(work, main, unfold)
        out = Path(tmp) / "out"
        out.mkdir()
        run = subprocess.run(
            ["lilypond", "-dbackend=svg", "-dpoint-and-click",
             "-o", str(out / "score"), str(main)],
            cwd=out, capture_output=True, text=True, timeout=TIMEOUT)
        svgs = sorted(out.glob("score*.svg"), key=_page_number)
        if run.returncode != 0 or not svgs:
            raise RenderError(f"lilypond {_failure(run)}")
        midis = sorted(out.glob("score*.mid*"))
        if not midis:
            raise RenderError("LilyPond wrote no MIDI (the score has no \\midi block)")
        if len(midis) > 1:
            raise RenderError(f"the file holds {len(midis)} scores; one score per file is read")
        log = out / _NOTES_LOG
        events = _read_events(log.read_text() if log.exists() else "")
        midi = _read_midi(midis[0])
        pages, heads, systems = [], [], []
        for page_no, svg in enumerate(svgs):
            text = svg.read_text()
            pages.append(_rasterise(text))
            page_systems = _systems(text, page_no)
            heads.extend(_noteheads(text, page_no, page_systems))
            systems.extend(page_systems)
    return _link(pages, systems, heads, events, midi)


def _prepare(work: Path, main: Path, unfold: bool = True) -> None:
    """Update the sources to LilyPond 2.24, play repeats as written, insert our settings."""
    files = sorted([*work.rglob("*.ly"), *work.rglob("*.ily")])
    # a source that engraves `\keepWithTag #'layout` and performs `\keepWithTag #'midi`
    # (Mussorgsky's Pictures in MSMD: trills and tremolos written out as other notes for the
    # MIDI) performs the engraved version, so that every sounding note is a written one
    tagged = any(_KEEP_LAYOUT.search(f.read_text(errors="replace")) for f in files)
    for ly in files:
        subprocess.run(["convert-ly", "-e", str(ly)], capture_output=True, timeout=TIMEOUT)
        text = ly.read_text(errors="replace")
        if tagged:
            text = _KEEP_MIDI.sub(r"\1layout", text)
        # point-and-click switched off (either spelling) would leave the noteheads unlinked
        text = re.sub(r"\\pointAndClickOff\b", "", text)
        text = re.sub(r"#\(ly:set-option\s+'point-and-click\s+#f\)", "", text)
        if unfold:
            text = _REPEAT.sub(r"\\repeat unfold", text)
        # old syntax that convert-ly leaves alone and LilyPond 2.24 rejects:
        # a Scheme number right before a bar check ("\ottava #0|"; Guile 2 reads "0|" as a name)
        text = re.sub(r"(#-?\d+)\|", r"\1 |", text)
        # \applyMusic #unfold-repeats (unfold-repeats takes the repeat types first since 2.20)
        text = re.sub(r"\\applyMusic\s*#unfold-repeats\b", r"\\unfoldRepeats", text)
        # header strings joined with "+" (a LaTeX tagline of LilyPond 1.x): no longer parsed,
        # and not music
        text = re.sub(r'^[ \t]*\w+\s*=\s*"(?:[^"\\\n]|\\.)*"\s*\+[^\n]*$', "", text,
                      flags=re.M)
        # a bare `\context Voice = "name"` before property settings (LilyPond 2.10 read it as
        # "go on in that voice"; now it needs music): give it none, the settings follow
        text = re.sub(r'(\\context\s+Voice\s*=\s*"[^"]*")(?=\s*\\(?:override|set|revert)\b)',
                      r"\1 { }", text)
        # articulate.ly re-times the MIDI (ornaments played out, grace notes take time from
        # the next note), so its onsets no longer belong to the written notes: play as written
        text = re.sub(r"\\articulate(?![A-Za-z])", "", text)
        ly.write_text(text)
    text = main.read_text()
    settings = _SETTINGS % {"log": _NOTES_LOG, "cls": _HEAD_CLASS, "staff": _STAFF_CLASS,
                            "start": _START_CLASS}
    # after the \version line where it comes before the first block; some sources say their
    # version last (Rimsky-Korsakov's in MSMD), too late for a \layout: then at the top
    m = _VERSION.search(text)
    first_block = text.find("{")
    at = m.end() if m and (first_block < 0 or m.start() < first_block) else 0
    main.write_text(text[:at] + settings + text[at:])


def _page_number(svg: Path) -> int:
    m = re.search(r"-(\d+)\.svg$", svg.name)
    return int(m.group(1)) if m else 0


def _failure(run: subprocess.CompletedProcess) -> str:
    """Why a LilyPond run failed, for the failures file."""
    if run.returncode < 0:  # killed by a signal: LilyPond itself crashed
        return (f"crashed (signal {-run.returncode}) after: "
                f"{_last_error(run.stderr)}")
    return f"failed: {_last_error(run.stderr)}"


def _last_error(stderr: str) -> str:
    """LilyPond's first error line, without the temporary folder's path."""
    lines = stderr.strip().splitlines()
    errors = [ln for ln in lines if "error:" in ln]
    line = errors[0] if errors else (lines[-1] if lines else "no output")
    return re.sub(r"^\S*/src/", "", line)[:300]


def _read_events(text: str) -> list[tuple[int, int, int, str, int, int]]:
    """Logged note events: (tick, pitch, length in ticks, file name, line, char); grace notes
    left out.

    A source may engrave its movements as several scores and perform them from one \\score of
    its own that plays them in turn (Satie's Enfantillages pittoresques in MSMD): each engraved
    score starts at moment 0, so its events are moved behind the ends of the scores before it.
    """
    rows, ends = [], {}
    for row in text.splitlines():
        if row.startswith("end\t"):
            _, score, num, den = row.split("\t")
            ends[int(score)] = int(num) * MIDI_TICKS_PER_WHOLE / int(den)
        else:
            rows.append(row.split("\t", 9))
    starts, at = {}, 0.0  # score -> the tick where it starts: the ends of those before it
    for score in sorted(ends):
        starts[score], at = at, at + ends[score]
    events = []
    for num, den, grace, pitch, len_num, len_den, line, char, score, file in rows:
        if int(grace) != 0:
            continue  # grace notes take time from their neighbours in MIDI: no exact moment
        tick = int(num) * MIDI_TICKS_PER_WHOLE / int(den) + starts.get(int(score), 0.0)
        length = int(len_num) * MIDI_TICKS_PER_WHOLE / int(len_den)
        events.append((round(tick), int(pitch), round(length), Path(file).name, int(line),
                       int(char)))
    return events


def _read_midi(path: Path) -> np.ndarray:
    """(N, 4) array of MIDI notes: tick, pitch, onset s, offset s (tempo map applied)."""
    import mido

    mid = mido.MidiFile(path)
    tempo_changes = [(0, 500_000)]  # (tick, microseconds per quarter)
    notes, sounding = [], {}
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                tempo_changes.append((tick, msg.tempo))
            elif msg.type == "note_on" and msg.velocity > 0:
                sounding.setdefault((msg.channel, msg.note), []).append(tick)
            elif msg.type in ("note_off", "note_on"):
                starts = sounding.get((msg.channel, msg.note))
                if starts:
                    notes.append((starts.pop(0), tick, msg.note))
    tempo_changes.sort(key=lambda c: c[0])  # stable: a tempo set at tick 0 beats the default
    ticks = np.array([t for t, _ in tempo_changes], dtype=float)
    spq = np.array([u for _, u in tempo_changes], dtype=float) / 1e6 / mid.ticks_per_beat
    base = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * spq[:-1])])

    def seconds(t: float) -> float:
        k = int(np.searchsorted(ticks, t, side="right")) - 1
        return float(base[k] + (t - ticks[k]) * spq[k])

    return np.array([(a, p, seconds(a), seconds(b)) for a, b, p in sorted(notes)], dtype=float
                    ).reshape(-1, 4)


def _rasterise(svg: str) -> np.ndarray:
    """SVG page -> (H, PAGE_WIDTH) uint8 grayscale on white, H from the page's proportions.

    librsvg (`rsvg-convert`), not cairosvg as for Verovio's pages: LilyPond draws every glyph
    as an outline path of its own, and cairosvg (pure Python) took longer over such a page
    than LilyPond took to engrave it (one page: 1.87 s against 0.30 s, docs/benchmarks.md).
    """
    import io

    from PIL import Image

    run = subprocess.run(["rsvg-convert", "--width", str(PAGE_WIDTH), "--keep-aspect-ratio",
                          "--background-color", "white", "--format", "png"],
                         input=svg.encode(), capture_output=True, timeout=TIMEOUT)
    if run.returncode != 0:
        raise RenderError(f"rsvg-convert failed: {run.stderr.decode(errors='replace')[-300:]}")
    return np.asarray(Image.open(io.BytesIO(run.stdout)).convert("L"), dtype=np.uint8)


def _translate(element: ET.Element) -> tuple[float, float]:
    m = _TRANSLATE.search(element.get("transform", ""))
    return (float(m.group(1)), float(m.group(2))) if m else (0.0, 0.0)


def _systems(svg: str, page: int) -> list[System]:
    """The systems of one SVG page, from LilyPond's own staff symbols and system-start
    delimiters (no image analysis: dense pages put one system's notes against the next's)."""
    root = ET.fromstring(svg)
    scale = PAGE_WIDTH / float(root.get("viewBox").split()[2])
    staves, starts = [], []  # (top, bottom, left, right) in staff spaces; (top, bottom)
    for group in root.iter(f"{_SVG}g"):
        cls = group.get("class")
        if cls == _STAFF_CLASS:
            ys, xs = [], []
            for g in group.iter(f"{_SVG}g"):
                line = g.find(f"{_SVG}line")
                if line is not None and line.get("y1") == line.get("y2"):
                    x, y = _translate(g)
                    ys.append(y + float(line.get("y1")))
                    xs += [x + float(line.get("x1")), x + float(line.get("x2"))]
            if ys:
                staves.append((min(ys), max(ys), min(xs), max(xs)))
        elif cls == _START_CLASS:
            for g in group.iter(f"{_SVG}g"):
                rect = g.find(f"{_SVG}rect")
                if rect is not None:  # a bar: its rectangle spans the staves
                    _, y = _translate(g)
                    top = y + float(rect.get("y"))
                    starts.append((top, top + float(rect.get("height"))))
    groups: list[list[tuple]] = []
    for staff in sorted(staves):
        centre = (staff[0] + staff[1]) / 2
        joined = groups and any(a <= centre <= b and a <= (groups[-1][-1][0] + groups[-1][-1][1])
                                / 2 <= b for a, b in starts)
        if joined:
            groups[-1].append(staff)
        else:
            groups.append([staff])
    systems = []
    for k, group in enumerate(groups):
        top, bottom = group[0][0] * scale, group[-1][1] * scale
        systems.append(System(page=page, index_on_page=k, staff_top=top, staff_bottom=bottom,
                              left=min(s[2] for s in group) * scale,
                              right=max(s[3] for s in group) * scale, top=top, bottom=bottom))
    return systems


def _noteheads(svg: str, page: int, systems: list[System]) -> list[_Head]:
    """Every tagged notehead of one SVG page with its source location, in page pixels.

    LilyPond writes a page system by system, each starting with its staff symbols: a notehead
    belongs to the system of the staff symbol before it. (Its position alone can mislead on
    dense pages, where a low note of one system sits nearer to the next system's staves.)
    """
    root = ET.fromstring(svg)
    scale = PAGE_WIDTH / float(root.get("viewBox").split()[2])  # px per staff space
    heads = []
    current = None
    for group in root.iter(f"{_SVG}g"):
        if group.get("class") == _STAFF_CLASS:
            holder = next((g for g in group.iter(f"{_SVG}g") if g.find(f"{_SVG}line") is not None),
                          None)
            if holder is not None:  # one staff line: which system it is in
                y = (_translate(holder)[1] + float(holder.find(f"{_SVG}line").get("y1"))) * scale
                current = next((k for k, s in enumerate(systems)
                                if s.staff_top - 1 <= y <= s.staff_bottom + 1), current)
            continue
        if group.get("class") != _HEAD_CLASS:
            continue
        link = group.find(f".//{_SVG}a")
        m = _TEXTEDIT.match(link.get(_XLINK_HREF, "")) if link is not None else None
        placed = _glyph_origin(link) if m is not None else None
        if placed is None:
            continue
        x, y, width = placed
        file, line, char = Path(m.group(1)).name, int(m.group(2)), int(m.group(3))
        heads.append(_Head(page, (x + _NOTEHEAD_HALF_WIDTH * width) * scale, y * scale,
                           (file, line, char), current))
    return heads


def _glyph_origin(link: ET.Element) -> tuple[float, float, float] | None:
    """Where the notehead glyph under a point-and-click link is drawn: (x, y, x scale).

    Usually one `translate` group holds the glyph; a source that rescales its noteheads
    (`ly:stencil-scale`, e.g. to squeeze dense passages) nests it in `scale` groups, whose
    factors apply to the translation inside them.
    """
    sx, sy, tx, ty = 1.0, 1.0, 0.0, 0.0
    element, moved = link, False
    while (element := element.find(f"{_SVG}g")) is not None:
        for op, args in _TRANSFORM.findall(element.get("transform", "")):
            values = [float(v) for v in re.split(r"[ ,]+", args.strip())]
            if op == "translate":  # translate(x) means translate(x, 0)
                dy = values[1] if len(values) > 1 else 0.0
                tx, ty, moved = tx + sx * values[0], ty + sy * dy, True
            elif op == "scale":
                sx, sy = sx * values[0], sy * values[-1]
    return (tx, ty, sx) if moved else None


def _midi_shift(midi: np.ndarray, events: list[tuple]) -> int:
    """Ticks by which the MIDI runs behind the engraved score: 0, unless a source performs
    from a \\score of its own that starts later (e.g. with bars of silence before the music),
    or the music starts with grace notes (LilyPond's MIDI plays them first and the whole piece
    after them). The shift that lines up the most (tick, pitch) pairs, among those that put one
    of the first MIDI notes on one of the first events."""
    if not len(midi) or not events:
        return 0
    written = np.unique([int(t) * 128 + int(p) for t, p, *_ in events])  # (tick, pitch) keys
    played = midi[:, 0].astype(np.int64) * 128 + midi[:, 1].astype(np.int64)
    first_played = np.unique(midi[:, 0].astype(np.int64))[:8]
    first_written = [int(t) for t, *_ in sorted(events)[:64]]
    candidates = {0} | {int(m) - t for m in first_played for t in first_written}

    def lined_up(shift: int) -> int:
        return int(np.isin(played - shift * 128, written).sum())
    return max(sorted(candidates), key=lambda c: (lined_up(c), -abs(c)))


def _link(pages: list[np.ndarray], systems: list[System], heads: list[_Head],
          events: list[tuple], midi: np.ndarray) -> Engraving:
    """Noteheads into systems, MIDI notes onto noteheads."""
    if not systems:
        raise RenderError("no systems found on the engraved pages")

    # Noteheads into systems, in engraving order.
    first_on_page = {}
    for i, s in enumerate(systems):
        first_on_page.setdefault(s.page, i)
    notes: list[Note] = []
    placed: list[tuple[int, float, int]] = []  # (system, x, note index) per notehead
    where: list[str] = []  # per note: its source location "file:line:char"
    for h in heads:
        if h.system is None:  # before any staff (a notehead drawn in a title): not music
            continue
        s = first_on_page[h.page] + h.system
        placed.append((s, h.x, len(notes)))
        where.append("{}:{}:{}".format(*h.location))
        notes.append(Note(id=f"{where[-1]}:{len(notes)}", system=s, measure=0, x=h.x, y=h.y))
    if not notes:
        raise RenderError("no noteheads found in the engraved SVG")

    # Source location -> its noteheads in engraving order, and its events in time order.
    by_location: dict[str, list[int]] = {}
    for *_, i in sorted(placed):  # by system, then x
        by_location.setdefault(where[i], []).append(i)
    event_note: dict[tuple[int, int], list[int]] = {}
    written: dict[int, list[tuple[int, int, int]]] = {}  # pitch -> (tick, end tick, note)
    per_location: dict[str, int] = {}
    for tick, pitch, length, file, line, char in sorted(events):
        key = f"{file}:{line}:{char}"
        k = per_location.get(key, 0)
        per_location[key] = k + 1
        engraved = by_location.get(key, [])
        if k < len(engraved):
            event_note.setdefault((tick, pitch), []).append(engraved[k])
            written.setdefault(pitch, []).append((tick, tick + length, engraved[k]))

    written_total = sum(map(len, event_note.values()))
    shift = _midi_shift(midi, events)
    rows = []
    for tick, pitch, onset, offset in midi:
        tick -= shift
        note = None
        # LilyPond's MIDI truncates tuplet times to whole ticks (1/20 of a whole: 76.8 -> 76)
        for near in (0, -1, 1, -2, 2):
            candidates = event_note.get((int(tick) + near, int(pitch)))
            if candidates:
                note = candidates.pop(0)
                break
        if note is None:  # a note struck again while one is written (tremolo): that notehead
            note = next((i for a, b, i in written.get(int(pitch), []) if a <= tick < b), None)
        if note is not None:
            rows.append((note, onset, offset, int(pitch)))
    linked = sum(map(len, event_note.values()))  # written notes no MIDI note has taken
    performed = written_total - linked
    # Most MIDI notes must find their written note. Or, when a source performs from a \score
    # of its own that adds notes (octave doublings for an organ-like sound, in one Bach fugue),
    # nearly every written note must be played: the added notes are left out of the audio.
    if not rows or (len(rows) < MIN_MATCHED * len(midi)
                    and performed < MIN_MATCHED * written_total):
        raise RenderError(f"only {len(rows)} of {len(midi)} MIDI notes found their notehead, "
                          f"and {performed} of {written_total} written notes were played")
    rows.sort(key=lambda r: (r[1], r[3]))
    arr = np.array(rows, dtype=float)
    performance = Performance(note=arr[:, 0].astype(np.int64), onset=arr[:, 1],
                              offset=np.maximum(arr[:, 2], arr[:, 1] + 0.01),
                              pitch=arr[:, 3].astype(np.int64))

    # System boxes: staff lines and the noteheads that belong to them.
    staff_space = 7.0  # px at MSMD's scale; the box margin only
    for i, s in enumerate(systems):
        ys = [n.y for n in notes if n.system == i]
        systems[i] = System(page=s.page, index_on_page=s.index_on_page, staff_top=s.staff_top,
                            staff_bottom=s.staff_bottom, left=s.left, right=s.right,
                            top=min([s.staff_top, *ys]) - staff_space / 2,
                            bottom=max([s.staff_bottom, *ys]) + staff_space / 2)
    return Engraving(pages=pages, systems=systems, notes=notes, performance=performance)
