"""Benchmark: audio clips against symbolic scores: the model (image), the notes, and both fused.

    python benchmarks/notes_quality.py --data data/msmd [--split test] [--clips 100]
    python benchmarks/notes_quality.py --data data/msmd --split valid --tune
    python benchmarks/notes_quality.py --data data/msmd --split valid --notes-only \
        --stretch 0.5,0.66,1,1.33,2 --clips 60 [--pitch-share 0.5] \
        [--save PICKLE] [--against PICKLE]

The index holds the split's systems with their notes (as the dataset's tempo-1.0 rendition
plays them: score time). Queries: clips of --seconds cut at random places of the split's
evaluation renditions at every tempo ratio the dataset has (the held-out timbre for test), as
spectrograms. For each clip the three rankings come from one evidence computation:

- image: the passage model alone (`search --audio` on an index without notes);
- notes: the alignment cost alone (chroma + subsequence DTW, `search/notes.py`);
- fused: what `search --audio` answers (IMAGE_WEIGHT x the model's score - cost).

Scores: piece identification (the best answer's piece) and system R@1 (the best answer is the
system holding the clip's midpoint), with 95 % cluster-bootstrap intervals (pieces resampled)
and paired differences fused - image, fused - notes. Also: how many clips hold music that
another system holds note for note (`search_quality.SameMusic`), system R@1 counting such an
answer as right, and the most a method that hears the recording alone can expect (a clip
whose music k systems hold is answered right 1 time in k). --tune: the fused R@1 over a grid of
image weights and no-notes costs (run it on the validation split; the chosen values go into
search/query.py). --notes-only: the notes path alone, straight from the dataset's notes (no
model); with --stretch, clips of the tempo-1.0 renditions played at each ratio (their frames
resampled in time, for a split such as valid that has tempo 1.0 only), and --pitch-share sets
the share of the pitch profile (`notes.PITCH_SHARE`) for the run: how that share was chosen;
--save and --against pair two versions of the matcher on the same clips there too.
--tempi picks rendition tempo ratios (a validation split built with --valid-tempi has them
all); --step-penalty sets `notes.STEP_PENALTY` for the run.
Prints a Markdown block.
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from _machine import machine  # benchmarks/_machine.py
from search_quality import SameMusic, cut_clips

from scorelink.data.store import Dataset
from scorelink.evaluate.metrics import bootstrap_intervals, paired_difference
from scorelink.evaluate.retrieval import eval_records
from scorelink.search import collect, query
from scorelink.search.embed import Embedder
from scorelink.search.index import Index

PATHS = ("image", "notes", "fused")
MISSING = 10**6  # the rank of an answer not returned


def _clips(ds: Dataset, split: str, tempo: float, n: int, seconds: float, rng) -> list[dict]:
    """Random clips of one tempo's renditions, cut as `search_quality.cut_clips` cuts them:
    spectrogram, piece, system at the midpoint (counted from 1, as answers are)."""
    spans: dict[str, list[dict]] = {}
    for r in eval_records(ds, split=split, tempo=tempo):
        spans.setdefault(r["piece"], []).append(r)
    return [{"piece": piece, "system": holding + 1, "tempo": tempo, "spec": spec,
             "start": start, "seconds": seconds}
            for piece, holding, _, spec, start in cut_clips(ds, spans, seconds, n, rng)]


def _ranks(hits: list[dict], clip: dict) -> tuple[float, float]:
    """(rank of the right system, rank of the right piece among pieces); MISSING when absent."""
    system = next((h["rank"] for h in hits if h["piece"] == clip["piece"]
                   and h["system_in_piece"] == clip["system"]), MISSING)
    pieces = query.by_piece(hits, top=0)
    piece = next((p["rank"] for p in pieces if p["piece"] == clip["piece"]), MISSING)
    return system, piece


def _pct(x: np.ndarray) -> float:
    return 100 * float(np.mean(np.asarray(x) <= 1))


def _notes_only(args) -> None:
    """The notes path alone, straight from the dataset's notes: the same clips (same seed)."""
    from scorelink.search import notes as notes_module
    from scorelink.search.notes import NoteMatcher
    from scorelink.train.batches import stretch

    if args.pitch_share is not None:
        notes_module.PITCH_SHARE = args.pitch_share
    ds = Dataset(args.data)
    records = eval_records(ds, split=args.split, tempo=1.0)
    notes = collect._dataset_notes(ds, records) if not args.read else _read_notes(
        ds, records, args.read)
    keys = sorted(notes)
    if args.read:  # the read timeline at each of its scales; a system's cost: its lowest
        from scorelink.search.reading import read_matchers

        matchers = read_matchers({i: notes[k] for i, k in enumerate(keys)},
                                 {i: k[0] for i, k in enumerate(keys)})
    else:
        matchers = [NoteMatcher({i: notes[k] for i, k in enumerate(keys)},
                                {i: k[0] for i, k in enumerate(keys)})]
    soundfont = ds.test_soundfont if args.split == "test" else ds.valid_soundfont
    ratios = [float(t) for t in args.stretch.split(",")] if args.stretch else None
    tempi = ratios or ([float(t) for t in args.tempi.split(",")] if args.tempi else
                       sorted({r["tempo"] for r in ds.records(split=args.split,
                                                              soundfont=soundfont)}))
    rng = np.random.default_rng(args.seed)
    rows, seconds = [], []
    for tempo in tempi:
        # --stretch: the clip holds seconds x ratio of the tempo-1.0 rendition, played faster
        cut = (1.0, args.seconds * tempo) if ratios else (tempo, args.seconds)
        for clip in _clips(ds, args.split, cut[0], args.clips, cut[1], rng):
            spec = stretch(clip["spec"], tempo) if ratios and tempo != 1 else clip["spec"]
            t = time.process_time()
            costs: dict[int, float] = {}
            for matcher in matchers:
                for sid, c in matcher.match(spec).items():
                    costs[sid] = min(c, costs.get(sid, np.inf))
            seconds.append(time.process_time() - t)
            best = min(costs, key=costs.get) if costs else None
            piece, system = keys[best] if best is not None else (None, None)
            rows.append((tempo, clip["piece"], piece == clip["piece"],
                         piece == clip["piece"] and system + 1 == clip["system"]))
    tempo_of = np.array([r[0] for r in rows])
    print(f"### Notes alone, no model ({date.today()})\n")
    print(f"- machine: {machine()}")
    print(f"- `python benchmarks/notes_quality.py --data {args.data} --split {args.split} "
          f"--clips {args.clips} --seconds {args.seconds:g} --notes-only"
          + (f" --stretch {args.stretch}" if args.stretch else "")
          + f" --pitch-share {notes_module.PITCH_SHARE:g}"
          + f" --step-penalty {notes_module.STEP_PENALTY:g}"
          + (f" --read {args.read}" if args.read else "") + "`")
    print(f"- {len(keys)} systems of {len({k[0] for k in keys})} pieces; {len(rows)} clips; "
          f"alignment CPU time p50 {1000 * np.median(seconds):.0f} ms a clip\n")
    print("| tempo | piece top-1 % | system R@1 % |\n|---|---|---|")
    for tempo in [*tempi, None]:
        keep = tempo_of == tempo if tempo is not None else np.ones(len(rows), bool)
        sel = [r for r, k in zip(rows, keep, strict=True) if k]
        print(f"| {'all' if tempo is None else f'{tempo:g}'} | "
              f"{100 * np.mean([r[2] for r in sel]):.1f} | "
              f"{100 * np.mean([r[3] for r in sel]):.1f} |")
    pieces = [r[1] for r in rows]
    for col, name in ((2, "piece top-1"), (3, "system R@1")):
        ranks = np.array([1 if r[col] else MISSING for r in rows])
        lo, hi = bootstrap_intervals(ranks, pieces, resamples=1000, ks=(1,))["R@1"]
        print(f"\n{name}, all tempi: 95 % interval [{lo:.1f}, {hi:.1f}] (pieces resampled)")
    if args.save:
        Path(args.save).write_bytes(pickle.dumps(rows))
    if args.against:  # the same clips (same seed and settings), another version of the matcher
        other = pickle.loads(Path(args.against).read_bytes())
        if [r[:2] for r in other] != [r[:2] for r in rows]:
            raise SystemExit(f"{args.against}: not the same clips")
        for col, name in ((2, "piece top-1"), (3, "system R@1")):
            ours = np.array([1 if r[col] else MISSING for r in rows])
            theirs = np.array([1 if r[col] else MISSING for r in other])
            d = paired_difference(ours, theirs, pieces, resamples=1000, ks=(1,))["R@1"]
            gained = int(np.sum((ours == 1) & (theirs != 1)))
            lost = int(np.sum((ours != 1) & (theirs == 1)))
            print(f"\n{name} minus {args.against}: {d['diff']:+.1f} [{d['lo']:+.1f}, "
                  f"{d['hi']:+.1f}] ({gained} clips gained, {lost} lost)")


