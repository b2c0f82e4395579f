"""Build a passage dataset: score -> engraving -> renditions -> spectrograms -> passages.

Pieces are built independently (in worker processes), each into a `.partial` folder that is
renamed when complete, so an interrupted build loses nothing that was finished and a rerun
skips finished pieces. `--shard i/n` builds every n-th piece, for clusters; any later run
re-assembles the manifest from all finished pieces.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from scorelink import constants as C
from scorelink.data import store
from scorelink.data.sources import ScoreSource
from scorelink.data.splits import Rendition, assign_splits, plan_renditions
from scorelink.data.synthesize import (
    SOUNDFONTS,
    TEST_SOUNDFONT,
    TRAIN_SOUNDFONTS,
    VALID_SOUNDFONT,
    check_synthesis,
    shares_samples,
)
from scorelink.errors import DatasetError, ScoreError, ScorelinkError


@dataclass(frozen=True)
class BuildConfig:
    """What a dataset is built from; a rerun into the same folder must use the same."""

    source: str  # "corpus:chorales" or "folder:/abs/path"
    seed: int = 0
    train_renditions: int = 8
    keep_audio: str = "test"  # "none" | "test" (held-out timbre, tempo 1.0) | "all"
    train_soundfonts: tuple[str, ...] = TRAIN_SOUNDFONTS
    valid_soundfont: str = VALID_SOUNDFONT
    test_soundfont: str = TEST_SOUNDFONT
    valid_tempi: tuple[float, ...] = (1.0,)  # tempo ratios of the validation renditions

    def __post_init__(self):
        object.__setattr__(self, "train_soundfonts", tuple(self.train_soundfonts))
        object.__setattr__(self, "valid_tempi", tuple(float(t) for t in self.valid_tempi))
        if 1.0 not in self.valid_tempi or not all(0.25 <= t <= 4 for t in self.valid_tempi):
            raise ScorelinkError(f"valid_tempi must include 1.0 (the validation rendition) and lie "
                                 f"in 0.25..4, not {self.valid_tempi}")
        if not self.train_soundfonts:
            raise ScorelinkError("at least one training soundfont is needed")
        for name in (*self.train_soundfonts, self.valid_soundfont, self.test_soundfont):
            if name not in SOUNDFONTS:
                raise ScorelinkError(f"unknown soundfont {name!r}; known: "
                                     f"{', '.join(sorted(SOUNDFONTS))}")
        if shares_samples(self.test_soundfont, (*self.train_soundfonts, self.valid_soundfont)):
            raise ScorelinkError(f"the test soundfont {self.test_soundfont!r} must be held out: "
                                 "not (the samples of) a training or validation one")

    @classmethod
    def from_meta(cls, config: dict) -> BuildConfig:
        """The config stored in a dataset.json (legacy settings where it names none)."""
        return cls(**store.with_legacy_settings(config))


@dataclass
class BuildReport:
    pieces: int = 0  # pieces of the source (all shards)
    built: int = 0  # built by this run
    skipped: int = 0  # already finished before this run
    failed: list[dict] = field(default_factory=list)  # failures of this run
    passages: dict[str, int] = field(default_factory=dict)  # manifest records per split
    seconds: float = 0.0


def build(
    sources: list[ScoreSource],
    out: str | Path,
    *,
    config: BuildConfig,
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    limit: int | None = None,
    only_split: str | None = None,
    progress: bool = True,
) -> BuildReport:
    """Build (or resume) the dataset in `out`. Raises ToolMissingError before any work.

    only_split: build just the pieces of that split (splits are still assigned over all
    sources, so a piece lands in the same split as in a full build).
    """
    t0 = time.perf_counter()
    if config.keep_audio not in ("none", "test", "all"):
        raise ScorelinkError(f"keep_audio must be none, test or all, not {config.keep_audio!r}")
    index, count = shard
    if not 0 <= index < count:
        raise ScorelinkError(f"shard {index}/{count}: need 0 <= i < n")
    check_synthesis((*config.train_soundfonts, config.valid_soundfont, config.test_soundfont))
    if any(s.kind == "lilypond" for s in sources):
        from scorelink.data.lilypond import check_lilypond

        check_lilypond()
    if limit is not None:
        sources = sources[:limit]
    if not sources:
        raise ScorelinkError("no scores to build")
    root = Path(out)
    splits = _splits(sources, seed=config.seed)
    every_piece = [s.piece for s in sources]  # the manifest lists every finished one
    if only_split is not None:
        sources = [s for s in sources if splits[s.piece] == only_split]
        if not sources:
            raise ScorelinkError(f"no pieces in split {only_split!r}")
    _open_dataset(root, config, splits)

    todo = []
    report = BuildReport(pieces=len(sources))
    for i, source in enumerate(sources):
        if i % count != index:
            continue
        if (store.piece_dir(root, source.piece) / "piece.json").exists():
            report.skipped += 1
            continue
        if source.kind == "beethoven":  # one rendition per real performance
            todo.append((source, splits[source.piece], config, str(root), config.keep_audio))
            continue
        renditions = plan_renditions(
            source.piece, splits[source.piece], seed=config.seed, n_train=config.train_renditions,
            train_soundfonts=config.train_soundfonts, valid_soundfont=config.valid_soundfont,
            test_soundfont=config.test_soundfont, valid_tempi=config.valid_tempi,
        )
        todo.append((source, splits[source.piece], renditions, str(root), config.keep_audio))

    for result in _run(todo, workers=workers, progress=progress):
        failure_file = root / "failures" / f"{result['piece']}.json"
        for old in (root / "failures").glob(f"{result['piece']}@*.json"):
            old.unlink()
        for k, partial in enumerate(result.get("partial", [])):  # performances left out
            store.write_json(root / "failures" / f"{result['piece']}@{k:03d}.json", partial)
            report.failed.append(partial)
        if result["ok"]:
            report.built += 1
            failure_file.unlink(missing_ok=True)
        else:
            report.failed.append(result["failure"])
            store.write_json(failure_file, result["failure"])
    report.passages = assemble(root, every_piece)
    report.seconds = time.perf_counter() - t0
    return report


def _splits(sources: list[ScoreSource], *, seed: int) -> dict[str, str]:
    """piece -> split: fixed by the corpus (MSMD), by sonata (beethoven: every movement of a
    sonata in its sonata's split), else by piece."""
    from scorelink.data.beethoven import sonata_of

    real = [s.piece for s in sources if s.kind == "beethoven"]
    splits = assign_splits([s.piece for s in sources if s.kind != "beethoven"], seed=seed)
    if real:
        by_sonata = assign_splits(sorted({sonata_of(p) for p in real}), seed=seed)
        splits.update({p: by_sonata[sonata_of(p)] for p in real})
    splits.update({s.piece: s.split for s in sources if s.split})
    return splits


def _open_dataset(root: Path, config: BuildConfig, splits: dict[str, str]) -> None:
    """Create dataset.json, or check that an existing one was built the same way."""
    meta = {
        "format": store.FORMAT,
        "version": store.VERSION,
        "config": asdict(config),
        "constants": {
            k: getattr(C, k)
            for k in ("SAMPLE_RATE", "FPS", "FRAME_SIZE", "N_BINS", "PAGE_WIDTH", "STRIP_HEIGHT")
        },
        "splits": splits,
    }
    path = root / "dataset.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path} is corrupt ({exc}); choose another --out") from exc
        if old.get("format") != store.FORMAT:
            raise DatasetError(f"{root} holds something else than a scorelink dataset")
        try:  # an older dataset.json names fewer settings: they had their legacy values
            old["config"] = asdict(BuildConfig.from_meta(old.get("config") or {}))
        except (TypeError, ScorelinkError):
            pass  # another layout: it differs from ours below
        for key in ("version", "config", "splits"):
            if old.get(key) != meta[key]:
                raise DatasetError(
                    f"{root} was built with other settings ({key} differs: "
                    f"{old.get(key)!r:.200}); rerun with the same source, --limit, --seed and "
                    "renditions, or pick another --out"
                )
        return
    if root.exists() and any(root.iterdir()):
        raise DatasetError(f"{root} is not empty and not a scorelink dataset; pick another --out")
    (root / "pieces").mkdir(parents=True, exist_ok=True)
    (root / "failures").mkdir(exist_ok=True)
    store.write_json(path, meta)


