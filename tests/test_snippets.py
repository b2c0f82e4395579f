"""Cutting strips and spectrograms into snippet sequences."""

from __future__ import annotations

import numpy as np
import pytest

from scorelink.models.snippets import audio_snippets, halve_strip, n_snippets, sheet_snippets


def test_sheet_snippets_geometry():
    rng = np.random.default_rng(0)
    strip = rng.integers(0, 256, (160, 835)).astype(np.uint8)
    snippets = sheet_snippets(strip)
    ink = halve_strip(strip)  # (80, 418)
    assert ink.shape == (80, 418)
    assert snippets.shape == (6, 80, 90)  # 20 + 418 px covered by windows of 90 every 81
    assert np.all(snippets[0, :, :20] == 0)  # white left pad
    for k in range(6):
        for c in (0, 37, 89):
            x = k * 81 + c - 20
            expected = ink[:, x] if 0 <= x < 418 else np.zeros(80)
            np.testing.assert_allclose(snippets[k, :, c], expected)


def test_halving_averages_ink():
    strip = np.full((160, 4), 255, np.uint8)
    strip[0, 0] = 0  # one black pixel in the first 2x2 block
    ink = halve_strip(strip)
    assert ink.shape == (80, 2) and ink[0, 0] == pytest.approx(0.25) and ink.sum() == 0.25


def test_audio_snippets_geometry():
    spec = np.arange(92 * 45, dtype=np.float32).reshape(92, 45)
    snippets = audio_snippets(spec)
    assert snippets.shape == (3, 92, 20)
    np.testing.assert_array_equal(snippets[1], spec[:, 18:38])
    np.testing.assert_array_equal(snippets[2, :, :9], spec[:, 36:45])
    assert not snippets[2, :, 9:].any()  # zero padding at the end
    assert audio_snippets(np.ones((92, 3))).shape == (1, 92, 20)


def test_counts_and_bad_shapes():
    assert [n_snippets(n, size=20, hop=18) for n in (1, 20, 21, 38, 39)] == [1, 1, 2, 2, 3]
    with pytest.raises(ValueError):
        audio_snippets(np.zeros((80, 10)))
    with pytest.raises(ValueError):
        sheet_snippets(np.zeros((100, 835), np.uint8))


def test_recolour_is_a_smooth_time_invariant_equaliser():
    from scorelink.train.batches import TIMBRE_BUMPS_DB, TIMBRE_GAIN_DB, TIMBRE_TILT_DB, recolour

    rng = np.random.default_rng(0)
    magnitude = rng.uniform(0.01, 5.0, size=(92, 40)).astype(np.float32)
    magnitude[:, :5] = 0.0  # silence
    spec = np.log10(1 + magnitude)
    out = recolour(spec, np.random.default_rng(1))
    assert out.shape == spec.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :5], 0.0, atol=1e-6)  # silence stays silent
    db = 20 * np.log10((10.0 ** out[:, 5:] - 1) / magnitude[:, 5:])
    np.testing.assert_allclose(db, db[:, :1].repeat(35, axis=1), atol=0.05)  # same in every frame
    curve = db[:, 0]
    bound = TIMBRE_GAIN_DB + TIMBRE_TILT_DB / 2 + 3 * TIMBRE_BUMPS_DB
    assert np.abs(curve).max() <= bound and np.abs(curve).max() > 0.5
    assert np.abs(np.diff(curve)).max() < 1.0  # smooth across neighbouring bins
    assert not np.allclose(recolour(spec, np.random.default_rng(2)), out)


def test_fine_equaliser_gives_each_band_its_own_gain():
    from scorelink.train.batches import FINE_EQ_DB, fine_equalise

    rng = np.random.default_rng(0)
    magnitude = rng.uniform(0.5, 4.0, (92, 30)).astype(np.float32)
    spec = np.log10(1 + magnitude)
    out = fine_equalise(spec, np.random.default_rng(1))
    assert out.shape == spec.shape and out.dtype == np.float32
    db = 20 * np.log10((10.0 ** out - 1) / magnitude)
    np.testing.assert_allclose(db, db[:, :1].repeat(30, axis=1), atol=0.05)  # one curve
    curve = db[:, 0]
    assert 1.0 < curve.std() < 2 * FINE_EQ_DB
    assert np.abs(np.diff(curve)).max() > 1.0  # not smooth: neighbouring bands differ
    assert not np.allclose(fine_equalise(spec, np.random.default_rng(2)), out)


