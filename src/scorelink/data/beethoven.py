"""The real-scan corpus (`--corpus beethoven`): scanned pages, kern system breaks, real timing.

A movement is one piece: its scan (`pdf/sonataNN-M.pdf`), its kern encoding of that edition
(`kern/sonataNN-M.krn`, with the printed system breaks) and its nASAP performances
(`asap/Beethoven/Piano_Sonatas/NN-M[_variant]/<performer>.mid` + `_annotations.txt`).

- Sheet: the systems are found on the scan by the project's own page analysis
  (`scorelink.search.staves.find_systems`) and cut into strips by `scorelink.search.pages`, the
  same code that indexes and searches scans; the k-th system found is the kern's k-th system.
  A movement where the two counts differ fails, with both counts in the reason. A scan that
  holds the next movement too (`SHARED_SCANS`, from the corpus's README) must show exactly the
  systems of both; the first movement's are kept.
- Audio: each performance's MIDI rendered with FluidSynth (its timing, velocities and pedals):
  a training piano for the training split (one per performance, from the seed), the held-out
  pianos for validation and test. One rendition per performance, at tempo 1.0.
- Passages: `scorelink.data.performance` aligns the annotated bars with the kern's measures by
  their notes; each run of measures on one system is a passage (repeats as performed). Every
  passage's performed notes are compared with its measures' written notes (`note_check`).
- Splits by sonata (all movements of a sonata in one split), from the seed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scorelink import constants as C
from scorelink.data import store
from scorelink.data.sources import ScoreSource
from scorelink.errors import ScoreError

ASAP = Path("asap") / "Beethoven" / "Piano_Sonatas"
NOTE_CHECK_PASS = 0.8  # F-measure of performed vs written pitches a passage must reach
_FOLDER = re.compile(r"(\d+)-(\d+)(?:_(.+))?$")
# Scans holding more than their movement (the corpus's README): the systems of each movement
# on it, in order; the first is the kern's.
SHARED_SCANS = {"sonata30-1.pdf": (26, 25)}


def systems_on_scan(pdf_name: str, kern_systems: int) -> int:
    """How many systems the scan must show for its movement's kern: the kern's, or, for a scan
    listed in SHARED_SCANS with this movement first, those of every movement on it."""
    parts = SHARED_SCANS.get(pdf_name, (kern_systems,))
    return sum(parts) if parts[0] == kern_systems else kern_systems


def beethoven_sources(root: str | Path) -> list[ScoreSource]:
    """One source per kern file of the corpus folder, in name order."""
    root = Path(root)
    kern = sorted((root / "kern").glob("*.krn"))
    if not kern:
        raise ScoreError(f"no kern files under {root / 'kern'} (is this the beethoven folder?)")
    return [ScoreSource(k.stem, str(k), "beethoven") for k in kern]


def sonata_of(piece: str) -> str:
    """'sonata10-1' -> 'sonata10': the unit of the splits."""
    return piece.rsplit("-", 1)[0]


@dataclass(frozen=True)
class Performance:
    name: str  # unique within the movement: performer, plus ~variant (e.g. ~no_repeat)
    midi: Path
    annotations: Path


def performances(root: Path, piece: str) -> list[Performance]:
    """The nASAP performances of a movement ('sonata10-1' <- folders '10-1', '10-1_no_repeat')."""
    match = re.fullmatch(r"sonata(\d+)-(\d+)", piece)
    if match is None:
        return []
    sonata, movement = int(match.group(1)), int(match.group(2))
    found = []
    for folder in sorted((root / ASAP).glob("*")):
        m = _FOLDER.match(folder.name)
        if m is None or (int(m.group(1)), int(m.group(2))) != (sonata, movement):
            continue
        suffix = f"~{m.group(3)}" if m.group(3) else ""
        for midi in sorted(folder.glob("*.mid")):
            found.append(Performance(midi.stem + suffix, midi,
                                     midi.with_name(midi.stem + "_annotations.txt")))
    return found


def soundfont_for(piece: str, performance: str, split: str, *, seed: int,
                  train_soundfonts: tuple[str, ...], valid_soundfont: str,
                  test_soundfont: str) -> str:
    """The piano a performance is rendered with: held out for valid and test; for train one of
    the training pianos, from the seed (about as many performances each)."""
    if split == "valid":
        return valid_soundfont
    if split == "test":
        return test_soundfont
    key = hashlib.sha256(f"{seed}:{piece}:{performance}".encode()).hexdigest()
    return train_soundfonts[int(key[:8], 16) % len(train_soundfonts)]


def scan_systems(pdf: Path, kern_systems: int, staves: int = 2):
    """(pages, [(page, SystemBox)], strips (n, STRIP_HEIGHT, PAGE_WIDTH)) of a scan, checked
    against the kern's number of systems (ScoreError naming both counts and the per-page ones).
    staves: per system, from the kern (its **kern spines)."""
    from scorelink.search.pages import load_pages, system_strips
    from scorelink.search.staves import find_systems

    pages = load_pages(pdf)
    found, strips = [], []
    for p, page in enumerate(pages):
        boxes = find_systems(page, staves_per_system=staves)
        found.extend((p, box) for box in boxes)
        if boxes:
            strips.append(system_strips(page, boxes))
    if len(found) != systems_on_scan(pdf.name, kern_systems):
        per_page = " ".join(str(sum(q == p for q, _ in found)) for p in range(len(pages)))
        raise ScoreError(f"{pdf.name}: {len(found)} systems found on the scan, the kern has "
                         f"{kern_systems} (per page: {per_page})")
    if len(found) > kern_systems:  # the next movement's systems follow on the same pages
        found = found[:kern_systems]
        pages = pages[: found[-1][0] + 1]
    return pages, found, np.concatenate(strips)[:kern_systems]


def build_movement(source: ScoreSource, split: str, root: Path, *, seed: int,
                   train_soundfonts: tuple[str, ...], valid_soundfont: str,
                   test_soundfont: str, keep_audio: str = "test",
                   stage: list[str] | None = None) -> tuple[int, list[dict]]:
    """Build one movement into root/pieces/<piece>; returns (records, failed performances).

    A performance that cannot be read or aligned is left out with its reason; a movement
    without any usable performance fails (ScoreError)."""
    from PIL import Image

    from scorelink.data.humdrum import read_kern
    from scorelink.data.passages import frame_of
    from scorelink.data.performance import (
        align_bars,
        note_check,
        read_downbeats,
        read_midi,
        system_spans,
    )
    from scorelink.data.spectrogram import spectrogram
    from scorelink.data.synthesize import fresh_synthesizers, render
    from scorelink.search.pages import across_scale, strip_scale

    stage = stage if stage is not None else ["read"]
    corpus = Path(source.origin).parent.parent
    final = store.piece_dir(root, source.piece)
    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)

    stage[0] = "read"
    kern = read_kern(source.origin)
    pdf = corpus / "pdf" / f"{source.piece}.pdf"
    stage[0] = "scan"
    pages, systems, strips = scan_systems(pdf, kern.systems, kern.staves)
    perfs = performances(corpus, source.piece)
    if not perfs:
        raise ScoreError(f"no performances of {source.piece} under {corpus / ASAP}")
    (tmp / "pages").mkdir(parents=True)
    for i, page in enumerate(pages):
        Image.fromarray(page).save(tmp / "pages" / f"page-{i + 1:03d}.png")
    np.save(tmp / "strips.npy", strips)
    scale = {p: strip_scale([b for q, b in systems if q == p]) for p in range(len(pages))}
    on_page = [sum(1 for q, _ in systems[:k] if q == p) for k, (p, _) in enumerate(systems)]

    records, failed, timelines = [], [], []
    checks: list[float] = []
    fresh_synthesizers()  # the movement's audio depends on its own renditions only
    for perf_info in perfs:
        stage[0] = "align"
        try:
            perf = read_midi(perf_info.midi)
            downbeats = read_downbeats(perf_info.annotations)
            alignment = align_bars(kern, perf, downbeats)
            spans = system_spans(kern, alignment)
        except ScoreError as exc:
            failed.append({"piece": source.piece, "performance": perf_info.name,
                           "origin": str(perf_info.midi), "stage": "align",
                           "reason": f"ScoreError: {exc}"})
            continue
        stage[0] = "synthesize"
        soundfont = soundfont_for(source.piece, perf_info.name, split, seed=seed,
                                  train_soundfonts=train_soundfonts,
                                  valid_soundfont=valid_soundfont, test_soundfont=test_soundfont)
        rendition = f"{perf_info.name}@{soundfont}"
        audio = render(perf.onset, perf.offset, perf.pitch, soundfont=soundfont,
                       velocity=perf.velocity, controls=perf.controls)
        spec = spectrogram(audio)
        stage[0] = "write"
        np.save(tmp / f"{rendition}.spec.npy", spec.astype(np.float16))
        if keep_audio == "all" or (keep_audio == "test" and split == "test"):
            import soundfile

            soundfile.write(tmp / f"{rendition}.flac", audio, C.SAMPLE_RATE)
        starts = np.array([s.start for s in spans])
        passage_of = np.clip(np.searchsorted(starts, perf.onset, side="right") - 1, 0, None)
        table = np.zeros(len(perf.onset), dtype=store.NOTE_DTYPE)
        table["onset"], table["offset"] = perf.onset, perf.offset
        table["onset_frame"] = frame_of(perf.onset)
        table["pitch"] = perf.pitch
        table["passage"] = passage_of
        timeline = []
        for k, span in enumerate(spans):
            page, box = systems[span.system]
            rows = np.flatnonzero(passage_of == k)
            first, stop = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 0)
            # No noteheads are known on a scan: x runs across the strip with the time.
            across = across_scale(box, scale[page])
            left, right = box.left * across, box.right * across
            if right > C.PAGE_WIDTH:  # shifted to fit, as system_strips does
                shift = max(0.0, min(left - 20, right + 20 - C.PAGE_WIDTH))
                left, right = left - shift, right - shift
            frac = (perf.onset[first:stop] - span.start) / max(span.end - span.start, 1e-3)
            table["x"][first:stop] = left + np.clip(frac, 0, 1) * (right - left)
            table["y"][first:stop] = C.STRIP_HEIGHT / 2
            score = note_check(kern, perf, span)
            checks.append(score)
            start_frame = int(frame_of(span.start))
            end_frame = max(int(frame_of(span.end)), start_frame + 1)
            timeline.append([span.system, round(span.start, 4), round(span.end, 4)])
            records.append({
                "passage_id": f"{source.piece}/{rendition}/{k:03d}",
                "piece": source.piece,
                "split": split,
                "rendition": rendition,
                "soundfont": soundfont,
                "tempo": 1.0,
                "performance": perf_info.name,
                "page": page,
                "system": span.system,
                "system_on_page": on_page[span.system],
                "occurrence": span.occurrence,
                "box": [round(v, 1) for v in (box.top, box.left, box.bottom, box.right)],
                "strip": span.system,
                "strip_top": int(round(box.centre - C.STRIP_HEIGHT / 2 / scale[page])),
                "start": round(span.start, 4),
                "end": round(span.end, 4),
                "start_frame": start_frame,
                "end_frame": end_frame,
                "notes": [first, stop],
                "tall": bool((box.bottom - box.top) * scale[page] > C.STRIP_HEIGHT),
                "note_check": round(score, 3),
            })
        np.save(tmp / f"{rendition}.notes.npy", table)
        timelines.append({"performance": perf_info.name, "rendition": rendition,
                          "midi": str(perf_info.midi), "scheme": alignment.scheme,
                          "measures_played": len(alignment.order),
                          "alignment_cost": round(alignment.cost, 4),
                          "timeline": timeline})
    if not timelines:
        raise ScoreError(f"no performance of {source.piece} could be aligned: "
                         + "; ".join(f["reason"] for f in failed))
    stage[0] = "write"
    info = {
        "piece": source.piece,
        "origin": source.origin,
        "scan": str(pdf),
        "sonata": sonata_of(source.piece),
        "split": split,
        "pages": len(pages),
        "systems": [{"page": p, "index_on_page": on_page[k], "scale": scale[p], **asdict(b)}
                    for k, (p, b) in enumerate(systems)],
        "measures": len(kern.measures),
        "notes": sum(len(m.notes) for m in kern.measures),
        "renditions": [t["rendition"] for t in timelines],
        "performances": timelines,
        "note_check": {"passages": len(checks),
                       "passing": int(sum(c >= NOTE_CHECK_PASS for c in checks)),
                       "threshold": NOTE_CHECK_PASS},
    }
    store.write_jsonl(tmp / "manifest.jsonl", records)
    store.write_json(tmp / "piece.json", info)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return len(records), failed
