"""Benchmark: search quality as a user meets it, on clips cut anywhere in whole recordings.

    python benchmarks/search_quality.py --data data/chorales [--split test] [--checkpoint CKPT]
        [--clips 200] [--seconds 5,10,20] [--mix 0,0.25,0.5] [--s2a] [--save P] [--against P]
        [--reverb SECONDS] [--power P] [--gain DB] [--piano SEED]
    python benchmarks/search_quality.py --pool THIS.pkl=THAT.pkl [--pool ...] [--rows A=B]

The index holds the split's systems and their notes (sheet side). Clips of 5, 10 and 20 s are
cut at random places of the split's evaluation renditions at tempo 1.0 (spectrograms read from
the dataset, so a validation split, which keeps no audio, works too). The dataset's system spans
are used only to score the answers. Each clip is ranked three ways from one embedding:

- image: the model alone, the whole clip's vector against the systems' vectors (what
  `search_audio(notes=False)` does with a clip up to 25 s);
- image + parts: `search/parts.py`, parts across system boundaries and sub-windows (one row per
  --mix value: the weight of the whole clip's own system similarity), the index's parts, less
  their hubness shifts where the index keeps them (`search/hubness.py`; then also a row "no
  hubness", at parts.MIX);
- search, model alone: what `scorelink search --audio` answers from the model (`query.fuse`,
  paths="image": the parts at parts.MIX, the 200 best of each query span);
- fused: the notes aligned to the clip, fused with the model (`search_audio`, the default
  where the index keeps notes).

An answer is right ("mid") when it is the system holding the clip's midpoint (the issue's
target); "sounding": any system that sounds 0.5 s or more during the clip. R@k, MRR over the
first right answer; "piece R@1": the best answer is from the right piece. Intervals: 95 %
cluster bootstrap (clips grouped by piece, pieces resampled); differences paired on the same
clips.

--reverb, --power, --gain: every clip heard in a more reverberant room (a tail of that decay
time at the dry sound's level), with its dynamics raised to that power (0.7: compressed), or
recorded that many dB louder (negative: softer); --piano: every clip played by a random
other piano, note by note (`scorelink.train.batches.replay`, what `piano_augment` trains
with; the clips stay where they are, the pianos are drawn from SEED), as
`scorelink.train.batches.reverberate` and `dynamics` make them: how much the model relies on
what one piano in one room sounds like (against the same clips undistorted: --against).

--pool: no new run; pairs of --save'd runs on the same clips (one pair per dataset, say a new
model's and the shipped one's) pooled: R@1 mid differences over all their clips, per length and
ranking and over all lengths, the pieces of all the pairs resampled together; --rows A=B
compares THIS's ranking A with THAT's ranking B (e.g. two rankings of one run: P=P).

--s2a: also every system as a query against the split's test recordings cut into windows as
`scorelink index --recordings` cuts any recording (needs the FLACs of a test split).
Prints a Markdown block.
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
from _machine import machine  # benchmarks/_machine.py

from scorelink.constants import FPS
from scorelink.data.store import Dataset
from scorelink.evaluate.retrieval import eval_records, passage_at
from scorelink.search import collect, parts, query
from scorelink.search.embed import Embedder
from scorelink.search.index import Index
from scorelink.train.batches import dynamics, equalise, random_piano, replay, reverberate

KS = (1, 5, 10)
MIN_OVERLAP = 0.5  # s: a system sounding this long in the clip "sounds"


def _ci(values: np.ndarray, groups: list[str], rng, n: int = 2000) -> tuple[float, float]:
    names = sorted(set(groups))
    sums = np.array([values[[g == name for g in groups]].sum() for name in names])
    counts = np.array([sum(g == name for g in groups) for name in names], float)
    pick = rng.integers(len(names), size=(n, len(names)))
    stats = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    return tuple(100 * np.percentile(stats, [2.5, 97.5]))


def first_renditions(records: list[dict]) -> list[dict]:
    """Each piece's passages in one rendition: its first (soundfont, tempo) in sorted order."""
    chosen: dict[str, tuple] = {}
    for r in sorted(records, key=lambda r: (r["piece"], r["soundfont"], r["tempo"])):
        chosen.setdefault(r["piece"], (r["soundfont"], r["tempo"]))
    return [r for r in records if (r["soundfont"], r["tempo"]) == chosen[r["piece"]]]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", help="a dataset folder")
    p.add_argument("--split", default="test")
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--clips", type=int, default=200, help="audio clips per length")
    p.add_argument("--seconds", default="5,10,20", help="audio clip lengths")
    p.add_argument("--mix", default=str(parts.MIX),
                   help="image + parts: weights of the whole clip's own similarity to try")
    p.add_argument("--no-fused", action="store_true", help="leave out the notes")
    p.add_argument("--read", nargs="?", const=True, default=False, metavar="READER",
                   help="index the systems as scans: no notes, the noteheads the note reader "
                   "(shipped, or the checkpoint READER) reads off their images instead "
                   "(rows \"read notes alone\" and \"fused (read notes)\")")
    p.add_argument("--read-weights", help="with --read: also a fused row at each of these "
                   "weights of the model's score (query.READ_WEIGHT)")
    p.add_argument("--s2a", action="store_true", help="also systems -> recording places")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rendition", choices=("eval", "any"), default="eval",
                   help="eval: the split's evaluation rendition at tempo 1 (default); any: each "
                        "piece's first rendition whatever its piano and tempo (the training "
                        "split has no evaluation rendition)")
    p.add_argument("--pieces", type=int, default=0,
                   help="index and query only this many of the split's pieces, drawn (seeded): "
                        "to compare splits at one index size")
    p.add_argument("--reverb", type=float, default=0.0, metavar="SECONDS",
                   help="add a reverberation tail of this decay time to every clip")
    p.add_argument("--power", type=float, default=1.0,
                   help="raise every clip's dynamics to this power (below 1: compressed)")
    p.add_argument("--gain", type=float, default=0.0, metavar="DB",
                   help="every clip this many dB louder (negative: softer)")
    p.add_argument("--piano", type=int, default=None, metavar="SEED",
                   help="every clip played by a random other piano (batches.replay)")
    p.add_argument("--ensemble", metavar="CKPT", help="also rank by the mean of this model's "
                   "image + parts scores and the model's (a two-model ensemble; its own index)")
    p.add_argument("--save", metavar="PICKLE", help="write every clip's ranks here")
    p.add_argument("--against", metavar="PICKLE", help="ranks --save'd by another version on "
                   "the same clips (same seed and lengths): paired differences, ranking by "
                   "ranking")
    p.add_argument("--pool", action="append", metavar="THIS=THAT",
                   help="two --save'd pickles of the same clips; repeat for more datasets")
    p.add_argument("--rows", metavar="A=B", help="with --pool: this run's ranking A against "
                   "that run's ranking B")
    args = p.parse_args()
    if args.pool:
        _pool([pair.split("=", 1) for pair in args.pool],
              args.rows.split("=", 1) if args.rows else None)
        return
    if not args.data:
        p.error("--data is needed (or --pool)")
    import torch

    torch.set_num_threads(1)  # one query at a time, as a user's

    embedder = Embedder.load(args.checkpoint)
    ds = Dataset(args.data)
    records = (eval_records(ds, split=args.split, tempo=1.0) if args.rendition == "eval"
               else first_renditions(ds.records(split=args.split)))
    if args.pieces:
        names = sorted({r["piece"] for r in records})
        keep = set(np.random.default_rng(args.seed).permutation(names)[:args.pieces].tolist())
        records = [r for r in records if r["piece"] in keep]
    spans: dict[str, list[dict]] = {}  # piece -> its system occurrences
    for r in records:
        spans.setdefault(r["piece"], []).append(r)

    t0 = time.perf_counter()
    pending = collect.from_dataset(args.data, embedder, split=args.split, recordings=False,
                                   records=records, read=args.read)
    flacs = _recordings(ds, spans) if args.s2a else {}
    if args.s2a:  # the recordings, cut as `scorelink index --recordings` cuts any recording
        recordings = collect.from_recordings(sorted(flacs), embedder)
        pending.windows, pending.window_vectors = recordings.windows, recordings.window_vectors
    work = Path(tempfile.mkdtemp(prefix="scorelink-quality-"))
    index = Index.write(work / "idx", pending, model_name=embedder.name,
                        fingerprint=embedder.fingerprint, dim=embedder.dim)
    rows = index.all_rows("sheet")
    key = [(r["piece"], r["system"]) for r in rows]  # index id order (ids 0..N-1)
    assert [r["id"] for r in rows] == list(range(len(rows)))
    system_vectors = index.vectors("sheet")
    part_set = index.parts()  # as `scorelink index` keeps them (ids 0..N-1: columns)
    shift = index.system_shifts(np.arange(len(rows))) if part_set is not None else None
    if args.ensemble:  # the second model indexes the same systems in the same order
        other = Embedder.load(args.ensemble)
        index2 = Index.write(work / "idx2", collect.from_dataset(
            args.data, other, split=args.split, recordings=False, records=records),
            model_name=other.name, fingerprint=other.fingerprint, dim=other.dim)
        assert [(r["piece"], r["system"]) for r in index2.all_rows("sheet")] == key
        system_vectors2, part_set2 = index2.vectors("sheet"), index2.parts()
        shift2 = index2.system_shifts(np.arange(len(rows))) if part_set2 is not None else None
    build_s = time.perf_counter() - t0

    judge = SameMusic(index) if index.info.get("notes") else None
    rng = np.random.default_rng(args.seed)
    mixes = [float(m) for m in args.mix.split(",")]
    methods = ["image", *(f"image + parts, mix {m:g}" for m in mixes)]
    if shift is not None:  # the index has hubness shifts (search/hubness.py): also without
        methods += ["image + parts, no hubness"]
    methods += ["ensemble (image + parts)"] if args.ensemble else []
    fused_name = "fused (read notes)" if args.read else "fused (notes)"
    methods += [] if args.no_fused else ["search, model alone", fused_name]
    methods += ["read notes alone"] if args.read and not args.no_fused else []
    read_weights = [float(w) for w in args.read_weights.split(",")] if args.read_weights else []
    methods += [] if args.no_fused else [f"fused (read notes), weight {w:g}"
                                         for w in read_weights]
    results: dict[float, dict[str, list]] = {}
    groups: dict[float, list[str]] = {}
    cpu = []
    for seconds in [float(s) for s in args.seconds.split(",")]:
        out = {m: [] for m in methods}  # per clip: (rank mid, rank sounding, piece right,
        # the first answer the midpoint's system or one holding the same music)
        groups[seconds] = []
        pianos = None if args.piano is None else np.random.default_rng(args.piano)
        for piece, holding, sounding, spec, start in cut_clips(ds, spans, seconds, args.clips,
                                                               rng, pianos=pianos):
            if args.reverb > 0:
                spec = reverberate(spec, args.reverb, 1.0)
            if args.power != 1.0:
                spec = dynamics(spec, args.power)
            if args.gain:
                spec = equalise(spec, args.gain)  # one gain for every band
            same = ({(p, k - 1) for p, k in judge.others(piece, holding + 1, start, seconds, 1.0)}
                    if judge else set())
            n = spec.shape[1]
            c0 = time.process_time()
            spans_n = parts.clip_spans(n)
            weights = parts.span_weights(spans_n)
            vectors = embedder.audio(spec, spans_n)
            scores = {"image": vectors[0] @ system_vectors.T}
            for m in mixes:
                scores[f"image + parts, mix {m:g}"] = parts.system_scores(
                    vectors, system_vectors, part_set, weights=weights, mix=m,
                    system_shift=shift)
            if shift is not None:
                plain = parts.Parts(part_set.vectors, part_set.owner)
                scores["image + parts, no hubness"] = parts.system_scores(
                    vectors, system_vectors, plain, weights=weights)
            if args.ensemble:  # the second model's own image + parts, at the first mix
                second = parts.system_scores(
                    other.audio(spec, spans_n), system_vectors2, part_set2, weights=weights,
                    mix=mixes[0], system_shift=shift2)
                scores["ensemble (image + parts)"] = (
                    scores[f"image + parts, mix {mixes[0]:g}"] + second) / 2
            ranked = {name: np.argsort(-s, kind="stable").tolist() for name, s in scores.items()}
            if not args.no_fused:
                evidence = query.audio_evidence(index, embedder, spec)
                ranked["search, model alone"] = [
                    h["id"] for h in query.fuse(index, evidence, top=0, paths="image")]
                ranked[fused_name] = [h["id"] for h in query.fuse(index, evidence, top=0)]
                if args.read:
                    ranked["read notes alone"] = [
                        h["id"] for h in query.fuse(index, evidence, top=0, paths="read")]
                for w in read_weights:
                    ranked[f"fused (read notes), weight {w:g}"] = [
                        h["id"] for h in query.fuse(index, evidence, top=0, read_weight=w)]
            cpu.append(time.process_time() - c0)
            groups[seconds].append(piece)
            for name, ids in ranked.items():
                hits = [key[i] for i in ids]
                rank_mid = next((k + 1 for k, h in enumerate(hits) if h == (piece, holding)),
                                np.inf)
                rank_any = next((k + 1 for k, h in enumerate(hits)
                                 if h[0] == piece and h[1] in sounding), np.inf)
                out[name].append((rank_mid, rank_any, bool(hits) and hits[0][0] == piece,
                                  rank_mid == 1 or (bool(hits) and hits[0] in same)))
        results[seconds] = {m: np.array(v, float) for m, v in out.items()}

    print(f"### Search quality on clips cut anywhere, {args.split} split ({date.today()})\n")
    print(f"- machine: {machine()}; model {embedder.name} "
          f"(fingerprint {embedder.fingerprint[:16]})")
    print(f"- `python benchmarks/search_quality.py --data {args.data} --split {args.split} "
          f"--clips {args.clips} --seconds {args.seconds} --mix {args.mix}"
          + (f" --checkpoint {args.checkpoint}" if args.checkpoint else "")
          + (" --no-fused" if args.no_fused else "") + (" --s2a" if args.s2a else "")
          + (f" --rendition {args.rendition}" if args.rendition != "eval" else "")
          + (f" --pieces {args.pieces}" if args.pieces else "")
          + (f" --reverb {args.reverb:g}" if args.reverb > 0 else "")
          + (f" --power {args.power:g}" if args.power != 1.0 else "")
          + (f" --gain {args.gain:g}" if args.gain else "")
          + (f" --piano {args.piano}" if args.piano is not None else "")
          + (f" --ensemble {args.ensemble}" if args.ensemble else "")
          + ((" --read" + (f" {args.read}" if isinstance(args.read, str) else ""))
             if args.read else "")
          + (f" --read-weights {args.read_weights}" if args.read_weights else "") + "`")
    heard = ", ".join(f"{n} pieces' at {sf} x{t:g}" for (sf, t), n in sorted(Counter(
        (g[0]["soundfont"], g[0]["tempo"]) for g in spans.values()).items()))
    print(f"- index: {index.sheet.ntotal} systems of {len(spans)} pieces "
          + ("with the noteheads read off their images (no notes), " if args.read else
             "with their notes, ")
          + f"{len(part_set.owner)} parts ({'/'.join(f'{x:g}' for x in parts.PART_SYSTEMS)} "
          f"system long, every snippet); built in {build_s:.0f} s; clips from {heard};"
          f" ranking CPU time p50 {1000 * np.median(cpu):.0f} ms a clip (all ways)\n")
    ci_rng = np.random.default_rng(0)
    if judge:
        print(f"- R@1 same music: the first answer is the midpoint's system or another that "
              f"holds the clip's music note for note (`SameMusic`; the notes put "
              f"{judge.agreement:.1f} % of the midpoints in the labelled system)\n")
    print("| clip | ranking | clips | R@1 mid [95 %] | R@5 mid | R@10 mid | MRR mid | "
          "R@1 sounding | piece R@1 | R@1 same music | R@1 mid - image [95 %] |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for seconds, res in results.items():
        base = (res["image"][:, 0] == 1).astype(float)
        for name, v in res.items():
            hit1 = (v[:, 0] == 1).astype(float)
            lo, hi = _ci(hit1, groups[seconds], ci_rng)
            diff = ""
            if name != "image":
                dlo, dhi = _ci(hit1 - base, groups[seconds], ci_rng)
                diff = f"{100 * (hit1 - base).mean():+.1f} [{dlo:+.1f}, {dhi:+.1f}]"
            print(f"| {seconds:g} s | {name} | {len(v)} | {100 * hit1.mean():.1f} "
                  f"[{lo:.1f}, {hi:.1f}] | {100 * np.mean(v[:, 0] <= 5):.1f} | "
                  f"{100 * np.mean(v[:, 0] <= 10):.1f} | {np.mean(1 / v[:, 0]):.3f} | "
                  f"{100 * np.mean(v[:, 1] == 1):.1f} | {100 * np.mean(v[:, 2]):.1f} | "
                  f"{100 * np.mean(v[:, 3]):.1f} | {diff} |")
    if args.save:
        Path(args.save).write_bytes(pickle.dumps({"results": results, "groups": groups}))
    if args.against:
        _against(args.against, results, groups)
    if args.s2a:
        _sheet_to_audio(index, ds, records, spans, embedder, flacs)
    index.close()


class SameMusic:
    """Which other systems hold a clip's music, note for note (music printed twice: no
    recording can tell which one was played): `NoteMatcher.same_music`, what `search` names,
    asked about the clip's true stretch of score time.

    `others(piece, system, start, seconds, tempo)`: the systems, as (piece, system counted
    from 1), for the clip of `seconds` from `start` in a rendition at `tempo` (an index built
    from a dataset keeps the tempo-1.0 rendition's times: score time is the clip's times
    the tempo ratio) whose midpoint lies in `system` (from 1). `agreement`: the share of clips
    (in %) whose own midpoint the notes put in that system, a check that the notes' timeline
    and the labels agree.
    """

    def __init__(self, index: Index):
        from scorelink.search.notes import FEATURE_FPS

        self.fps = FEATURE_FPS
        self.matcher = index.note_matcher()
        rows = index.all_rows("sheet")
        self.label = {r["id"]: (r["piece"], r["system"] + 1) for r in rows}
        self.id_of = {v: k for k, v in self.label.items()}
        self._agree: list[bool] = []

    @property
    def agreement(self) -> float:
        return 100 * float(np.mean(self._agree)) if self._agree else float("nan")

    def others(self, piece: str, system: int, start: float, seconds: float,
               tempo: float) -> set:
        p = self.matcher.pieces.get(piece)
        own = self.id_of.get((piece, system))
        if p is None or own is None:
            return set()
        w0, w1 = start * tempo - p.t0, (start + seconds) * tempo - p.t0
        mid = int(np.clip((w0 + w1) / 2 * self.fps, 0, p.frames - 1))
        self._agree.append(int(p.systems[mid]) == own)
        first = p.start + max(int(np.floor(w0 * self.fps)), 0)
        last = p.start + min(int(np.ceil(w1 * self.fps)), p.frames) - 1
        return {self.label[i] for i in self.matcher.same_music(first, last, own=own)}


def cut_clips(ds: Dataset, spans: dict[str, list[dict]], seconds: float, n_clips: int, rng,
              *, pianos: np.random.Generator | None = None):
    """Clips of `seconds` cut at random places of random pieces' renditions (spans: piece ->
    its system passages): yields (piece, the system holding the clip's midpoint, the systems
    sounding MIN_OVERLAP or more in it, the spectrogram, its start in the rendition in
    seconds). The same rng gives the same clips
    (benchmarks/parts_grid.py cuts the clips of this benchmark's validation runs); with
    `pianos`, each clip's rendition is first played by a random other piano drawn from it."""
    pieces = sorted(spans)
    length = int(seconds * FPS)
    for _ in range(n_clips):
        piece = pieces[rng.integers(len(pieces))]
        # the clip is cut from the first passage's rendition, and scored on that rendition's
        # passages alone (a piece of the real-scan corpus has several performances)
        group = [r for r in spans[piece] if r["rendition"] == spans[piece][0]["rendition"]]
        full = ds.rendition_spec(group[0])
        n = min(length, full.shape[1])
        a = int(rng.integers(full.shape[1] - n + 1))
        mid = a + n // 2
        holding = passage_at(group, mid)["system"]
        sounding = {r["system"] for r in group if min(a + n, r["end_frame"])
                    - max(a, r["start_frame"]) >= MIN_OVERLAP * FPS}
        clip = np.asarray(full[:, a:a + n], np.float32)
        if pianos is not None:  # the notes sounding in the clip, counted from its start
            played = ds.rendition_notes(group[0])
            notes = played[played["onset_frame"] < a + n]  # a copy of these rows alone
            notes["onset_frame"] -= a
            clip = replay(clip, notes, random_piano(pianos), pianos)
        yield piece, holding, sounding, clip, a / FPS


def _against(path: str, results: dict, groups: dict) -> None:
    """R@1 mid of this run minus the run saved at path, per length and ranking both have."""
    saved = pickle.loads(Path(path).read_bytes())
    rng = np.random.default_rng(0)
    print(f"\nThis run minus `{path}` on the same clips, R@1 mid, paired 95 % intervals:\n")
    print("| clip | ranking | this run | that run | difference [95 %] | gained / lost |")
    print("|---|---|---|---|---|---|")
    for seconds, res in results.items():
        if saved["groups"].get(seconds) != groups[seconds]:
            raise SystemExit(f"{path}: not the same clips at {seconds:g} s")
        for name, v in res.items():
            if name not in saved["results"][seconds]:
                continue
            ours = (v[:, 0] == 1).astype(float)
            theirs = (saved["results"][seconds][name][:, 0] == 1).astype(float)
            lo, hi = _ci(ours - theirs, groups[seconds], rng)
            print(f"| {seconds:g} s | {name} | {100 * ours.mean():.1f} | "
                  f"{100 * theirs.mean():.1f} | {100 * (ours - theirs).mean():+.1f} "
                  f"[{lo:+.1f}, {hi:+.1f}] | {int(np.sum(ours > theirs))} / "
                  f"{int(np.sum(ours < theirs))} |")


def _pool(pairs: list[list[str]], rows: list[str] | None = None) -> None:
    """R@1 mid differences of several pairs of saved runs, pooled over all their clips (rows:
    one ranking of this run against another of that run; default: each ranking both have)."""
    runs = [(pickle.loads(Path(a).read_bytes()), pickle.loads(Path(b).read_bytes()))
            for a, b in pairs]
    lengths = sorted(set.intersection(*(set(a["results"]) & set(b["results"]) for a, b in runs)))
    names = [n for n in runs[0][0]["results"][lengths[0]]
             if all(n in r["results"][s] for a, b in runs for r in (a, b) for s in lengths)]
    pairs_of = {n: (n, n) for n in names}
    if rows:
        pairs_of = {f"{rows[0]} vs {rows[1]}": tuple(rows)}
    print(f"\nPooled over {len(pairs)} pairs ({', '.join(a for a, _ in pairs)} minus "
          f"{', '.join(b for _, b in pairs)}), R@1 mid, paired 95 % intervals:\n")
    print("| clip | ranking | clips | this | that | difference [95 %] | gained / lost |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name, (mine, theirs_name) in pairs_of.items():
        total_d, total_g, total_t = [], [], []
        for seconds in [*lengths, None]:
            if seconds is None:
                d, g, t = np.concatenate(total_d), total_g, np.concatenate(total_t)
            else:
                d, g, t = [], [], []
                for i, (a, b) in enumerate(runs):
                    if a["groups"][seconds] != b["groups"][seconds]:
                        raise SystemExit(f"{pairs[i]}: not the same clips at {seconds:g} s")
                    ours = (a["results"][seconds][mine][:, 0] == 1).astype(float)
                    theirs = (b["results"][seconds][theirs_name][:, 0] == 1).astype(float)
                    d.append(ours - theirs)
                    t.append(theirs)
                    g += [f"{i}/{piece}" for piece in a["groups"][seconds]]
                d, t = np.concatenate(d), np.concatenate(t)
                total_d.append(d)
                total_t.append(t)
                total_g += g
            lo, hi = _ci(d, g, rng)
            label = "all" if seconds is None else f"{seconds:g} s"
            print(f"| {label} | {name} | {len(d)} | {100 * (t + d).mean():.1f} | "
                  f"{100 * t.mean():.1f} | {100 * d.mean():+.1f} [{lo:+.1f}, {hi:+.1f}] | "
                  f"{int(np.sum(d > 0))} / {int(np.sum(d < 0))} |")


def _recordings(ds, spans) -> dict[str, str]:
    """{FLAC path: piece} of the split's evaluation renditions."""
    flacs = {}
    for piece, group in spans.items():
        flac = Path(ds.root) / "pieces" / piece / f"{group[0]['rendition']}.flac"
        if flac.exists():
            flacs[str(flac.resolve())] = piece
    if not flacs:
        raise SystemExit(f"{ds.root} keeps no audio of this split (build it with --keep-audio)")
    return flacs


def _sheet_to_audio(index, ds, records, spans, embedder, flacs) -> None:
    """Every system as a query against the recordings cut into windows."""
    first, piece_hits, seen = [], [], set()
    for r in records:
        if (r["piece"], r["system"]) in seen:
            continue
        seen.add((r["piece"], r["system"]))
        occurrences = [s for s in spans[r["piece"]] if s["system"] == r["system"]]
        hits = query.search_sheet(index, embedder, ds.strip(r), top=max(KS))

        def correct(h, piece=r["piece"], occ=occurrences):
            if flacs.get(h["audio_path"]) != piece:
                return False
            return any(min(h["end"], s["end"]) - max(h["start"], s["start"])
                       >= 0.5 * min(h["end"] - h["start"], s["end"] - s["start"]) for s in occ)

        first.append(next((h["rank"] for h in hits if correct(h)), np.inf))
        piece_hits.append(bool(hits) and flacs.get(hits[0]["audio_path"]) == r["piece"])
    ranks = np.array(first, float)
    print(f"\nsystem -> recording place ({len(ranks)} systems, {index.audio.ntotal} windows of "
          f"{len(flacs)} recordings): R@1 {100 * np.mean(ranks <= 1):.1f}, R@5 "
          f"{100 * np.mean(ranks <= 5):.1f}, R@10 {100 * np.mean(ranks <= 10):.1f}, MRR "
          f"{np.mean(1 / ranks):.3f}, piece R@1 {100 * np.mean(piece_hits):.1f}")


if __name__ == "__main__":
    main()