def test_room_adds_a_decaying_tail_and_keeps_the_order_of_loudness():
    from scorelink.train.batches import room

    magnitude = np.zeros((92, 60), np.float32)
    magnitude[30, 10] = 4.0  # one short note in one band, then silence
    magnitude[50, 10:12] = 1.0
    spec = np.log10(1 + magnitude)
    out = room(spec, np.random.default_rng(3))
    assert out.shape == spec.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :10], 0.0, atol=1e-6)  # nothing before the first sound
    np.testing.assert_allclose(out[:20], 0.0, atol=1e-6)  # nor in bands that never sound
    tail = out[30, 11:]
    assert tail[0] > 0 and np.all(np.diff(tail) <= 1e-7)  # it rings on and decays
    assert out[30, 10] > out[50, 10] > 0  # louder stays louder
    assert not np.allclose(room(spec, np.random.default_rng(4)), out)


def test_another_piano_changes_each_harmonic_of_the_notes_and_knocks_at_onsets():
    """One note rendered as a synthetic harmonic tone: `replay` scales each of its harmonics'
    bands by the piano's gain for that harmonic number, leaves bands and frames without the note
    alone, and adds a low knock at the onset that decays in the next frame."""
    from scorelink.constants import FPS, SAMPLE_RATE
    from scorelink.data.spectrogram import spectrogram
    from scorelink.data.store import NOTE_DTYPE
    from scorelink.train.batches import (
        PIANO_RING_FRAMES,
        _harmonic_weights,
        equalise,
        random_piano,
        replay,
    )

    t = np.arange(int(3.0 * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 440.0 * 2 ** ((57 - 69) / 12)  # A3
    on = (t >= 0.5) & (t < 1.5)
    audio = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 7)) * on * 0.1
    spec = spectrogram(audio.astype(np.float32))
    notes = np.zeros(1, NOTE_DTYPE)
    notes[0]["onset"], notes[0]["offset"], notes[0]["pitch"] = 0.5, 1.5, 57
    notes[0]["onset_frame"] = int(0.5 * FPS)
    piano = {**random_piano(np.random.default_rng(0)), "thump": 0.0}
    out = replay(spec, notes, piano, np.random.default_rng(0))
    assert out.shape == spec.shape and out.dtype == np.float32
    weights = _harmonic_weights(57)
    slope = piano["slope"] + piano["pitch"] * (57 - 60) / 12  # the slope at A3
    gains = slope * np.log2(np.arange(1, len(weights) + 1)) + piano["own"]
    middle = slice(int(0.8 * FPS), int(1.2 * FPS))
    checked = 0
    for h in (1, 2, 3, 4, 5, 6):
        band = int(weights[h - 1].argmax())
        if weights[:, band].sum() > 1.0:
            continue  # a band two harmonics share takes their mean
        db = 20 * np.log10((10 ** out[band, middle] - 1) / (10 ** spec[band, middle] - 1))
        np.testing.assert_allclose(db, gains[h - 1], atol=0.05)
        checked += 1
    assert checked >= 3
    untouched = weights.sum(axis=0) == 0
    np.testing.assert_allclose(out[untouched], spec[untouched], atol=1e-5)
    late = int(1.5 * FPS) + PIANO_RING_FRAMES + 1
    np.testing.assert_allclose(out[:, late:], spec[:, late:], atol=1e-5)  # after it rang out

    knock = replay(spec, notes, {**piano, "own": piano["own"] * 0, "slope": 0.0, "pitch": 0.0,
                                 "thump": 0.1}, np.random.default_rng(1))
    frame = int(notes[0]["onset_frame"])
    added = 10 ** knock - 10 ** spec
    assert added[:, frame].min() > 0 and added[:, frame + 1].sum() < added[:, frame].sum()
    assert added[:40, frame].sum() > added[52:, frame].sum()  # a low knock, not a hiss
    np.testing.assert_allclose(knock[:, frame + 2:], spec[:, frame + 2:], atol=1e-5)

    quiet = equalise(spec, -20.0)  # a recording 20 dB softer: every magnitude a tenth
    np.testing.assert_allclose(10 ** quiet - 1, (10 ** spec - 1) / 10, rtol=1e-4, atol=1e-6)


def test_stretch_changes_tempo_not_content():
    from scorelink.train.batches import stretch

    spec = np.zeros((92, 100), np.float32)
    spec[40, 20] = spec[50, 60] = 1.0  # two onsets 40 frames apart
    fast = stretch(spec, 2.0)  # twice as fast: half the frames, onsets 20 frames apart
    assert fast.shape == (92, 50)
    assert abs((fast[50].argmax() - fast[40].argmax()) - 20) <= 1
    slow = stretch(spec, 0.5)
    assert slow.shape == (92, 200) and abs((slow[50].argmax() - slow[40].argmax()) - 80) <= 1
    np.testing.assert_array_equal(stretch(spec, 1.0), spec)


