"""The snippet baseline: note-centred snippets, voting, training, RNN-FT/FZ initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scorelink import checkpoint
from scorelink.data.store import Dataset
from scorelink.errors import ConfigError
from scorelink.evaluate.retrieval import eval_records
from scorelink.evaluate.voting import K_VOTES, _votes, vote_ranks
from scorelink.models.snippets import audio_window, sheet_window
from scorelink.train.config import TrainConfig
from scorelink.train.snippet_batches import NoteSnippets
from scorelink.train.trainer import Trainer, build_model


def test_sheet_window_is_centred_on_the_notehead():
    strip = np.full((160, 835), 255, np.uint8)
    strip[70:90, 400:402] = 0  # a short black stroke at x = 400..401
    win = sheet_window(strip, 400)
    assert win.shape == (80, 90)
    cols = np.nonzero(win.sum(axis=0))[0]
    assert cols.tolist() == [45]  # columns 90, 91 of the 180 px window halve to 45
    rows = np.nonzero(win.sum(axis=1))[0]
    assert rows.min() == 35 and rows.max() == 44
    shifted = sheet_window(strip, 400, shift=4)  # window moved down: content moves up
    assert np.nonzero(shifted.sum(axis=1))[0].min() == 33
    assert sheet_window(strip, 400, scale=1.05).shape == (80, 90)
    assert not sheet_window(strip, 5).any()  # nothing drawn near the left edge
    # a notehead beyond the page (a line LilyPond could not fit runs past its right edge)
    assert not sheet_window(strip, 1000, scale=0.98).any()


def test_audio_window_edges():
    spec = np.arange(92 * 30, dtype=np.float32).reshape(92, 30) + 1
    w = audio_window(spec, 3)  # frames -7..12: seven zeros first
    assert not w[:, :7].any()
    np.testing.assert_array_equal(w[:, 7:], spec[:, 0:13])
    np.testing.assert_array_equal(audio_window(spec, 15), spec[:, 5:25])


def test_votes_count_nearest_owners():
    db = np.eye(4)[[0, 0, 1, 2, 3]]  # five candidate snippets, owners 0,0,1,2,3
    owner = np.array([0, 0, 1, 2, 3])
    query = np.eye(4)[[0]]
    v = _votes(query, db, owner, 4)
    assert K_VOTES >= 5 and np.floor(v).tolist() == [2, 1, 1, 1]  # all five vote
    assert v[0] > v[1]  # owner 0 has the two most similar snippets


def test_note_pairs_match_onsets(chorale_dataset):
    ds = Dataset(chorale_dataset)
    records = ds.records(split="train")[:3]
    pairs = NoteSnippets(chorale_dataset, records)
    for r_idx, frame, x in pairs.pairs[:50]:
        r = records[int(r_idx)]
        notes = ds.notes(r)
        here = notes["onset_frame"] + r["start_frame"] == frame
        assert here.any() and abs(notes["x"][here].mean() - x) < 1e-3
    item = pairs[0]
    assert item["sheet"].shape == (1, 80, 90) and item["audio"].shape == (1, 92, 20)
    assert item["sheet"].max() > 0.5  # ink at the notehead
    # timbre_augment: the audio snippet recoloured (its loud bands stay loud), the sheet not
    torch.manual_seed(0)
    coloured = NoteSnippets(chorale_dataset, records, timbre=True)[0]
    assert torch.equal(coloured["sheet"], item["sheet"])
    a, b = item["audio"].flatten(), coloured["audio"].flatten()
    assert not torch.allclose(a, b) and torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.8


def test_snippet_training_voting_and_rnn_init(chorale_dataset, tmp_path):
    base = dict(data=str(chorale_dataset), preset="tiny", epochs=1, workers=0,
                valid_passages=64)
    bl = TrainConfig.load(None, model="snippet", out=str(tmp_path / "bl"),
                          passages_per_epoch=64, batch_size=32, **base)
    assert bl.margin == 0.6 and bl.embed_dim == 32 and bl.lr == 1e-4  # the baseline's values
    Trainer(bl).fit()
    model, payload = checkpoint.load_model(tmp_path / "bl" / "best.pt")
    assert payload["kind"] == "snippet"
    records = eval_records(Dataset(chorale_dataset), split="test")
    ranks = vote_ranks(model, chorale_dataset, records)
    n_systems = len({(r["piece"], r["system"]) for r in records})
    assert len(ranks["a2s"]) == len(records) and ranks["a2s"].max() <= n_systems
    assert len(ranks["s2a"]) == n_systems and ranks["s2a"].max() <= len(records)

    # BL warm start: every weight of the other snippet model, then it trains on
    warm = TrainConfig.load(None, model="snippet", out=str(tmp_path / "bl2"),
                            init_from=str(tmp_path / "bl" / "best.pt"),
                            passages_per_epoch=64, batch_size=32, **base)
    start = build_model(warm).state_dict()
    for k, v in payload["state_dict"].items():
        torch.testing.assert_close(start[k], v, msg=k)
    with pytest.raises(ConfigError, match="embed_dim"):
        build_model(TrainConfig.load(None, model="snippet", out=str(tmp_path / "bl3"),
                                     init_from=str(tmp_path / "bl" / "best.pt"), embed_dim=16,
                                     **base))
    with pytest.raises(ConfigError, match="freeze_cnn"):
        TrainConfig.load(None, model="snippet", freeze_cnn=True, **base)

    # RNN-FZ: the passage model's CNNs start from BL's and stay frozen
    fz = TrainConfig(out=str(tmp_path / "fz"), init_from=str(tmp_path / "bl" / "best.pt"),
                     freeze_cnn=True, embed_dim=16, passages_per_epoch=16, batch_size=8, **base)
    start = build_model(fz).state_dict()
    for k, v in payload["state_dict"].items():
        if ".cnn." in f".{k}" and "num_batches" not in k:
            torch.testing.assert_close(start[k], v, msg=k)
    Trainer(fz).fit()
    trained = checkpoint.read(tmp_path / "fz" / "last.pt")["state_dict"]
    for k, v in payload["state_dict"].items():  # weights and BatchNorm statistics alike
        if ".cnn." in f".{k}":
            torch.testing.assert_close(trained[k], v, msg=k)


def test_cca_recovers_a_known_correlation():
    from scorelink.models.cca import CCAProjection, fit_cca

    g = torch.Generator().manual_seed(0)
    n, sigma = 20_000, 0.5
    z = torch.randn(n, generator=g)
    x = torch.stack([z, torch.randn(n, generator=g), torch.randn(n, generator=g)], 1)
    y = torch.stack([torch.randn(n, generator=g), 3 * (z + sigma * torch.randn(n, generator=g)),
                     torch.randn(n, generator=g)], 1)
    mix = torch.tensor([[1.0, 0.5, 0.0], [0.2, 1.0, 0.3], [0.0, 0.4, 1.0]])
    x = x @ mix + 5  # correlated, offset coordinates: CCA must undo both
    mx, wx, my, wy, corr = fit_cca(x, y, reg=1e-6)
    expected = 1 / np.sqrt(1 + sigma**2)  # corr(z, z + sigma * noise)
    assert abs(float(corr[0]) - expected) < 0.01
    assert (corr[1:] < 0.05).all() and (corr[:-1] >= corr[1:]).all()
    layer_x, layer_y = CCAProjection(3), CCAProjection(3)
    layer_x.set(mx, wx)
    layer_y.set(my, wy)
    px, py = layer_x(x).double(), layer_y(y).double()
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(px.T @ px / (n - 1), eye, atol=2e-3, rtol=0)
    torch.testing.assert_close(py.T @ py / (n - 1), eye, atol=2e-3, rtol=0)
    torch.testing.assert_close(px.T @ py / (n - 1), torch.diag(corr.double()), atol=2e-3, rtol=0)


def test_refine_cca_cli_and_rnn_ft_cca(chorale_dataset, tmp_path, capsys):
    from scorelink.cli import main

    bl = TrainConfig.load(None, model="snippet", out=str(tmp_path / "bl"),
                          data=str(chorale_dataset), preset="tiny", epochs=1, workers=0,
                          valid_passages=64,
                          passages_per_epoch=64, batch_size=32)
    Trainer(bl).fit()
    source, refined = tmp_path / "bl" / "best.pt", tmp_path / "bl-cca.pt"
    assert main(["refine-cca", "--checkpoint", str(source), "--data", str(chorale_dataset),
                 "--out", str(refined), "--pairs", "200"]) == 0
    assert "canonical correlations" in capsys.readouterr().out
    model, payload = checkpoint.load_model(refined)
    assert payload["kind"] == "snippet" and payload["model_config"]["cca"]
    assert payload["cca"]["pairs"] == 200 and len(payload["cca"]["correlations"]) == 32
    assert not torch.equal(model.sheet.cca.weight, torch.eye(32))  # fitted, not the identity
    records = eval_records(Dataset(chorale_dataset), split="test")
    assert len(vote_ranks(model, chorale_dataset, records)["a2s"]) == len(records)

    # bad input: the source itself as --out, an RNN checkpoint, a missing file; nothing written
    before = source.read_bytes()
    assert main(["refine-cca", "--checkpoint", str(source), "--data", str(chorale_dataset),
                 "--out", str(source)]) == 2
    assert source.read_bytes() == before
    assert main(["refine-cca", "--checkpoint", str(tmp_path / "nope.pt"),
                 "--data", str(chorale_dataset), "--out", str(tmp_path / "x.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err

    # RNN-FT-CCA: the passage model carries the refined CNNs and CCA layers and fine-tunes
    ft = TrainConfig(out=str(tmp_path / "ft"), init_from=str(refined), data=str(chorale_dataset),
                     preset="tiny", epochs=1, workers=0, valid_passages=64, embed_dim=16,
                     passages_per_epoch=16, batch_size=8)
    rnn = build_model(ft)
    assert rnn.config.cca and rnn.config.snippet_dim == 32
    torch.testing.assert_close(rnn.audio.cca.weight, model.audio.cca.weight)
    Trainer(ft).fit()
    # ... and a passage model with a CCA layer warm-starts another run (RNN-FZ-CCA -> -FT-CCA)
    again = build_model(TrainConfig(**{**ft.to_dict(), "out": str(tmp_path / "ft2"),
                                       "init_from": str(tmp_path / "ft" / "best.pt")}))
    assert again.config.cca
    assert main(["refine-cca", "--checkpoint", str(tmp_path / "ft" / "best.pt"),
                 "--data", str(chorale_dataset), "--out", str(tmp_path / "y.pt")]) == 2
    assert "not 'snippet'" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()