def _run(todo: list[tuple], *, workers: int, progress: bool):
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="piece", disable=not progress, desc="building")
    if workers <= 1 or len(todo) <= 1:
        results = map(_build_piece_safe, todo)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(workers, maxtasksperchild=50)
        results = pool.imap_unordered(_build_piece_safe, todo)
    try:
        for result in results:
            bar.update()
            if not result["ok"]:
                bar.write(f"failed: {result['piece']} ({result['failure']['stage']}): "
                          f"{result['failure']['reason']}")
            yield result
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()


def _build_piece_safe(task: tuple) -> dict:
    """Build one piece; any error becomes a failure record (the build goes on)."""
    source, split, renditions, root, keep_audio = task
    stage = ["read"]
    try:
        if source.kind == "beethoven":
            from scorelink.data.beethoven import build_movement

            config = renditions
            n, partial = build_movement(
                source, split, Path(root), seed=config.seed,
                train_soundfonts=config.train_soundfonts, valid_soundfont=config.valid_soundfont,
                test_soundfont=config.test_soundfont, keep_audio=keep_audio, stage=stage)
            return {"ok": True, "piece": source.piece, "passages": n, "partial": partial}
        n = build_piece(source, split, renditions, Path(root), keep_audio=keep_audio, stage=stage)
        return {"ok": True, "piece": source.piece, "passages": n}
    except Exception as exc:  # noqa: BLE001 - one bad score must not stop the build
        if not isinstance(exc, ScorelinkError) and stage[0] == "write":
            raise
        shutil.rmtree(store.piece_dir(Path(root), source.piece + ".partial"), ignore_errors=True)
        failure = {"piece": source.piece, "origin": source.origin, "stage": stage[0],
                   "reason": f"{type(exc).__name__}: {exc}"}
        return {"ok": False, "piece": source.piece, "failure": failure}


