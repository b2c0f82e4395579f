"""Benchmark: system onsets from `scorelink align` against the truth of a dataset's renditions.

    python benchmarks/align_quality.py --data data/chorales [--split test] [--pieces 24]
        [--methods notes,image,dtw] [--rubato] [--jumps] [--ten-minutes] [--cache DIR]
        [--checkpoint CKPT]

Methods, each on the same recordings and systems:

- `notes`: the notes decoder (`search/follow.py`), what `align` runs for a score with notes;
- `image`: the passage model's embeddings of the system images (`search/align.py`), what
  `align` runs for scans and page images and with `--image-only`;
- `image+read`: `image` with the notes the note reader reads off the systems' strips added to
  the similarities (`align.read_similarities`), then each system's start sharpened by them
  (`reading.refine_starts`): what `align` runs for scans and page images;
- `image+starts`: `image`, then the starts sharpened by the read notes (what `align` ran for
  scans and page images before 2026-12-07);
- `read`: the read notes alone through the notes decoder (exploratory);
- `dtw`: the usual baseline on a symbolic score: plain DTW of the recording's chroma against
  the whole score's chroma in playing order (repeats as written), steps (1, 1), (1, 0), (0, 1)
  from the first frames to the last (librosa.sequence.dtw's defaults), on the same chroma
  features as `notes`.

Datasets: a built dataset (`scorelink data build`): its split's pieces, the systems' strips,
and as the score's notes the tempo-1.0 rendition of the held-out timbre (the score at its own
tempo); each rendition at every tempo ratio is aligned. `--rubato` adds a rendition per piece
whose tempo drifts smoothly (0.6 to 1.6 times, over seconds), `--jumps` one that plays the
systems in another order than written (the first two systems again after the second, one
system skipped, the first again at the end); both synthesized with the held-out timbre
(`--cache` keeps them). The real-scan corpus (`--corpus beethoven` builds): the scan's systems,
the kern's notes per printed system (repeats as the kern's expansion list writes them, its
*MM tempo markings, else 120 quarters a minute), each performance's real timing and its
timeline as truth.

A true system onset (a system's pass begins at t) is found within x s when a predicted segment
of that system starts that close. Prints a Markdown block; with several methods, each one's
difference from the first, paired on the same onsets, with a 95 % interval (bootstrap by piece).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import zlib
from datetime import date
from pathlib import Path

import numpy as np
from _machine import machine  # benchmarks/_machine.py

from scorelink.evaluate.metrics import paired_difference
from scorelink.search import align, follow
from scorelink.search.notes import FEATURE_FPS, audio_chroma

TEMPI = (0.5, 0.66, 1.0, 1.33, 2.0)
WITHIN = (0.5, 1.0, 2.0)
CLIP = 30.0  # an error (or a system pass never found) counts at most this much in the mean
TEMPO = 120.0  # kern: quarters a minute where the file marks none


# --- pieces -----------------------------------------------------------------------------------


def dataset_pieces(root: Path, split: str, count: int):
    """Yield (piece, systems, renditions) of a built dataset: systems as `collect.score_systems`
    gives them (strip, notes, passes) from the tempo-1 test rendition; renditions
    [(label, spec (N_BINS, T), truth [(system, start s)])] at every tempo ratio."""
    from scorelink.data.store import Dataset
    from scorelink.evaluate.retrieval import eval_records
    from scorelink.search.collect import _dataset_notes

    ds = Dataset(root)
    records = eval_records(ds, split=split, tempo=1.0)
    pieces = sorted({r["piece"] for r in records})[:count]
    for piece in pieces:
        mine = [r for r in records if r["piece"] == piece]
        mine = [r for r in mine if r["rendition"] == mine[0]["rendition"]]
        notes = _dataset_notes(ds, mine)
        order = sorted({(r["page"], r["system"]) for r in mine})
        systems = []
        for page, k in order:
            first = next(r for r in mine if r["system"] == k)
            systems.append({"page": page, "system_id": k, "strip": ds.strip(first),
                            "notes": notes[(piece, k)],
                            "passes": [(r["start"], r["end"]) for r in mine
                                       if r["system"] == k]})
        place = {s["system_id"]: i for i, s in enumerate(systems)}
        renditions = []
        for tempo in TEMPI:
            at = [r for r in ds.records(piece=piece, split=split, tempo=tempo,
                                        soundfont=mine[0]["soundfont"])]
            if not at:
                continue
            at = [r for r in at if r["rendition"] == at[0]["rendition"]]
            renditions.append((f"{tempo:g}", ds.rendition_spec(at[0]).astype(np.float32),
                               [(place[r["system"]], r["start"]) for r in at]))
        yield piece, systems, renditions, mine


def beethoven_pieces(root: Path, split: str, count: int):
    """Yield (piece, systems, renditions) of the real-scan corpus: systems from the scan (strips)
    with the kern's notes; every performance of the split, truth its timeline."""
    from scorelink.data.humdrum import read_kern
    from scorelink.data.store import read_jsonl

    meta = json.loads((root / "dataset.json").read_text())
    pieces = sorted(p for p, s in meta["splits"].items() if s == split)
    for piece in pieces[:count]:
        folder = root / "pieces" / piece
        info = json.loads((folder / "piece.json").read_text())
        if not info.get("performances"):
            continue
        kern = read_kern(info["origin"])
        tempo = _kern_tempi(info["origin"], kern)
        strips = np.load(folder / "strips.npy")
        order = kern.expand(kern.expansions.get(""))
        notes: list[list] = [[] for _ in range(kern.systems)]
        measures: list[list] = [[] for _ in range(kern.systems)]
        t = 0.0
        for k in order:
            m = kern.measures[k]
            quarter = 60.0 / tempo[k]
            for note in m.notes:
                onset = t + float(note.onset) * quarter
                length = max(float(note.duration) * quarter, 0.05)
                notes[m.system].append((onset, onset + length, note.pitch))
            length = float(m.duration) * quarter
            measures[m.system].append({"index": k, "label": m.label or "0", "start": t,
                                       "end": t + length})
            t += length
        systems = [{"page": s["page"], "strip": strips[k],
                    "notes": np.array(notes[k], np.float64).reshape(-1, 3),
                    "measures": measures[k]} for k, s in enumerate(info["systems"])]
        renditions = []
        for perf in info["performances"]:
            spec = np.load(folder / f"{perf['rendition']}.spec.npy").astype(np.float32)
            renditions.append(("1", spec, [(s, a) for s, a, _ in perf["timeline"]]))
            MEASURE_TRUTH[id(spec)] = _measure_truth(kern, Path(perf["midi"]))
        yield piece, systems, renditions, read_jsonl(folder / "manifest.jsonl")


