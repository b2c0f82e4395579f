"""The note reader: noteheads read off a system's image, and the timeline the notes path takes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scorelink.constants import STRIP_HEIGHT
from scorelink.models.reader import (
    LOWEST,
    PITCHES,
    READER_STRIDE,
    NoteReader,
    ReaderConfig,
    as_input,
    peaks,
)
from scorelink.search.reading import PX_PER_SECOND, timeline


def test_peaks_finds_one_head_per_run_at_its_centre():
    probs = np.zeros((50, PITCHES))
    probs[10:13, 60 - LOWEST] = 0.9  # columns 10-12: one head at the run's centre
    probs[10:12, 64 - LOWEST] = 0.8  # a chord: another pitch at the same place
    probs[30, 60 - LOWEST] = 0.7  # the same pitch again later
    probs[40, 70 - LOWEST] = 0.4  # under the threshold
    heads = peaks(probs)
    # sorted by x, then pitch: the chord's heads first (x 44 and 46), then the later one
    np.testing.assert_allclose(heads, [[11 * READER_STRIDE, 64], [11.5 * READER_STRIDE, 60],
                                       [30.5 * READER_STRIDE, 60]])


def test_timeline_lays_systems_end_to_end():
    one = np.array([[100.0, 60], [102.0, 64], [180.0, 62], [260.0, 65]])  # a chord, two notes
    two = np.array([[90.0, 67], [170.0, 69]])
    notes = timeline([one, two])
    first, second = notes
    # the chord's heads start together; each note lasts until the system's next onset
    np.testing.assert_allclose(first[:2, 0], 0.0)
    np.testing.assert_allclose(first[:, 1], np.r_[80, 80, 160, 160 + 0.5 * PX_PER_SECOND]
                               / PX_PER_SECOND)
    np.testing.assert_allclose(first[:, 2], one[:, 1])
    # the second system starts one median onset gap (80 px) after the first's last onset
    assert second[0, 0] == pytest.approx((160 + 80) / PX_PER_SECOND)
    assert second[1, 0] - second[0, 0] == pytest.approx(80 / PX_PER_SECOND)
    slow = timeline([one, two], scale=2.0)
    np.testing.assert_allclose(slow[1][:, :2], 2 * second[:, :2])
    assert timeline([np.zeros((0, 2)), two])[0].shape == (0, 3)


def test_reader_shapes_and_checkpoint_round_trip():
    model = NoteReader(ReaderConfig(channels=(4, 4, 4, 4), hidden=8, gru=4)).eval()
    strips = [np.full((STRIP_HEIGHT, 97), 255, np.uint8), np.zeros((STRIP_HEIGHT, 40), np.uint8)]
    x = as_input(strips)
    assert x.shape == (2, 1, STRIP_HEIGHT, 100) and float(x[0].max()) == 0.0  # paper is 0
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 100 // READER_STRIDE, PITCHES)
    again = NoteReader.from_payload(model.payload())
    with torch.no_grad():
        torch.testing.assert_close(again(x), out)


def test_page_images_keep_read_noteheads_that_find_the_recording(chorale_dataset, tiny_scores,
                                                                  tiny_ckpt, tmp_path):
    """Page images indexed as scans keep the noteheads the shipped reader reads off them (the
    engraving's pitches, most of them), a score file keeps its notes instead, and a clip of a
    page's piece is found by the read notes with an untrained model."""
    from PIL import Image

    from scorelink.data.spectrogram import spectrogram
    from scorelink.data.store import Dataset
    from scorelink.search import collect, query
    from scorelink.search.embed import Embedder
    from scorelink.search.index import Index
    from scorelink.search.reading import READ_SCALES
    from scorelink.search.recordings import read_audio
    from scorelink.train.reader import score

    ds = Dataset(chorale_dataset)
    scores = tmp_path / "pages"
    scores.mkdir()
    records = ds.records(split="test", tempo=1.0)
    pieces = sorted({r["piece"] for r in ds.records(split="train")} | {records[0]["piece"]})
    for piece in pieces:
        Image.fromarray(ds.page(piece, 0)).save(scores / f"{piece}.png")
    (scores / "a.musicxml").write_bytes((tiny_scores / "a.musicxml").read_bytes())
    embedder = Embedder.load(str(tiny_ckpt))
    index = Index.write(tmp_path / "idx", collect.from_scores([scores], embedder),
                        model_name=embedder.name, fingerprint=embedder.fingerprint,
                        dim=embedder.dim)
    rows = index.all_rows("sheet")
    heads, notes = index.heads(), index.notes()
    assert set(heads) == {r["id"] for r in rows if r["piece"] != "pages/a"}
    assert set(notes) == {r["id"] for r in rows if r["piece"] == "pages/a"}
    assert len(index.read_matchers()) == len(READ_SCALES)
    some = sorted(heads)[:2] + sorted(notes)[:1]  # only the systems asked for, of each table
    assert set(index.heads(some)) == set(some) & set(heads)
    assert all(np.array_equal(index.heads(some)[i], heads[i]) for i in index.heads(some))
    assert set(index.notes(some)) == set(some) & set(notes) and index.heads([]) == {}

    # the first page's systems as read, against the engraving's noteheads
    mine = [r for r in records if r["page"] == 0 and not r["occurrence"]]
    ids = {r["system"]: r["id"] for r in rows if r["piece"] == f"pages/{records[0]['piece']}"}
    truth = []
    for r in mine:
        a, b = r["notes"]
        table = ds.rendition_notes(r)[a:b]
        truth.append(np.stack([table["x"], table["pitch"]], axis=1))
    found = score([heads[ids[r["system"]]] for r in mine], truth)
    assert found["class_f1"] > 0.7, found  # 0.83 with the reader shipped on 2026-12-06

    # ten seconds of the piece's recording: the read notes rank its page's systems first
    flac = chorale_dataset / "pieces" / records[0]["piece"] / f"{records[0]['rendition']}.flac"
    spec = spectrogram(read_audio(flac))[:, 200:400]
    evidence = query.audio_evidence(index, embedder, spec)
    assert evidence["read"] and set(evidence["read"]) <= set(heads)
    best = query.fuse(index, evidence, top=3)[0]
    assert best["piece"] == f"pages/{records[0]['piece']}" and best["evidence"] != "image"

    # the score file's own music is found by its notes, not outscored by read pages
    from test_notes import _synth

    mine = np.concatenate([notes[i] for i in sorted(notes)])
    clip = spectrogram(_synth(mine))
    best = query.fuse(index, query.audio_evidence(index, embedder, clip), top=3)[0]
    assert best["piece"] == "pages/a" and best["evidence"] in ("notes", "both")
    index.close()


def test_training_writes_resumable_state_and_ships_half_precision(chorale_dataset, tmp_path):
    """Two short runs: the second resumes the first's epoch count and optimizer; --ship writes
    float16 weights that load as the same reader, up to float16 rounding."""
    from scorelink.models.reader import load_reader
    from scorelink.train.reader import main, ship

    run = tmp_path / "run"
    args = ["--data", str(chorale_dataset), "--out", str(run), "--minutes", "0.01",
            "--threads", "1"]
    assert main(args) == 0
    first = len((run / "log.jsonl").read_text().splitlines())  # epochs in the time given
    assert main([*args, "--resume"]) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) > first >= 1  # the second run went on from the first's last epoch
    assert [row["epoch"] for row in log] == list(range(1, len(log) + 1))
    assert all(np.isfinite(row["loss"]) for row in log)
    shipped = ship(run / "best.pt", tmp_path / "reader.pt")
    assert shipped.stat().st_size < 0.6 * (run / "best.pt").stat().st_size
    strips = [np.full((STRIP_HEIGHT, 200), 255, np.uint8)]
    strips[0][60:64, 40:48] = 0  # a blot of ink
    with torch.no_grad():
        a = load_reader(str(run / "best.pt"))(as_input(strips))
        b = load_reader(str(shipped))(as_input(strips))
    torch.testing.assert_close(a, b, atol=0.05, rtol=0.01)


def test_place_puts_written_chords_in_order_where_the_reader_sees_them():
    """Time runs left to right: a chord cannot sit before the one written before it, even where
    its pitch is read more strongly there."""
    from scorelink.train.scan_targets import place

    probs = np.full((60, PITCHES), 0.01)
    probs[5, 62 - LOWEST] = 0.99  # 62 read early (a head of another chord, misread)
    probs[10, [60 - LOWEST, 64 - LOWEST]] = 0.9
    probs[25, 62 - LOWEST] = 0.8
    probs[40, 67 - LOWEST] = 0.02  # the last chord's head not read: placed, but not found
    chords = [np.array([60, 64]), np.array([62]), np.array([67])]
    cols, found = place(chords, probs)
    assert list(cols[:2]) == [10, 25] and cols[2] > 25
    np.testing.assert_allclose(found[:3], [0.9, 0.9, 0.8])
    assert found[3] < 0.3
    assert len(place(chords, probs[:2])[0]) == 0  # fewer columns than chords: nothing placed
