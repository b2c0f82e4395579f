"""Benchmark: does search say "no confident match" when the music is not in the index?

    python benchmarks/no_match.py --data DIR [--data DIR ...] --split valid --fit \
        [--stretch 0.5,0.66,1,1.33,2]
    python benchmarks/no_match.py --data DIR [--data DIR ...] --split test \
        [--tempi 0.5,0.66,1,1.33,2]

Each dataset's split is cut in two halves of its pieces (seeded): the systems of one half,
with their notes, are indexed; clips (5, 10 and 20 s, cycled) cut at random places of the
evaluation renditions of the indexed half are the *true* queries, clips of the other half
*not indexed*; noise of the same lengths (white, pink, sine, beeps, speech-like, hum) is made
up, and speech is spoken by eSpeak NG. Every clip goes through `confidence.search_audio`'s
steps (the input check, the evidence, the features) with the notes (evidence "notes") and,
from the same embedding, the model alone (evidence "image", as an index of scans would be
searched).

--fit (on a validation split): fits the logistic regression of each evidence (true clips
against all the others), sets the threshold that keeps 95 % of the true clips and prints the
`CALIBRATION` entry to paste into `search/confidence.py`. Without --fit: the share of each
kind of query flagged "no confident match" (or refused as no music) under the calibration the
package has, with 95 % intervals (cluster bootstrap: clips grouped by piece, noise clips each
on their own).

--read [READER]: the systems indexed as scans would be: no notes, the noteheads the note
reader reads off their images (evidence "read" in place of "notes"; --fit prints its entry);
`--read engraved`: the noteheads where the engraving put them (a reader that never errs: what
reading better could gain); `--read timed`: those noteheads placed by when they sound in score
time, not by x (a reader that also reads rhythm: what a real clock in place of x could gain).

--printed (without --read): the score's own notes, but each system's first pass only, the
systems laid end to end in printed order, as a read timeline lays them (a reader sees no repeat
signs): what the order a performance plays the systems in is worth. Where some indexed pieces
replay a system (a repeat, a da capo), the report adds the others flagged at the threshold that
keeps 95 % of the true clips of the pieces that replay none.

--jumps P|off: the penalty of a jump back to a piece's opening in the timeline
(`notes.NoteMatcher`'s jumps): for read notes it sets `reading.READ_JUMPS` for the run
(default: as shipped); with --printed, the score's notes in printed order may jump too
(default: they may not), as a read timeline does: how much of the playing order the jumps
recover.

--solo: every indexed piece in an index of its own (a user's index of one score): a true clip
asks its own piece's index, any other clip a random indexed piece's. Its queries have no other
piece to compare with, so they are judged by the calibrations of one-piece queries (keys
evidence + "/solo", features without the piece gap and the sub-window agreement); --fit prints
those.

--per-index K: the indexed pieces in indexes of K pieces each (a small library), judged as
search judges them: a clip whose candidates held one piece by the one-piece calibrations.

--distractors DIR:SPLIT:N (repeatable): also index N pieces of dataset DIR's split SPLIT
(drawn, seeded), never asked for: a larger index, as a user's collection is (their clips are
neither true nor "not indexed"). The test split's index holds 445 systems, validation's 278;
training pieces as distractors make validation's as large (pieces the reader was trained on).
DIR:SPLIT:N1,N2,... measures the same clips with indexes of several sizes (N1 pieces, then N2,
...; 0 for none; every dataset as many counts), reported size by size; --fit fits on them all
together. Each row keeps every evidence's 50 best candidates (score or cost, piece), so that
new features can be studied on the cached clips.

--against-read READER (with --read): the same clips and indexes, read by another note reader
(measured, or taken from the cache): the true clips' fused piece right of both, paired, with a
95 % interval by piece, at every size of the index (how two readers compare in a collection).

--against-jumps P|off (with --read): the same clips and indexes with the read timelines' jumps
set so (measured, or taken from the cache): the true clips' fused piece and system right of
both, paired, at every size of the index.

--rendition any: pieces with no evaluation rendition (a dataset_view.py view of the real-scan
corpus's training sonatas, as search_quality.py --rendition any) give their first performance,
at tempo 1; pieces that have one keep it.

--tempi: renditions at these tempo ratios where the dataset has them (test); --stretch: the
spectrogram resampled in time by these ratios (valid has tempo 1.0 only). Dataset clips are
spectrograms read from the dataset (no samples), so the silence check applies to noise only.
"""

from __future__ import annotations

import argparse
import pickle
import time
from datetime import date
from pathlib import Path

import numpy as np
from _machine import machine  # benchmarks/_machine.py
from search_quality import first_renditions  # benchmarks/search_quality.py