MEASURE_ERRORS: list[float] = []  # the notes path's, where MEASURE_TRUTH knows the measures
MEASURE_TRUTH: dict[int, list[tuple[int, float]] | None] = {}  # id(spec) -> (measure, start s)


def _measure_truth(kern, midi: Path) -> list[tuple[int, float]] | None:
    """(kern measure index, start s) of every measure a performance plays: its annotated
    downbeats paired with the kern's measures by their notes, as the corpus build does."""
    from scorelink.data.performance import align_bars, read_downbeats, read_midi
    from scorelink.errors import ScoreError

    try:
        found = align_bars(kern, read_midi(midi), read_downbeats(
            midi.with_name(midi.stem + "_annotations.txt")))
    except (ScoreError, OSError):
        return None
    return [(int(k), float(t)) for k, t in zip(found.order, found.starts, strict=True)]


def _kern_tempi(path: str, kern) -> list[float]:
    """Quarters a minute in each measure (file order): the kern's last *MM marking at or before
    it, TEMPO before any (as an engraver's timemap reads the score's tempo)."""
    pickup = not kern.measures[0].label
    measure, tempo, out = 0 if pickup else -1, TEMPO, {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("="):
            out.setdefault(measure, tempo)
            measure += 1
        elif line.startswith("*MM"):
            try:
                tempo = float(line.split("\t")[0][3:])
            except ValueError:
                pass
            if measure >= 0:
                out[measure] = tempo
    return [out.get(k, tempo) for k in range(len(kern.measures))]


# --- renditions made here -----------------------------------------------------------------------


def _render(notes: np.ndarray, soundfont: str, cache: Path | None, name: str) -> np.ndarray:
    path = cache / f"{name}.npy" if cache else None
    if path is not None and path.exists():
        return np.load(path).astype(np.float32)
    from scorelink.data.spectrogram import spectrogram
    from scorelink.data.synthesize import render

    spec = spectrogram(render(notes[:, 0], notes[:, 1], notes[:, 2].astype(np.int64),
                              soundfont=soundfont))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, spec.astype(np.float16))
    return spec.astype(np.float32)


