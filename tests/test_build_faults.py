"""Building from a folder of the user's scores: failures, missing tools, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from scorelink.data import synthesize
from scorelink.data.build import BuildConfig, build
from scorelink.data.sources import folder_sources
from scorelink.data.splits import assign_splits, plan_renditions
from scorelink.data.store import Dataset
from scorelink.errors import DatasetError, ScoreError, ScorelinkError, ToolMissingError
from scorelink.evaluate.retrieval import eval_records


def test_broken_score_lands_in_failures_file(tiny_scores, tmp_path):
    (tiny_scores / "broken.musicxml").write_text("<score-partwise><part id='P1'><measure")
    (tiny_scores / "empty.mei").write_text("")
    out = tmp_path / "ds"
    report = build(folder_sources(tiny_scores), out, config=BuildConfig(source="test:tiny"),
                   progress=False)
    assert report.built == 2
    failures = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert {f["piece"] for f in failures} == {"broken", "empty"}
    assert all(f["stage"] in ("read", "engrave") and f["reason"] for f in failures)
    ds = Dataset(out)
    assert {r["piece"] for r in ds} == {"a", "b"}
    # a rerun tries the failed ones again, keeps the built ones
    again = build(folder_sources(tiny_scores), out, config=BuildConfig(source="test:tiny"),
                  progress=False)
    assert (again.built, again.skipped, len(again.failed)) == (0, 2, 2)


def test_tiny_score_notes_and_timing(tiny_scores, tmp_path):
    out = tmp_path / "ds"
    build(folder_sources(tiny_scores), out, config=BuildConfig(source="test:tiny"),
          progress=False)
    ds = Dataset(out)
    r = ds.records(piece="a")[0]
    notes = ds.notes(r)
    assert len(notes) == 12  # 8 quarter notes + 4 half notes
    # Verovio's default tempo (120 bpm): one quarter note is 0.5 s at tempo 1.0
    right_hand = np.sort(notes["onset"][notes["pitch"] >= 60])
    assert np.diff(right_hand) == pytest.approx(0.5 / r["tempo"], abs=2e-3)
    assert sorted(notes["pitch"][notes["pitch"] >= 60]) == [60, 62, 64, 65, 67, 69, 71, 72]


def test_missing_soundfont_stops_before_any_work(tiny_scores, tmp_path, monkeypatch):
    monkeypatch.setattr(synthesize, "_SF_DIRS", (str(tmp_path / "no-soundfonts"),))
    out = tmp_path / "ds"
    with pytest.raises(ToolMissingError, match="apt-get install"):
        build(folder_sources(tiny_scores), out, config=BuildConfig(source="test:tiny"),
              progress=False)
    assert not out.exists()


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(ScoreError, match="does not exist"):
        folder_sources(tmp_path / "nope")
    with pytest.raises(ScoreError, match="no score files"):
        folder_sources(tmp_path)


def test_splits_deterministic_by_piece():
    pieces = [f"p{i}" for i in range(100)]
    a = assign_splits(pieces, seed=0)
    assert a == assign_splits(list(reversed(pieces)), seed=0)
    assert a != assign_splits(pieces, seed=1)
    counts = {s: sum(v == s for v in a.values()) for s in ("train", "valid", "test")}
    assert counts == {"train": 70, "valid": 10, "test": 20}
    assert set(assign_splits(["x", "y", "z"], seed=3).values()) == {"train", "valid", "test"}


def test_rendition_plan():
    n = len(synthesize.TRAIN_SOUNDFONTS)
    plan = plan_renditions("p", "train", seed=0, n_train=n)
    assert len({r.name for r in plan}) == n
    assert {r.soundfont for r in plan} == set(synthesize.TRAIN_SOUNDFONTS)
    assert plan == plan_renditions("p", "train", seed=0, n_train=n)
    assert len({r.name for r in plan_renditions("p", "train", seed=0, n_train=15)}) == 15
    # validation plays a piano that training never hears, and the test another one
    valid = plan_renditions("p", "valid", seed=0)
    assert [r.name for r in valid] == ["tonejs-piano@1.00"]
    assert valid[0].soundfont not in {*synthesize.TRAIN_SOUNDFONTS, synthesize.TEST_SOUNDFONT}
    fonts = ("fluidr3-grand", "timgm6mb-grand")
    assert {r.soundfont for r in plan_renditions("p", "train", seed=0, n_train=3,
                                                  train_soundfonts=fonts)} == set(fonts)
    with pytest.raises(ScorelinkError, match="unknown soundfont"):
        BuildConfig(source="x", train_soundfonts=("no-such-piano",))
    with pytest.raises(ScorelinkError, match="must be held out"):
        BuildConfig(source="x", train_soundfonts=("musescore-grand",))
    with pytest.raises(ScorelinkError, match="must be held out"):
        BuildConfig(source="x", test_soundfont="csound-grand")  # timgm6mb-grand's samples
    with pytest.raises(ScorelinkError, match="must be held out"):
        BuildConfig(source="x", test_soundfont="tonejs-piano")
    test = plan_renditions("p", "test", seed=0, test_soundfont="timgm6mb-grand")
    assert {r.soundfont for r in test} == {"timgm6mb-grand"} and len(test) == 5


def test_datasets_built_before_the_soundfont_settings(tiny_scores, tmp_path):
    """A dataset.json that names no soundfonts was built with the three legacy training
    timbres and validated on the first; a rerun with those settings is accepted."""
    out = tmp_path / "ds"
    legacy = BuildConfig(source="test:tiny", train_renditions=2,
                         train_soundfonts=synthesize.LEGACY_TRAIN_SOUNDFONTS,
                         valid_soundfont=synthesize.LEGACY_VALID_SOUNDFONT)
    build(folder_sources(tiny_scores), out, config=legacy, progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    del meta["config"]["train_soundfonts"], meta["config"]["valid_soundfont"]
    (out / "dataset.json").write_text(json.dumps(meta))
    assert Dataset(out).valid_soundfont == "fluidr3-grand"
    assert Dataset(out).validates_on_a_training_piano  # fluidr3-grand trained too
    assert Dataset(out).test_soundfont == "musescore-grand"
    again = build(folder_sources(tiny_scores), out, config=legacy, progress=False)
    assert again.skipped == 2
    with pytest.raises(DatasetError, match="other settings"):
        build(folder_sources(tiny_scores), out, progress=False,
              config=BuildConfig(source="test:tiny", train_renditions=2))


def test_synthesis_places_notes_on_time():
    """A single note at 1.0 s: silence before, sound after; tempo 2 moves it to 0.5 s."""
    for tempo, expected in ((1.0, 1.0), (2.0, 0.5)):
        audio = synthesize.render(np.array([1.0]), np.array([1.5]), np.array([60]),
                                  soundfont="timgm6mb-grand", tempo=tempo)
        sr = synthesize.SAMPLE_RATE
        start = np.argmax(np.abs(audio) > 1e-3) / sr
        assert start == pytest.approx(expected, abs=0.02)
        assert len(audio) / sr == pytest.approx(1.5 / tempo + synthesize.TAIL_SECONDS, abs=0.01)


def test_a_rendition_after_fresh_synthesizers_does_not_depend_on_earlier_ones():
    """FluidSynth carries state from one rendition to the next (block and dither positions,
    reverb): the same notes differ after other notes, and are the same again after
    fresh_synthesizers (what the Beethoven builder calls before each movement)."""
    rng = np.random.default_rng(0)
    onset = np.sort(rng.uniform(0.2, 2.0, 12))
    notes = (onset, onset + 0.3, rng.integers(40, 80, 12))
    kw = {"soundfont": "timgm6mb-grand", "velocity": rng.integers(40, 110, 12),
          "controls": np.array([[0.1, 64, 127], [1.0, 64, 0]])}
    synthesize.fresh_synthesizers()
    first = synthesize.render(*notes, **kw)
    other = synthesize.render(np.array([0.0]), np.array([0.0123]), np.array([61]),
                              soundfont="timgm6mb-grand")
    assert len(other) % 64  # leaves the synthesizer mid-block
    assert not np.array_equal(synthesize.render(*notes, **kw), first)
    synthesize.fresh_synthesizers()
    np.testing.assert_array_equal(synthesize.render(*notes, **kw), first)


def test_cli_build_stats_show(tiny_scores, tmp_path):
    out = tmp_path / "ds"
    cli = [sys.executable, "-m", "scorelink"]
    run = subprocess.run(cli + ["data", "build", "--scores", str(tiny_scores), "--out", str(out),
                                "--workers", "2", "--no-progress"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "built 2" in run.stdout
    run = subprocess.run(cli + ["data", "stats", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "2 pieces" in run.stdout and (out / "durations.png").stat().st_size > 1000
    pid = Dataset(out).records()[0]["passage_id"]
    png = tmp_path / "p.png"
    run = subprocess.run(cli + ["data", "show", str(out), "--passage", pid, "--out", str(png)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"
    bad = subprocess.run(cli + ["data", "stats", str(tmp_path / "missing")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "does not exist" in bad.stderr
    bad = subprocess.run(cli + ["data", "show", str(out), "--passage", "nope", "--out",
                                str(png)], capture_output=True, text=True)
    assert bad.returncode != 0 and "no passage" in bad.stderr


def test_a_build_split_by_split_lists_every_finished_split(three_scores, tmp_path):
    """--only-split builds one split; the manifest keeps the splits built before it."""
    out = tmp_path / "data"
    config = BuildConfig(source="test:tiny", train_renditions=1)
    seen = []
    for split in ("valid", "test", "train"):
        build(folder_sources(three_scores), out, config=config, workers=1, only_split=split,
              progress=False)
        seen.append(split)
        assert {r["split"] for r in Dataset(out)} == set(seen)


def test_a_folder_built_into_one_split(three_scores, tmp_path, capsys):
    """--split puts every piece of a --scores folder in one split (extra training material)."""
    from scorelink.cli import main

    out = tmp_path / "extra"
    assert main(["data", "build", "--scores", str(three_scores), "--out", str(out), "--split",
                 "train", "--renditions", "1", "--workers", "1", "--no-progress"]) == 0
    records = list(Dataset(out))
    assert records and {r["split"] for r in records} == {"train"}
    assert len({r["piece"] for r in records}) == 3
    assert main(["data", "build", "--corpus", "chorales", "--out", str(tmp_path / "c"),
                 "--split", "train"]) == 2
    assert "--split is for --scores" in capsys.readouterr().err


def test_validation_at_every_tempo(three_scores, tmp_path, capsys):
    """--valid-tempi renders the validation pieces at each ratio, as the test split is: the
    passages of the slow rendition last twice as long, tempo 1.0 stays what evaluation and
    training's validation read, and a rerun with other ratios is refused."""
    from scorelink.cli import main

    assert plan_renditions("p", "valid", seed=0, valid_tempi=(0.5, 1.0, 2.0))[0].tempo == 0.5
    with pytest.raises(ScorelinkError, match="valid_tempi"):
        BuildConfig(source="x", valid_tempi=(0.5, 2.0))
    out = tmp_path / "vt"
    args = ["data", "build", "--scores", str(three_scores), "--out", str(out), "--split",
            "valid", "--workers", "1", "--no-progress"]
    assert main([*args, "--valid-tempi", "0.5,1"]) == 0
    ds = Dataset(out)
    slow, plain = (ds.records(split="valid", tempo=t) for t in (0.5, 1.0))
    assert len(slow) == len(plain) > 0
    for a, b in zip(sorted(slow, key=lambda r: (r["piece"], r["start"])),
                    sorted(plain, key=lambda r: (r["piece"], r["start"])), strict=True):
        assert a["system"] == b["system"]
        assert a["end"] - a["start"] == pytest.approx(2 * (b["end"] - b["start"]), abs=0.01)
    assert {r["tempo"] for r in eval_records(ds, split="valid")} == {1.0}
    assert main([*args, "--valid-tempi", "1,2"]) == 2
    assert "other settings" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # 1.0 must be among them
        main([*args, "--valid-tempi", "0.5"])
