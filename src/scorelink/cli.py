"""The `scorelink` command. Sub-commands import their heavy modules lazily (--help is instant)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from scorelink.errors import ScorelinkError


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError("expected I/N, e.g. 0/4") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError("need 0 <= I < N")
    return i, n


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected names separated by commas")
    return names


def _parser() -> argparse.ArgumentParser:
    from scorelink.data.synthesize import TEST_SOUNDFONT, TRAIN_SOUNDFONTS, VALID_SOUNDFONT

    p = argparse.ArgumentParser(
        prog="scorelink",
        description="Link audio recordings and sheet-music images passage by passage.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build and look at passage datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)

    b = dsub.add_parser("build", help="engrave, synthesise and cut scores into passages")
    src = b.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", choices=["chorales", "msmd", "beethoven"],
                     help="chorales: built in (music21); msmd: MSMD from its LilyPond sources "
                          "(needs --msmd-dir), with the paper's split; beethoven: scanned "
                          "Beethoven sonatas with human performances (needs --beethoven-dir)")
    src.add_argument("--scores", metavar="FOLDER",
                     help="folder of MusicXML/MXL/kern/MEI/LilyPond files")
    b.add_argument("--msmd-dir", metavar="DIR",
                   help="MSMD sources: splits.json and the Mutopia .ly files it names")
    b.add_argument("--beethoven-dir", metavar="DIR",
                   help="the real-scan corpus: kern/, pdf/ and asap/ (docs/realscores.md)")
    b.add_argument("--out", required=True, metavar="DIR")
    b.add_argument("--limit", type=int, help="only the first N pieces")
    b.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    b.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                   help="build only every N-th piece starting at I (0-based)")
    b.add_argument("--seed", type=int, default=0, help="seed of the splits and renditions")
    b.add_argument("--only-split", choices=["train", "valid", "test"],
                   help="build just the pieces of this split (same split as a full build)")
    b.add_argument("--renditions", type=int, default=8,
                   help="renditions per training piece (default 8)")
    b.add_argument("--train-soundfonts", type=_names, default=TRAIN_SOUNDFONTS, metavar="A,B,..",
                   help=f"training timbres (default {','.join(TRAIN_SOUNDFONTS)})")
    b.add_argument("--valid-soundfont", default=VALID_SOUNDFONT, metavar="NAME",
                   help=f"timbre of the validation rendition (default {VALID_SOUNDFONT})")
    b.add_argument("--test-soundfont", default=TEST_SOUNDFONT, metavar="NAME",
                   help=f"held-out timbre of the test renditions (default {TEST_SOUNDFONT})")
    b.add_argument("--keep-audio", choices=["none", "test", "all"], default="test",
                   help="which renditions to keep as FLAC (test: held-out timbre, tempo 1.0)")
    b.add_argument("--no-progress", action="store_true")

    s = dsub.add_parser("stats", help="counts and the passage-duration histogram")
    s.add_argument("dir")
    s.add_argument("--histogram", metavar="PNG", help="where to save it (DIR/durations.png)")
    s.add_argument("--json", action="store_true", help="print the numbers as JSON")

    sh = dsub.add_parser("show", help="draw one passage: system strip above its spectrogram")
    sh.add_argument("dir")
    sh.add_argument("--passage", required=True, metavar="ID")
    sh.add_argument("--out", required=True, metavar="PNG")
    t = sub.add_parser("train", help="train the passage model on a dataset folder")
    t.add_argument("--data", metavar="DIR", action="append",
                   help="dataset folder; repeat it to train on several (the first one's "
                        "validation split selects the checkpoint)")
    t.add_argument("--out", metavar="RUN", help="run folder (rerun the same command to resume)")
    t.add_argument("--model", choices=["rnn", "snippet"],
                   help="rnn: the passage model (default); snippet: the baseline (BL)")
    t.add_argument("--preset", choices=["paper", "tiny"])
    t.add_argument("--init-from", metavar="CKPT",
                   help="start from this checkpoint: a snippet model's CNNs (RNN-FT/FZ), "
                        "or all the weights of a passage model (warm start)")
    t.add_argument("--freeze-cnn", action="store_true", default=None)
    t.add_argument("--epochs", type=int)
    t.add_argument("--config", metavar="FILE", help="JSON run config (keys of TrainConfig)")
    t.add_argument("overrides", nargs="*", metavar="key=value")

    r = sub.add_parser("refine-cca", help="fit the CCA layer of a snippet model (BL -> BL-CCA)")
    r.add_argument("--checkpoint", required=True, metavar="CKPT", help="a snippet-model checkpoint")
    r.add_argument("--data", required=True, metavar="DIR", help="dataset with training passages")
    r.add_argument("--out", required=True, metavar="CKPT", help="the refined checkpoint (new file)")
    r.add_argument("--pairs", type=int, default=25_000, help="training snippet pairs to fit on")
    r.add_argument("--seed", type=int, default=0)

    ix = sub.add_parser("index", help="embed scores and recordings into a search index")
    ix.add_argument("--out", required=True, metavar="IDX", help="index folder")
    ix.add_argument("--checkpoint", metavar="CKPT", help="default: the shipped model")
    ix.add_argument("--data", metavar="DIR", help="a dataset folder: its test split")
    ix.add_argument("--split", default="test", choices=["test", "valid", "train"],
                    help="which split of --data (its evaluation rendition)")
    ix.add_argument("--scores", nargs="+", metavar="PATH", default=[],
                    help="score files or folders: MusicXML/MXL/kern/MEI, PNG/JPG, PDF")
    ix.add_argument("--recordings", nargs="+", metavar="PATH", default=[],
                    help="audio files or folders: WAV/FLAC/OGG/MP3")
    ix.add_argument("--add", action="store_true", help="append to an existing index")
    ix.add_argument("--approximate", action="store_true",
                    help="HNSW graph instead of exact search (for millions of passages)")
    ix.add_argument("--no-progress", action="store_true", help="no progress bars")

    se = sub.add_parser("search", help="query an index by audio or by a sheet image")
    se.add_argument("--index", required=True, metavar="IDX")
    q = se.add_mutually_exclusive_group(required=True)
    q.add_argument("--audio", metavar="FILE", help="find the systems this audio plays")
    q.add_argument("--image", metavar="FILE", help="find where this system sounds")
    se.add_argument("--start", type=float, metavar="S", help="audio: from S seconds")
    se.add_argument("--end", type=float, metavar="E", help="audio: until E seconds")
    se.add_argument("--system", type=int, metavar="N",
                    help="image: the N-th system of the page (1 = the top one)")
    se.add_argument("--top", type=int, default=10, metavar="K")
    se.add_argument("--by", choices=["passage", "piece"], default="passage")
    se.add_argument("--checkpoint", metavar="CKPT", help="default: the model the index names")
    se.add_argument("--json", action="store_true", help="print JSON")

    al = sub.add_parser("align", help="align a whole recording to its score: which system "
                                      "sounds when")
    al.add_argument("--score", required=True, metavar="PATH",
                    help="a score file (MusicXML/MXL/kern/MEI), a PDF, a page image, or a "
                         "folder of page images/PDFs (pages in name order)")
    al.add_argument("--recording", required=True, metavar="AUDIO", help="WAV/FLAC/OGG/MP3")
    al.add_argument("--out", metavar="FILE", help="write the systems as .json or .csv (the "
                                                   "JSON also holds the measures)")
    al.add_argument("--measures", metavar="FILE", help="write the measures as .json or .csv "
                                                        "(scores with notes: MusicXML, MXL, "
                                                        "kern, MEI)")
    al.add_argument("--plot", metavar="PNG", help="draw the similarity matrix and the path")
    al.add_argument("--checkpoint", metavar="CKPT", help="default: the shipped model")

    sv = sub.add_parser("serve", help="the web page: search an index from a browser")
    sv.add_argument("--index", required=True, metavar="IDX")
    sv.add_argument("--host", default="127.0.0.1", metavar="H")
    sv.add_argument("--port", type=int, default=8000, metavar="P")
    sv.add_argument("--checkpoint", metavar="CKPT", help="default: the model the index names")

    dm = sub.add_parser("demo", help="build, index and query the built-in demo collection")
    dm.add_argument("--out", default="demo", metavar="DIR", help="where everything goes")
    dm.add_argument("--checkpoint", metavar="CKPT", help="default: the shipped model")
    dm.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    dm.add_argument("--limit", type=int, help="only the first N corpus pieces (a quick look)")

    e = sub.add_parser("evaluate", help="retrieval metrics of a model on a dataset split")
    e.add_argument("--data", required=True, metavar="DIR")
    e.add_argument("--checkpoint", metavar="CKPT", help="default: the shipped model")
    e.add_argument("--split", default="test", choices=["test", "valid"])
    e.add_argument("--direction", default="both", choices=["a2s", "s2a", "both"])
    e.add_argument("--tempo", type=float, default=1.0, metavar="RHO",
                   help="tempo ratio of the test rendition (0.5, 0.66, 1, 1.33, 2)")
    e.add_argument("--json", metavar="FILE", help="also write the metrics here")
    e.add_argument("--against", metavar="FILE",
                   help="another model's --json of the same split and tempo: print the "
                        "differences with paired 95%% intervals")
    return p


def _train(args: argparse.Namespace) -> int:
    # oneDNN keeps a compiled kernel for each input shape it meets (1,024 by default), and
    # passages of varying length bring new shapes all the time: in a measurement that cache
    # held about 1.8 GB of a 4.4 GB trainer, and 16 entries cost no speed (docs/model.md).
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")
    from scorelink.train.config import TrainConfig
    from scorelink.train.trainer import Trainer

    data, *extra = args.data or [None]
    config = TrainConfig.load(args.config, args.overrides, data=data, out=args.out,
                              extra_data=",".join(extra) if extra else None,
                              model=args.model, preset=args.preset, init_from=args.init_from,
                              freeze_cnn=args.freeze_cnn, epochs=args.epochs)
    Trainer(config).fit()
    return 0


def _refine_cca(args: argparse.Namespace) -> int:
    from scorelink.train.refine import refine_cca

    info = refine_cca(args.checkpoint, args.data, args.out, pairs=args.pairs, seed=args.seed)
    corr = info["correlations"]
    print(f"fitted CCA on {info['pairs']} training snippet pairs: canonical correlations "
          f"{corr[0]:.3f} ... {corr[-1]:.3f} (mean {sum(corr) / len(corr):.3f}); wrote {args.out}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from scorelink.search.indexing import index_collection

    report = index_collection(args.out, scores=args.scores, recordings=args.recordings,
                              data=args.data, split=args.split, checkpoint=args.checkpoint,
                              add=args.add, approximate=args.approximate,
                              progress=not args.no_progress)
    for s in report.skipped:
        print(f"skipped {s['path']}: {s['reason']}")
    print(f"{'added' if report.added else 'indexed'} {report.systems} systems and "
          f"{report.windows} audio windows in {report.seconds:.0f} s"
          + (f" ({len(report.skipped)} files skipped, listed above)" if report.skipped else "")
          + f"; {args.out} holds {report.total_systems} systems, {report.total_windows} windows")
    return 0


def _search(args: argparse.Namespace) -> int:
    from scorelink.search import query
    from scorelink.search.embed import Embedder
    from scorelink.search.index import Index
    from scorelink.search.recordings import MAX_QUERY_SECONDS, read_audio

    index = Index(args.index)
    name = index.info["model"]["name"]
    embedder = Embedder.load(args.checkpoint or (None if name.startswith("shipped:") else name))
    index.check_model(embedder.fingerprint)
    if args.audio:
        samples = read_audio(args.audio, start=args.start, end=args.end,
                             max_seconds=MAX_QUERY_SECONDS)
        hits = query.search_audio(index, embedder, samples,
                                  top=0 if args.by == "piece" else args.top)
    else:
        hits = query.search_sheet(index, embedder, _query_strip(args.image, args.system),
                                  top=0 if args.by == "piece" else args.top)
    results = query.by_piece(hits, top=args.top) if args.by == "piece" else hits
    if args.json:
        print(json.dumps({"query": args.audio or args.image, "by": args.by,
                          "results": results}, indent=1))
    else:
        print(_format_hits(results, args.by, "audio" if args.audio else "image"))
    return 0


def _query_strip(path: str, system: int | None):
    from scorelink.errors import QueryError
    from scorelink.search.pages import load_pages, system_strips
    from scorelink.search.staves import find_systems

    page = load_pages(path)[0]
    found = find_systems(page)
    if not found:
        raise QueryError(f"{path}: no staves found; is it an image of printed music?")
    if system is None:
        if len(found) > 1:
            raise QueryError(f"{path} shows {len(found)} systems; choose one with --system N "
                             f"(1 to {len(found)}, top to bottom)")
        system = 1
    if not 1 <= system <= len(found):
        raise QueryError(f"{path} shows {len(found)} systems; --system must be 1 to "
                         f"{len(found)}")
    return system_strips(page, [found[system - 1]])[0]


def _format_hits(results: list[dict], by: str, kind: str) -> str:
    if not results:
        return "no results"
    if by == "piece":
        lines = [f"{'rank':>4}  {'score':>6}  {'hits':>4}  piece"]
        lines += [f"{r['rank']:>4}  {r['score']:>6.3f}  {r['hits']:>4}  {r['piece']}"
                  for r in results]
    elif kind == "audio":  # evidence: what ranked the answer there (notes, image or both)
        lines = [f"{'rank':>4}  {'score':>6}  {'page':>4}  {'system':>6}  {'evidence':>8}  piece"]
        lines += [f"{r['rank']:>4}  {r['score']:>6.3f}  {r['page']:>4}  {r['system']:>6}  "
                  f"{r.get('evidence', 'image'):>8}  {r['piece']}" for r in results]
    else:
        lines = [f"{'rank':>4}  {'score':>6}  {'start':>8}  {'end':>8}  recording"]
        lines += [f"{r['rank']:>4}  {r['score']:>6.3f}  {r['start']:>8.1f}  {r['end']:>8.1f}  "
                  f"{r['recording']}" for r in results]
    return "\n".join(lines)


def _align(args: argparse.Namespace) -> int:
    from pathlib import Path

    from scorelink.search import align
    from scorelink.search.embed import Embedder

    outputs = [Path(f) for f in (args.out, args.measures) if f]
    for out in outputs:
        if out.suffix.lower() not in (".json", ".csv"):
            raise ScorelinkError(f"{out}: the file must end in .json or .csv")
    result, systems = align.align_files(args.score, args.recording,
                                        embedder=Embedder.load(args.checkpoint))
    played = align.rows(result, systems)
    measures = align.measure_rows(result, systems)
    if args.measures and not measures:
        raise ScorelinkError(f"{args.score} has no notes to time measures by (a score file "
                             "engraved with Verovio has: MusicXML, MXL, kern, MEI)")
    if args.out:
        _write_rows(Path(args.out), played, "systems", args.recording,
                    extra={"measures": measures} if measures else {})
    if args.measures:
        _write_rows(Path(args.measures), measures, "measures", args.recording)
    if args.plot:
        align.plot_alignment(result, args.plot, labels=[f"p{s['page'] + 1} s{s['on_page'] + 1}"
                                                        for s in systems])
    print(f"{'page':>4}  {'system':>6}  {'start':>8}  {'end':>8}  confidence")
    for r in played:
        print(f"{r['page']:>4}  {r['system']:>6}  {r['start']:>8.1f}  {r['end']:>8.1f}  "
              f"{r['confidence']:.2f}")
    if measures:
        print(f"{len(measures)} measures timed" + (f" (--measures {args.measures})"
                                                   if args.measures else
                                                   "; --measures FILE writes them"))
    return 0


def _write_rows(path, rows: list[dict], key: str, recording: str, *,
                extra: dict | None = None) -> None:
    """Rows as CSV (one line each) or JSON ({"recording": ..., key: rows, **extra})."""
    if path.suffix.lower() == ".csv":
        import csv

        with open(path, "w", newline="") as f:
            fields = {"systems": ["page", "system", "start", "end", "confidence"],
                      "measures": ["page", "system", "measure", "index", "start", "end"]}
            writer = csv.DictWriter(f, fieldnames=fields[key])
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text(json.dumps({"recording": recording, key: rows, **(extra or {})},
                                   indent=1) + "\n")


def _serve(args: argparse.Namespace) -> int:
    from scorelink.web.app import serve

    serve(args.index, host=args.host, port=args.port, checkpoint=args.checkpoint)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from scorelink.demo import run_demo

    run_demo(args.out, checkpoint=args.checkpoint, workers=args.workers, limit=args.limit)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from scorelink import checkpoint
    from scorelink.evaluate.report import format_table
    from scorelink.evaluate.retrieval import DIRECTIONS, evaluate

    other = _read_result(args.against, split=args.split, tempo=args.tempo) if args.against else None
    model, payload = checkpoint.load_model(args.checkpoint)
    directions = DIRECTIONS if args.direction == "both" else (args.direction,)
    metrics = evaluate(model, args.data, split=args.split, tempo=args.tempo,
                       directions=directions)
    name = args.checkpoint or f"shipped:{checkpoint.SHIPPED}"
    result = {"model": name, "data": args.data, "split": args.split, "tempo": args.tempo,
              **metrics}
    print(format_table(result))
    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if other is not None:
        from scorelink.evaluate.metrics import paired_difference
        from scorelink.evaluate.report import format_comparison

        differences = {}
        for d in directions:
            if other.get("query_pieces", {}).get(d) != result["query_pieces"][d]:
                raise ScorelinkError(f"{args.against}: its {d} queries are not these (another "
                                     "dataset, split or tempo?)")
            differences[d] = paired_difference(result["ranks"][d], other["ranks"][d],
                                               result["query_pieces"][d])
        print(format_comparison(result, other, differences))
    return 0


def _read_result(path: str, *, split: str, tempo: float) -> dict:
    """An evaluate --json file of `split` at `tempo`, with per-query ranks (written since they
    were added)."""
    from pathlib import Path

    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ScorelinkError(f"{path}: not a readable evaluate --json file ({exc})") from exc
    if not isinstance(result, dict) or "ranks" not in result or "query_pieces" not in result:
        raise ScorelinkError(f"{path}: no per-query ranks; evaluate that model again with --json")
    if (result.get("split"), result.get("tempo")) != (split, tempo):
        raise ScorelinkError(f"{path}: {result.get('split')} split at tempo {result.get('tempo')}, "
                             f"not {split} at {tempo:g}")
    return result


def _data_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from scorelink.data.build import BuildConfig, build
    from scorelink.data.sources import corpus_sources, folder_sources, msmd_sources

    if args.corpus == "beethoven":
        from scorelink.data.beethoven import beethoven_sources

        if not args.beethoven_dir:
            raise ScorelinkError("--corpus beethoven needs --beethoven-dir DIR (kern/, pdf/, "
                                 "asap/)")
        sources = beethoven_sources(args.beethoven_dir)
        origin = "corpus:beethoven"
    elif args.corpus == "msmd":
        if not args.msmd_dir:
            raise ScorelinkError("--corpus msmd needs --msmd-dir DIR (splits.json + sources)")
        sources, origin = msmd_sources(args.msmd_dir), "corpus:msmd"
    elif args.corpus:
        sources, origin = corpus_sources(args.corpus), f"corpus:{args.corpus}"
    else:
        sources, origin = folder_sources(args.scores), f"folder:{Path(args.scores).resolve()}"
    config = BuildConfig(source=origin, seed=args.seed, train_renditions=args.renditions,
                         keep_audio=args.keep_audio, train_soundfonts=args.train_soundfonts,
                         valid_soundfont=args.valid_soundfont,
                         test_soundfont=args.test_soundfont)
    report = build(sources, args.out, config=config, workers=args.workers, shard=args.shard,
                   limit=args.limit, only_split=args.only_split,
                   progress=not args.no_progress)
    total = sum(report.passages.values())
    print(f"built {report.built}, already there {report.skipped}, failed {len(report.failed)} "
          f"(of {report.pieces} pieces) in {report.seconds:.0f} s")
    print(f"manifest: {total} passages "
          + ", ".join(f"{k} {v}" for k, v in sorted(report.passages.items())))
    if report.failed:
        print(f"failures listed in {Path(args.out) / 'failures.jsonl'}")
    return 0


def _data_stats(args: argparse.Namespace) -> int:
    from pathlib import Path

    from scorelink.data.overview import duration_histogram, format_stats, stats
    from scorelink.data.store import Dataset

    ds = Dataset(args.dir)
    summary = stats(ds)
    hist = duration_histogram(ds, args.histogram or Path(args.dir) / "durations.png")
    summary["histogram"] = str(hist)
    print(json.dumps(summary, indent=1) if args.json else format_stats(summary)
          + f"\nhistogram: {hist}")
    return 0


def _data_show(args: argparse.Namespace) -> int:
    from scorelink.data.overview import show_passage
    from scorelink.data.store import Dataset

    print(show_passage(Dataset(args.dir), args.passage, args.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {("data", "build"): _data_build, ("data", "stats"): _data_stats,
                ("data", "show"): _data_show, ("train", None): _train,
                ("evaluate", None): _evaluate,
                ("refine-cca", None): _refine_cca, ("index", None): _index,
                ("search", None): _search, ("serve", None): _serve,
                ("demo", None): _demo, ("align", None): _align}
    try:
        return handlers[(args.command, getattr(args, "data_command", None))](args)
    except ScorelinkError as exc:
        print(f"scorelink: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scorelink: interrupted (finished pieces are kept; rerun to resume)", file=sys.stderr)
        return 130