def _all_notes(systems: list[dict]) -> np.ndarray:
    notes = np.concatenate([s["notes"] for s in systems])
    return notes[np.argsort(notes[:, 0], kind="stable")]


def rubato(systems, passes, piece: str, soundfont: str, cache: Path | None):
    """The piece with a smoothly drifting tempo: local time stretch exp(0.5 sin(...)) from a
    seeded phase; truth: the passes' starts warped alike."""
    rng = np.random.default_rng(zlib.crc32(piece.encode()))
    period, phase = rng.uniform(8, 16), rng.uniform(0, 2 * np.pi)
    grid = np.linspace(0, 2000, 20001)
    stretch = np.exp(0.48 * np.sin(2 * np.pi * grid / period + phase))  # 0.62 ... 1.62
    warped = np.r_[0, np.cumsum((stretch[1:] + stretch[:-1]) / 2 * np.diff(grid))]

    def warp(x):
        return np.interp(x, grid, warped)

    notes = _all_notes(systems)
    notes = np.stack([warp(notes[:, 0]), warp(notes[:, 1]), notes[:, 2]], axis=1)
    spec = _render(notes, soundfont, cache, f"{piece}@rubato")
    return spec, [(k, float(warp(a))) for k, a in passes]


def jumps(systems, passes, piece: str, soundfont: str, cache: Path | None):
    """The piece's passes played in another order: passes 0 1 | 0 1 again | pass 2 skipped |
    the rest | pass 0 again at the end (fewer than four passes: all, then the first again)."""
    spans = sorted((a, b, k) for k, s in enumerate(systems) for a, b in s["passes"])
    order = list(range(len(spans)))
    order = ([0, 1, 0, 1, *order[3:], 0] if len(order) >= 4 else [*order, 0])
    notes_by_pass = []
    for a, b, k in spans:
        n = systems[k]["notes"]
        notes_by_pass.append(n[(n[:, 0] >= a - 1e-6) & (n[:, 0] < b - 1e-6)] - [a, a, 0])
    out, truth, t = [], [], 0.0
    for p in order:
        a, b, k = spans[p]
        out.append(notes_by_pass[p] + [t, t, 0])
        truth.append((k, t))
        t += b - a
    notes = np.concatenate(out)
    spec = _render(notes[np.argsort(notes[:, 0], kind="stable")], soundfont, cache,
                   f"{piece}@jumps")
    return spec, truth


# --- methods ------------------------------------------------------------------------------------


