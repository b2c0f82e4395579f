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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scorelink",
        description="Link audio recordings and sheet-music images passage by passage.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build and look at passage datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)

    b = dsub.add_parser("build", help="engrave, synthesise and cut scores into passages")
    src = b.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", choices=["chorales"], help="built-in corpus (music21)")
    src.add_argument("--scores", metavar="FOLDER", help="folder of MusicXML/MXL/kern/MEI files")
    b.add_argument("--out", required=True, metavar="DIR")
    b.add_argument("--limit", type=int, help="only the first N pieces")
    b.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    b.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                   help="build only every N-th piece starting at I (0-based)")
    b.add_argument("--seed", type=int, default=0, help="seed of the splits and renditions")
    b.add_argument("--renditions", type=int, default=4, help="renditions per training piece")
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
    t.add_argument("--data", metavar="DIR")
    t.add_argument("--out", metavar="RUN", help="run folder (rerun the same command to resume)")
    t.add_argument("--model", choices=["rnn", "snippet"],
                   help="rnn: the passage model (default); snippet: the baseline (BL)")
    t.add_argument("--preset", choices=["paper", "tiny"])
    t.add_argument("--init-from", metavar="CKPT", help="start the CNNs from this checkpoint")
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

    e = sub.add_parser("evaluate", help="retrieval metrics of a model on a dataset split")
    e.add_argument("--data", required=True, metavar="DIR")
    e.add_argument("--checkpoint", metavar="CKPT", help="default: the shipped model")
    e.add_argument("--split", default="test", choices=["test", "valid"])
    e.add_argument("--direction", default="both", choices=["a2s", "s2a", "both"])
    e.add_argument("--tempo", type=float, default=1.0, metavar="RHO",
                   help="tempo ratio of the test rendition (0.5, 0.66, 1, 1.33, 2)")
    e.add_argument("--json", metavar="FILE", help="also write the metrics here")
    return p


def _train(args: argparse.Namespace) -> int:
    from scorelink.train.config import TrainConfig
    from scorelink.train.trainer import Trainer

    config = TrainConfig.load(args.config, args.overrides, data=args.data, out=args.out,
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


def _evaluate(args: argparse.Namespace) -> int:
    from scorelink import checkpoint
    from scorelink.evaluate.report import format_table
    from scorelink.evaluate.retrieval import DIRECTIONS, evaluate

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
    return 0


def _data_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from scorelink.data.build import BuildConfig, build
    from scorelink.data.sources import corpus_sources, folder_sources

    if args.corpus:
        sources, origin = corpus_sources(args.corpus), f"corpus:{args.corpus}"
    else:
        sources, origin = folder_sources(args.scores), f"folder:{Path(args.scores).resolve()}"
    config = BuildConfig(source=origin, seed=args.seed, train_renditions=args.renditions,
                         keep_audio=args.keep_audio)
    report = build(sources, args.out, config=config, workers=args.workers, shard=args.shard,
                   limit=args.limit, progress=not args.no_progress)
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
                ("refine-cca", None): _refine_cca}
    try:
        return handlers[(args.command, getattr(args, "data_command", None))](args)
    except ScorelinkError as exc:
        print(f"scorelink: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scorelink: interrupted (finished pieces are kept; rerun to resume)", file=sys.stderr)
        return 130