def _read_notes(ds: Dataset, records: list[dict], read: str) -> dict[tuple[str, int], np.ndarray]:
    """(piece, system) -> its noteheads (n, 2) [x px, MIDI pitch]: placed by the engraving
    (read="engraved": a reader that never errs; "timed": the same by their score time,
    `collect.ENGRAVED_HEADS`) or read off its strip by the note reader in the checkpoint
    `read`."""
    first = {}
    for r in records:
        first.setdefault((r["piece"], r["system"]), r)
    keys = sorted(first)
    if read in collect.ENGRAVED_HEADS:
        heads = [ds.noteheads(first[k], px_per_second=collect.ENGRAVED_HEADS[read])
                 for k in keys]
    else:
        from scorelink.models.reader import load_reader, read_strips

        heads = read_strips(load_reader(read), [ds.strip(first[k]) for k in keys])
    return dict(zip(keys, heads, strict=True))


def _index(args, embedder: Embedder) -> Index:
    """An index of the split's systems with their notes (kept in --cache, per model)."""
    root = (Path(args.cache) / f"index-{args.split}-{embedder.fingerprint[:16]}" if args.cache
            else Path(tempfile.mkdtemp(prefix="scorelink-notes-")) / "idx")
    if root.exists():
        return Index(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    pending = collect.from_dataset(args.data, embedder, split=args.split, recordings=False)
    return Index.write(root, pending, model_name=embedder.name,
                       fingerprint=embedder.fingerprint, dim=embedder.dim)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--clips", type=int, default=100, help="clips per tempo ratio")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--tempi", help="comma-separated (default: every tempo of the split)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tune", action="store_true", help="grid of fusion settings (validation)")
    p.add_argument("--image-weight", type=float,
                   help="the model's weight in the fused score (default query.IMAGE_WEIGHT)")
    p.add_argument("--cache", help="keep the index and the model's evidence here, per model")
    p.add_argument("--save", help="write the clips' evidence here (pickle) to re-score later")
    p.add_argument("--against", metavar="PICKLE",
                   help="evidence --save'd by another run on the same clips (say, with another "
                        "version of the matcher): paired differences against it")
    p.add_argument("--stretch", help="with --notes-only: tempo ratios simulated on the "
                   "tempo-1.0 renditions, e.g. 0.5,0.66,1,1.33,2")
    p.add_argument("--pitch-share", type=float,
                   help="with --notes-only: notes.PITCH_SHARE for this run (0: chroma alone)")
    p.add_argument("--step-penalty", type=float,
                   help="notes.STEP_PENALTY for this run (0: none, as before 2026-12-05)")
    p.add_argument("--read", metavar="engraved|timed|CKPT",
                   help="with --notes-only: the notes read off the systems' images (by the note "
                   "reader CKPT, or where the engraving put them: a perfect reader; 'timed': "
                   "those placed by their score time) on a timeline of x (search/reading.py), "
                   "in place of the score's")
    p.add_argument("--notes-only", action="store_true",
                   help="the notes path alone, without the model (no index, no embedding)")
    args = p.parse_args()
    if args.step_penalty is not None:
        from scorelink.search import notes as notes_module

        notes_module.STEP_PENALTY = args.step_penalty
    if args.notes_only:
        return _notes_only(args)

    embedder = Embedder.load(args.checkpoint)
    ds = Dataset(args.data)
    weight = query.IMAGE_WEIGHT if args.image_weight is None else args.image_weight
    t0 = time.perf_counter()
    index = _index(args, embedder)
    build_s = time.perf_counter() - t0
    soundfont = ds.test_soundfont if args.split == "test" else ds.valid_soundfont
    tempi = ([float(t) for t in args.tempi.split(",")] if args.tempi else
             sorted({r["tempo"] for r in ds.records(split=args.split, soundfont=soundfont)}))

    # the model's evidence depends on the model and the clips only: kept with --cache
    key = (f"{args.split}-{embedder.fingerprint[:16]}-{args.clips}-{args.seconds:g}-{args.seed}"
           + ("-parts" if index.parts() is not None else "")
           + ("-hub" if index.parts() is not None and index.parts().shift is not None else ""))
    cached = Path(args.cache) / f"image-{key}.pkl" if args.cache else None
    images = pickle.loads(cached.read_bytes()) if cached and cached.exists() else None
    matcher = index.note_matcher()
    with_notes = matcher.systems
    rng = np.random.default_rng(args.seed)
    clips, evidence, seconds = [], [], []
    for tempo in tempi:
        for clip in _clips(ds, args.split, tempo, args.clips, args.seconds, rng):
            t = time.perf_counter()
            if images is None or len(clips) >= len(images):
                image, proposed = query.model_evidence(index, embedder, clip["spec"])
            else:
                image, proposed = images[len(clips)]
            spans: dict = {}
            costs = query.notes_evidence(matcher, query.span_features(clip["spec"]), proposed,
                                         spans=spans)
            evidence.append({"image": image, "with_notes": with_notes, "notes": costs,
                             "proposed": proposed, "spans": spans})
            seconds.append(time.perf_counter() - t)
            clips.append({k: v for k, v in clip.items() if k != "spec"})
    if cached is not None and images is None:
        cached.write_bytes(pickle.dumps([(e["image"], e["proposed"]) for e in evidence]))
    pieces = [c["piece"] for c in clips]
    if args.save:
        Path(args.save).write_bytes(pickle.dumps({"clips": clips, "evidence": evidence}))

    if args.tune:
        print(f"### Fusion grid ({args.split}, {len(clips)} clips, {date.today()})\n")
        print("| image weight | no-notes cost | system R@1 | piece top-1 |\n|---|---|---|---|")
        for weight in (0.0, 0.0001, 0.0003, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2,
                       0.5, 1.0):
            r = np.array([_ranks(query.fuse(index, e, top=0, weight=weight), c)
                          for e, c in zip(evidence, clips, strict=True)])
            print(f"| {weight:g} | {query.NO_NOTES_COST:g} | {_pct(r[:, 0]):.1f} | "
                  f"{_pct(r[:, 1]):.1f} |")
        index.close()
        return

    ranks = {path: np.array([_ranks(query.fuse(index, e, top=0, paths=path,
                                               weight=weight), c)
                             for e, c in zip(evidence, clips, strict=True)])
             for path in PATHS}  # (clips, 2): system rank, piece rank
    tempo_of = np.array([c["tempo"] for c in clips])
    n_pieces = len({r["piece"] for r in index.all_rows("sheet")})
    print(f"### Audio clips against symbolic scores: image, notes, fused ({date.today()})\n")
    print(f"- machine: {machine()}; model {embedder.name} ({embedder.fingerprint[:16]})")
    print(f"- `python benchmarks/notes_quality.py --data {args.data} --split {args.split} "
          f"--clips {args.clips} --seconds {args.seconds:g} --image-weight {weight:g}"
          + (f" --checkpoint {args.checkpoint}" if args.checkpoint else "")
          + (f" --step-penalty {args.step_penalty:g}" if args.step_penalty is not None else "")
          + "`")
    print(f"- index: {index.sheet.ntotal} systems of {n_pieces} {args.split} pieces with "
          f"{index.info['notes']} notes, built (or read from --cache) in {build_s:.0f} s; "
          f"{len(clips)} clips of "
          f"{args.seconds:g} s ({args.clips} per tempo ratio, random places); evidence "
          f"(embedding + alignment) p50 {1000 * np.median(seconds):.0f} ms a clip\n")
    print("| tempo | path | piece top-1 % | system R@1 % |\n|---|---|---|---|")
    for tempo in [*tempi, None]:
        keep = tempo_of == tempo if tempo is not None else np.ones(len(clips), bool)
        for path in PATHS:
            r = ranks[path][keep]
            print(f"| {'all' if tempo is None else f'{tempo:g}'} | {path} | "
                  f"{_pct(r[:, 1]):.1f} | {_pct(r[:, 0]):.1f} |")
    print("\n95 % intervals (clips grouped by piece, pieces resampled), all tempi:\n")
    print("| path / difference | piece top-1 | system R@1 |\n|---|---|---|")
    for path in PATHS:
        cells = []
        for col in (1, 0):
            lo, hi = bootstrap_intervals(ranks[path][:, col], pieces, resamples=1000,
                                         ks=(1,))["R@1"]
            cells.append(f"{_pct(ranks[path][:, col]):.1f} [{lo:.1f}, {hi:.1f}]")
        print(f"| {path} | {cells[0]} | {cells[1]} |")
    for other in ("image", "notes"):
        cells = []
        for col in (1, 0):
            d = paired_difference(ranks["fused"][:, col], ranks[other][:, col], pieces,
                                  resamples=1000, ks=(1,))["R@1"]
            cells.append(f"{d['diff']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]")
        print(f"| fused - {other} | {cells[0]} | {cells[1]} |")
    judge = SameMusic(index)
    same = [judge.others(c["piece"], c["system"], c["start"], c["seconds"], c["tempo"])
            for c in clips]
    agree = judge.agreement
    print(f"\nThe same music elsewhere: {sum(map(bool, same))} of {len(clips)} clips' notes "
          "start again, onset for onset and pitch for pitch, where the clip's midpoint falls in "
          f"another system (the notes and the labels put {agree:.1f} % of the midpoints in the "
          "same system). System R@1 counting such a system as right (no recording can tell "
          "which of the two was played):")
    for path in PATHS:
        right = _pct_same_music(index, evidence, clips, path, weight, same)
        lo, hi = bootstrap_intervals(np.where(right > 0, 1, MISSING), pieces, resamples=1000,
                                     ks=(1,))["R@1"]
        print(f"- {path}: {100 * right.mean():.1f} [{lo:.1f}, {hi:.1f}] %")
    named = []  # what `search` tells the user: the answer, or a system it names as the same
    for e, c in zip(evidence, clips, strict=True):
        hits = query.fuse(index, e, top=1, weight=weight)
        twins = {(t["piece"], t["system_in_piece"]) for t in hits[0].get("same_music", [])}
        got = (hits[0]["piece"], hits[0]["system_in_piece"])
        named.append(got == (c["piece"], c["system"]) or (c["piece"], c["system"]) in twins)
    named = np.array(named, float)
    lo, hi = bootstrap_intervals(np.where(named > 0, 1, MISSING), pieces, resamples=1000,
                                 ks=(1,))["R@1"]
    print(f"- fused, the clip's system being the first answer or one the answer names as "
          f"holding its music note for note (`same_music`, what `search` prints): "
          f"{100 * named.mean():.1f} [{lo:.1f}, {hi:.1f}] %")
    share = np.array([1 / (1 + len(s)) for s in same])
    print("\nThe most a method that hears the recording alone can expect of system R@1 (a clip "
          "whose music k systems hold is answered right 1 time in k): "
          f"{100 * share.mean():.1f} % (" + ", ".join(
              f"{t:g}: {100 * share[tempo_of == t].mean():.1f}" for t in tempi) + ")")
    if args.against:
        _against(args, index, weight, clips, ranks)
    index.close()