def plain_dtw(spec: np.ndarray, systems: list[dict]) -> list[tuple[int, float]]:
    """(system, start s) of every pass, by plain DTW of the whole recording against the whole
    score: steps (1, 1), (1, 0), (0, 1), weights 1, from corner to corner."""
    line = follow.Timeline(systems)
    query = audio_chroma(spec)
    chroma, unit, _, _ = line.frames(max(follow.sounding_seconds(spec), 1.0)
                                     / max(line.seconds, 1.0))
    n, m = query.shape[1], chroma.shape[1]
    acc = np.empty((n, m), np.float32)
    code = np.zeros((n, m), np.int8)  # 0 diagonal, 1 from above (recording), 2 from left
    for i in range(n):
        d = 1.0 - query[:, i] @ chroma
        if i == 0:
            acc[0] = np.cumsum(d)
            code[0, 1:] = 2
            continue
        diag = np.r_[np.inf, acc[i - 1, :-1]]
        up = acc[i - 1]
        base = np.minimum(diag, up)  # then the row's own left moves: a running minimum
        code_base = np.where(diag <= up, 0, 1)
        c = np.cumsum(d)
        run = np.minimum.accumulate(base + d - c)  # min over k <= j of base[k] + d[k] - c[k]
        acc[i] = run + c
        code[i] = np.where(run == base + d - c, code_base, 2)
    i, j = n - 1, m - 1
    frame = np.zeros(n, np.int64)
    while i >= 0:
        frame[i] = max(frame[i], j)
        if i == 0 and j == 0:
            break
        c = code[i, j]
        if c == 0:
            i, j = i - 1, j - 1
        elif c == 1:
            i -= 1
        else:
            j -= 1
    u = unit[frame]
    out, prev = [], -1
    for i, k in enumerate(u):
        if k != prev and k >= 0 and line.new_pass[k]:
            out.append((line.units[k][2], i / FEATURE_FPS))
        prev = k
    return out


READ: dict[int, list[dict]] = {}  # id(systems) -> the systems as read notes (method `read`)
READER: list[str | None] = [None]  # --reader


def read_systems(systems: list[dict]) -> list[dict]:
    """The systems as a scan gives them to `align`: the noteheads the note reader reads off
    their strips, timed by x (`search.reading.timeline`), each system played once."""
    if id(systems) not in READ:
        from scorelink.search.reading import read_systems as read

        READ[id(systems)] = [{"notes": n, "passes": [(n[0, 0], n[:, 1].max())] if len(n) else []}
                             for n in read([s["strip"] for s in systems], READER[0])]
    return READ[id(systems)]


def run_method(method: str, spec, systems, sheet, embedder,
               **options) -> list[tuple[int, float]]:
    if method in ("image+read", "image+starts"):
        from scorelink.search.reading import refine_starts

        read = [s["notes"] for s in read_systems(systems)]
        found = align.align(spec, sheet[0], embedder, halves=sheet[1:],
                            read=read if method == "image+read" else None)
        return [(s.system, s.start) for s in refine_starts(spec, found.segments, read)
                if s.system >= 0]
    if method == "read":
        found = follow.align_notes(spec, read_systems(systems), **options)
        return [(s.system, s.start) for s in found.systems]
    if method == "notes":
        found = follow.align_notes(spec, systems, **options)
        truth = MEASURE_TRUTH.get(id(spec))
        if truth:  # real performances: the measures too
            MEASURE_ERRORS.extend(errors([(m.measure, m.start) for m in found.measures], truth))
        return [(s.system, s.start) for s in found.systems]
    if method == "image":
        found = align.align(spec, sheet[0], embedder, halves=sheet[1:])
        return [(s.system, s.start) for s in found.systems]
    return plain_dtw(spec, systems)


def errors(found: list[tuple[int, float]], truth: list[tuple[int, float]]) -> list[float]:
    by_system: dict[int, list[float]] = {}
    for s, t in found:
        by_system.setdefault(s, []).append(t)
    return [min(float(np.abs(np.array(by_system[s]) - t).min()), CLIP) if s in by_system
            else CLIP for s, t in truth]


def paired(a: np.ndarray, b: np.ndarray, pieces: list[str]) -> str:
    """The difference of two methods' hit rates on the same onsets, in points, with a 95 %
    interval (bootstrap over pieces, an onset's errors depending on its piece's others): the
    project's paired bootstrap, a hit counted as rank 1 and a miss as rank 2, so R@1 is the
    hit rate."""
    d = paired_difference(np.where(a, 1, 2), np.where(b, 1, 2), pieces)["R@1"]
    return f"{d['diff']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]"