def test_crop_keeps_a_run_of_onsets_in_both_modalities(chorale_dataset):
    """Every note of a crop sounds inside its audio and has its notehead inside its strip; every
    note left out lies outside both."""
    from scorelink.data.store import Dataset
    from scorelink.train.batches import crop, crop_bounds

    ds = Dataset(chorale_dataset)
    rng = np.random.default_rng(0)
    cropped = 0
    for record in ds.records(split="train"):
        passage = ds.passage(record)
        notes, width, frames = passage.notes, passage.strip.shape[1], passage.spec.shape[1]
        for _ in range(5):
            bounds = crop_bounds(notes, rng, width=width, frames=frames)
            if bounds is None or bounds == (0, width, 0, frames):
                continue
            left, right, start, end = bounds
            kept = (notes["onset_frame"] >= start) & (notes["onset_frame"] < end)
            assert kept.sum() >= 0.5 * len(np.unique(notes["onset_frame"]))
            assert np.all((notes["x"][kept] >= left) & (notes["x"][kept] < right))
            assert not np.any((notes["x"][~kept] >= left) & (notes["x"][~kept] < right))
            assert 0 <= start < end <= frames and 0 <= left < right <= width
            cropped += 1
        strip, spec = crop(passage.strip, passage.spec, notes, np.random.default_rng(1))
        assert strip.shape[0] == passage.strip.shape[0] and spec.shape[0] == passage.spec.shape[0]
        assert strip.shape[1] <= width and spec.shape[1] <= frames
    assert cropped > 10


def test_join_crosses_into_the_next_system_in_both_modalities(chorale_dataset):
    """A join holds the last onset of a system and the first of the next one, in the strips
    joined left to right and in the audio across the boundary; every note of the run has its
    notehead inside the crop and sounds inside its audio, every note left out lies outside both;
    only systems heard one after the other in reading order are joined."""
    from scorelink.data.store import Dataset
    from scorelink.train.batches import join, join_bounds, next_systems

    ds = Dataset(chorale_dataset)
    records = ds.records(split="train")
    following = next_systems(records)
    assert following
    for i, j in following.items():
        a, b = records[i], records[j]
        assert (a["piece"], a["rendition"], a["system"] + 1, a["end_frame"]) == (
            b["piece"], b["rendition"], b["system"], b["start_frame"])
    rng = np.random.default_rng(0)
    joined = 0
    for i, j in following.items():
        a, b = ds.passage(records[i]), ds.passage(records[j])
        widths, frames = (a.strip.shape[1], b.strip.shape[1]), (a.spec.shape[1], b.spec.shape[1])
        found = join_bounds(a.notes, b.notes, rng, widths=widths, frames=frames)
        if found is None:
            continue
        notes, (left, right, start, end) = found
        assert left < widths[0] < right <= sum(widths) and start < frames[0] < end <= sum(frames)
        kept = (notes["onset_frame"] >= start) & (notes["onset_frame"] < end)
        assert np.all((notes["x"][kept] >= left) & (notes["x"][kept] < right))
        assert not np.any((notes["x"][~kept] >= left) & (notes["x"][~kept] < right))
        assert kept[: len(a.notes)].any() and kept[len(a.notes):].any()
        strip, spec = join(a.strip, a.spec, a.notes, b.strip, b.spec, b.notes,
                           np.random.default_rng(1))
        assert strip.shape[0] == a.strip.shape[0] and spec.shape[0] == a.spec.shape[0]
        joined += 1
    assert joined >= 4


def test_scan_like_strips_keep_their_staves():
    """The scan degradation (scan_augment) changes a strip's pixels as a scan would, but every
    staff line stays darker than the spaces beside it: slight, seeded, same shape."""
    from scorelink.train.scanlike import scan_like

    strip = np.full((160, 835), 255, dtype=np.uint8)
    lines = [top + 7 * k for top in (30, 100) for k in range(5)]  # 7-px spaces, the models'
    for y in lines:
        strip[y : y + 2, 40:800] = 0
    for top in (30, 100):
        strip[top + 4 : top + 10, 100:780:40] = 0  # noteheads
    strip[30:130, 40:42] = 0  # the start line
    for seed in range(8):
        scanned = scan_like(strip, np.random.default_rng(seed))
        assert scanned.shape == strip.shape and scanned.dtype == np.uint8
        assert np.array_equal(scanned, scan_like(strip, np.random.default_rng(seed)))
        assert np.mean(scanned != strip) > 0.05  # the paper and stroke edges at least
        # Rows averaged near the centre, where the slight turn moves a line least.
        rows = scanned[:, 300:540].astype(np.float64).mean(axis=1)
        for y in lines:
            assert rows[y - 1 : y + 3].min() < rows[y + 3 : y + 5].mean() - 60, (seed, y)


def test_scan_augment_is_off_by_default_and_checked():
    from scorelink.errors import ConfigError
    from scorelink.train.config import TrainConfig

    assert TrainConfig().scan_augment == 0.0
    assert TrainConfig.load(overrides=["scan_augment=0.5"]).scan_augment == 0.5
    with pytest.raises(ConfigError, match="scan_augment"):
        TrainConfig.load(overrides=["scan_augment=2"])
