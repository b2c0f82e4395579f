"""Benchmark: name an unseen piano piece from a 15 s clip, as a new user meets it.

    python benchmarks/piece_id.py --beethoven-dir ../shared/data/beethoven
    python benchmarks/piece_id.py --beethoven-dir ../shared/data/beethoven --checkpoint chorales
    python benchmarks/piece_id.py ... --pieces 12 --clips 5 --seconds 15 --json out.json
    python benchmarks/piece_id.py ... --checkpoint OTHER --against out.json   # paired
    python benchmarks/piece_id.py --beethoven-dir DIR --from a.json --against b.json

Pieces: movements of the Beethoven kern collection (../shared/data/beethoven/kern), taken only
from the sonatas in the test split of the real-scan corpus (`data build --corpus beethoven
--seed S` splits by sonata; the same function decides here), so that a model trained on that
corpus's training split has still never seen them. `--pieces N` of them, drawn with
`--clip-seed` when the split holds more (all of them when it holds fewer: the report says so).
Beside them, `--music21 WORK ...` piano pieces of music21's own corpus (by default five: a rag,
two Schoenberg miniatures, a Chopin mazurka and a C. P. E. Bach sonata movement, none of them
in MSMD, the built-in corpus or the real-scan corpus), copied under --work with their path as
their name, so that the test split's 7 movements and these make a dozen.

Sheet side: the kern files indexed as a user indexes scores (`index_collection(scores=...)`, the
code behind `scorelink index --scores`): engraved by Verovio, systems cut and embedded, and
their notes kept. Audio side: each piece played from those notes (Verovio's performance of the
score at its own tempo, repeats unfolded: what `data build --scores` synthesises) by FluidSynth
in the held-out test piano (`--soundfont`, default musescore-grand, which no training or
validation hears). From each recording `--clips` clips of `--seconds` at seeded random places
are read as `scorelink search --audio REC --start A --end B --by piece` reads them, and ranked:

- fused: what `search --audio` answers (the model and the notes matcher together);
- model: `search_audio(notes=False)`, the passage model alone;
- notes: the notes matcher's ranking within the same evidence (its candidates include the
  model's proposals, so it is not entirely model-free).

`--audio performance` plays one human performance of each Beethoven movement instead (the
corpus's nASAP MIDI, drawn with --clip-seed: real timing, dynamics and pedal, as `data build
--corpus beethoven` renders its test split; the music21 pieces, which have none, are left out).
Score audio is the notes matcher's best case: the clip sounds exactly the notes the index keeps, at
their tempo.

Scores: top-1 / top-3 % of clips whose piece comes first / among the first three, MRR, with
95 % intervals from resampling pieces (clips of one piece are alike), per-piece counts, and the
query time. Rendered audio and indexes are cached under --work (keyed by the kern files, the
soundfont and the model) and reused. Prints a Markdown block.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from _machine import machine  # benchmarks/_machine.py

from scorelink.evaluate.metrics import bootstrap_intervals, paired_difference, retrieval_metrics
from scorelink.search import query
from scorelink.search.embed import Embedder
from scorelink.search.index import Index

PATHS = ("fused", "model", "notes")
MUSIC21_PIANO = ("joplin/maple_leaf_rag", "schoenberg/opus19/movement2",
                 "schoenberg/opus19/movement6", "chopin/mazurka06-2", "cpebach/h186")
KS = (1, 3)


def choose_pieces(root: Path, *, seed: int, splits: tuple[str, ...], count: int,
                  draw_seed: int) -> tuple[list[Path], int]:
    """(kern files of up to `count` movements of the corpus's `splits` for `seed`, how many
    the splits hold). The split is the one `data build --corpus beethoven --seed` assigns."""
    from scorelink.data.beethoven import beethoven_sources
    from scorelink.data.build import _splits

    sources = beethoven_sources(root)
    split_of = _splits(sources, seed=seed)
    held = [Path(s.origin) for s in sources if split_of[s.piece] in splits]
    if len(held) > count:
        rng = np.random.default_rng(draw_seed)
        held = sorted(held[i] for i in rng.choice(len(held), count, replace=False))
    return held, len([s for s in sources if split_of[s.piece] in splits])


def music21_pieces(work: Path, works: list[str]) -> list[Path]:
    """The music21 corpus files of `works`, copied into work/music21/ as WORK with "-" for
    "/" (the index names a piece after its file)."""
    from music21 import corpus

    out = []
    for name in works:
        found = corpus.getWork(name)
        source = Path(found[0] if isinstance(found, list) else found)
        path = work / "music21" / (name.replace("/", "-") + source.suffix)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, path)
        out.append(path)
    return out


def kern_title(path: Path) -> str:
    """'op. 31 no. 2, mvt 1' from the kern's reference records (OPS, ONM, OMV)."""
    text = path.read_text(errors="replace")
    field = {k: m.group(1).strip() for k in ("OPS", "ONM", "OMV")
             if (m := re.search(rf"^!!!{k}:(.*)$", text, re.M))}
    return (f"op. {field.get('OPS', '?')}" + (f" no. {field['ONM']}" if "ONM" in field else "")
            + f", mvt {field.get('OMV', '?')}")


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
    return h.hexdigest()[:12]


