"""Shared fixtures: a tiny dataset of three real chorales, built once per test session."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scorelink.data.build import BuildConfig, build
from scorelink.data.sources import corpus_sources


@contextmanager
def serving(app) -> Iterator[str]:
    """The web app served by uvicorn in a thread on a free local port: yields its base URL."""
    import uvicorn

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# Three short chorales; bwv269 repeats its first section (a system that sounds twice).
CHORALES = ("bach-bwv269", "bach-bwv347", "bach-bwv153.1")


def _require_tools() -> None:
    from scorelink.data.synthesize import check_synthesis

    check_synthesis()  # fails (does not skip) with an install hint when a tool is missing


@pytest.fixture(scope="session")
def chorale_sources():
    by_name = {s.piece: s for s in corpus_sources("chorales")}
    return [by_name[name] for name in CHORALES]


@pytest.fixture(scope="session")
def chorale_dataset(tmp_path_factory, chorale_sources) -> Path:
    _require_tools()
    out = tmp_path_factory.mktemp("data") / "chorales"
    config = BuildConfig(source="test:chorales", train_renditions=4)
    report = build(chorale_sources, out, config=config, workers=1, progress=False)
    assert report.built == 3 and not report.failed, report
    return out


@pytest.fixture()
def tiny_scores(tmp_path) -> Path:
    """A folder with two generated two-bar piano scores (MusicXML and MXL)."""
    from music21 import clef, meter, note, stream

    folder = tmp_path / "scores"
    folder.mkdir()
    for k, (name, fmt) in enumerate((("a.musicxml", "musicxml"), ("b.mxl", "mxl"))):
        score = stream.Score()
        right, left = stream.PartStaff(), stream.PartStaff()
        right.append([clef.TrebleClef(), meter.TimeSignature("4/4")])
        left.append([clef.BassClef(), meter.TimeSignature("4/4")])
        for i in range(8):
            right.append(note.Note(60 + k + [0, 2, 4, 5, 7, 9, 11, 12][i], quarterLength=1))
        for i in range(4):
            left.append(note.Note(48 + k + [0, 7, 5, 7][i], quarterLength=2))
        score.insert(0, right)
        score.insert(0, left)
        score.write(fmt, fp=str(folder / name))
    return folder


@pytest.fixture()
def copy_dataset(tmp_path, chorale_dataset) -> Path:
    """A private copy of the chorale dataset, for tests that change it."""
    target = tmp_path / "copy"
    shutil.copytree(chorale_dataset, target)
    return target


@pytest.fixture()
def three_scores(tiny_scores) -> Path:
    """tiny_scores plus a third piece, so that every split gets one piece."""
    shutil.copy(tiny_scores / "a.musicxml", tiny_scores / "c.musicxml")
    text = (tiny_scores / "c.musicxml").read_text().replace("<step>C</step>", "<step>D</step>")
    (tiny_scores / "c.musicxml").write_text(text)
    return tiny_scores


def tiny_passage_model(seed: int = 0):
    """An untrained tiny passage model (search mechanics, not search quality)."""
    import torch

    from scorelink.models.passage import PassageModel, PassageModelConfig

    torch.manual_seed(seed)
    return PassageModel(PassageModelConfig.preset("tiny")).eval()


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    from scorelink import checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    checkpoint.save(path, tiny_passage_model())
    return path


@pytest.fixture(scope="session")
def data_index(tmp_path_factory, chorale_dataset, tiny_ckpt) -> Path:
    """An index of the chorale dataset's test split, made through the CLI."""
    from scorelink.cli import main

    out = tmp_path_factory.mktemp("idx") / "idx"
    assert main(["index", "--out", str(out), "--checkpoint", str(tiny_ckpt),
                 "--data", str(chorale_dataset)]) == 0
    return out
