"""Indexing a collection from Python (`index_collection`, which the CLI and demo use): what is
skipped and why, LilyPond sources, and the 1-based numbering of answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from scorelink.cli import main
from scorelink.constants import SAMPLE_RATE
from scorelink.errors import ScorelinkError
from scorelink.search.index import Index
from scorelink.search.indexing import index_collection

AIR = Path(__file__).parent / "fixtures" / "mutopia-air" / "air.ly"


def _photo(path: Path) -> Path:
    """A picture without music: smooth noise, like a photo."""
    rng = np.random.default_rng(0)
    small = rng.random((30, 42)) * 255
    Image.fromarray(small.astype(np.uint8)).resize((835, 600), Image.Resampling.BICUBIC).save(path)
    return path


def test_index_collection_skips_what_it_cannot_index(tiny_scores, tiny_ckpt, tmp_path, capsys):
    _photo(tiny_scores / "photo.png")
    Image.new("L", (835, 1181), 255).save(tiny_scores / "cover.png")  # a blank cover page
    audio = tmp_path / "audio"
    audio.mkdir()
    soundfile.write(audio / "take.wav", 0.3 * np.sin(np.arange(6 * SAMPLE_RATE) / 9),
                    SAMPLE_RATE)
    (audio / "broken.mp3").write_bytes(b"\x00\x01not audio" * 100)

    report = index_collection(tmp_path / "idx", scores=[tiny_scores], recordings=[audio],
                              checkpoint=tiny_ckpt, progress=False)
    assert sorted(Path(s["path"]).name for s in report.skipped) == ["broken.mp3", "cover.png",
                                                                    "photo.png"]
    assert all(s["reason"] for s in report.skipped)
    index = Index(tmp_path / "idx")
    assert {r["piece"] for r in index.all_rows("sheet")} == {"scores/a", "scores/b"}
    assert report.systems == report.total_systems == index.sheet.ntotal > 0
    assert report.windows == index.audio.ntotal > 0

    # the command line lists them and still succeeds
    assert main(["index", "--out", str(tmp_path / "idx2"), "--checkpoint", str(tiny_ckpt),
                 "--scores", str(tiny_scores), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"skipped {tiny_scores / 'photo.png'}:" in out and "2 files skipped" in out

    # nothing indexable at all: an error that names what was skipped
    only_photos = tmp_path / "photos"
    only_photos.mkdir()
    _photo(only_photos / "p.png")
    with pytest.raises(ScorelinkError, match=r"nothing could be indexed.*p\.png"):
        index_collection(tmp_path / "idx3", scores=[only_photos], checkpoint=tiny_ckpt,
                         progress=False)
    assert not (tmp_path / "idx3").exists()


def test_index_engraves_lilypond_with_lilypond(tiny_ckpt, tmp_path):
    from scorelink.data.lilypond import check_lilypond, engrave_lilypond

    check_lilypond()  # fails (does not skip) with an install hint when LilyPond is missing
    folder = tmp_path / "ly"
    folder.mkdir()
    shutil.copy(AIR, folder / "air.ly")
    report = index_collection(tmp_path / "idx", scores=[folder], checkpoint=tiny_ckpt,
                              progress=False)
    assert not report.skipped
    eng = engrave_lilypond(AIR, unfold=False)  # the pages as written
    index = Index(tmp_path / "idx")
    rows = index.all_rows("sheet")
    assert len(rows) == len(eng.systems) > 0
    assert {r["piece"] for r in rows} == {"ly/air"}
    page = np.asarray(Image.open(tmp_path / "idx" / rows[0]["page_image"]))
    np.testing.assert_array_equal(page, eng.pages[0])


def test_answers_count_pages_and_systems_from_one(data_index, chorale_dataset, tiny_ckpt,
                                                  tmp_path, capsys):
    from scorelink.data.store import Dataset
    from scorelink.search import query
    from scorelink.search.embed import Embedder
    from scorelink.search.pages import system_strips
    from scorelink.search.staves import find_systems

    flac = next(Path(chorale_dataset).rglob("musescore-grand@1.00.flac"))
    assert main(["search", "--index", str(data_index), "--audio", str(flac), "--end", "8",
                 "--top", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    index = Index(data_index)
    for h in hits:
        row = index.rows("sheet", [h["id"]])[0]
        assert (h["page"], h["system_in_piece"]) == (row["page"] + 1, row["system"] + 1)
        assert h["page_image"].endswith(f"page-{h['page']:03d}.png")
        # the system counted on its page, top to bottom, as `align` and the page count it
        on_page = query.page_systems(index, h["piece"], h["page"])
        assert [s["system"] for s in on_page] == list(range(1, len(on_page) + 1))
        assert next(s["system"] for s in on_page if s["id"] == h["id"]) == h["system"]
    assert main(["search", "--index", str(data_index), "--audio", str(flac), "--end", "8",
                 "--top", "3"]) == 0
    table = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[2:4] for line in table] == [[str(h["page"]), str(h["system"])]
                                                     for h in hits]

    # --system 1 is the top system of the page; 0 is refused
    ds = Dataset(chorale_dataset)
    r = ds.records(split="test", tempo=1.0)[0]
    page = ds.page(r["piece"], r["page"])
    Image.fromarray(page).save(tmp_path / "page.png")
    found = find_systems(page)
    assert len(found) > 1
    assert main(["search", "--index", str(data_index), "--image", str(tmp_path / "page.png"),
                 "--system", "1", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["results"]
    direct = query.search_sheet(index, Embedder.load(tiny_ckpt),
                                system_strips(page, found[:1])[0])
    assert [h["id"] for h in cli] == [h["id"] for h in direct]
    with pytest.raises(SystemExit) as exit_:  # refused by the parser, before any work
        main(["search", "--index", str(data_index), "--image", str(tmp_path / "page.png"),
              "--system", "0"])
    assert exit_.value.code == 2 and "--system: must be 1 or more" in capsys.readouterr().err
    assert main(["search", "--index", str(data_index), "--image", str(tmp_path / "page.png"),
                 "--system", str(len(found) + 1)]) == 2
    assert f"1 to {len(found)}" in capsys.readouterr().err


def test_index_shows_progress_unless_told_not_to(tiny_scores, tiny_ckpt, tmp_path, capsys):
    assert main(["index", "--out", str(tmp_path / "a"), "--checkpoint", str(tiny_ckpt),
                 "--scores", str(tiny_scores)]) == 0
    err = capsys.readouterr().err
    for step in ("loading the model", "indexing scores", "writing"):
        assert step in err, err
    assert "2/2" in err  # the bar counts the two score files
    assert main(["index", "--out", str(tmp_path / "b"), "--checkpoint", str(tiny_ckpt),
                 "--scores", str(tiny_scores), "--no-progress"]) == 0
    assert capsys.readouterr().err == ""