def cached_index(work: Path, files: list[Path], embedder: Embedder) -> tuple[Index, float]:
    """The index of the kern files made with this model: reused from `work` or made now
    (seconds it took; 0 when reused)."""
    from scorelink.search.indexing import index_collection

    key = _digest(embedder.fingerprint, *(f.name.encode() + f.read_bytes() for f in files))
    out = work / f"index-{key}"
    if (out / "index.json").exists():
        return Index(out), 0.0
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    report = index_collection(tmp, scores=[str(f) for f in files], embedder=embedder)
    if report.skipped:  # a benchmark piece that cannot be indexed is an error, not a skip
        raise SystemExit(f"could not index: {report.skipped}")
    tmp.rename(out)
    return Index(out), report.seconds


def cached_audio(work: Path, index: Index, soundfont: str) -> dict[str, tuple[Path, str]]:
    """piece -> (FLAC of its notes as the index keeps them, played by `soundfont`, "score")."""
    piece_of = {r["id"]: r["piece"] for r in index.all_rows("sheet")}
    by_piece: dict[str, list[np.ndarray]] = {}
    for system, notes in index.notes().items():
        by_piece.setdefault(piece_of[system], []).append(notes)
    out = {}
    for piece in sorted(set(piece_of.values())):
        if piece not in by_piece:
            raise SystemExit(f"the index keeps no notes of {piece}: cannot render it")
        notes = np.concatenate(by_piece[piece])  # (n, 3) [onset s, offset s, MIDI pitch]
        path = work / "audio" / soundfont / f"{piece}-{_digest(notes.tobytes())}.flac"
        _render(path, notes[:, 0], notes[:, 1], notes[:, 2].astype(int), soundfont=soundfont)
        out[piece] = (path, "score")
    return out


def cached_performances(work: Path, files: list[Path], soundfont: str,
                        seed: int) -> dict[str, tuple[Path, str]]:
    """piece -> (FLAC of one of its human performances (nASAP MIDI: timing, dynamics, pedal),
    drawn with `seed`, played by `soundfont`, as the corpus builder renders its test split;
    the performer)."""
    from scorelink.data.beethoven import performances
    from scorelink.data.performance import read_midi

    rng = np.random.default_rng(seed)
    out = {}
    for kern in files:
        found = performances(kern.parent.parent, kern.stem)
        if not found:
            raise SystemExit(f"no performance of {kern.stem} in the corpus")
        perf = found[rng.integers(len(found))]
        name = f"{kern.stem}-{perf.name}-{_digest(perf.midi.read_bytes())}.flac"
        path = work / "performances" / soundfont / name
        if not path.exists():
            notes = read_midi(perf.midi)
            _render(path, notes.onset, notes.offset, notes.pitch, soundfont=soundfont,
                    velocity=notes.velocity, controls=notes.controls)
        out[kern.stem] = (path, perf.name)
    return out


def _render(path: Path, onset, offset, pitch, **kwargs) -> None:
    """Synthesise the notes into the FLAC at `path` unless it is there."""
    import soundfile

    from scorelink.constants import SAMPLE_RATE
    from scorelink.data.synthesize import render

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = render(onset, offset, pitch, **kwargs)
    soundfile.write(path.with_suffix(".partial.flac"), audio, SAMPLE_RATE)
    path.with_suffix(".partial.flac").rename(path)


