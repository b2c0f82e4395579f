"""The built dataset, checked against its meaning (three real chorales, end to end)."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from scorelink.constants import FPS, N_BINS, PAGE_WIDTH, STRIP_HEIGHT
from scorelink.data.build import BuildConfig, build
from scorelink.data.store import Dataset
from scorelink.data.synthesize import TRAIN_SOUNDFONTS
from scorelink.errors import DatasetError
from scorelink.search.reading import PX_PER_SECOND


def _by_rendition(ds: Dataset) -> dict[tuple[str, str], list[dict]]:
    groups = defaultdict(list)
    for r in ds:
        groups[(r["piece"], r["rendition"])].append(r)
    return groups


def test_manifest_fields_and_unique_ids(chorale_dataset):
    ds = Dataset(chorale_dataset)
    ids = [r["passage_id"] for r in ds]
    assert len(ids) == len(set(ids))
    for r in ds:
        for key in ("piece", "page", "system", "box", "start", "end", "start_frame", "end_frame",
                    "split", "soundfont", "tempo"):
            assert key in r
    # every split, the held-out timbre only in test, all test tempo ratios
    assert {r["split"] for r in ds} == {"train", "valid", "test"}
    assert {r["soundfont"] for r in ds if r["split"] != "test"}.isdisjoint({"musescore-grand"})
    assert {r["tempo"] for r in ds if r["split"] == "test"} == {0.5, 0.66, 1.0, 1.33, 2.0}
    train = [r for r in ds if r["split"] == "train"]
    assert len({r["rendition"] for r in train}) == 4  # the fixture builds 4 of them
    assert {r["soundfont"] for r in train} <= set(TRAIN_SOUNDFONTS)
    assert len({r["soundfont"] for r in train}) == 4  # one training piece: 4 of the 5 timbres
    # validation plays a piano that training never hears
    assert {r["soundfont"] for r in ds if r["split"] == "valid"} == {"tonejs-piano"}
    assert not ds.validates_on_a_training_piano


def test_passages_in_time_order_without_overlap(chorale_dataset):
    for (_, _), records in _by_rendition(Dataset(chorale_dataset)).items():
        starts = [r["start"] for r in records]
        assert starts == sorted(starts)
        for a, b in zip(records, records[1:], strict=False):
            assert a["start"] < a["end"] <= b["start"] + 1e-6
            assert a["start_frame"] < a["end_frame"] <= b["start_frame"]


def test_every_note_onset_inside_its_system_span(chorale_dataset):
    ds = Dataset(chorale_dataset)
    total = 0
    for r in ds:
        notes = ds.notes(r)
        assert len(notes) > 0
        onset = notes["onset"]
        assert np.all(onset >= r["start"] - 1e-4) and np.all(onset < r["end"]), r["passage_id"]
        frames = notes["onset_frame"]  # relative to the passage
        assert np.all(frames >= 0) and np.all(frames < r["end_frame"] - r["start_frame"])
        total += len(notes)
    assert total > 1000


def test_noteheads_inside_system_box_and_on_ink(chorale_dataset):
    ds = Dataset(chorale_dataset)
    for r in ds.records(rendition="musescore-grand@1.00") + ds.records(split="train"):
        top, left, bottom, right = r["box"]
        notes = ds.notes(r)
        page_y = notes["y"] + r["strip_top"]
        assert np.all((notes["x"] >= left) & (notes["x"] <= right))
        assert np.all((page_y >= top) & (page_y <= bottom))
        assert np.all((notes["y"] >= 0) & (notes["y"] < STRIP_HEIGHT))
        heads = ds.noteheads(r)  # what the note reader learns to read: the same heads
        assert np.array_equal(heads, np.c_[notes["x"], notes["pitch"]])
        # placed by when they sound: the same heads, later on the timeline exactly when later
        # in the audio
        timed = ds.noteheads(r, px_per_second=PX_PER_SECOND)
        assert np.array_equal(timed[:, 1], heads[:, 1])
        assert np.allclose(timed[:, 0], notes["onset"] * PX_PER_SECOND)
        strip = ds.strip(r)
        for x, y in zip(notes["x"], notes["y"], strict=True):  # a notehead is drawn there
            xi, yi = int(round(x)), int(round(y))
            assert strip[yi - 2 : yi + 3, xi - 2 : xi + 3].min() < 100, (r["passage_id"], x, y)


def test_voices_of_a_chord_are_stacked_not_in_sequence(chorale_dataset):
    """Alto under soprano: notes struck together sit at one horizontal position."""
    ds = Dataset(chorale_dataset)
    spreads = []
    for r in ds.records(rendition="musescore-grand@1.00"):
        notes = ds.notes(r)
        for t in np.unique(notes["onset"]):
            xs = notes["x"][notes["onset"] == t]
            # colliding voices are shifted by a notehead (about 8 px); a beat is much further
            assert np.ptp(xs) < 18, (r["passage_id"], t, xs)
            spreads.append(np.ptp(xs))
    assert np.median(spreads) < 3.0  # stem-up and stem-down heads differ by ~2 px


def test_repeated_system_gives_one_passage_per_time_it_sounds(chorale_dataset):
    ds = Dataset(chorale_dataset)
    records = [r for r in ds if r["piece"] == "bach-bwv269" and r["tempo"] == 1.0
               or r["piece"] == "bach-bwv269" and r["split"] != "test"]
    rendition = records[0]["rendition"]
    systems = [r["system"] for r in records if r["rendition"] == rendition]
    assert systems.count(0) == 2, systems  # |: first line :| is played twice
    occurrences = [r["occurrence"] for r in records if r["rendition"] == rendition
                   and r["system"] == 0]
    assert occurrences == [0, 1]


def test_printed_order_lays_each_system_once_end_to_end(chorale_dataset):
    """The score's notes as a read timeline knows them (no repeat signs): the repeated first
    line once, every system's notes inside its own stretch, the stretches in printed order."""
    from scorelink.search.collect import _dataset_notes

    ds = Dataset(chorale_dataset)
    rendition = next(r["rendition"] for r in ds if r["piece"] == "bach-bwv269")
    records = [r for r in ds if r["piece"] == "bach-bwv269" and r["rendition"] == rendition]
    played = _dataset_notes(ds, records)
    printed = _dataset_notes(ds, records, printed=True)
    assert sorted(printed) == sorted(played)
    first = {r["system"]: r for r in records if r["occurrence"] == 0}
    at = 0.0
    for system in sorted(first):
        r, notes = first[system], printed[("bach-bwv269", system)]
        assert len(notes) == r["notes"][1] - r["notes"][0]  # one pass
        span = r["end"] - r["start"]
        assert notes[:, 0].min() >= at - 1e-4 and notes[:, 0].max() <= at + span + 1e-4
        assert np.allclose(notes[:, 2], played[("bach-bwv269", system)][:len(notes), 2])
        at += span
    passes = [r["notes"][1] - r["notes"][0] for r in records if r["system"] == 0]  # |: :|
    assert len(passes) == 2 and len(played[("bach-bwv269", 0)]) == sum(passes)


