"""Search: shared-snippet embedding vs one by one, FAISS vs brute force, atomic index writes,
the index and search CLI, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import tiny_passage_model as _tiny  # noqa: E402

from scorelink import checkpoint
from scorelink.cli import main
from scorelink.constants import SAMPLE_RATE
from scorelink.data.store import Dataset
from scorelink.errors import SearchIndexError
from scorelink.models.snippets import audio_snippets, sheet_snippets
from scorelink.search import collect
from scorelink.search.embed import Embedder
from scorelink.search.index import Index, Pending
from scorelink.search.query import by_piece, query_spans, search_audio
from scorelink.search.recordings import read_audio, windows


def test_shared_snippets_equal_one_by_one(chorale_dataset):
    model = _tiny()
    emb = Embedder(model, bf16=False)
    ds = Dataset(chorale_dataset)
    spec = ds.rendition_spec(ds.records(split="test", tempo=1.0)[0]).astype(np.float32)
    spans = windows(spec.shape[1], seconds=(4.5, 7.2)) + [(5, 93), (0, 7)]
    fast = emb.audio(spec, spans)
    with torch.no_grad():
        for (a, b), v in zip(spans, fast, strict=True):
            x = torch.from_numpy(audio_snippets(spec[:, a:b]))[:, None]
            slow = model.embed_audio(x, torch.tensor([len(x)]))[0].numpy()
            np.testing.assert_allclose(v, slow, atol=1e-5)
    strips = np.stack([ds.strip(r) for r in ds.records(split="test", tempo=1.0)[:3]])
    with torch.no_grad():
        for s, v in zip(strips, emb.sheet(strips), strict=True):
            x = torch.from_numpy(sheet_snippets(s))[:, None]
            np.testing.assert_allclose(
                v, model.embed_sheet(x, torch.tensor([len(x)]))[0].numpy(), atol=1e-5)
    # the bf16 path (what search uses where the CPU has it) stays close to float32
    close = Embedder(model, bf16=True).audio(spec, spans)
    assert np.abs((close * fast).sum(1) - 1).max() < 0.01


def test_windows_cover_the_recording():
    spans = windows(1200)  # 60 s
    assert spans[0][0] == 0 and max(b for _, b in spans) == 1200
    lengths = {b - a for a, b in spans}
    assert min(lengths) == 90 and max(lengths) == 486
    assert windows(50) == [(0, 50)]
    assert query_spans(400) == [(0, 400)]
    long = query_spans(2000)
    assert long[0][0] == 0 and long[-1][1] == 2000 and all(b - a == 216 for a, b in long)


def test_index_matches_brute_force(data_index, chorale_dataset, tiny_ckpt):
    index = Index(data_index)
    ds = Dataset(chorale_dataset)
    records = ds.records(split="test", tempo=1.0, soundfont="musescore-grand")
    n_systems = len({(r["piece"], r["system"]) for r in records})
    assert index.sheet.ntotal == n_systems and index.audio.ntotal == len(records)
    sheet, audio = index.vectors("sheet"), index.vectors("audio")
    np.testing.assert_allclose(np.linalg.norm(sheet, axis=1), 1, atol=1e-4)
    # each system's halves are kept beside it, as `Embedder.sheet_with_halves` makes them
    rows = index.all_rows("sheet")
    first, second = index.halves([r["id"] for r in rows])
    strips = []
    for r in rows:
        strips.append(ds.strip(next(x for x in records if (x["piece"], x["system"]) ==
                                    (r["piece"], r["system"]))))
    want = Embedder.load(tiny_ckpt).sheet_with_halves(np.stack(strips))
    for got, expected in zip((sheet, first, second), want, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-4)
    scores, ids = index.nearest("sheet", audio, 5)
    brute = np.argsort(-(audio @ sheet.T), axis=1, kind="stable")[:, :5]
    np.testing.assert_allclose(scores, np.take_along_axis(audio @ sheet.T, brute, 1), atol=1e-5)
    # the hits of an audio query are the systems in brute-force order
    emb = Embedder.load(tiny_ckpt)
    flac = next(Path(chorale_dataset).rglob("musescore-grand@1.00.flac"))
    hits = search_audio(index, emb, read_audio(flac, end=8.0), top=5)
    assert [h["rank"] for h in hits] == list(range(1, min(5, n_systems) + 1))
    assert all(a["score"] >= b["score"] for a, b in zip(hits, hits[1:], strict=False))
    assert {h["piece"] for h in by_piece(hits)} <= {r["piece"] for r in records}
    page = data_index / hits[0]["page_image"]
    assert page.is_file()


def test_add_is_atomic_and_checks_the_model(tmp_path, data_index, tiny_ckpt):
    import shutil

    idx = tmp_path / "idx"
    shutil.copytree(data_index, idx)
    before = Index(idx)
    old_sheet, n_audio = before.vectors("sheet"), before.audio.ntotal
    gen = before.info["generation"]
    emb = Embedder.load(tiny_ckpt)
    song = tmp_path / "song.wav"
    t = np.arange(int(12 * SAMPLE_RATE)) / SAMPLE_RATE
    soundfile.write(song, 0.3 * np.sin(2 * np.pi * 440 * t * (1 + t / 12)), SAMPLE_RATE)
    pending = collect.from_recordings([song], emb)
    assert len(pending.windows) > 5

    # a crash while writing leaves the index as it was
    import faiss

    real = faiss.write_index

    def broken(*a, **k):
        raise OSError("disk full")

    faiss.write_index = broken
    try:
        with pytest.raises(OSError):
            Index.write(idx, pending, model_name="x", fingerprint=emb.fingerprint, dim=emb.dim,
                        add=True)
    finally:
        faiss.write_index = real
    assert Index(idx).audio.ntotal == n_audio
    assert sorted(p.name for p in idx.iterdir() if p.suffix in (".faiss", ".sqlite")) == sorted(
        p.name for p in data_index.iterdir() if p.suffix in (".faiss", ".sqlite"))

    after = Index.write(idx, pending, model_name="x", fingerprint=emb.fingerprint, dim=emb.dim,
                        add=True)
    assert after.info["generation"] == gen + 1 and after.audio.ntotal == n_audio + len(
        pending.windows)
    np.testing.assert_array_equal(after.vectors("sheet"), old_sheet)  # nothing re-embedded
    assert not (idx / f"meta-{gen}.sqlite").exists()  # the old generation is gone
    other = Embedder(_tiny(seed=1))
    with pytest.raises(SearchIndexError, match="another"):
        Index.write(idx, Pending(), model_name="y", fingerprint=other.fingerprint,
                    dim=other.dim, add=True)
    with pytest.raises(SearchIndexError, match="exists"):
        Index.write(idx, Pending(), model_name="x", fingerprint=emb.fingerprint, dim=emb.dim)


def test_opening_an_index_removes_what_an_interrupted_write_left(tmp_path, data_index):
    import os
    import shutil
    import subprocess
    import sys

    from scorelink.search.generations import writer_lock

    idx = tmp_path / "idx"
    shutil.copytree(data_index, idx)
    index = Index(idx)
    gen, n_audio, fingerprint, dim = (index.generation, index.audio.ntotal, index.fingerprint,
                                      index.info["dim"])
    index.close()
    # `kill -9` of an `index --add` at the moment it writes the next generation's vectors
    killed_while_writing = f"""