def piece_rank(hits: list[dict], piece: str, n_pieces: int) -> int:
    """Rank of `piece` among the pieces the hits name (`search --by piece`); a piece that no
    hit names ranks last."""
    ranked = [p["piece"] for p in query.by_piece(hits, top=0)]
    return ranked.index(piece) + 1 if piece in ranked else n_pieces


def run(args) -> dict:
    from scorelink.data.spectrogram import spectrogram
    from scorelink.search.recordings import MAX_QUERY_SECONDS, audio_info, read_audio

    files, held = choose_pieces(Path(args.beethoven_dir), seed=args.seed,
                                splits=tuple(args.splits), count=args.pieces,
                                draw_seed=args.clip_seed)
    work = Path(args.work).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    titles = {f.stem: kern_title(f) for f in files}
    if args.audio == "score":
        extra = music21_pieces(work, args.music21)
        titles |= {f.stem: f"music21 corpus: {w}" for f, w in zip(extra, args.music21,
                                                                    strict=True)}
        files += extra
    embedder = Embedder.load(args.checkpoint)
    index, index_s = cached_index(work, files, embedder)
    if args.audio == "score":
        played = cached_audio(work, index, args.soundfont)
    else:
        played = cached_performances(work, files, args.soundfont, args.clip_seed)
    recordings = {p: path for p, (path, _) in played.items()}
    pieces = sorted(recordings)
    systems = {p: 0 for p in pieces}
    for r in index.all_rows("sheet"):
        systems[r["piece"]] += 1

    rng = np.random.default_rng(args.clip_seed)
    rows = []
    for piece in pieces:
        duration, _ = audio_info(recordings[piece])
        for start in np.sort(rng.uniform(0, duration - args.seconds, args.clips)):
            a, b = round(float(start), 2), round(float(start) + args.seconds, 2)
            samples = read_audio(recordings[piece], start=a, end=b, max_seconds=MAX_QUERY_SECONDS)
            t, c = time.perf_counter(), time.process_time()
            # search_audio(notes=True), taken apart to keep the notes' own ranking as well
            evidence = query.audio_evidence(index, embedder, spectrogram(samples))
            fused = query.fuse(index, evidence, top=0)
            fused_s, fused_cpu = time.perf_counter() - t, time.process_time() - c
            notes = query.fuse(index, evidence, top=0, paths="notes")
            t, c = time.perf_counter(), time.process_time()
            model = query.search_audio(index, embedder, samples, top=0, notes=False)
            model_s, model_cpu = time.perf_counter() - t, time.process_time() - c
            hits = {"fused": fused, "model": model, "notes": notes}
            rows.append({"piece": piece, "start": a, "end": b,
                         **{f"{p}_rank": piece_rank(h, piece, len(pieces))
                            for p, h in hits.items()},
                         **{f"{p}_answer": (query.by_piece(h, top=1) or [{"piece": None}])[0]
                            ["piece"] for p, h in hits.items()},
                         "fused_s": fused_s, "fused_cpu_s": fused_cpu,
                         "model_s": model_s, "model_cpu_s": model_cpu})
    index.close()
    return {"files": [str(f) for f in files], "held": held, "pieces": pieces,
            "titles": titles, "systems": systems,
            "played": {p: who for p, (_, who) in played.items()},
            "durations": {p: audio_info(recordings[p])[0] for p in pieces},
            "index_seconds": index_s, "model": embedder.name, "clips": rows}


def summary(result: dict) -> dict:
    """path -> {"top-1", "top-3", "MRR", and their 95 % intervals}, plus fused - model."""
    rows = result["clips"]
    groups = [r["piece"] for r in rows]
    out = {}
    for path in PATHS:
        ranks = np.array([r[f"{path}_rank"] for r in rows])
        point = retrieval_metrics(ranks, ks=KS)
        ci = bootstrap_intervals(ranks, groups, resamples=2000, ks=KS)
        out[path] = {"top-1": point["R@1"], "top-3": point["R@3"], "MRR": point["MRR"],
                     "top-1 ci": ci["R@1"], "top-3 ci": ci["R@3"], "MRR ci": ci["MRR"]}
    d = paired_difference(np.array([r["fused_rank"] for r in rows]),
                          np.array([r["model_rank"] for r in rows]), groups, ks=KS)
    out["fused - model"] = {"top-1": d["R@1"], "MRR": d["MRR"]}
    return out


