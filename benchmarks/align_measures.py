"""Benchmark: measure times from `scorelink align` against the truth of synthesized renditions.

    python benchmarks/align_measures.py --data data/chorales [--pieces 12] [--checkpoint CKPT]
                                        [--cache DIR]

The first test pieces of a dataset built from Verovio-engraved scores (the built-in chorales;
only its dataset.json is read: the split and where each piece comes from) are engraved as
`align --score` engraves them and synthesized as the dataset does (the held-out timbre, tempo
ratios 0.5 to 2); each rendition is aligned as `align` does it: "notes", the notes decoder
(`search/follow.py`, systems and measures in one path); "image" (`--image-only`), systems by the
model's decoder, then measures by DTW of the notes (`search/measures.py`). Truth: the
measures' playing times at the score's tempo (Verovio's timemap, repeats unfolded) divided by
the tempo ratio. A measure played is found within x s when a predicted start of the same measure
is that close. Also with the true system segments in place of the image decoder's (the
refinement alone). Prints a Markdown block.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np
from _machine import machine  # benchmarks/_machine.py

from scorelink.data.store import with_legacy_settings
from scorelink.search import align, follow, measures
from scorelink.search.embed import Embedder

TEMPI = (0.5, 0.66, 1.0, 1.33, 2.0)  # as the dataset's test renditions
WITHIN = (0.5, 1.0, 2.0)
CLIP = 30.0  # errors (and missing measures) count at most this much in the mean


def _engraved(meta: dict, piece: str, cache: Path | None) -> list[dict]:
    """The piece's systems as `collect.score_systems` gives them for a score file."""
    path = cache / f"{piece}.pkl" if cache else None
    if path is not None and path.exists():
        return pickle.loads(path.read_bytes())
    from scorelink.data.engrave import engrave
    from scorelink.data.passages import strip
    from scorelink.search.collect import system_measures, system_notes

    data, zipped = _sources(meta.get("config", {}).get("source", ""))[piece].load()
    eng = engrave(data, zipped=zipped)
    notes, played = system_notes(eng), system_measures(eng)
    on_page: dict[int, int] = {}
    systems = []
    for k, s in enumerate(eng.systems):
        on_page[s.page] = on_page.get(s.page, -1) + 1
        systems.append({"page": s.page, "on_page": on_page[s.page],
                        "strip": strip(eng.pages[s.page], s), "notes": notes[k],
                        "measures": played[k]})
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(systems))
    return systems


@lru_cache(maxsize=1)
def _sources(source: str) -> dict:
    from scorelink.data.sources import corpus_sources, folder_sources

    found = (corpus_sources(source.removeprefix("corpus:")) if source.startswith("corpus:")
             else folder_sources(source))
    return {s.piece: s for s in found}


def _rendition(systems: list[dict], tempo: float, soundfont: str, piece: str,
               cache: Path | None) -> np.ndarray:
    """(N_BINS, T) spectrogram of the piece synthesized at a tempo ratio, as a build does."""
    path = cache / f"{piece}@{tempo:.2f}.npy" if cache else None
    if path is not None and path.exists():
        return np.load(path).astype(np.float32)
    from scorelink.data.spectrogram import spectrogram
    from scorelink.data.synthesize import render

    notes = np.concatenate([s["notes"] for s in systems])
    notes = notes[np.argsort(notes[:, 0], kind="stable")]
    spec = spectrogram(render(notes[:, 0], notes[:, 1], notes[:, 2].astype(np.int64),
                              soundfont=soundfont, tempo=tempo))
    if path is not None:
        np.save(path, spec.astype(np.float16))
    return spec


def _truth_segments(systems: list[dict], tempo: float) -> list[align.Segment]:
    """The true system segments (blocks of measures on one system) at a tempo ratio."""
    out = []
    for b in measures.blocks(systems):
        out.append(align.Segment(b.system, b.start / tempo, b.end / tempo, 1.0, 1.0))
    return out


def _errors(found: list[measures.MeasureSegment], systems: list[dict],
            tempo: float) -> list[float]:
    """Per measure played (truth), the distance to the nearest predicted start of the same
    measure (CLIP where none)."""
    by_measure: dict[int, list[float]] = {}
    for m in found:
        by_measure.setdefault(m.measure, []).append(m.start)
    errors = []
    for s in systems:
        for m in s["measures"]:
            starts = np.array(by_measure.get(m["index"], []))
            t = m["start"] / tempo
            errors.append(float(np.abs(starts - t).min()) if len(starts) else CLIP)
    return [min(e, CLIP) for e in errors]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--pieces", type=int, default=12, help="the first N pieces of the split")
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--cache", help="keep the engraved pieces and renditions here")
    args = p.parse_args()

    meta = json.loads((Path(args.data) / "dataset.json").read_text())
    soundfont = with_legacy_settings(meta.get("config", {}))["test_soundfont"]
    embedder = Embedder.load(args.checkpoint)
    cache = Path(args.cache) if args.cache else None
    pieces = sorted(p for p, split in meta["splits"].items() if split == args.split)
    pieces = pieces[: args.pieces]
    ways = ("notes", "image", "true systems")
    errors = {(t, way): [] for t in TEMPI for way in ways}
    seconds = []
    for piece in pieces:
        systems = _engraved(meta, piece, cache)
        sheet, *halves = embedder.sheet_with_halves(np.stack([s["strip"] for s in systems]))
        for tempo in TEMPI:
            spec = _rendition(systems, tempo, soundfont, piece, cache)
            t0 = time.perf_counter()
            found = follow.align_notes(spec, systems)  # as `align --score` runs it
            seconds.append(time.perf_counter() - t0)
            errors[tempo, "notes"] += _errors(found.measures, systems, tempo)
            found = align.align(spec, sheet, embedder, halves=tuple(halves))  # as `align
            # --image-only` runs it
            found.measures = measures.refine(spec, found, systems)
            errors[tempo, "image"] += _errors(found.measures, systems, tempo)
            truth = align.Alignment(_truth_segments(systems, tempo), np.zeros((1, 1)))
            errors[tempo, "true systems"] += _errors(measures.refine(spec, truth, systems),
                                                     systems, tempo)
    tempi = TEMPI

    print(f"### Measure times from `align` ({date.today()})\n")
    print(f"- machine: {machine()}; model {embedder.name}")
    print(f"- `python benchmarks/align_measures.py --data {args.data} --split {args.split} "
          f"--pieces {args.pieces}" + (f" --checkpoint {args.checkpoint}"
                                       if args.checkpoint else "") + "`")
    n = len(errors[tempi[0], "notes"])
    print(f"- {len(pieces)} {args.split} pieces ({soundfont}), {n} measures played per tempo "
          f"ratio; align with the notes (systems and measures) p50 {np.median(seconds):.1f} s a "
          "rendition (wall-clock)\n")
    head = " | ".join(f"within {w:g} s" for w in WITHIN)
    print(f"| tempo | systems from | {head} | mean abs. error (clipped at {CLIP:g} s) |")
    print("|---|---|" + "---|" * (len(WITHIN) + 1))
    for way in ways:
        for tempo in [*tempi, None]:
            e = np.array(sum((errors[t, way] for t in tempi), []) if tempo is None
                         else errors[tempo, way])
            cells = " | ".join(f"{100 * np.mean(e <= w):.1f} %" for w in WITHIN)
            print(f"| {'all' if tempo is None else f'{tempo:g}'} | {way} | {cells} | "
                  f"{e.mean():.2f} s |")


if __name__ == "__main__":
    main()
