"""Batch queries: `search --queries FILE.jsonl`, one model load, answers as JSON Lines that equal
the queries asked one by one; a bad file is refused before the model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from scorelink.cli import main
from scorelink.constants import SAMPLE_RATE
from scorelink.data.store import Dataset
from scorelink.errors import AudioError, QueryError
from scorelink.search import batch
from scorelink.search.embed import Embedder, NumpyEmbedder
from scorelink.search.recordings import read_audio


@pytest.fixture()
def loads(monkeypatch) -> list[str]:
    """Every model load: the PyTorch Embedder's or the NumPy one's (an index's model.npz)."""
    calls: list[str] = []

    def counting(cls):
        real = cls.load

        def counted(*args, **kwargs):
            calls.append(str(args[0] if args else kwargs.get("checkpoint")))
            return real(*args, **kwargs)

        monkeypatch.setattr(cls, "load", counted)

    counting(Embedder)
    counting(NumpyEmbedder)
    return calls


def test_queries_file_answers_each_line_as_one_search_would(data_index, chorale_dataset,
                                                            tmp_path, capsys, loads):
    flac = next(Path(chorale_dataset).rglob("musescore-grand@1.00.flac"))
    (tmp_path / "clips").mkdir()
    soundfile.write(tmp_path / "clips" / "take.flac", *soundfile.read(flac))
    ds = Dataset(chorale_dataset)
    r = ds.records(split="test", tempo=1.0)[0]
    Image.fromarray(ds.page(r["piece"], r["page"])).save(tmp_path / "page.png")
    soundfile.write(tmp_path / "silent.wav", np.zeros(3 * SAMPLE_RATE), SAMPLE_RATE)
    lines = [{"id": 1, "audio": "clips/take.flac", "start": 2, "end": 10},
             {"image": "page.png", "system": 1},
             {"id": "quiet", "audio": "silent.wav"},
             {"audio": str(tmp_path / "clips" / "take.flac"), "end": 8}]
    queries = tmp_path / "queries.jsonl"  # relative paths: from the file's folder
    queries.write_text("\n".join(json.dumps(q) for q in lines[:2]) + "\n\n"
                       + "\n".join(json.dumps(q) for q in lines[2:]) + "\n")

    idx = str(data_index)
    assert main(["search", "--index", idx, "--queries", str(queries), "--top", "3"]) == 2
    out, err = capsys.readouterr()
    answers = [json.loads(line) for line in out.splitlines()]
    assert [a["query"] for a in answers] == lines and len(loads) == 1
    assert "1 of 4 queries could not be answered" in err
    assert "silent.wav: the audio is silent" in answers[2]["error"] and "results" not in \
        answers[2]
    one_by_one = [["--audio", str(tmp_path / "clips" / "take.flac"), "--start", "2", "--end",
                   "10"], ["--image", str(tmp_path / "page.png"), "--system", "1"], None,
                  ["--audio", str(tmp_path / "clips" / "take.flac"), "--end", "8"]]
    for answer, argv in zip(answers, one_by_one, strict=True):
        if argv is None:
            continue
        assert main(["search", "--index", idx, "--top", "3", "--json", *argv]) == 0
        assert answer["results"] == json.loads(capsys.readouterr().out)["results"]
        assert 1 <= len(answer["results"]) <= 3

    queries.write_text(json.dumps(lines[0]) + "\n" + json.dumps(lines[3]) + "\n")
    assert main(["search", "--index", idx, "--queries", str(queries), "--by", "piece"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(answers) == 2 and all({"piece", "hits"} <= set(a["results"][0]) for a in answers)


@pytest.mark.parametrize("text, words", [
    ('{"audio": "a.wav"}\n{"audio": "b.wav",\n', "line 2: not JSON"),
    ('{"audio": "a.wav", "strat": 3}', "line 1: unknown key 'strat'"),
    ('{"audio": "a.wav", "image": "p.png"}', "either \"audio\" or \"image\""),
    ('{"start": 3}', "either \"audio\" or \"image\""),
    ('{"image": "p.png", "start": 3}', "\"start\" belongs to an audio query"),
    ('{"audio": "a.wav", "start": 8, "end": 2}', "end (2 s) must be after start (8 s)"),
    ('{"audio": "a.wav", "start": -1}', "\"start\" must be seconds, 0 or more"),
    ('{"image": "p.png", "system": 0}', "\"system\" must be a whole number from 1"),
    ('["a.wav"]', "expected a JSON object"),
    ("\n\n", "holds no queries"),
])
def test_bad_queries_files_are_refused_before_the_model_loads(data_index, tmp_path, capsys,
                                                              loads, text, words):
    queries = tmp_path / "q.jsonl"
    queries.write_text(text)
    assert main(["search", "--index", str(data_index), "--queries", str(queries)]) == 2
    assert words in capsys.readouterr().err and not loads


def test_read_audio_refuses_an_end_before_the_start(tmp_path):
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, 0.3 * np.sin(np.arange(5 * SAMPLE_RATE) / 9), SAMPLE_RATE)
    with pytest.raises(AudioError, match=r"take\.wav: the end \(2 s\) must be after the start"):
        read_audio(clip, start=8, end=2, name="take.wav")
    with pytest.raises(QueryError, match="line 7"):
        batch.parse_query({"audio": "x.wav", "start": 1, "end": 0}, where="q line 7")