def report(result: dict, stats: dict, command: str) -> str:
    rows, pieces = result["clips"], result["pieces"]
    n, held, asked = len(pieces), result["held"], result["args"]["pieces"]
    seed, splits = result["args"]["seed"], "+".join(result["args"]["splits"])
    extra = sum(t.startswith("music21") for t in result["titles"].values())
    what = f"{n - extra} Beethoven movements" + (f" and {extra} music21 pieces" if extra else "")
    lines = [f"### Naming an unseen piece: {what}, "
             f"{len(rows)} clips of {result['args']['seconds']:g} s ({date.today()})", "",
             f"- machine: {machine()}; model {result['model']}",
             f"- `{command}`",
             f"- pieces: the {splits} split of the real-scan corpus (seed {seed}) holds {held} "
             f"movements" + (f", all taken ({asked} asked)" if held <= asked else
                             f", {n - extra} drawn") + (f"; {extra} piano pieces of music21's "
                                                      "corpus beside them" if extra else "")
             + f"; chance top-1 {100 / n:.0f} %",
             f"- index: {sum(result['systems'].values())} systems engraved from the score files "
             + (f"in {result['index_seconds']:.0f} s" if result["index_seconds"] else
                "(cached)") + "; audio: " + ("the scores' notes at their tempo"
                              if result["args"]["audio"] == "score" else
                              "one human performance of each (nASAP MIDI)")
             + f" played by {result['args']['soundfont']}, "
             f"{sum(result['durations'].values()) / 60:.0f} min in all",
             f"- query time (15 s clip, embedding + ranking, wall / CPU p50): fused "
             f"{1000 * np.median([r['fused_s'] for r in rows]):.0f} / "
             f"{1000 * np.median([r['fused_cpu_s'] for r in rows]):.0f} ms, model alone "
             f"{1000 * np.median([r['model_s'] for r in rows]):.0f} / "
             f"{1000 * np.median([r['model_cpu_s'] for r in rows]):.0f} ms", "",
             "| ranking | top-1 % | top-3 % | MRR |", "|---|---|---|---|"]
    for path in PATHS:
        s = stats[path]
        lines.append(f"| {path} | {s['top-1']:.0f} [{s['top-1 ci'][0]:.0f}, "
                     f"{s['top-1 ci'][1]:.0f}] | {s['top-3']:.0f} [{s['top-3 ci'][0]:.0f}, "
                     f"{s['top-3 ci'][1]:.0f}] | {s['MRR']:.3f} [{s['MRR ci'][0]:.3f}, "
                     f"{s['MRR ci'][1]:.3f}] |")
    d = stats["fused - model"]
    lines += ["", f"95 % intervals: pieces resampled. Fused - model: top-1 "
              f"{d['top-1']['diff']:+.0f} [{d['top-1']['lo']:+.0f}, {d['top-1']['hi']:+.0f}], "
              f"MRR {d['MRR']['diff']:+.3f} [{d['MRR']['lo']:+.3f}, {d['MRR']['hi']:+.3f}] "
              "(paired).", "",
              "| piece | work | systems | played | minutes | fused top-1 | model top-1 "
              "| model's answers |", "|---|---|---|---|---|---|---|---|"]
    for piece in pieces:
        mine = [r for r in rows if r["piece"] == piece]
        answers: dict[str, int] = {}
        for r in mine:
            answers[r["model_answer"]] = answers.get(r["model_answer"], 0) + 1
        said = ", ".join(f"{p} ×{k}" for p, k in sorted(answers.items(), key=lambda x: -x[1]))
        lines.append(f"| {piece} | {result['titles'][piece]} | {result['systems'][piece]} | "
                     f"{result['played'][piece]} | {result['durations'][piece] / 60:.1f} | "
                     f"{sum(r['fused_rank'] == 1 for r in mine)}/{len(mine)} | "
                     f"{sum(r['model_rank'] == 1 for r in mine)}/{len(mine)} | {said} |")
    return "\n".join(lines)


