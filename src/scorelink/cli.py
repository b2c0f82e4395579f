"""The `scorelink` command. Sub-commands import their heavy modules lazily (--help is instant)."""

from __future__ import annotations

import argparse
import dataclasses
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


def _bounded(cast, expected: str, valid, bound: str):
    """An argparse type: `cast` of the text, refused with `bound` (formatted with the value
    and the text) when not valid(value)."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, not {text!r}") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(bound.format(value=value, text=text))
        return value

    return parse


_count = _bounded(int, "a whole number", lambda v: v >= 1,  # --top, --workers, ...
                  "must be 1 or more, not {value}")
_seconds = _bounded(float, "seconds", lambda v: 0 <= v < float("inf"),  # --start, --end
                    "must be 0 seconds or more, not {text}")
_ratio = _bounded(float, "a number", lambda v: 0 < v < float("inf"),  # --tempo
                  "must be above 0, not {text}")
_port = _bounded(int, "a port number", lambda v: 0 <= v <= 65535,
                 "a port is 0 to 65535, not {value}")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default after its help, unless there is none to show (None, False)
    or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is False or action.default == [] \
                or action.default == argparse.SUPPRESS or "default" in text:
            return action.help
        return super()._get_help_string(action)


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected names separated by commas")
    return names


def _tempi(text: str) -> tuple[float, ...]:
    try:
        tempi = tuple(sorted({float(t) for t in text.split(",") if t.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError("expected tempo ratios separated by commas") from None
    if 1.0 not in tempi or not all(0.25 <= t <= 4 for t in tempi):
        raise argparse.ArgumentTypeError("tempo ratios in 0.25..4, 1 among them")
    return tempi


def _parser() -> argparse.ArgumentParser:
    from scorelink.data.synthesize import TEST_SOUNDFONT, TRAIN_SOUNDFONTS, VALID_SOUNDFONT

    p = argparse.ArgumentParser(
        prog="scorelink",
        description="Link audio recordings and sheet-music images passage by passage.",
        formatter_class=_Help,
    )
    from scorelink import __version__

    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent, name: str, text: str, description: str) -> argparse.ArgumentParser:
        return parent.add_parser(name, help=text, description=description,
                                 formatter_class=_Help)

    data = command(sub, "data", "build and look at passage datasets",
                   "Build passage datasets (engraved systems paired with synthesised audio), "
                   "count them and draw their passages.")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    b = command(dsub, "build", "engrave, synthesise and cut scores into passages",
                "Engrave scores, synthesise renditions, and cut both into passages (one "
                "system each) in a dataset folder; rerun the same command to resume.")
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
    b.add_argument("--out", required=True, metavar="DIR", help="the dataset folder")
    b.add_argument("--limit", type=_count, metavar="N", help="only the first N pieces")
    b.add_argument("--workers", type=_count, default=os.cpu_count() or 1, metavar="N",
                   help="processes (default: one per CPU)")
    b.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                   help="build only every N-th piece starting at I (0-based; default 0/1: "
                        "all)")
    b.add_argument("--seed", type=int, default=0, help="seed of the splits and renditions")
    b.add_argument("--only-split", choices=["train", "valid", "test"],
                   help="build just the pieces of this split (same split as a full build)")
    b.add_argument("--split", choices=["train", "valid", "test"],
                   help="with --scores: every piece in this split rather than split by seed "
                        "(a folder of extra training material, say)")
    b.add_argument("--renditions", type=_count, default=8, metavar="N",
                   help="renditions per training piece")
    b.add_argument("--train-soundfonts", type=_names, default=TRAIN_SOUNDFONTS, metavar="A,B,..",
                   help=f"training timbres (default {','.join(TRAIN_SOUNDFONTS)})")
    b.add_argument("--valid-soundfont", default=VALID_SOUNDFONT, metavar="NAME",
                   help=f"timbre of the validation rendition (default {VALID_SOUNDFONT})")
    b.add_argument("--test-soundfont", default=TEST_SOUNDFONT, metavar="NAME",
                   help=f"held-out timbre of the test renditions (default {TEST_SOUNDFONT})")
    b.add_argument("--valid-tempi", type=_tempi, default=(1.0,), metavar="A,B,..",
                   help="tempo ratios of the validation renditions (default 1; e.g. "
                        "0.5,0.66,1,1.33,2 as the test split has, to tune for slow and fast "
                        "playing on validation)")
    b.add_argument("--keep-audio", choices=["none", "test", "all"], default="test",
                   help="which renditions to keep as FLAC (test: held-out timbre, tempo 1.0)")
    b.add_argument("--no-progress", action="store_true", help="no progress bars")

    s = command(dsub, "stats", "counts and the passage-duration histogram",
                "Count a dataset's pieces, passages and hours by split, and draw the histogram "
                "of passage durations.")
    s.add_argument("dir", help="a dataset folder")
    s.add_argument("--histogram", metavar="PNG", help="where to save it (DIR/durations.png)")
    s.add_argument("--json", action="store_true", help="print the numbers as JSON")

    sh = command(dsub, "show", "draw one passage: system strip above its spectrogram",
                 "Draw one passage of a dataset: its system strip above its spectrogram.")
    sh.add_argument("dir", help="a dataset folder")
    sh.add_argument("--passage", required=True, metavar="ID",
                    help="the passage's id (as in the dataset's manifest)")
    sh.add_argument("--out", required=True, metavar="PNG", help="the picture to write")
    t = command(sub, "train", "train the passage model on a dataset folder",
                "Train the passage model (or the snippet baseline) on one or more dataset "
                "folders; a run folder keeps checkpoints, the resolved config and the log, and "
                "rerunning the command resumes it.")
    t.add_argument("--data", metavar="DIR", action="append",
                   help="dataset folder; repeat it to train on several (the first one's "
                        "validation split selects the checkpoint)")
    t.add_argument("--out", metavar="RUN", help="run folder (rerun the same command to resume)")
    t.add_argument("--model", choices=["rnn", "snippet"],
                   help="rnn: the passage model (default); snippet: the baseline (BL)")
    t.add_argument("--preset", choices=["paper", "tiny"],
                   help="model size: the paper's, or a tiny one for trying things out "
                        "(default: the run config's; paper)")
    t.add_argument("--init-from", metavar="CKPT",
                   help="start from this checkpoint: a snippet model's CNNs (RNN-FT/FZ), "
                        "or all the weights of a passage model (warm start)")
    t.add_argument("--freeze-cnn", action="store_true", default=None,
                   help="with --init-from: keep the CNNs fixed, train the rest (RNN-FZ)")
    t.add_argument("--epochs", type=_count, metavar="N",
                   help="epochs to train (default: the run config's)")
    t.add_argument("--config", metavar="FILE", help="JSON run config (keys of TrainConfig)")
    t.add_argument("overrides", nargs="*", metavar="key=value",
                   help="any TrainConfig key, e.g. lr=0.0005 batch_size=64")

    r = command(sub, "refine-cca", "fit the CCA layer of a snippet model (BL -> BL-CCA)",
                "Fit the CCA layer of a trained snippet model on training snippet pairs "
                "(the paper's BL-CCA) and write the refined checkpoint.")
    r.add_argument("--checkpoint", required=True, metavar="CKPT", help="a snippet-model checkpoint")
    r.add_argument("--data", required=True, metavar="DIR", help="dataset with training passages")
    r.add_argument("--out", required=True, metavar="CKPT", help="the refined checkpoint (new file)")
    r.add_argument("--pairs", type=_count, default=25_000, metavar="N",
                   help="training snippet pairs to fit on")
    r.add_argument("--seed", type=int, default=0, help="seed of the pairs drawn")

    ix = command(sub, "index", "embed scores and recordings into a search index",
                 "Embed score files, page images, PDFs, recordings and/or a dataset's split "
                 "into an index folder (a new one, or an existing one with --add); files that "
                 "cannot be indexed are skipped and listed.")
    ix.add_argument("--out", required=True, metavar="IDX", help="index folder")
    ix.add_argument("--checkpoint", metavar="CKPT", help="default: the shipped model")
    ix.add_argument("--data", metavar="DIR", help="a dataset folder: its test split")
    ix.add_argument("--split", default="test", choices=["test", "valid", "train"],
                    help="which split of --data (its evaluation rendition)")
    ix.add_argument("--scores", nargs="+", metavar="PATH", default=[],
                    help="score files or folders: MusicXML/MXL/kern/MEI/LilyPond (their notes "
                         "are kept), PNG/JPG, PDF (their noteheads are read: docs/reader.md)")
    ix.add_argument("--recordings", nargs="+", metavar="PATH", default=[],
                    help="audio files or folders: WAV/FLAC/OGG/MP3")
    ix.add_argument("--add", action="store_true", help="append to an existing index")
    ix.add_argument("--approximate", action="store_true",
                    help="HNSW graph instead of exact search (for millions of passages)")
    ix.add_argument("--no-progress", action="store_true", help="no progress bars")

    se = command(sub, "search", "query an index by audio or by a sheet image",
                 "Query an index with an audio clip (which systems does it play?) or an image "
                 "of a system (where does it sound?): one query, or many from a JSON Lines "
                 "file (--queries) with one model load.")
    se.add_argument("--index", required=True, metavar="IDX",
                    help="an index folder (scorelink index)")
    q = se.add_mutually_exclusive_group(required=True)
    q.add_argument("--audio", metavar="FILE", help="find the systems this audio plays")
    q.add_argument("--image", metavar="FILE", help="find where this system sounds")
    q.add_argument("--queries", metavar="JSONL",
                   help="many queries, one JSON object a line ('-': standard input): "
                        '{"audio": FILE, "start": S, "end": E} or {"image": FILE, "system": '
                        "N}; answers one JSON line each")
    se.add_argument("--start", type=_seconds, metavar="S", help="audio: from S seconds")
    se.add_argument("--end", type=_seconds, metavar="E", help="audio: until E seconds")
    se.add_argument("--system", type=_count, metavar="N",
                    help="image: the N-th system of the page (1 = the top one)")
    se.add_argument("--top", type=_count, default=10, metavar="K",
                    help="how many answers")
    se.add_argument("--by", choices=["passage", "piece"], default="passage",
                    help="passage: systems or recording places; piece: pieces ranked by "
                         "their best passage")
    se.add_argument("--checkpoint", metavar="CKPT", help="default: the model the index names")
    se.add_argument("--json", action="store_true", help="print JSON")

    al = command(sub, "align", "align a whole recording to its score: which system sounds when",
                 "Align a whole recording to its score: which system sounds when, in the order "
                 "played (repeats, skips and pauses included).")
    al.add_argument("--score", required=True, metavar="PATH",
                    help="a score file (MusicXML/MXL/kern/MEI/LilyPond), a PDF, a page image, "
                         "or a folder of page images/PDFs (pages in name order)")
    al.add_argument("--recording", required=True, metavar="AUDIO", help="WAV/FLAC/OGG/MP3")
    al.add_argument("--out", metavar="FILE", help="write the systems as .json or .csv (the "
                                                   "JSON also holds the measures)")
    al.add_argument("--measures", metavar="FILE", help="write the measures as .json or .csv "
                                                        "(scores with notes: MusicXML, MXL, "
                                                        "kern, MEI)")
    al.add_argument("--plot", metavar="PNG", help="draw the similarity matrix and the path")
    al.add_argument("--image-only", action="store_true",
                    help="decide the systems by their images even where the score has notes")
    al.add_argument("--checkpoint", metavar="CKPT", help="default: the shipped model")

    sv = command(sub, "serve", "the web page: search an index from a browser",
                 "Serve the web page: upload or record a clip and see where it is in the "
                 "indexed scores. Additions to the index (index --add) are picked up without "
                 "a restart.")
    sv.add_argument("--index", required=True, metavar="IDX",
                    help="an index folder (scorelink index)")
    sv.add_argument("--host", default="127.0.0.1", metavar="H",
                    help="address to listen on (0.0.0.0: every interface)")
    sv.add_argument("--port", type=_port, default=8000, metavar="P", help="port to listen on")
    sv.add_argument("--checkpoint", metavar="CKPT", help="default: the model the index names")

    dm = command(sub, "demo", "build, index and query the built-in demo collection",
                 "Build the built-in corpus's test split, index it, query every passage and "
                 "write a report (DIR/report.html); rerunning resumes.")
    dm.add_argument("--out", default="demo", metavar="DIR", help="where everything goes")
    dm.add_argument("--checkpoint", metavar="CKPT", help="default: the shipped model")
    dm.add_argument("--workers", type=_count, default=os.cpu_count() or 1, metavar="N",
                    help="processes building the collection (default: one per CPU)")
    dm.add_argument("--limit", type=_count, metavar="N",
                    help="only the first N corpus pieces (a quick look)")
    dm.add_argument("--no-progress", action="store_true", help="no progress bars")

    e = command(sub, "evaluate", "retrieval metrics of a model on a dataset split",
                "Retrieval metrics (R@1, R@10, R@25, MRR, median rank) of a model on a "
                "dataset split, both directions, as in the paper.")
    e.add_argument("--data", required=True, metavar="DIR", help="a dataset folder")
    e.add_argument("--checkpoint", metavar="CKPT", help="default: the shipped model")
    e.add_argument("--split", default="test", choices=["test", "valid"],
                   help="which split's passages")
    e.add_argument("--direction", default="both", choices=["a2s", "s2a", "both"],
                   help="a2s: audio queries, systems answer; s2a: the other way")
    e.add_argument("--tempo", type=_ratio, default=1.0, metavar="RHO",
                   help="tempo ratio of the test rendition (0.5, 0.66, 1, 1.33, 2)")
    e.add_argument("--json", metavar="FILE", help="also write the metrics here")
    e.add_argument("--against", metavar="FILE",
                   help="another model's --json of the same split and tempo: print the "
                        "differences with paired 95%% intervals")
    return p


def _check(args: argparse.Namespace) -> None:
    """Refuse arguments that parse but make no sense together, before any work is done."""
    from pathlib import Path

    def wrong(text: str) -> None:
        raise ScorelinkError(f"{args.command}: {text}")

    if args.command == "search":
        if not args.audio and (args.start is not None or args.end is not None):
            wrong("--start and --end choose a part of an --audio query"
                  + (" (in --queries, give them on each line)" if args.queries else ""))
        if not args.image and args.system is not None:
            wrong("--system chooses a system of an --image query"
                  + (" (in --queries, give it on each line)" if args.queries else ""))
        if args.start is not None and args.end is not None and args.end <= args.start:
            wrong(f"--end ({args.end:g} s) must be after --start ({args.start:g} s)")
    outputs = {"align": ("out", "plot"), "evaluate": ("json",)}.get(args.command, ())
    for name in outputs:
        target = getattr(args, name)
        if target and not Path(target).resolve().parent.is_dir():
            wrong(f"--{name} {target}: the folder {Path(target).parent} does not exist")
    if args.command == "align":
        for name in ("score", "recording"):
            if not Path(getattr(args, name)).exists():
                wrong(f"--{name} {getattr(args, name)} does not exist")


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
    from scorelink.search.batch import answer_all, answer_judged, parse_query, read_queries
    from scorelink.search.embed import for_index
    from scorelink.search.index import Index

    queries = read_queries(args.queries) if args.queries else None  # all checked before loading
    index = Index(args.index)
    embedder = for_index(index, args.checkpoint)  # NumPy where the index keeps its model
    if queries is not None:
        failed = 0
        for line in answer_all(index, embedder, queries, top=args.top, by=args.by):
            failed += "error" in line
            print(json.dumps(line), flush=True)
        if failed:
            raise ScorelinkError(f"{failed} of {len(queries)} queries could not be answered "
                                 "(their lines carry \"error\")")
        return 0
    given = {"audio": args.audio, "image": args.image, "start": args.start, "end": args.end,
             "system": args.system}
    one = parse_query({k: v for k, v in given.items() if v is not None})
    results, verdict = answer_judged(index, embedder, one, top=args.top, by=args.by)
    if args.json:  # an audio query also says how confident the search is
        extra = {"confidence": verdict.to_dict()} if verdict is not None else {}
        print(json.dumps({"query": args.audio or args.image, "by": args.by,
                          "results": results, **extra}, indent=1))
    else:
        if verdict is not None and verdict.match is False:  # above the closest answers
            print(verdict.message + "; the closest answers:")
        elif verdict is not None and verdict.match is None:  # a model not calibrated
            print(f"scorelink: note: {verdict.message}", file=sys.stderr)
        print(_format_hits(results, args.by, "audio" if args.audio else "image"))
        twins = results[0].get("same_music") if results and args.by != "piece" else None
        if twins:  # the notes cannot tell these from the first answer
            print("the same music, note for note, is also at " + "; ".join(
                f"page {t['page']}, system {t['system']}" for t in twins)
                + f" of {results[0]['piece']} (no recording tells them apart)")
    return 0


def _format_hits(results: list[dict], by: str, kind: str) -> str:
    if not results:
        return "no results"
    if by == "piece":
        lines = [f"{'rank':>4}  {'score':>6}  {'hits':>4}  piece"]
        lines += [f"{r['rank']:>4}  {r['score']:>6.3f}  {r['hits']:>4}  {r['piece']}"
                  for r in results]
    elif kind == "audio":  # evidence: what ranked the answer there (notes, image or both)
        lines = [f"{'rank':>4}  {'score':>6}  {'page':>4}  {'system':>6}  {'evidence':>10}  piece"]
        lines += [f"{r['rank']:>4}  {r['score']:>6.3f}  {r['page']:>4}  {r['system']:>6}  "
                  f"{r.get('evidence', 'image'):>10}  {r['piece']}" for r in results]
    else:
        lines = [f"{'rank':>4}  {'score':>6}  {'start':>8}  {'end':>8}  recording"]
        lines += [f"{r['rank']:>4}  {r['score']:>6.3f}  {r['start']:>8.1f}  {r['end']:>8.1f}  "
                  f"{r['recording']}" for r in results]
    return "\n".join(lines)


def _align(args: argparse.Namespace) -> int:
    from pathlib import Path

    from scorelink.data.sources import VEROVIO_SUFFIXES
    from scorelink.search import align
    from scorelink.search.embed import Embedder

    outputs = [Path(f) for f in (args.out, args.measures) if f]
    for out in outputs:
        if out.suffix.lower() not in (".json", ".csv"):
            raise ScorelinkError(f"{out}: the file must end in .json or .csv")
    if args.measures and Path(args.score).suffix.lower() not in VEROVIO_SUFFIXES:
        raise ScorelinkError(f"{args.score}: --measures needs a score file engraved with Verovio "
                             "(MusicXML, MXL, kern, MEI); it alone gives measures")
    result, systems = align.align_files(args.score, args.recording,
                                        embedder=Embedder.load(args.checkpoint),
                                        image_only=args.image_only)
    played = align.rows(result, systems)
    measures = align.measure_rows(result, systems)
    if args.measures and not measures:
        raise ScorelinkError(f"{args.score} has no measures to time (a score file engraved "
                             "with Verovio has them: MusicXML, MXL, kern, MEI)")
    if args.out:
        _write_rows(Path(args.out), played, "systems", args.recording,
                    extra={"measures": measures} if measures else {})
    if args.measures:
        _write_rows(Path(args.measures), measures, "measures", args.recording)
    if args.plot:
        align.plot_alignment(result, args.plot, labels=[f"p{s['page'] + 1} s{s['on_page'] + 1}"
                                                        for s in systems])
    print(f"{'page':>4}  {'system':>6}  {'start':>8}  {'end':>8}  confidence  evidence")
    for r in played:
        print(f"{r['page']:>4}  {r['system']:>6}  {r['start']:>8.1f}  {r['end']:>8.1f}  "
              f"{r['confidence']:>10.2f}  {r['evidence']}")
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
            fields = {"systems": ["page", "system", "start", "end", "confidence", "evidence"],
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

    run_demo(args.out, checkpoint=args.checkpoint, workers=args.workers, limit=args.limit,
             progress=not args.no_progress)
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

    if args.split and not args.scores:
        raise ScorelinkError("--split is for --scores folders (corpora have their own splits)")
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
        if args.split:
            sources = [dataclasses.replace(source, split=args.split) for source in sources]
    config = BuildConfig(source=origin, seed=args.seed, train_renditions=args.renditions,
                         keep_audio=args.keep_audio, train_soundfonts=args.train_soundfonts,
                         valid_soundfont=args.valid_soundfont,
                         test_soundfont=args.test_soundfont, valid_tempi=args.valid_tempi)
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
        _check(args)
        return handlers[(args.command, getattr(args, "data_command", None))](args)
    except ScorelinkError as exc:
        print(f"scorelink: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scorelink: interrupted (finished pieces are kept; rerun to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # `python -m scorelink.cli ...`, as `scorelink ...`
    raise SystemExit(main())