def ten_minutes(pieces: list[tuple[list[dict], np.ndarray, list]], methods, embedder):
    """Pieces' tempo-1 renditions one after another until 600 s, as one score and one
    recording: wall-clock and CPU time of each method, and its onsets within 1 s."""
    systems, specs, truth, t = [], [], [], 0.0
    for piece_systems, spec, piece_truth in pieces:
        base = len(systems)
        for s in piece_systems:
            systems.append({**s, "notes": s["notes"] + [t, t, 0],
                            "passes": [(a + t, b + t) for a, b in s["passes"]]})
        truth += [(base + k, a + t) for k, a in piece_truth]
        specs.append(spec)
        t += spec.shape[1] / 20
        if t >= 600:
            break
    spec = np.concatenate(specs, axis=1)
    sheet = (embedder.sheet_with_halves(np.stack([s["strip"] for s in systems]))  # and halves
             if any(m.startswith("image") for m in methods) else None)
    out = []
    for method in methods:
        w, c = time.perf_counter(), time.process_time()
        found = run_method(method, spec, systems, sheet, embedder)
        w, c = time.perf_counter() - w, time.process_time() - c
        e = np.array(errors(found, truth))
        out.append(f"  `{method}` {w:.1f} s wall-clock ({c:.1f} s CPU), "
                   f"{100 * np.mean(e <= 1):.1f} % of {len(e)} onsets within 1 s")
    return t, len(systems), out


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--pieces", type=int, default=24, help="the first N pieces of the split")
    p.add_argument("--methods", default="notes,image,dtw")
    p.add_argument("--rubato", action="store_true")
    p.add_argument("--jumps", action="store_true")
    p.add_argument("--ten-minutes", action="store_true")
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--cache", help="keep the renditions made here (--rubato, --jumps)")
    p.add_argument("--renditions", type=int, help="at most this many renditions a piece and "
                   "tempo (the real-scan corpus: performances a piece)")
    p.add_argument("--reader", help="method read: this note reader (default: the shipped one)")
    p.add_argument("--jump-penalty", type=float, default=follow.JUMP_PENALTY,
                   help="the notes decoder's (default: the shipped one)")
    args = p.parse_args()
    READER[0] = args.reader

    root = Path(args.data)
    meta = json.loads((root / "dataset.json").read_text())
    soundfont = meta["config"].get("test_soundfont", "musescore-grand")
    real = meta["config"].get("source", "") == "corpus:beethoven"
    methods = args.methods.split(",")
    embedder = None
    if any(m.startswith("image") for m in methods):
        from scorelink.search.embed import Embedder

        embedder = Embedder.load(args.checkpoint)
    cache = Path(args.cache) if args.cache else None
    pieces = (beethoven_pieces(root, args.split, args.pieces) if real
              else dataset_pieces(root, args.split, args.pieces))
    errs: dict[tuple[str, str], list[float]] = {}
    groups: dict[str, list[str]] = {}  # rendition set -> the piece of each onset
    found_n: dict[tuple[str, str], int] = {}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    onsets: dict[str, int] = {}
    kept = []
    n_pieces = 0
    for piece, systems, renditions, _ in pieces:
        n_pieces += 1
        sheet = (embedder.sheet_with_halves(np.stack([s["strip"] for s in systems]))
                 if embedder is not None else None)  # whole systems and their halves
        if not real:
            passes = [(k, a) for k, s in enumerate(systems) for a, _ in s["passes"]]
            if args.rubato:
                renditions.append(("rubato", *rubato(systems, passes, piece, soundfont, cache)))
            if args.jumps:
                renditions.append(("jumps", *jumps(systems, passes, piece, soundfont, cache)))
            one = next(r for r in renditions if r[0] == "1")
            kept.append((systems, one[1], one[2]))
        if args.renditions:
            seen: dict[str, int] = {}
            renditions = [r for r in renditions
                          if seen.setdefault(r[0], 0) < args.renditions
                          and not seen.update({r[0]: seen[r[0]] + 1})]
        for label, spec, truth in renditions:
            onsets[label] = onsets.get(label, 0) + len(truth)
            groups.setdefault(label, []).extend([piece] * len(truth))
            for method in methods:
                t0 = time.perf_counter()
                try:
                    found = run_method(method, spec, systems, sheet, embedder,
                                       **({"jump_penalty": args.jump_penalty}
                                          if method in ("notes", "read") else {}))
                except align.AlignError as exc:
                    print(f"<!-- {piece} {label} {method}: {exc} -->", flush=True)
                    found = []
                seconds[method].append(time.perf_counter() - t0)
                errs.setdefault((label, method), []).extend(errors(found, truth))
                found_n[label, method] = found_n.get((label, method), 0) + len(found)

    labels = list(onsets)
    print(f"### System onsets from `align` ({date.today()})\n")
    model = f"; model {embedder.name}" if embedder is not None else ""
    print(f"- machine: {machine()}{model}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    flags = "".join(f" --{f}" for f in ("rubato", "jumps") if getattr(args, f))
    flags += " --ten-minutes" if args.ten_minutes else ""
    flags += f" --renditions {args.renditions}" if args.renditions else ""
    if args.jump_penalty != follow.JUMP_PENALTY:
        flags += f" --jump-penalty {args.jump_penalty:g}"
    print(f"- `python benchmarks/align_quality.py --data {args.data} --split {args.split} "
          f"--pieces {args.pieces} --methods {args.methods}{flags}`")
    p50 = ", ".join(f"{m} {np.median(seconds[m]):.2f} s" for m in methods if seconds[m])
    print(f"- {n_pieces} {args.split} pieces ({'real performances' if real else soundfont}), "
          f"system onsets per rendition set: " + ", ".join(f"{k} {v}" for k, v in onsets.items())
          + f"; wall-clock p50 a rendition: {p50}\n")
    head = " | ".join(f"within {w:g} s" for w in WITHIN)
    print(f"| tempo | method | {head} | mean abs. error (clipped at {CLIP:g} s) | "
          "segments found / true |")
    print("|---|---|" + "---|" * (len(WITHIN) + 2))
    for label in [*labels, None]:
        for method in methods:
            use = labels if label is None else [label]
            e = np.array(sum((errs[x, method] for x in use), []))
            n_found = sum(found_n[x, method] for x in use)
            cells = " | ".join(f"{100 * np.mean(e <= w):.1f} %" for w in WITHIN)
            print(f"| {'all' if label is None else label} | {method} | {cells} | "
                  f"{e.mean():.2f} s | {n_found} / {len(e)} |")
    if len(methods) > 1:
        print()
        e0 = np.array(sum((errs[x, methods[0]] for x in labels), []))
        pieces = sum((groups[x] for x in labels), [])
        for method in methods[1:]:
            e = np.array(sum((errs[x, method] for x in labels), []))
            print(f"- `{method}` − `{methods[0]}`, paired on the {len(e)} onsets: " + ", ".join(
                f"within {w:g} s {paired(e <= w, e0 <= w, pieces)}" for w in WITHIN))
    if MEASURE_ERRORS:
        e = np.array(MEASURE_ERRORS)
        print(f"\n- measures (notes), {len(e)} measure starts played (truth: annotated downbeats "
              "paired with the kern's measures): " + ", ".join(
                  f"{100 * np.mean(e <= w):.1f} % within {w:g} s" for w in WITHIN)
              + f", mean abs. error {e.mean():.2f} s")
    if args.ten_minutes and kept:
        total, n_sys, lines = ten_minutes(kept, methods, embedder)
        print(f"\n- {total:.0f} s recording (tempo-1 renditions one after another), "
              f"{n_sys} systems:")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
