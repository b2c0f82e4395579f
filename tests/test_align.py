"""Alignment of whole recordings: segment embeddings vs one by one, the decoder on a known
answer (repeats, a gap), the align CLI and its bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import soundfile
from conftest import tiny_passage_model as _tiny  # noqa: E402
from PIL import Image

from scorelink.cli import main
from scorelink.constants import AUDIO_SNIPPET_HOP, SAMPLE_RATE
from scorelink.data.store import Dataset
from scorelink.search import align
from scorelink.search.embed import Embedder


def test_segment_embeddings_equal_one_by_one(chorale_dataset):
    emb = Embedder(_tiny(), bf16=False)
    ds = Dataset(chorale_dataset)
    spec = ds.rendition_spec(ds.records(split="test", tempo=1.0)[0]).astype(np.float32)
    segs = align.segment_embeddings(emb, spec, max_steps=12)
    hop = AUDIO_SNIPPET_HOP
    pairs = [(0, 1), (0, 12), (3, 5), (7, 9), (20, 2)]
    slow = emb.audio(spec, [(i * hop, (i + k - 1) * hop + 20) for i, k in pairs])
    np.testing.assert_allclose(np.stack([segs[i, k - 1].numpy() for i, k in pairs]), slow,
                               atol=1e-5)


def _known_answer(truth: list[tuple[int, int, int]], n_systems: int, k_min: int, n_k: int):
    """Similarities that peak where a segment is exactly one of the truth's (start, end,
    system): intersection over union with the system's true segments."""
    n = truth[-1][1]
    sim = np.zeros((n, n_k, n_systems), np.float32)
    for i in range(n):
        for c in range(n_k):
            j = i + k_min + c
            for a, b, s in truth:
                if s >= 0:
                    iou = max(0, min(j, b) - max(i, a)) / (max(j, b) - min(i, a))
                    sim[i, c, s] = max(sim[i, c, s], 0.9 * iou)
    return sim


def test_decoder_finds_repeats_skips_and_gaps():
    # systems 0 1 | repeat 0 1 | skip 2 | 3, then a pause (gap), then 4
    truth = [(0, 8, 0), (8, 18, 1), (18, 26, 0), (26, 36, 1), (36, 45, 3), (45, 50, -1),
             (50, 59, 4)]
    sim = _known_answer(truth, 5, 2, 14)
    path = align.decode_tempo(sim, 2, jump_penalty=1.0, gap_level=0.15)
    assert [(a, b, s) for a, b, s in path if s >= 0] == [t for t in truth if t[2] >= 0]
    assert any(s == -1 and a >= 45 and b <= 50 for a, b, s in path)
    # with an unaffordable jump, the decoder must go on in reading order instead
    path = align.decode_tempo(sim, 2, jump_penalty=1e6, gap_level=0.15)
    played = [s for _, _, s in path if s >= 0]
    assert played == sorted(played)


def _piece(chorale_dataset):
    ds = Dataset(chorale_dataset)
    r = ds.records(split="test", tempo=1.0)[0]
    folder = chorale_dataset / "pieces" / r["piece"]
    n_systems = len({x["system"] for x in ds.records(piece=r["piece"], tempo=1.0)})
    return folder / "pages", folder / f"{r['rendition']}.flac", n_systems


def test_align_cli(chorale_dataset, tiny_ckpt, tmp_path, capsys):
    pages, flac, n_systems = _piece(chorale_dataset)
    out, plot = tmp_path / "a.json", tmp_path / "a.png"
    assert main(["align", "--score", str(pages), "--recording", str(flac), "--out", str(out),
                 "--plot", str(plot), "--checkpoint", str(tiny_ckpt)]) == 0
    result = json.loads(out.read_text())
    assert result["recording"] == str(flac) and result["systems"]
    duration = soundfile.info(str(flac)).duration
    previous_end = 0.0
    for s in result["systems"]:
        assert set(s) == {"page", "system", "start", "end", "confidence"}
        assert s["page"] >= 1 and 1 <= s["system"] <= n_systems  # 1-based, as people count
        assert previous_end - 1e-6 <= s["start"] < s["end"] <= duration + 1e-6
        assert 0 <= s["confidence"] <= 1
        previous_end = s["end"]
    assert Image.open(plot).size[0] > 100
    assert len(capsys.readouterr().out.splitlines()) == len(result["systems"]) + 1
    table = tmp_path / "a.csv"
    assert main(["align", "--score", str(pages), "--recording", str(flac), "--out", str(table),
                 "--checkpoint", str(tiny_ckpt)]) == 0
    with open(table) as f:
        assert [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)] == \
            [{k: float(v) for k, v in r.items()} for r in result["systems"]]


def test_align_bad_input(chorale_dataset, tiny_ckpt, tmp_path, capsys):
    pages, flac, n_systems = _piece(chorale_dataset)
    ckpt = ["--checkpoint", str(tiny_ckpt)]
    blank = tmp_path / "blank.png"
    Image.new("L", (835, 1181), 255).save(blank)
    short = tmp_path / "short.wav"
    audio, sr = soundfile.read(str(flac))
    soundfile.write(str(short), audio[: int(0.5 * n_systems * sr)], sr)
    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(20 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    for score, recording, word in ((blank, flac, "staves"), (pages, short, "too short"),
                                   (pages, silent, "silent"),
                                   (pages, tmp_path / "none.wav", "does not exist")):
        capsys.readouterr()
        assert main(["align", "--score", str(score), "--recording", str(recording), *ckpt]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and word in err, err
    assert main(["align", "--score", str(pages), "--recording", str(flac), "--out",
                 str(tmp_path / "x.txt"), *ckpt]) == 2