def test_audio_matches_the_onsets(chorale_dataset):
    """Spectral flux is higher at annotated onset frames than elsewhere."""
    ds = Dataset(chorale_dataset)
    for r in ds.records(tempo=1.0)[:6]:
        p = ds.passage(r)
        assert p.spec.shape[0] == N_BINS and p.spec.dtype == np.float32
        flux = np.maximum(np.diff(p.spec, axis=1), 0).sum(axis=0)  # (T-1,)
        onset_frames = np.unique(p.notes["onset_frame"])
        onset_frames = onset_frames[(onset_frames >= 1) & (onset_frames < len(flux))]
        after = flux[np.minimum(onset_frames, len(flux) - 1)]
        at_onsets = np.maximum(flux[onset_frames - 1], after)
        others = np.setdiff1d(np.arange(len(flux)), np.r_[onset_frames - 1, onset_frames])
        assert at_onsets.mean() > 2 * flux[others].mean(), r["passage_id"]


def test_tempo_renditions_scale_time(chorale_dataset):
    ds = Dataset(chorale_dataset)
    test_piece = ds.records(split="test")[0]["piece"]
    base = ds.records(piece=test_piece, tempo=1.0)
    for rho in (0.5, 2.0):
        other = ds.records(piece=test_piece, tempo=rho)
        assert len(other) == len(base)
        for a, b in zip(base, other, strict=True):
            assert b["start"] == pytest.approx(a["start"] / rho, abs=1e-3)
            assert b["end_frame"] - b["start_frame"] == pytest.approx(
                (a["end"] - a["start"]) / rho * FPS, abs=1.5)


def test_strips_and_pages(chorale_dataset):
    ds = Dataset(chorale_dataset)
    r = ds.records(split="test")[0]
    strip = ds.strip(r)
    assert strip.shape == (STRIP_HEIGHT, PAGE_WIDTH) and strip.dtype == np.uint8
    page = ds.page(r["piece"], r["page"])
    assert page.shape == (1181, 835)
    top = r["strip_top"]
    assert np.array_equal(strip[max(0, -top):], page[max(top, 0) : top + STRIP_HEIGHT])


def test_splits_share_no_piece(chorale_dataset):
    ds = Dataset(chorale_dataset)
    pieces = defaultdict(set)
    for r in ds:
        pieces[r["split"]].add(r["piece"])
    assert not pieces["train"] & pieces["valid"]
    assert not pieces["train"] & pieces["test"]
    assert not pieces["valid"] & pieces["test"]


def test_rerun_resumes(copy_dataset, chorale_sources):
    manifest = (copy_dataset / "manifest.jsonl").read_text()
    config = BuildConfig(source="test:chorales", train_renditions=4)  # as the fixture
    again = build(chorale_sources, copy_dataset, config=config, progress=False)
    assert (again.built, again.skipped) == (0, 3)
    assert (copy_dataset / "manifest.jsonl").read_text() == manifest
    # A piece lost half-way (its folder gone, a partial folder left) is built again, alone.
    victim = copy_dataset / "pieces" / chorale_sources[1].piece
    victim.rename(victim.with_name(victim.name + ".partial"))
    again = build(chorale_sources, copy_dataset, config=config, progress=False)
    assert (again.built, again.skipped) == (1, 2)
    assert (copy_dataset / "manifest.jsonl").read_text() == manifest
    assert not victim.with_name(victim.name + ".partial").exists()


def test_other_settings_refused(copy_dataset, chorale_sources):
    before = (copy_dataset / "dataset.json").read_text()
    with pytest.raises(DatasetError, match="other settings"):
        build(chorale_sources, copy_dataset, config=BuildConfig(source="test:chorales", seed=7),
              progress=False)
    assert (copy_dataset / "dataset.json").read_text() == before


def test_bad_dataset_folders(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        Dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="not a scorelink dataset"):
        Dataset(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"format": "scorelink-dataset",
                                                       "version": 99}))
    with pytest.raises(DatasetError, match="version"):
        Dataset(tmp_path)