def _pct_same_music(index: Index, evidence: list, clips: list[dict], path: str,
                    weight: float, same: list[set]) -> np.ndarray:
    """(clips,) 1 where the best answer is the clip's system or one holding the same music."""
    right = []
    for e, c, also in zip(evidence, clips, same, strict=True):
        hits = query.fuse(index, e, top=1, paths=path, weight=weight)
        got = (hits[0]["piece"], hits[0]["system_in_piece"]) if hits else None
        right.append(got == (c["piece"], c["system"]) or got in also)
    return np.array(right, float)


def _against(args, index: Index, weight: float, clips: list[dict], ranks: dict) -> None:
    """Paired differences against the evidence saved by another run on the same clips."""
    saved = pickle.loads(Path(args.against).read_bytes())
    key = [(c["piece"], c["system"], c["tempo"]) for c in clips]
    if [(c["piece"], c["system"], c["tempo"]) for c in saved["clips"]] != key:
        raise SystemExit(f"--against {args.against}: not the same clips")
    pieces = [c["piece"] for c in clips]
    print(f"\nThis run minus `{args.against}` on the same clips, paired 95 % intervals "
          "(pieces resampled):\n")
    print("| path | piece top-1 | system R@1 | system R@1 gained / lost |\n|---|---|---|---|")
    for path in ("notes", "fused"):
        before = np.array([_ranks(query.fuse(index, e, top=0, paths=path, weight=weight), c)
                           for e, c in zip(saved["evidence"], clips, strict=True)])
        cells = []
        for col in (1, 0):
            d = paired_difference(ranks[path][:, col], before[:, col], pieces, resamples=1000,
                                  ks=(1,))["R@1"]
            cells.append(f"{_pct(before[:, col]):.1f} -> {_pct(ranks[path][:, col]):.1f}: "
                         f"{d['diff']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]")
        now, then = ranks[path][:, 0] <= 1, before[:, 0] <= 1
        print(f"| {path} | {cells[0]} | {cells[1]} | {int(np.sum(now & ~then))} / "
              f"{int(np.sum(then & ~now))} |")


if __name__ == "__main__":
    main()