from scorelink.constants import FPS, SAMPLE_RATE
from scorelink.data.spectrogram import spectrogram
from scorelink.data.store import Dataset
from scorelink.errors import DatasetError
from scorelink.evaluate.retrieval import eval_records
from scorelink.search import collect, confidence, query, reading
from scorelink.search.embed import Embedder
from scorelink.search.index import Index, Pending
from scorelink.search.notes import ONSET_SHARE, NoteMatcher
from scorelink.search.reading import READ_SHINGLE_HITS

NOISES = ("white", "pink", "sine", "beeps", "speech-like", "hum", "speech")
# speech: sentences of random words spoken by eSpeak NG (Debian's espeak-ng, installed by `make
# setup`) in one of these voices, at a random rate and pitch
VOICES = ("en-us", "en-gb", "de", "fr-fr", "es", "it", "nl", "pl")
WORDS = ("the piano was played again after the concert while we waited for the train to "
         "Vienna and nobody knew why the second movement sounded so different this evening "
         "music book page morning river number seven yesterday people listen slowly "
         "bright window table answer question never always").split()


def make_noise(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Float32 samples of a made-up non-music clip at SAMPLE_RATE, RMS about -20 dBFS."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind == "pink":  # 1/f power: white noise shaped in the frequency domain
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        x = np.fft.irfft(spec / np.sqrt(np.maximum(f, 20.0)), n)
    elif kind == "sine":
        x = np.sin(2 * np.pi * rng.uniform(80, 2000) * t)
    elif kind == "beeps":  # one pitch, on 0.15-0.4 s, off as long
        f, period = rng.uniform(400, 2500), rng.uniform(0.3, 0.8)
        x = np.sin(2 * np.pi * f * t) * ((t % period) < period / 2)
    elif kind == "speech-like":  # a gliding voiced source through moving formants, syllables
        f0 = 120 * 2 ** (0.3 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t)
                         + 0.1 * np.cumsum(rng.standard_normal(n)) / np.sqrt(n))
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        src = sum(np.sin(k * phase) / k for k in range(1, 30))
        x = np.zeros(n)
        for lo, hi in ((300, 900), (900, 2500), (2400, 3500)):
            centre = lo + (hi - lo) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 4) * t
                                                          + rng.uniform(0, 6)))
            x += src * np.exp(-((k_harm(f0, centre)) ** 2))
        x *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 6) * t) ** 2
        x += 0.05 * rng.standard_normal(n)
    elif kind == "speech":
        x = speech(seconds, rng)
    elif kind == "hum":
        base = rng.choice([50.0, 60.0])
        x = sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6)) / k for k in range(1, 8))
    else:
        raise ValueError(kind)
    x = np.asarray(x, np.float64)
    return (0.1 * x / (np.sqrt(np.mean(x * x)) + 1e-12)).astype(np.float32)


def speech(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """`seconds` of eSpeak NG reading random words (float64 at SAMPLE_RATE)."""
    import io
    import shutil
    import subprocess

    import soundfile
    from scipy.signal import resample_poly

    if shutil.which("espeak-ng") is None:
        raise SystemExit("the speech clips need eSpeak NG: `make setup` installs it "
                         "(Debian package espeak-ng)")
    out = np.zeros(0)
    while len(out) < seconds * SAMPLE_RATE:
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(12, 25))))
        wav = subprocess.run(
            ["espeak-ng", "--stdout", "-v", str(rng.choice(VOICES)),
             "-s", str(int(rng.integers(120, 200))), "-p", str(int(rng.integers(25, 75))), text],
            check=True, capture_output=True).stdout
        x, rate = soundfile.read(io.BytesIO(wav), dtype="float64")
        if rate != SAMPLE_RATE:
            x = resample_poly(x, SAMPLE_RATE, rate)
        out = np.concatenate([out, x, np.zeros(int(0.3 * SAMPLE_RATE))])
    return out[: int(seconds * SAMPLE_RATE)]