def against(result: dict, path: str) -> str:
    """This run's model and fused rankings minus those of the run saved at path (`--json`), on
    the same clips, with paired intervals (pieces resampled)."""
    saved = json.loads(Path(path).read_text())
    rows, theirs = result["clips"], saved["clips"]
    if [(r["piece"], r["start"]) for r in rows] != [(r["piece"], r["start"]) for r in theirs]:
        raise SystemExit(f"{path}: not the same clips")
    groups = [r["piece"] for r in rows]
    lines = ["", f"This run ({result['model']}) minus `{path}` ({saved['model']}) on the same "
             f"{len(rows)} clips, paired 95 % intervals (pieces resampled):", "",
             "| ranking | top-1 this / that | difference | gained / lost | MRR difference |",
             "|---|---|---|---|---|"]
    for path_ in ("model", "fused"):
        a = np.array([r[f"{path_}_rank"] for r in rows])
        b = np.array([r[f"{path_}_rank"] for r in theirs])
        d = paired_difference(a, b, groups, ks=KS)
        lines.append(f"| {path_} | {100 * np.mean(a == 1):.0f} / {100 * np.mean(b == 1):.0f} | "
                     f"{d['R@1']['diff']:+.0f} [{d['R@1']['lo']:+.0f}, {d['R@1']['hi']:+.0f}] | "
                     f"{np.sum((a == 1) & (b != 1))} / {np.sum((a != 1) & (b == 1))} | "
                     f"{d['MRR']['diff']:+.3f} [{d['MRR']['lo']:+.3f}, "
                     f"{d['MRR']['hi']:+.3f}] |")
    return "\n".join(lines)


def main() -> None:
    from scorelink.data.synthesize import TEST_SOUNDFONT

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--beethoven-dir", required=True, metavar="DIR",
                   help="the real-scan corpus folder (kern/ is read)")
    p.add_argument("--checkpoint", help="default: the shipped model; or a name (chorales)")
    p.add_argument("--pieces", type=int, default=12, help="movements (at most the split's)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the corpus's splits (as `data build --corpus beethoven`)")
    p.add_argument("--splits", nargs="+", default=["test"], choices=["test", "valid"],
                   help="which held-out splits to take pieces from (default: test; seed 0's "
                        "valid holds sonata05-1, which MSMD's training split has)")
    p.add_argument("--music21", nargs="*", default=list(MUSIC21_PIANO), metavar="WORK",
                   help="music21 corpus works indexed beside them (score audio only; default: "
                        "five piano pieces; none with no WORK)")
    p.add_argument("--clips", type=int, default=5, help="clips per piece")
    p.add_argument("--seconds", type=float, default=15.0, help="clip length")
    p.add_argument("--clip-seed", type=int, default=0, help="seed of the clip places")
    p.add_argument("--soundfont", default=TEST_SOUNDFONT, help="the piano the audio is played by")
    p.add_argument("--audio", choices=["score", "performance"], default="score",
                   help="score: the score's notes at its tempo (what `data build --scores` "
                        "plays); performance: a human performance of it (nASAP MIDI)")
    p.add_argument("--work", default="~/scorelink-work/piece-id",
                   help="cache of rendered audio and indexes (reused when present)")
    p.add_argument("--json", metavar="FILE", help="save every clip's ranks and the summary")
    p.add_argument("--against", metavar="FILE", help="a run saved with --json on the same "
                   "clips (another model): print this run minus it, paired")
    p.add_argument("--from", dest="from_json", metavar="FILE", help="report a run saved with "
                   "--json instead of running one (with --against: compare two saved runs)")
    args = p.parse_args()

    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        result.pop("summary", None)
    else:
        result = run(args)
        result["args"] = vars(args)
    stats = summary(result)
    command = "python benchmarks/piece_id.py " + " ".join(
        a if " " not in a else repr(a) for a in sys.argv[1:])
    print(report(result, stats, command))
    if args.against:
        print(against(result, args.against))
    if args.json and not args.from_json:
        Path(args.json).write_text(json.dumps({**result, "summary": stats}, indent=1))


if __name__ == "__main__":
    main()