import os, signal, faiss
from scorelink.search.index import Index, Pending
faiss.write_index = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
Index.write({str(idx)!r}, Pending(), model_name="x", fingerprint={fingerprint!r}, dim={dim},
            add=True)
"""
    run = subprocess.run([sys.executable, "-c", killed_while_writing], env=dict(os.environ))
    assert run.returncode == -9
    left = {f"meta-{gen + 1}.sqlite", f"meta-{gen + 1}.sqlite-journal", "index.json.tmp"}
    (idx / f"meta-{gen + 1}.sqlite-journal").write_bytes(b"")  # as a kill mid-copy leaves
    (idx / "index.json.tmp").write_text('{"gener')
    (idx / "notes.txt").write_text("the user's own file")
    files = {p.name for p in idx.iterdir()}
    assert left <= files

    with writer_lock(idx, wait=True):  # a writer at work: readers leave its files alone
        Index(idx).close()
        assert left <= {p.name for p in idx.iterdir()}
    index = Index(idx)
    assert {p.name for p in idx.iterdir()} == files - left
    assert index.audio.ntotal == n_audio and index.generation == gen
    assert "notes.txt" in files and f"sheet-{gen}.faiss" in files

    # a new index whose build was killed leaves OUT.partial-PID: removed once that PID is gone
    abandoned = tmp_path / "new.partial-4194999"  # above Linux's largest PID
    abandoned.mkdir()
    (abandoned / "meta-0.sqlite").write_bytes(b"")
    Index.write(tmp_path / "new", Pending(), model_name="x", fingerprint=fingerprint,
                dim=dim).close()
    assert not abandoned.exists() and (tmp_path / "new" / "index.json").is_file()


def test_search_cli(data_index, chorale_dataset, tiny_ckpt, tmp_path, capsys):
    flac = next(Path(chorale_dataset).rglob("musescore-grand@1.00.flac"))
    assert main(["search", "--index", str(data_index), "--audio", str(flac), "--start", "2",
                 "--end", "10", "--top", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in out["results"]] == [1, 2, 3]
    assert {"piece", "page", "system", "box", "score"} <= set(out["results"][0])
    assert main(["search", "--index", str(data_index), "--audio", str(flac), "--by",
                 "piece"]) == 0
    assert "piece" in capsys.readouterr().out

    ds = Dataset(chorale_dataset)
    r = ds.records(split="test", tempo=1.0)[0]
    page = tmp_path / "page.png"
    from PIL import Image

    Image.fromarray(ds.page(r["piece"], r["page"])).save(page)
    assert main(["search", "--index", str(data_index), "--image", str(page), "--system", "1",
                 "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    assert hits and {"recording", "start", "end", "score"} <= set(hits[0])
    for a in hits:  # distinct places: no two hits overlap by half within one recording
        for b in hits:
            if a is not b and a["recording"] == b["recording"]:
                inter = min(a["end"], b["end"]) - max(a["start"], b["start"])
                assert inter <= 0.5 * min(a["end"] - a["start"], b["end"] - b["start"])
    assert main(["search", "--index", str(data_index), "--image", str(page)]) == 2
    assert "--system" in capsys.readouterr().err


def test_bad_queries_and_indexes(data_index, tiny_ckpt, tmp_path, capsys):
    idx = str(data_index)
    short = tmp_path / "short.wav"
    soundfile.write(short, 0.3 * np.ones(SAMPLE_RATE // 2), SAMPLE_RATE)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(3 * SAMPLE_RATE), SAMPLE_RATE)
    long = tmp_path / "long.wav"  # three hours at 1 kHz, 8 bit: small on disk
    soundfile.write(long, 0.2 * np.ones(3 * 3600 * 1000), 1000, subtype="PCM_U8")
    truncated = tmp_path / "truncated.wav"
    good = tmp_path / "good.wav"
    soundfile.write(good, 0.3 * np.sin(np.arange(5 * SAMPLE_RATE) / 9), SAMPLE_RATE)
    truncated.write_bytes(good.read_bytes()[:2000])
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"\x00\x01not audio" * 100)
    for path, message in ((short, "at least"), (silent, "silent"), (long, "too long"),
                          (truncated, "s of audio"), (garbage, "cannot read"),
                          (tmp_path / "missing.wav", "does not exist")):
        assert main(["search", "--index", idx, "--audio", str(path)]) == 2, path
        assert message in capsys.readouterr().err, path

    noise = tmp_path / "noise.png"
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((600, 835)) * 255).astype(np.uint8)).save(
        noise)
    assert main(["search", "--index", idx, "--image", str(noise)]) == 2
    assert "no staves" in capsys.readouterr().err

    other = tmp_path / "other.pt"
    checkpoint.save(other, _tiny(seed=1))
    assert main(["search", "--index", idx, "--audio", str(good), "--checkpoint",
                 str(other)]) == 2
    assert "another" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "index.json").write_text('{"format": "something-else"}')
    assert main(["search", "--index", str(foreign), "--audio", str(good)]) == 2
    assert main(["search", "--index", str(tmp_path / "none"), "--audio", str(good)]) == 2
    assert "not a scorelink index" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt"
    import shutil

    shutil.copytree(data_index, corrupt)
    next(corrupt.glob("sheet-*.faiss")).write_bytes(b"garbage")
    assert main(["search", "--index", str(corrupt), "--audio", str(good)]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert main(["index", "--out", str(tmp_path / "x"), "--checkpoint", str(tiny_ckpt)]) == 2
    assert main(["index", "--out", idx, "--checkpoint", str(tiny_ckpt), "--recordings",
                 str(good)]) == 2  # exists, no --add
    assert "exists" in capsys.readouterr().err
    assert Index(idx).audio.ntotal > 0  # unharmed


def test_own_collection_names_stay_apart(chorale_dataset, tiny_scores, tiny_ckpt, tmp_path):
    """A folder of score files and page scans in sub-folders, and recordings that share a file
    name: every piece and recording keeps its own name and page images, also after --add."""
    import shutil

    from PIL import Image

    ds = Dataset(chorale_dataset)
    r = ds.records(split="test", tempo=1.0)[0]
    scores, audio = tmp_path / "mine", tmp_path / "audio"
    for book in ("book1", "book2"):
        (scores / book).mkdir(parents=True)
        Image.fromarray(ds.page(r["piece"], r["page"])).save(scores / book / "page.png")
        (audio / book).mkdir(parents=True)
        shutil.copy(next(Path(chorale_dataset).rglob("musescore-grand@1.00.flac")),
                    audio / book / "take.flac")
    shutil.copy(tiny_scores / "a.musicxml", scores / "book1")
    idx = tmp_path / "idx"
    assert main(["index", "--out", str(idx), "--checkpoint", str(tiny_ckpt), "--scores",
                 str(scores), "--recordings", str(audio)]) == 0
    index = Index(idx)
    pieces = {row["piece"] for row in index.all_rows("sheet")}
    assert pieces == {"mine/book1/page", "mine/book2/page", "mine/book1/a"}
    assert {row["recording"] for row in index.all_rows("audio")} == {"audio/book1/take",
                                                                     "audio/book2/take"}
    page = idx / "pages" / "mine" / "book1" / "a" / "page-001.png"
    engraved = page.read_bytes()
    index.close()

    # again, with another piece of the same name: new rows are renamed, indexed pages stay
    (scores / "book1" / "page.png").unlink()
    (scores / "book2").rename(scores / "book3")
    shutil.copy(tiny_scores / "b.mxl", scores / "book1" / "a.mxl")  # mine/book1/a~2 at once
    assert main(["index", "--out", str(idx), "--checkpoint", str(tiny_ckpt), "--add",
                 "--scores", str(scores), "--recordings", str(audio)]) == 0
    index = Index(idx)
    rows = index.all_rows("sheet")
    assert {row["piece"] for row in rows} == pieces | {"mine/book1/a~2", "mine/book1/a~3",
                                                       "mine/book3/page"}
    assert page.read_bytes() == engraved
    assert {row["recording"] for row in index.all_rows("audio")} == {
        "audio/book1/take", "audio/book2/take", "audio/book1/take~2", "audio/book2/take~2"}
    for row in rows:
        assert (idx / row["page_image"]).is_file()
    assert len({row["page_image"] for row in rows}) == len({(r["piece"], r["page"])
                                                            for r in rows})


def test_demo_report_shows_the_correct_page_when_the_answer_is_elsewhere(chorale_dataset,
                                                                          tiny_ckpt, tmp_path):
    import re

    from PIL import Image

    from scorelink.demo import CORRECT, RETRIEVED, index_ranks, write_report
    from scorelink.evaluate.metrics import retrieval_metrics

    idx = tmp_path / "idx"  # two pieces (the fixture's valid and test splits), two pages
    for split, more in (("valid", []), ("test", ["--add"])):
        assert main(["index", "--out", str(idx), "--checkpoint", str(tiny_ckpt), "--data",
                     str(chorale_dataset), "--split", split, *more]) == 0
    index = Index(idx)
    ranks, answers = index_ranks(index)
    assert len(ranks["a2s"]) == index.audio.ntotal and len(ranks["s2a"]) == index.sheet.ntotal
    systems, windows = index.all_rows("sheet"), index.all_rows("audio")
    page_of = {(s["piece"], s["system"]): s["page_image"] for s in systems}
    # every audio query answered (wrongly) with a system of another page
    wrong = [next(s["id"] for s in systems if s["page_image"] != page_of[w["piece"], w["system"]])
             for w in windows]
    answers = {**answers, "a2s": np.array(wrong)[:, None]}
    ranks = {**ranks, "a2s": np.full(len(windows), 2)}
    result = {"model": "tiny", **{d: retrieval_metrics(r) for d, r in ranks.items()}}
    text = write_report(tmp_path, index, ranks, answers, result).read_text()
    a2s = text.split("<h2>")[1].split("<div class=ex>")[1:]
    assert a2s
    for block in a2s:
        assert "correct system at rank 2" in block and "<b>Correct</b>" in block
        retrieved, correct = re.findall(r"<img src='report/([^']+)'>", block)
        for name, colour in ((retrieved, RETRIEVED), (correct, CORRECT)):
            pixels = np.asarray(Image.open(tmp_path / "report" / name).convert("RGB"))
            assert (pixels == colour).all(-1).any(), name  # the outline is drawn


def test_demo_resumes_a_collection_built_with_earlier_training_settings(tmp_path):
    """The demo builds only the test split: a folder whose dataset.json predates the soundfont
    settings (or has other training renditions) is resumed, one with another test is not."""
    from scorelink.data.build import BuildConfig
    from scorelink.demo import demo_config

    assert demo_config(tmp_path) == BuildConfig(source="corpus:chorales")  # nothing there yet
    legacy = {"source": "corpus:chorales", "seed": 0, "train_renditions": 4, "keep_audio": "test"}
    (tmp_path / "dataset.json").write_text(json.dumps({"config": legacy}))
    config = demo_config(tmp_path)
    assert config.train_renditions == 4 and config.valid_soundfont == "fluidr3-grand"
    assert config.train_soundfonts == ("fluidr3-grand", "fluidr3-epiano", "timgm6mb-grand")
    (tmp_path / "dataset.json").write_text(json.dumps({"config": {**legacy, "seed": 5}}))
    assert demo_config(tmp_path) == BuildConfig(source="corpus:chorales")


def test_demo_report_crops_each_system_without_its_neighbours(data_index, tmp_path, capsys):
    from PIL import Image

    from scorelink.demo import MARGIN, crop_rows, index_ranks, write_report
    from scorelink.evaluate.metrics import retrieval_metrics

    index = Index(data_index)
    pages: dict[str, list[dict]] = {}
    for r in index.all_rows("sheet"):
        pages.setdefault(r["page_image"], []).append(r)
    assert max(len(systems) for systems in pages.values()) >= 3
    for page_image, systems in pages.items():
        ink = (np.asarray(Image.open(index.root / page_image).convert("L")) < 128).sum(axis=1)
        for s in systems:
            top, bottom = crop_rows(index, [s], ink)
            # the system, the outline drawn around it and some room; at most MARGIN beyond it
            assert top <= s["top"] - 8 and bottom >= s["bottom"] + 8, (s, top, bottom)
            assert bottom - top <= s["bottom"] - s["top"] + 2 * MARGIN + 2
            for other in systems:  # no part of another system's staves
                if other["id"] != s["id"]:
                    assert other["bottom"] <= top or other["top"] >= bottom, (s, other)
            others_above = [o["bottom"] for o in systems if o["bottom"] <= s["top"]]
            if others_above and top > s["top"] - MARGIN:  # cut in the gap: at its emptiest row
                gap = ink[int(np.ceil(max(others_above))):int(s["top"]) + 1]
                assert ink[top] == gap.min()

    # the report's steps show progress (on stderr)
    ranks, answers = index_ranks(index, progress=True)
    result = {"model": "tiny", **{d: retrieval_metrics(r) for d, r in ranks.items()}}
    write_report(tmp_path, index, ranks, answers, result, progress=True)
    err = capsys.readouterr().err
    assert "querying" in err and "report, audio queries" in err and "report, sheet queries" in err


def test_index_halves_are_none_where_a_system_has_none(tmp_path):
    """Systems added without halves (rows written by hand, or an index made before they were
    kept) give None, and the alignment falls back to the systems' vectors alone."""
    rng = np.random.default_rng(0)
    unit = rng.normal(size=(3, 8)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    pending = Pending()
    row = {"piece": "p", "page": 0, "top": 0.0, "left": 0.0, "bottom": 1.0, "right": 1.0}
    pending.add_systems([{**row, "system": 0}], unit[:1], halves=(unit[1:2], unit[2:3]))
    pending.add_systems([{**row, "system": 1}], unit[1:2])
    index = Index.write(tmp_path / "idx", pending, model_name="m", fingerprint="f", dim=8)
    first, second = index.halves([0])
    np.testing.assert_allclose(np.r_[first, second], unit[1:])
    assert index.halves([0, 1]) is None


def test_index_keeps_parts_and_the_model_ranks_with_them(data_index, chorale_dataset, tiny_ckpt):
    """Every indexed system keeps the parts whose middle it holds (runs of its piece's joined
    systems, `collect.piece_parts`), and an audio query's model ranking is the parts' score
    (`parts.system_scores`) over every system, best first."""
    from scorelink.search import parts, query

    index, emb, ds = Index(data_index), Embedder.load(tiny_ckpt), Dataset(chorale_dataset)
    records = ds.records(split="test", tempo=1.0, soundfont="musescore-grand")
    rows = index.all_rows("sheet")
    found = index.parts()
    assert found is not None and set(found.owner.tolist()) == {r["id"] for r in rows}
    piece = rows[0]["piece"]
    mine = sorted((r for r in rows if r["piece"] == piece), key=lambda r: r["system"])
    strips = [ds.strip(next(x for x in records if (x["piece"], x["system"]) ==
                            (r["piece"], r["system"]))) for r in mine]
    for r, want in zip(mine, collect.piece_parts(emb, strips), strict=True):
        np.testing.assert_allclose(found.vectors[found.owner == r["id"]], want, atol=1e-4)
    # a clip cut across a system boundary: the model's answers are the parts' ranking
    spec = ds.rendition_spec(records[0])[:, 60:260].astype(np.float32)
    ids, vectors = index.system_matrix()
    spans = parts.clip_spans(spec.shape[1])
    want = parts.system_scores(emb.audio(spec, spans), vectors, found,
                               weights=parts.span_weights(spans))
    evidence = query.audio_evidence(index, emb, spec, notes=False)
    hits = query.fuse(index, evidence, top=5, paths="image")
    best = np.argsort(-want, kind="stable")[:5]
    assert [h["id"] for h in hits] == ids[best].tolist()
    np.testing.assert_allclose([h["image_score"] for h in hits], want[best], atol=1e-3)


def test_index_parts_belong_to_their_systems_across_adds(tmp_path):
    """Parts are stored per system and keep their owners when an index is extended; an index
    whose systems have none gives None (the model then ranks by the systems' vectors)."""
    rng = np.random.default_rng(1)
    unit = rng.normal(size=(6, 8)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    row = {"piece": "p", "page": 0, "top": 0.0, "left": 0.0, "bottom": 1.0, "right": 1.0}
    bare = Pending()
    bare.add_systems([{**row, "system": 0}], unit[:1])
    assert Index.write(tmp_path / "bare", bare, model_name="m", fingerprint="f",
                       dim=8).parts() is None
    pending = Pending()
    pending.add_systems([{**row, "system": k} for k in range(2)], unit[:2],
                        parts=[unit[2:4], np.zeros((0, 8), np.float32)])
    Index.write(tmp_path / "idx", pending, model_name="m", fingerprint="f", dim=8)
    more = Pending()
    more.add_systems([{**row, "piece": "q", "system": 0}], unit[4:5], parts=[unit[5:6]])
    index = Index.write(tmp_path / "idx", more, model_name="m", fingerprint="f", dim=8,
                        add=True)
    found = index.parts()
    assert found.owner.tolist() == [0, 0, 2]
    np.testing.assert_allclose(found.vectors, unit[[2, 3, 5]])


def test_index_keeps_hubness_shifts_where_the_model_has_a_bank(tmp_path, monkeypatch):
    """With a bank for the index's model, every system with parts keeps its own and its parts'
    shifts (also across --add); without one, or for systems without parts, none."""
    from scorelink.search import hubness

    rng = np.random.default_rng(2)
    unit = rng.normal(size=(6, 8)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    bank = rng.normal(size=(100, 8)).astype(np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    row = {"piece": "p", "page": 0, "top": 0.0, "left": 0.0, "bottom": 1.0, "right": 1.0}

    def pending(first, count, parts):
        p = Pending()
        p.add_systems([{**row, "piece": f"p{first}", "system": k} for k in range(count)],
                      unit[first:first + count], parts=parts)
        return p

    plain = Index.write(tmp_path / "plain", pending(0, 1, [unit[2:4]]), model_name="m",
                        fingerprint="f", dim=8)
    assert plain.parts().shift is None and plain.system_shifts(np.array([0])) is None
    monkeypatch.setattr(hubness, "load_bank", lambda fp: bank if fp == "f" else None)
    Index.write(tmp_path / "idx", pending(0, 2, [unit[2:4], np.zeros((0, 8), np.float32)]),
                model_name="m", fingerprint="f", dim=8)
    index = Index.write(tmp_path / "idx", pending(4, 1, [unit[5:6]]), model_name="m",
                        fingerprint="f", dim=8, add=True)
    found = index.parts()
    np.testing.assert_allclose(found.shift, hubness.shifts(bank, unit[[2, 3, 5]]), atol=1e-6)
    np.testing.assert_allclose(index.system_shifts(np.array([0, 2])),
                               hubness.shifts(bank, unit[[0, 4]]), atol=1e-6)
    assert index.system_shifts(np.array([1]))[0] == 0.0  # no parts: no row


def test_a_query_holds_openblas_to_one_thread_and_gives_the_threads_back():
    """Inside a query the OpenBLAS of numpy and of FAISS runs one thread (its spinning workers
    took the cores the embedding needed); after it, and after an error in it, as many as
    before. (Another package's OpenBLAS, e.g. scipy's loaded by an earlier test, is not a
    query's.)"""
    import faiss  # noqa: F401  (loaded, as a query has it)
    from threadpoolctl import threadpool_info, threadpool_limits

    from scorelink.threads import one_blas_thread

    def threads() -> set[int]:
        found = [lib for lib in threadpool_info() if lib["internal_api"] == "openblas"
                 and ("numpy" in lib["filepath"] or "faiss" in lib["filepath"])]
        assert len(found) == 2  # numpy's and FAISS's
        return {lib["num_threads"] for lib in found}

    @one_blas_thread
    def inside(fail: bool = False) -> set[int]:
        if fail:
            raise ValueError("in the query")
        return threads()

    with threadpool_limits(limits=2, user_api="blas"):
        assert threads() == {2}
        assert inside() == {1}
        assert threads() == {2}
        with pytest.raises(ValueError):
            inside(fail=True)
        assert threads() == {2}