def k_harm(f0: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Distance (in units of 300 Hz) from the formant centre to the nearest harmonic of f0."""
    k = np.maximum(np.round(centre / f0), 1)
    return (k * f0 - centre) / 300.0


def stretch(spec: np.ndarray, ratio: float) -> np.ndarray:
    """(N_BINS, T) spectrogram played `ratio` times as fast: (N_BINS, round(T / ratio))."""
    if ratio == 1:
        return spec
    n = max(2, int(round(spec.shape[1] / ratio)))
    src = np.linspace(0, spec.shape[1] - 1, n)
    a = np.floor(src).astype(int)
    b = np.minimum(a + 1, spec.shape[1] - 1)
    w = (src - a)[None]
    return ((1 - w) * spec[:, a] + w * spec[:, b]).astype(np.float32)


def measure(args) -> dict:
    """Build the index and compute every clip's features (cached under --cache)."""
    embedder = Embedder.load(args.checkpoint)
    key = "-".join([*(Path(d).name for d in args.data), args.split, str(args.seed),
                    str(args.clips), str(args.noise), args.seconds, args.tempi, args.stretch,
                    embedder.fingerprint[:16], str(len(NOISES)),
                    # the features computed: a cache of fewer is computed afresh
                    f"f{len(confidence.FEATURES['image'])}{len(confidence.FEATURES['notes'])}"
                    f"a{confidence.ATTACK_CAP:g}",
                    *([f"read-{_reader_key(args.read)}-h{READ_SHINGLE_HITS}"]
                      if args.read else []),
                    *(["printed"] if args.printed else []),
                    *(["solo"] if args.solo else []),
                    *([f"k{args.per_index}"] if args.per_index else []),
                    *("d" + Path(d).name for d in args.distractors),
                    *(["any"] if args.rendition == "any" else [])])
    # the clips' features depend on the read notes' frame features too (the index does not)
    jumps = _jumps(args)
    features_key = key + (f"-o{ONSET_SHARE:g}" if args.read and ONSET_SHARE else "") + (
        f"-j{jumps:g}" if jumps is not None else "")
    cache = Path(args.cache) / f"no-match-{features_key}.pkl" if args.cache else None
    if cache and cache.exists():
        return pickle.loads(cache.read_bytes())
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    pending: dict[Path, Pending] = {}  # index folder -> what goes into it
    sets = []  # (dataset, {tempo: records}, indexed pieces, other pieces)
    for root in args.data:
        ds = Dataset(root)
        tempi = {}
        for t in [float(x) for x in args.tempi.split(",")]:
            try:
                tempi[t] = eval_records(ds, split=args.split, tempo=t)
            except DatasetError:  # a dataset without renditions at this tempo (the real-scan
                if t == 1.0:  # corpus, beside datasets that have them): its clips at tempo 1
                    raise
                tempi[t] = []
        if args.rendition == "any":  # pieces with no evaluation rendition (the real-scan
            # corpus's training sonatas in a view): each one's first performance, at tempo 1
            have = {r["piece"] for r in tempi[1.0]}
            tempi[1.0] = tempi[1.0] + [r for r in first_renditions(ds.records(split=args.split))
                                       if r["piece"] not in have]
        pieces = sorted({r["piece"] for r in tempi[1.0]})
        order = rng.permutation(len(pieces))
        half = {pieces[i] for i in order[: len(pieces) // 2]}
        sets.append((ds, tempi, sorted(half), sorted(set(pieces) - half)))
    work = Path(args.cache or "/tmp") / f"no-match-index-{key}"
    # --solo: an index of each indexed piece alone; --per-index K: of K pieces (in their
    # order); else one index of them all
    k = 1 if args.solo else args.per_index
    groups = [(root, set(half[i:i + k]), work / f"{Path(root).name}-{i}")
              for root, (_, _, half, _) in zip(args.data, sets, strict=True)
              for i in range(0, len(half), k)] if k else [
        (root, set(half), work) for root, (_, _, half, _) in zip(args.data, sets, strict=True)]
    home = {p: folder for _, pieces, folder in groups for p in pieces}
    if args.distractors and not (work / "index.json").exists():  # more pieces in the one
        # index, never asked for (one rendition a piece: its systems)
        draw = np.random.default_rng(args.seed + 2)  # apart: the clips stay those without
        for spec in args.distractors:
            root, split, count = spec.rsplit(":", 2)
            records = Dataset(root).records(split=split)
            extra = sorted({r["piece"] for r in records})
            drawn = {extra[i] for i in draw.permutation(len(extra))[:int(count)]}
            pending.setdefault(work, Pending()).extend(collect.from_dataset(
                root, embedder, split=split, recordings=False, pieces=drawn,
                records=first_renditions(records), read=args.read, printed=args.printed))
    # the systems of the renditions the clips are cut from (the evaluation rendition at tempo
    # 1, with --rendition any also the first performance of pieces that have none)
    played = {root: tempi[1.0] for root, (_, tempi, _, _) in zip(args.data, sets, strict=True)}
    for root, pieces, folder in groups:
        if not (folder / "index.json").exists():
            pending.setdefault(folder, Pending()).extend(collect.from_dataset(
                root, embedder, split=args.split, recordings=False, pieces=pieces,
                records=played[root], read=args.read, printed=args.printed))
    for folder, items in pending.items():
        Index.write(folder, items, model_name=embedder.name, fingerprint=embedder.fingerprint,
                    dim=embedder.dim)
    indexes = {folder: Index(folder) for folder in {folder for _, _, folder in groups}}
    if args.printed and jumps is not None:  # an index's notes are as played and never jump
        # (`Index.note_matcher`): the printed order's matcher, made here and kept by the index
        for index in indexes.values():
            piece = {r["id"]: r["piece"]
                     for r in index.db.execute("SELECT id, piece FROM systems")}
            index._matcher = NoteMatcher(index.notes(), piece, jumps=jumps)
    build_s = time.perf_counter() - t0

    seconds = [float(s) for s in args.seconds.split(",")]
    ratios = [float(s) for s in args.stretch.split(",")] if args.stretch else [1.0]
    clips = []  # {"kind", "group", "seconds", "spec", "samples"?, "truth"?}
    for ds, tempi, indexed, other in sets:
        for kind, pieces in (("true", indexed), ("not indexed", other)):
            for k in range(args.clips):
                sec, ratio = seconds[k % len(seconds)], ratios[(k // len(seconds)) % len(ratios)]
                tempo = list(tempi)[k % len(tempi)]
                piece = pieces[rng.integers(len(pieces))]
                group = [r for r in tempi[tempo] if r["piece"] == piece]
                if not group:  # played at tempo 1 only (--rendition any; a dataset without tempi)
                    tempo, group = 1.0, [r for r in tempi[1.0] if r["piece"] == piece]
                full = ds.rendition_spec(group[0])
                need = int(round(sec * FPS * ratio))
                length = min(need, full.shape[1])
                a = int(rng.integers(full.shape[1] - length + 1))
                mid = a + length // 2
                holding = [r["system"] for r in group if r["start_frame"] <= mid < r["end_frame"]]
                spec = stretch(np.asarray(full[:, a:a + length], np.float32), ratio)
                clips.append({"kind": kind, "group": piece, "seconds": sec, "spec": spec,
                              "truth": (piece, holding[0] if holding else None),
                              "tempo": tempo * ratio})
    for kind in NOISES:
        for k in range(args.noise):
            samples = make_noise(kind, seconds[k % len(seconds)], rng)
            clips.append({"kind": kind, "group": f"{kind}-{k}", "seconds": seconds[k % 3],
                          "spec": spectrogram(samples), "samples": samples})

    # several indexes: a true clip asks its own piece's, any other clip a random one's (drawn
    # apart, so that the clips are those of a run with one index)
    pick = np.random.default_rng(args.seed + 1)
    folders = sorted(indexes)
    rows, cpu = [], []
    for c in clips:
        index = indexes[home[c["group"]] if c["kind"] == "true"
                        else folders[pick.integers(len(folders))]]
        c0 = time.process_time()
        row = {k: v for k, v in c.items() if k not in ("spec", "samples")}
        row["index"] = index.root.name
        row["flatness"] = confidence.spectral_flatness(c["spec"])
        row["dbfs"] = confidence.rms_dbfs(c["samples"]) if "samples" in c else None
        evidence = query.audio_evidence(index, embedder, c["spec"], notes=True)
        feats = confidence.query_features(index, embedder, c["spec"], evidence)
        row["features"] = feats
        for path in (_paths(args)):
            hits = query.fuse(index, evidence, top=1, paths="image"
                              if _evidence(path) == "image" else "fused")
            row[f"top_{path}"] = ((hits[0]["piece"], hits[0]["system_in_piece"] - 1) if hits
                                  else None)
        rows.append(row)
        cpu.append(time.process_time() - c0)
        # each evidence's 50 best candidates (score or cost, piece): for studying new features
        # on the cached clips (not timed: search does not do it)
        ids = {kind: sorted(evidence.get(kind) or {}, key=lambda i, k=kind: (
            -evidence[k][i] if k == "image" else evidence[k][i]))[:50]
            for kind in ("image", "notes", "read")}
        pieces = {r["id"]: r["piece"] for r in index.rows("sheet", sorted(set().union(
            *ids.values())))}
        row["ranked"] = {kind: [(float(evidence[kind][i]), pieces[i]) for i in found]
                         for kind, found in ids.items()}
    out = {"rows": rows, "build_s": build_s, "cpu_ms": 1000 * float(np.median(cpu)),
           "systems": sum(i.sheet.ntotal for i in indexes.values()), "indexes": len(indexes),
           "model": embedder.name, "fingerprint": embedder.fingerprint,
           "names": [f"{Path(d).name} {args.split}" for d in args.data]}
    for index in indexes.values():
        index.close()
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps(out))
    return out


def _jumps(args) -> float | None:
    """The jump penalty of the run's timeline (`--jumps`): read notes' as shipped unless set,
    the score's notes' in printed order none unless set, as played none."""
    if args.read:
        return reading.READ_JUMPS
    if args.printed and args.jumps not in (None, "off"):
        return float(args.jumps)
    return None


def _reader_key(read: bool | str) -> str:
    """The reader's weights (the shipped one's or the checkpoint's digest): the cache key, and
    the key of the read calibration's entry; "engraved" and "timed" for the engraving's own
    noteheads, by x and by score time)."""
    from scorelink.models.reader_file import reader_digest

    if read in collect.ENGRAVED_HEADS:
        return read
    return reader_digest(read if isinstance(read, str) else None)


def _read_key(args, path: str) -> str:
    """The CALIBRATION key of a calibration: the read notes' is keyed by the reader."""
    if _evidence(path) != "read":
        return path
    return f"read:{_reader_key(args.read)}{path.removeprefix('read')}"


def _paths(args) -> tuple[str, str]:
    """The calibrations judged: the notes' (or the read notes', --read) and the image's; with
    --solo, those of one-piece queries (evidence + confidence.SOLO)."""
    solo = confidence.SOLO if args.solo else ""
    return ("read" + solo if args.read else "notes" + solo, "image" + solo)


def _evidence(path: str) -> str:
    """A calibration's evidence: "notes", "read" or "image"."""
    return path.removesuffix(confidence.SOLO)


def feature_matrix(rows: list[dict], path: str, coef=None, count: int = 0) -> np.ndarray:
    """The features a calibration entry `coef` weighs (all, or the first `count`, without)."""
    names = (confidence.feature_names(path, coef) if coef is not None
             else confidence.FEATURES[path][:count or None])
    # a clip the evidence found nowhere (a noise clip the notes aligned to nothing in a small
    # index): NaN, never flagged by this calibration (search would judge it by the image's)
    return np.array([[r["features"][_evidence(path)].get(n, np.nan) for n in names]
                     for r in rows], np.float64)


def judged(rows: list[dict], path: str, table: dict) -> tuple[np.ndarray, np.ndarray]:
    """Each clip's confidence and threshold, as search judges it: by `path`'s calibration, or
    by its one-piece calibration (path + SOLO) where the clip's candidates held one piece."""
    conf, thr = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    for i, r in enumerate(rows):
        key = path if confidence.SOLO in path else confidence.evidence_key(
            path, r["features"][_evidence(path)])
        if key in table:
            conf[i] = confidence.confidence(table[key], list(feature_matrix([r], key,
                                                                            table[key])[0]))
            thr[i] = table[key][-1]
    return conf, thr


def verdicts(rows: list[dict], conf: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """True where a clip is flagged (refused, or its confidence `conf` under `thr`; `judged`)."""
    return np.array([r["refused"] for r in rows]) | (conf < thr)


def interval(flags: np.ndarray, groups: list[str], rng, n: int = 2000) -> tuple[float, float]:
    names = sorted(set(groups))
    by = {g: [] for g in names}
    for f, g in zip(flags, groups, strict=True):
        by[g].append(f)
    sums = np.array([np.sum(by[g]) for g in names], float)
    counts = np.array([len(by[g]) for g in names], float)
    pick = rng.integers(len(names), size=(n, len(names)))
    stats = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    return tuple(100 * np.percentile(stats, [2.5, 97.5]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", action="append", required=True, help="a dataset folder")
    p.add_argument("--split", default="valid")
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--clips", type=int, default=100, help="true and not-indexed clips a dataset")
    p.add_argument("--noise", type=int, default=20, help="clips of each kind of noise")
    p.add_argument("--seconds", default="5,10,20")
    p.add_argument("--tempi", default="1", help="rendition tempo ratios (where the split has)")
    p.add_argument("--stretch", default="", help="time-stretch ratios, e.g. 0.5,0.66,1,1.33,2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rendition", choices=("eval", "any"), default="eval",
                   help="any: a dataset whose split has no evaluation rendition (a view of the "
                        "real-scan corpus's training sonatas) gives each piece's first one")
    p.add_argument("--fit", action="store_true", help="fit and print the CALIBRATION entry")
    p.add_argument("--cache", help="a folder for the index and the clips' features")
    p.add_argument("--read", nargs="?", const=True, default=False, metavar="READER",
                   help="index the systems as scans: read noteheads in place of notes (a "
                        "reader checkpoint; 'engraved': the engraving's noteheads; 'timed': "
                        "the same placed by their score time)")
    p.add_argument("--printed", action="store_true",
                   help="the score's notes in printed order, each system once (repeats not "
                        "unfolded), as a read timeline lays systems")
    p.add_argument("--jumps", metavar="P|off",
                   help="the penalty of a jump back to a piece's opening: read notes' for the run "
                        "(default: as shipped), the score's notes' with --printed (default: none)")
    p.add_argument("--against-jumps", metavar="P|off",
                   help="with --read: the same clips with these jumps (measured, or cached): "
                        "true clips' fused piece and system right, paired")
    p.add_argument("--per-index", type=int, default=0, metavar="K",
                   help="indexes of K of the indexed pieces each (a small library): true clips "
                        "ask their piece's, the others a random one's; judged as search judges "
                        "(one-piece queries by the /solo calibrations)")
    p.add_argument("--distractors", action="append", default=[], metavar="DIR:SPLIT:N",
                   help="also index N pieces of dataset DIR's split SPLIT, never asked for "
                        "(a larger index); repeatable; N1,N2,...: indexes of several sizes")
    p.add_argument("--solo", action="store_true",
                   help="an index of each indexed piece alone: true clips ask their own "
                        "piece's, the others a random piece's (the calibrations of one-piece "
                        "queries, evidence + /solo)")
    p.add_argument("--against-read", metavar="READER",
                   help="with --read: the same clips and indexes read by this other reader "
                        "(measured, or cached): true clips' fused piece right, paired")
    p.add_argument("--features", type=int, default=0,
                   help="with --fit: fit on the first N features of each evidence (default all; "
                        "an ablation of the later ones on the same clips)")
    args = p.parse_args()
    args.tempi = ",".join(f"{float(t):g}" for t in args.tempi.split(","))
    import torch

    torch.set_num_threads(1)  # one query at a time, as a user's: CPU time of one thread

    if args.fit and args.per_index:
        raise SystemExit("--per-index measures the calibrations fitted with one index "
                         "(and with --solo); it fits none")
    if args.printed and args.read:
        raise SystemExit("--printed lays out the score's notes: not with --read")
    if args.against_jumps is not None and not args.read:
        raise SystemExit("--against-jumps compares read timelines: give --read too")
    if args.against_read and not args.read:
        raise SystemExit("--against-read compares two readers: give --read too")
    if args.distractors and (args.solo or args.per_index):
        raise SystemExit("--distractors goes with one index (not --solo or --per-index)")
    if args.jumps is not None and not (args.read or args.printed):
        raise SystemExit("--jumps is for a timeline in printed order: give --read or --printed")
    if args.jumps is not None and args.read:
        reading.READ_JUMPS = None if args.jumps == "off" else float(args.jumps)
    sizes = distractor_sizes(args.distractors)
    runs = []  # one a size of the index: the same clips, more distractors
    for specs in sizes:
        m = measure(argparse.Namespace(**{**vars(args), "distractors": specs}))
        for r in m["rows"]:  # the input check, from the measured level and flatness (as
            # check_clip)
            r["refused"] = bool((r["dbfs"] is not None and r["dbfs"] < confidence.SILENT_DBFS)
                                or r["flatness"] > confidence.FLAT_SPECTRUM)
            r["systems"] = m["systems"]
        runs.append((specs, m))
    m, rows = runs[0][1], runs[0][1]["rows"]
    fp = m["fingerprint"][:16]
    cmd = " ".join(["python benchmarks/no_match.py", *(f"--data {d}" for d in args.data),
                    f"--split {args.split} --clips {args.clips} --noise {args.noise}",
                    *([f"--tempi {args.tempi}"] if args.tempi != "1" else []),
                    *(["--rendition any"] if args.rendition == "any" else []),
                    *([f"--stretch {args.stretch}"] if args.stretch else []),
                    *([f"--checkpoint {args.checkpoint}"] if args.checkpoint else []),
                    *(["--fit"] if args.fit else []),
                    *([f"--read {args.read}" if isinstance(args.read, str) else "--read"]
                      if args.read else []),
                    *([f"--features {args.features}"] if args.features else []),
                    *(["--printed"] if args.printed else []),
                    *([f"--jumps {args.jumps}"] if args.jumps is not None else []),
                    *([f"--against-jumps {args.against_jumps}"]
                      if args.against_jumps is not None else []),
                    *(["--solo"] if args.solo else []),
                    *(f"--distractors {d}" for d in args.distractors),
                    *([f"--per-index {args.per_index}"] if args.per_index else [])])
    print(f"### No match: {args.split} ({date.today()})\n")
    print(f"- machine: {machine()}; model {m['model']} (fingerprint {fp})")
    print(f"- `{cmd}`")
    kinds = ", ".join(f"{sum(r['kind'] == k for r in rows)} {k}"
                      for k in ("true", "not indexed", *NOISES))
    for specs, m in runs:
        true = [r for r in m["rows"] if r["kind"] == "true"]
        print(f"- index: {m['systems']} systems (with notes) of the indexed half of "
              f"{', '.join(m['names'])}"
              + (f" and distractors ({', '.join(specs)})" if specs else "")
              + (f", in {m['indexes']} indexes of {1 if args.solo else args.per_index} piece(s):"
                 " a true clip asks its own piece's, the others a random one's"
                 if m["indexes"] > 1 else "")
              + f", built in {m['build_s']:.0f} s; {len(rows)} clips of "
              f"{args.seconds} s: {kinds}; features CPU time p50 {m['cpu_ms']:.0f} ms a clip")
        for path in _paths(args):
            right = np.mean([piece_right(r, path) for r in true])
            system = np.mean([r[f"top_{path}"] == r["truth"] for r in true])
            print(f"  - true clips, "
                  f"{'image only' if _evidence(path) == 'image' else f'fused ({path})'}: the "
                  f"best answer's piece right {100 * right:.1f} %, its system {100 * system:.1f} %")
        if args.against_read:
            other = measure(argparse.Namespace(**{**vars(args), "distractors": specs,
                                                  "read": args.against_read}))
            paired = paired_right(m["rows"], other["rows"], _paths(args)[0], args.against_read)
            print(f"  - {paired}")
        if args.against_jumps is not None:
            shipped = reading.READ_JUMPS
            reading.READ_JUMPS = None if args.against_jumps == "off" else float(args.against_jumps)
            try:
                other = measure(argparse.Namespace(**{**vars(args), "distractors": specs}))
            finally:
                reading.READ_JUMPS = shipped
            for what in ("piece", "system"):
                print("  - " + paired_right(m["rows"], other["rows"], _paths(args)[0],
                                            f"--jumps {args.against_jumps}", what=what))
    refused = [r for r in rows if r["refused"]]
    print(f"- refused as no music (input check: RMS under {confidence.SILENT_DBFS:g} dBFS or "
          f"spectral flatness over {confidence.FLAT_SPECTRUM:g}): {len(refused)} clips: "
          + ", ".join(f"{sum(r['kind'] == k for r in refused)} {k}"
                      for k in ("true", "not indexed", *NOISES)))
    flat = {k: [r["flatness"] for r in rows if r["kind"] == k] for k in ("true", *NOISES)}
    print("- spectral flatness, min / median / max: " + "; ".join(
        f"{k} {min(v):.2f} / {np.median(v):.2f} / {max(v):.2f}" for k, v in flat.items() if v))
    for path in ("notes", "read"):  # the reverse gap (`confidence.reverse_cost`)
        gaps = {k: [r["features"][path]["reverse_gap"] for r in rows if r["kind"] == k
                    and "reverse_gap" in (r["features"].get(path) or {})]
                for k in ("true", "not indexed")}
        if all(gaps.values()):
            print(f"- {path}: the reverse gap, 5th / 50th / 95th percentile: " + "; ".join(
                f"{k} " + " / ".join(f"{q:.2f}" for q in np.percentile(v, [5, 50, 95]))
                for k, v in gaps.items()))
    print()

    table = dict(confidence.CALIBRATION.get(fp, {}))
    if args.read:  # the entry fitted with this reader
        for path in ("read", "read" + confidence.SOLO):
            table.pop(path, None)
            if _read_key(args, path) in table:
                table[path] = table[_read_key(args, path)]
    if args.fit:  # on the clips of every size of the index together
        table = fitted(args, [r for _, m in runs for r in m["rows"]], fp, m)
    if not table:
        print(f"(no calibration for {fp}: run with --fit on a validation split first)")
        return
    for specs, m in runs:
        if len(runs) > 1:
            print(f"#### An index of {m['systems']} systems"
                  f" ({', '.join(specs) if specs else 'no distractors'})\n")
        report(args, m["rows"], table)


def piece_right(row: dict, path: str) -> bool:
    """Whether a true clip's best answer by calibration path `path`'s ranking names its piece."""
    top = row[f"top_{path}"]
    return top is not None and top[0] == row["truth"][0]


def system_right(row: dict, path: str) -> bool:
    """Whether a true clip's best answer by `path`'s ranking is the system holding its middle."""
    return row[f"top_{path}"] == row["truth"]


def paired_right(rows: list[dict], other: list[dict], path: str, name: str, *,
                 what: str = "piece") -> str:
    """True clips' piece (or system) right by `path`'s ranking (the fused read notes), this
    run's `rows` against another's `other` on the same clips (another reader, other jumps): the
    difference in points with a 95 % interval by piece (clusters)."""
    same = [(r["kind"], r["group"], r.get("truth"), r["seconds"]) for r in rows]
    if same != [(r["kind"], r["group"], r.get("truth"), r["seconds"]) for r in other]:
        raise SystemExit(f"against {name}: not the same clips")
    right = piece_right if what == "piece" else system_right
    pairs = [(float(right(a, path)), float(right(b, path)), a["group"])
             for a, b in zip(rows, other, strict=True) if a["kind"] == "true"]
    diff = np.array([a - b for a, b, _ in pairs])
    lo, hi = interval(diff, [g for _, _, g in pairs], np.random.default_rng(0))
    return (f"against {name} on the same clips, fused ({path}) {what} right: "
            f"{100 * np.mean([a for a, _, _ in pairs]):.1f} against "
            f"{100 * np.mean([b for _, b, _ in pairs]):.1f} %, {100 * diff.mean():+.1f} "
            f"[{lo:+.1f}, {hi:+.1f}] ({int((diff > 0).sum())} gained, "
            f"{int((diff < 0).sum())} lost)")


def distractor_sizes(specs: list[str]) -> list[list[str]]:
    """--distractors DIR:SPLIT:N[,N2...] -> the distractors of each size of the index (one
    list of DIR:SPLIT:N a size, counts of 0 left out; [[]] without distractors)."""
    if not specs:
        return [[]]
    parsed = [spec.rsplit(":", 2) for spec in specs]
    counts = [count.split(",") for _, _, count in parsed]
    if len({len(c) for c in counts}) != 1:
        raise SystemExit("--distractors: give every dataset as many counts (DIR:SPLIT:N1,N2)")
    return [[f"{root}:{split}:{int(c[i])}" for (root, split, _), c in
             zip(parsed, counts, strict=True) if int(c[i])] for i in range(len(counts[0]))]


def fitted(args, rows: list[dict], fp: str, m: dict) -> dict:
    """Fit each calibration on the clips (true clips against all the others), print its
    `CALIBRATION` entry and return {path: coefficients and threshold}."""
    y = np.array([r["kind"] == "true" for r in rows], float)
    out = {}
    for path in _paths(args)[::-1]:
        x = feature_matrix(rows, path, count=args.features)
        found = ~np.isnan(x).any(axis=1)
        coef = [float(f"{c:.6g}") for c in confidence.fit(x[found], y[found])]  # as printed
        conf = np.array([confidence.confidence((*coef, 0.0), list(v)) for v in x])
        thr = np.floor(confidence.keep_threshold(conf[(y == 1) & found]) * 1e6) / 1e6
        out[path] = (*coef, float(thr))
        flagged = verdicts(rows, *judged(rows, path, {path: out[path]}))
        print(f"- {path}: at the threshold {thr:.4f}, {100 * np.mean(~flagged[y == 1]):.1f} "
              f"% of true clips kept, {100 * np.mean(flagged[y == 0]):.1f} % of the others "
              "flagged" + (f" (every size of the index: {len(rows)} clips)"
                           if len({r["systems"] for r in rows}) > 1 else ""))
    print(f"\n    \"{fp}\": {{  # {m['model']}, {date.today()}, "
          f"fitted on {', '.join(m['names'])}")
    for path in _paths(args)[::-1]:
        print(f"        \"{_read_key(args, path)}\": {out[path]},")
    print("    },\n")
    return out


def replaying_pieces(args) -> set[str]:
    """The pieces of the datasets' split that play a system more than once (a repeat, a da
    capo), in any of their renditions."""
    return {r["piece"] for d in args.data for r in Dataset(d).records(split=args.split)
            if r["occurrence"]}


def report(args, rows: list[dict], table: dict) -> None:
    """What each calibration flags: by the shipped threshold, and at the threshold that keeps
    95 % of these true clips (the target's wording), with 95 % intervals by kind of query."""
    rng = np.random.default_rng(0)
    y = np.array([r["kind"] == "true" for r in rows])
    replaying = replaying_pieces(args)  # their clips may cross a jump back
    pieces = {r["group"] for r in rows if r["kind"] == "true"}
    paths = [p for p in _paths(args) if p in table]
    scored = {path: judged(rows, path, table) for path in paths}  # (confidence, threshold)
    flags = {path: verdicts(rows, *scored[path]) for path in paths}
    for path in paths:
        conf, flagged = scored[path][0], flags[path]
        own = confidence.keep_threshold(conf[y])
        others = verdicts(rows, conf, own)
        tempi = sorted({r["tempo"] for r in rows if r["kind"] == "true"})
        kept = {t: [not f for f, r in zip(flagged, rows, strict=True)
                    if r["kind"] == "true" and r["tempo"] == t] for t in tempi}
        by_tempo = ", ".join(f"{t:g}: {100 * np.mean(k):.1f}" for t, k in kept.items())
        print(f"- {path}: the calibration's threshold {table[path][-1]:g} keeps "
              f"{100 * np.mean(~flagged[y]):.1f} % of these true clips (by tempo ratio "
              f"{by_tempo}); "
              f"at the threshold that keeps 95 % of them ({own:.4f}, chosen on these clips: the "
              f"target's wording, not shipped) {100 * np.mean(others[~y]):.1f} % of the others "
              "are flagged")
        plain = y & np.array([r["group"] not in replaying for r in rows])
        if plain.sum() < y.sum():  # clips of pieces whose systems play in printed order only
            own = confidence.keep_threshold(conf[plain])
            print(f"  - the same for the true clips of pieces that replay no system (a repeat, "
                  f"a da capo; {plain.sum()} of {y.sum()}; {len(replaying & pieces)} pieces "
                  f"that do set aside): at the threshold that keeps 95 % of them "
                  f"({own:.4f}) {100 * np.mean(verdicts(rows, conf, own)[~y]):.1f} % of the "
                  "others are flagged")
    print()
    print("| evidence | queries | n | flagged \"no confident match\" % [95 % interval] |")
    print("|---|---|---|---|")
    for path, flagged in flags.items():
        for kind in ("true", "not indexed", *NOISES, "all but true"):
            pick = [i for i, r in enumerate(rows)
                    if (r["kind"] != "true" if kind == "all but true" else r["kind"] == kind)]
            if not pick:
                continue
            f = flagged[pick]
            lo, hi = interval(f, [rows[i]["group"] for i in pick], rng)
            print(f"| {path} | {kind} | {len(pick)} | {100 * f.mean():.1f} [{lo:.1f}, {hi:.1f}] |")
    print()


if __name__ == "__main__":
    main()