def build_piece(
    source: ScoreSource,
    split: str,
    renditions: list[Rendition],
    root: Path,
    *,
    keep_audio: str = "test",
    stage: list[str] | None = None,
) -> int:
    """Engrave, synthesise and cut one piece into `root/pieces/<piece>`. Returns #records."""
    from PIL import Image

    from scorelink.data.engrave import engrave
    from scorelink.data.passages import frame_of, spans, strip, strip_top
    from scorelink.data.spectrogram import spectrogram
    from scorelink.data.synthesize import render

    stage = stage if stage is not None else ["read"]
    final = store.piece_dir(root, source.piece)
    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)

    stage[0] = "read"
    if source.kind == "lilypond":
        from scorelink.data.lilypond import engrave_lilypond

        if not Path(source.origin).is_file():
            raise ScoreError(f"{source.origin} does not exist")
        stage[0] = "engrave"
        eng = engrave_lilypond(source.origin)
    else:
        data, zipped = source.load()
        stage[0] = "engrave"
        eng = engrave(data, zipped=zipped)
    cuts = spans(eng)
    (tmp / "pages").mkdir(parents=True)
    for i, page in enumerate(eng.pages):
        Image.fromarray(page).save(tmp / "pages" / f"page-{i + 1:03d}.png")
    np.save(tmp / "strips.npy", np.stack([strip(eng.pages[s.page], s) for s in eng.systems]))

    perf = eng.performance
    head_x = np.array([n.x for n in eng.notes], dtype=np.float32)
    head_y = np.array([n.y for n in eng.notes], dtype=np.float32)
    records: list[dict] = []
    for rendition in renditions:
        stage[0] = "synthesize"
        tempo = rendition.tempo
        audio = render(perf.onset, perf.offset, perf.pitch,
                       soundfont=rendition.soundfont, tempo=tempo)
        spec = spectrogram(audio)  # (N_BINS, T)
        stage[0] = "write"
        np.save(tmp / f"{rendition.name}.spec.npy", spec.astype(np.float16))
        if keep_audio == "all" or (
            keep_audio == "test" and split == "test" and tempo == 1.0
        ):
            import soundfile

            soundfile.write(tmp / f"{rendition.name}.flac", audio, C.SAMPLE_RATE)
        table = np.zeros(len(perf), dtype=store.NOTE_DTYPE)
        table["onset"] = perf.onset / tempo
        table["offset"] = perf.offset / tempo
        table["onset_frame"] = frame_of(perf.onset / tempo)
        table["pitch"] = perf.pitch
        table["x"] = head_x[perf.note]
        for k, span in enumerate(cuts):
            system = eng.systems[span.system]
            rows = slice(span.first, span.stop)
            table["passage"][rows] = k
            table["y"][rows] = head_y[perf.note[rows]] - strip_top(system)
            start_frame = int(frame_of(span.start / tempo))
            end_frame = max(int(frame_of(span.end / tempo)), start_frame + 1)
            records.append({
                "passage_id": f"{source.piece}/{rendition.name}/{k:03d}",
                "piece": source.piece,
                "split": split,
                "rendition": rendition.name,
                "soundfont": rendition.soundfont,
                "tempo": tempo,
                "page": system.page,
                "system": span.system,
                "system_on_page": system.index_on_page,
                "occurrence": span.occurrence,
                "box": [round(v, 1) for v in system.box],
                "strip": span.system,
                "strip_top": strip_top(system),
                "start": round(span.start / tempo, 4),
                "end": round(span.end / tempo, 4),
                "start_frame": start_frame,
                "end_frame": end_frame,
                "notes": [span.first, span.stop],
                "tall": bool(system.bottom - system.top > C.STRIP_HEIGHT),
            })
        np.save(tmp / f"{rendition.name}.notes.npy", table)

    stage[0] = "write"
    info = {
        "piece": source.piece,
        "origin": source.origin,
        "split": split,
        "pages": len(eng.pages),
        "systems": [asdict(s) for s in eng.systems],
        "notes": len(eng.notes),
        "performed_notes": len(perf),
        "duration": float(perf.offset.max()),
        "renditions": [r.name for r in renditions],
    }
    store.write_jsonl(tmp / "manifest.jsonl", records)
    store.write_json(tmp / "piece.json", info)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return len(records)


def assemble(root: Path, pieces: list[str]) -> dict[str, int]:
    """Write manifest.jsonl and failures.jsonl from every finished piece; counts per split."""
    records: list[dict] = []
    for piece in pieces:
        manifest = store.piece_dir(root, piece) / "manifest.jsonl"
        if (store.piece_dir(root, piece) / "piece.json").exists():
            records.extend(store.read_jsonl(manifest))
    store.write_jsonl(root / "manifest.jsonl", records)
    failures = [json.loads(p.read_text()) for p in sorted((root / "failures").glob("*.json"))]
    store.write_jsonl(root / "failures.jsonl", failures)
    counts: dict[str, int] = {}
    for r in records:
        counts[r["split"]] = counts.get(r["split"], 0) + 1
    return counts
