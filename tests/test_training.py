"""Training end to end on three real chorales (tiny preset): checkpoints, resume, DDP, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from scorelink import checkpoint
from scorelink.errors import CheckpointError, ConfigError, DatasetError
from scorelink.train.config import TrainConfig
from scorelink.train.trainer import Trainer


def _config(data, out, **kw) -> TrainConfig:
    values = dict(data=str(data), out=str(out), preset="tiny", embed_dim=16, epochs=2,
                  passages_per_epoch=24, batch_size=8, workers=0, valid_passages=64)
    values.update(kw)
    return TrainConfig(**values)


def test_checkpoint_describes_itself(chorale_dataset, tmp_path):
    Trainer(_config(chorale_dataset, tmp_path / "run", epochs=1)).fit()
    payload = checkpoint.read(tmp_path / "run" / "best.pt")
    for key in ("model_config", "preprocessing", "train_config", "metrics", "epoch", "state_dict"):
        assert key in payload
    assert payload["epoch"] == 1 and payload["preprocessing"]["N_BINS"] == 92
    assert payload["precision"] in ("bfloat16 autocast", "float32")
    model, _ = checkpoint.load_model(tmp_path / "run" / "best.pt")  # rebuilt from the file alone
    assert model.config.embed_dim == 16
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,step,train_loss") and len(log) == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["preset"] == "tiny"


def test_renditions_of_one_system_are_no_negatives_of_each_other(chorale_dataset, tmp_path):
    trainer = Trainer(_config(chorale_dataset, tmp_path / "run", hard_negatives=2))
    records, ids = trainer.train_records, trainer.system_of.tolist()
    assert len({r["rendition"] for r in records}) > 1
    for r, i in zip(records, ids, strict=True):
        for q, j in zip(records, ids, strict=True):
            assert (i == j) == ((r["piece"], r["system"]) == (q["piece"], q["system"]))
    assert trainer.loss.hardest == 2
    trainer.fit()  # the masked hardest-negative loss trains
    assert trainer.step == 2 * 24 // 8


def test_resume_after_a_kill_matches_an_uninterrupted_run(chorale_dataset, tmp_path):
    torch.manual_seed(0)
    Trainer(_config(chorale_dataset, tmp_path / "straight")).fit()
    Trainer(_config(chorale_dataset, tmp_path / "killed", epochs=1)).fit()  # "killed" after 1
    resumed = Trainer(_config(chorale_dataset, tmp_path / "killed"))
    assert resumed.epoch == 1
    resumed.fit()
    a = checkpoint.read(tmp_path / "straight" / "last.pt")["state_dict"]
    b = checkpoint.read(tmp_path / "killed" / "last.pt")["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


def test_weight_average_is_validated_saved_and_resumed(chorale_dataset, tmp_path):
    trainer = Trainer(_config(chorale_dataset, tmp_path / "ema", epochs=1, ema=0.5))
    weights, step = [], trainer.optimizer.step

    def step_and_record(*args, **kwargs):
        out = step(*args, **kwargs)
        weights.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
        return out

    trainer.optimizer.step = step_and_record
    trainer.fit()
    best = checkpoint.read(tmp_path / "ema" / "best.pt")["state_dict"]
    last = checkpoint.read(tmp_path / "ema" / "last.pt")
    assert len(weights) == 3
    for k, v in best.items():
        if v.is_floating_point():  # by hand: w1, then halfway to w2, then halfway to w3
            expected = (weights[0][k] * 0.5 + weights[1][k] * 0.5) * 0.5 + weights[2][k] * 0.5
            torch.testing.assert_close(v, expected, msg=k)
            torch.testing.assert_close(last["state_dict"][k], weights[2][k], msg=k)  # raw
    assert any(not torch.equal(best[k], last["state_dict"][k]) for k in best)
    # a run killed after an epoch resumes its average too
    Trainer(_config(chorale_dataset, tmp_path / "straight", ema=0.5)).fit()
    resumed = Trainer(_config(chorale_dataset, tmp_path / "ema", ema=0.5))
    assert int(resumed.ema.n_averaged) == 3
    resumed.fit()
    a = checkpoint.read(tmp_path / "straight" / "last.pt")["ema"]
    b = checkpoint.read(tmp_path / "ema" / "last.pt")["ema"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    with pytest.raises(ConfigError, match="ema"):
        TrainConfig.load(overrides=["ema=1.5"])


def test_piece_batches_draw_runs_of_neighbouring_systems(chorale_dataset, tmp_path):
    from scorelink.train.batches import PieceSampler

    # three pieces of 5, 2 and 8 systems, each system in two renditions
    pieces, systems = [], []
    for name, n in (("a", 5), ("b", 2), ("c", 8)):
        for k in range(n):
            pieces += [name, name]
            systems += [k, k]
    sampler = PieceSampler(pieces, systems, 48, 4, seed=3)
    sampler.set_epoch(1)
    order = list(sampler)
    assert len(order) == 48 and order == list(sampler)  # deterministic per epoch
    sampler.set_epoch(2)
    assert list(sampler) != order
    seen_b = False
    for k in range(0, len(order), 4):  # every group fills its 4 places with one piece
        group = order[k:k + 4]
        piece = pieces[group[0]]
        assert {pieces[i] for i in group} == {piece}
        got = [systems[i] for i in group]
        if piece == "b":  # a piece shorter than the group plays its systems again
            assert got == [0, 1, 0, 1]
            seen_b = True
        else:
            assert got == list(range(got[0], got[0] + 4))  # consecutive, reading order
    assert seen_b
    # in training: every batch of 8 is two runs of 4 systems of one piece
    trainer = Trainer(_config(chorale_dataset, tmp_path / "run", epochs=1, piece_batches=4))
    trainer.sampler.set_epoch(0)
    drawn = list(trainer.sampler)
    for k in range(0, len(drawn) - 3, 4):
        assert len({trainer.train_records[i]["piece"] for i in drawn[k:k + 4]}) == 1
    trainer.fit()
    assert trainer.step == 24 // 8
    with pytest.raises(ConfigError, match="piece_batches"):
        TrainConfig.load(overrides=["piece_batches=5"])


def test_kept_epochs_are_averaged_into_a_checkpoint(chorale_dataset, tmp_path):
    from scorelink.train.average import average, main

    Trainer(_config(chorale_dataset, tmp_path / "run", epochs=2, keep_epochs=True)).fit()
    kept = sorted((tmp_path / "run" / "epochs").glob("epoch-*.pt"))
    assert [p.name for p in kept] == ["epoch-001.pt", "epoch-002.pt"]
    a, b = (checkpoint.read(p)["state_dict"] for p in kept)
    last = checkpoint.read(tmp_path / "run" / "last.pt")["state_dict"]
    for k in b:  # the last epoch's file holds the weights last.pt holds
        torch.testing.assert_close(b[k], last[k], msg=k)
    assert main([str(kept[0]), str(kept[1]), "--weights", "3,1",
                 "--out", str(tmp_path / "avg.pt")]) == 0
    avg = checkpoint.read(tmp_path / "avg.pt")
    moved = 0
    for k, v in avg["state_dict"].items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.75 * a[k] + 0.25 * b[k], msg=k)
            moved += not torch.equal(a[k], b[k])
        else:
            assert torch.equal(v, a[k])
    assert moved  # the two epochs differ, so the mean is neither
    assert [s["weight"] for s in avg["averaged_from"]] == [3.0, 1.0]
    model, _ = checkpoint.load_model(tmp_path / "avg.pt")
    assert model.config.embed_dim == 16
    wide = checkpoint.read(kept[1])
    wide["model_config"] = {**wide["model_config"], "embed_dim": 32}
    torch.save(wide, tmp_path / "wide.pt")
    with pytest.raises(CheckpointError, match="another model shape"):
        average([kept[0], tmp_path / "wide.pt"])
    with pytest.raises(CheckpointError, match="weights"):
        average(kept, [1.0])
    assert main(["--out", str(tmp_path / "x.pt"), str(tmp_path / "missing.pt")]) == 2


def test_training_on_two_folders(chorale_dataset, copy_dataset, tmp_path):
    from scorelink.cli import _parser
    from scorelink.data.store import Dataset, read_jsonl, write_jsonl

    args = _parser().parse_args(["train", "--data", "a", "--data", "b", "--data", "c"])
    assert args.data == ["a", "b", "c"]
    assert TrainConfig(data="a", extra_data="b, c").folders() == ["a", "b", "c"]

    n = len(Dataset(chorale_dataset).records(split="train"))
    trainer = Trainer(_config(chorale_dataset, tmp_path / "run", extra_data=str(copy_dataset),
                              epochs=1))
    assert len(trainer.train_records) == len(trainer.train_set) == 2 * n
    assert trainer.train_set[n][2] == n  # numbered after the first folder's
    ids = trainer.system_of.tolist()
    assert ids[:n] == ids[n:]  # the same pieces: the same systems, no negatives of each other
    trainer.fit()
    assert checkpoint.read(tmp_path / "run" / "best.pt")["train_config"]["extra_data"] == str(
        copy_dataset)

    with pytest.raises(ConfigError, match="given twice"):
        Trainer(_config(chorale_dataset, tmp_path / "r2", extra_data=str(chorale_dataset)))
    manifest = copy_dataset / "manifest.jsonl"  # the copy now trains on a test piece
    write_jsonl(manifest, [{**r, "split": "train"} if r["split"] == "test" else r
                           for r in read_jsonl(manifest)])
    with pytest.raises(DatasetError, match="holds out for test"):
        Trainer(_config(chorale_dataset, tmp_path / "r3", extra_data=str(copy_dataset)))


def test_valid_on_all_selects_by_the_mean_over_folders(chorale_dataset, copy_dataset, tmp_path):
    import csv

    from scorelink.data.store import read_jsonl, write_jsonl

    manifest = copy_dataset / "manifest.jsonl"  # the copy validates on its even systems only
    write_jsonl(manifest, [r for r in read_jsonl(manifest)
                           if r["split"] != "valid" or r["system"] % 2 == 0])
    trainer = Trainer(_config(chorale_dataset, tmp_path / "run", extra_data=str(copy_dataset),
                              epochs=1, valid_on="all"))
    assert [f for f, _ in trainer.valid_sets] == [str(chorale_dataset), str(copy_dataset)]
    assert len(trainer.valid_sets[1][1]) < len(trainer.valid_sets[0][1])
    metrics = trainer.fit()
    folders = metrics["folders"]
    for d in ("a2s", "s2a"):
        assert metrics[d]["MRR"] == pytest.approx(
            (folders[str(chorale_dataset)][d]["MRR"] + folders[str(copy_dataset)][d]["MRR"]) / 2)
    with open(tmp_path / "run" / "log.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["valid_folders"].startswith(f"{chorale_dataset.name} ")
    assert f"; {copy_dataset.name} " in row["valid_folders"]

    with pytest.raises(ConfigError, match="valid_on"):
        TrainConfig.load(overrides=["valid_on=both"])


def test_a_validation_only_folder_selects_without_training(chorale_dataset, copy_dataset,
                                                          tmp_path):
    """A folder of validation passages alone (the validation pieces played by another piano)
    may come first: it chooses the checkpoint, the other folders train."""
    from scorelink.data.store import Dataset, read_jsonl, write_jsonl

    manifest = copy_dataset / "manifest.jsonl"
    write_jsonl(manifest, [r for r in read_jsonl(manifest) if r["split"] == "valid"])
    trainer = Trainer(_config(copy_dataset, tmp_path / "run", extra_data=str(chorale_dataset),
                              epochs=1))
    assert [f for f, _ in trainer.valid_sets] == [str(copy_dataset)]
    assert len(trainer.train_records) == len(Dataset(chorale_dataset).records(split="train"))
    trainer.fit()
    test = [r for r in read_jsonl(chorale_dataset / "manifest.jsonl") if r["split"] == "test"]
    write_jsonl(manifest, test)  # a folder that neither trains nor validates
    with pytest.raises(DatasetError, match="no training or validation passages"):
        Trainer(_config(copy_dataset, tmp_path / "r2", extra_data=str(chorale_dataset)))


def test_train_passages_draws_a_seeded_subset(chorale_dataset, tmp_path):
    everything = Trainer(_config(chorale_dataset, tmp_path / "all")).train_records
    trainer = Trainer(_config(chorale_dataset, tmp_path / "some", train_passages=10))
    some = trainer.train_records
    assert len(trainer.train_set) == 10  # what training draws from, not only the list
    again = Trainer(_config(chorale_dataset, tmp_path / "again", train_passages=10)).train_records
    assert len(some) == 10 < len(everything)
    assert some == again and all(r in everything for r in some)
    assert Trainer(_config(chorale_dataset, tmp_path / "more",
                           train_passages=10**6)).train_records == everything
    with pytest.raises(ConfigError, match="train_passages"):
        TrainConfig.load(None, ["train_passages=-1"])


def test_bad_configs_and_checkpoints(chorale_dataset, tmp_path):
    with pytest.raises(ConfigError, match="unknown config key"):
        TrainConfig.load(None, ["learning_rate=0.1"])
    with pytest.raises(ConfigError, match="expected int"):
        TrainConfig.load(None, ["epochs=many"])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        checkpoint.load_model(bad)
    torch.save({"something": "else"}, bad)
    with pytest.raises(CheckpointError, match="not a scorelink checkpoint"):
        checkpoint.load_model(bad)


def test_ddp_two_cpu_processes(chorale_dataset, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", "29533", "-m", "scorelink", "train", "--data", str(chorale_dataset),
           "--out", str(out), "--preset", "tiny", "--epochs", "1", "embed_dim=16",
           "passages_per_epoch=32", "batch_size=8", "workers=0", "valid_passages=64"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    payload = checkpoint.read(out / "last.pt")
    assert payload["step"] == 2  # 32 passages / (2 processes x 8) per step
    assert payload["train_config"]["passages_per_epoch"] == 32


def test_cli_build_train_evaluate(three_scores, tmp_path):
    cli = [sys.executable, "-m", "scorelink"]
    data, run_dir, report = tmp_path / "ds", tmp_path / "run", tmp_path / "eval.json"
    steps = [
        ["data", "build", "--scores", str(three_scores), "--out", str(data), "--no-progress",
         "--workers", "1"],
        ["train", "--data", str(data), "--out", str(run_dir), "--preset", "tiny", "--epochs",
         "1", "embed_dim=16", "passages_per_epoch=16", "batch_size=4", "workers=0"],
        ["evaluate", "--data", str(data), "--checkpoint", str(run_dir / "best.pt"), "--json",
         str(report)],
    ]
    for step in steps:
        run = subprocess.run(cli + step, capture_output=True, text=True)
        assert run.returncode == 0, (step, run.stderr[-2000:])
    result = json.loads(report.read_text())
    assert set(result["a2s"]) == {"R@1", "R@10", "R@25", "MRR", "MR"}
    assert 0 < result["s2a"]["MRR"] <= 1
    assert "A2S" in run.stdout and "S2A" in run.stdout
    # bad input: a clear message, a non-zero exit, nothing written
    bad = subprocess.run(cli + ["evaluate", "--data", str(data), "--checkpoint",
                                str(run_dir / "best.pt"), "--tempo", "3"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "no test passages" in bad.stderr
    (tmp_path / "broken.pt").write_bytes(b"\0" * 100)
    bad = subprocess.run(cli + ["evaluate", "--data", str(data), "--checkpoint",
                                str(tmp_path / "broken.pt")], capture_output=True, text=True)
    assert bad.returncode != 0 and "checkpoint" in bad.stderr
    bad = subprocess.run(cli + ["train", "--data", str(tmp_path / "nowhere"), "--out",
                                str(tmp_path / "r2")], capture_output=True, text=True)
    assert bad.returncode != 0 and "does not exist" in bad.stderr
    assert not (tmp_path / "r2").exists()


def test_warm_start_takes_every_weight_and_trains_with_augmentations(chorale_dataset,
                                                                    tmp_path, tiny_ckpt):
    from scorelink.train.trainer import build_model

    start = checkpoint.read(tiny_ckpt)["state_dict"]
    model = build_model(_config(chorale_dataset, tmp_path / "warm", init_from=str(tiny_ckpt)))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, start[k], msg=k)  # the GRU and the head too, not only CNNs
    Trainer(_config(chorale_dataset, tmp_path / "warm", init_from=str(tiny_ckpt), epochs=1,
                    timbre_augment=True, tempo_augment=1.6, crop_augment=0.5,
                    scan_augment=0.5, join_augment=0.5, room_augment=0.5,
                    piano_augment=0.5, fine_eq_augment=0.5)).fit()
    trained = checkpoint.read(tmp_path / "warm" / "last.pt")["state_dict"]
    assert any(not torch.equal(trained[k], start[k]) for k in start)
    with pytest.raises(ConfigError, match="embed_dim"):  # another shape than the checkpoint's
        build_model(_config(chorale_dataset, tmp_path / "w2", init_from=str(tiny_ckpt),
                            embed_dim=32))


def test_widened_snippets_keep_the_function_then_train(chorale_dataset, tmp_path, tiny_ckpt):
    from scorelink.models.numpy_forward import NumpyPassageModel, export
    from scorelink.models.passage import widen_snippets
    from scorelink.train.trainer import build_model

    start = checkpoint.load_model(tiny_ckpt, kind="rnn")[0].eval()
    narrow = start.config.snippet_dim
    torch.manual_seed(1)
    sheet, audio = torch.randn(7, 1, 80, 90), torch.randn(9, 1, 92, 20)
    lengths = torch.tensor([3, 4]), torch.tensor([5, 4])
    model = build_model(_config(chorale_dataset, tmp_path / "wide", init_from=str(tiny_ckpt),
                                snippet_dim=2 * narrow)).eval()
    assert model.config.snippet_dim == 2 * narrow
    assert model.audio.rnn.weight_ih_l0.shape[1] == 2 * narrow
    with torch.no_grad():  # the same embeddings: the new features enter the GRU at weight 0
        for got, want in zip(model(sheet, lengths[0], audio, lengths[1]),
                             start(sheet, lengths[0], audio, lengths[1]), strict=True):
            torch.testing.assert_close(got, want)
        assert model.audio.features(audio)[:, narrow:].abs().sum() > 0  # new features exist
    export(model, tmp_path / "wide.npz", fingerprint="wide", name="wide")  # numpy path agrees
    np_model = NumpyPassageModel.load(tmp_path / "wide.npz")
    feats = np_model.features("audio", audio[:, 0].numpy())
    assert feats.shape == (9, 2 * narrow)
    vectors = np_model.summarize("audio", feats, [np.arange(5), np.arange(5, 9)])
    np.testing.assert_allclose(vectors, model.embed_audio(audio, lengths[1]).detach().numpy(),
                               atol=1e-4)
    Trainer(_config(chorale_dataset, tmp_path / "wide", init_from=str(tiny_ckpt), epochs=1,
                    snippet_dim=2 * narrow)).fit()  # trains, and the new inputs learn
    trained = checkpoint.read(tmp_path / "wide" / "last.pt")["state_dict"]
    assert trained["audio.rnn.weight_ih_l0"][:, narrow:].abs().sum() > 0
    resumed = Trainer(_config(chorale_dataset, tmp_path / "wide", init_from=str(tiny_ckpt),
                              epochs=1, snippet_dim=2 * narrow))  # resumes at the new width
    assert resumed.model.config.snippet_dim == 2 * narrow
    with pytest.raises(ValueError, match="grow"):
        widen_snippets(model, narrow)
    with pytest.raises(ConfigError, match="grow"):  # one line for the CLI, not a traceback
        build_model(_config(chorale_dataset, tmp_path / "narrow", init_from=str(tiny_ckpt),
                            snippet_dim=narrow // 2))


def test_bf16_setting(tmp_path, monkeypatch):
    from scorelink import precision

    old = tmp_path / "old.json"
    old.write_text(json.dumps({"bf16": False}))  # config files of when it was a bool
    assert TrainConfig.load(old).bf16 == "false"
    assert TrainConfig.load().bf16 == "auto"
    with pytest.raises(ConfigError, match="bf16"):
        TrainConfig.load(overrides=["bf16=maybe"])
    for native in (True, False):  # auto follows what oneDNN says of the CPU
        monkeypatch.setattr(precision, "cpu_bf16_native", lambda n=native: n)
        assert precision.use_bf16("auto") is native and precision.use_bf16(None) is native
        assert precision.use_bf16("true") and not precision.use_bf16("false")


def test_cached_features_match_the_frozen_cnns_and_train_the_rnn(chorale_dataset, tmp_path):
    from scorelink.train.batches import collate

    out = tmp_path / "fz"
    trainer = Trainer(_config(chorale_dataset, out, freeze_cnn=True, cache_features=1,
                              augment=False, epochs=1))
    trainer.model.eval()
    index = torch.arange(5)
    cached = trainer._cached_forward(trainer.features.batch(index, torch.zeros(5, dtype=int)))
    with torch.no_grad():  # the naive reference: snippets through the whole model
        full = trainer.model(*trainer._inputs(collate([trainer.train_set[i] for i in range(5)])))
    for a, b in zip(cached, full, strict=True):  # features are cached in float16
        torch.testing.assert_close(a.detach(), b, atol=4e-3, rtol=0)
    from scorelink.evaluate.metrics import retrieval_metrics
    from scorelink.evaluate.retrieval import rank_records

    reference = rank_records(trainer.model, chorale_dataset, trainer.valid_records)
    for d, metrics in trainer.validate().items():  # from the cached validation features
        assert metrics["MRR"] == pytest.approx(retrieval_metrics(reference[d])["MRR"], abs=0.02)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if ".cnn." in k)
    assert not torch.equal(before["sheet.rnn.weight_hh_l0"], after["sheet.rnn.weight_hh_l0"])
    stamp = (out / "features.pt").stat().st_mtime_ns
    resumed = Trainer(_config(chorale_dataset, out, freeze_cnn=True, cache_features=1,
                              augment=False, epochs=2))
    assert (out / "features.pt").stat().st_mtime_ns == stamp  # same CNNs: the cache is reused
    resumed.fit()
    assert resumed.epoch == 2


def test_cached_views_are_augmented_apart(chorale_dataset, tmp_path):
    trainer = Trainer(_config(chorale_dataset, tmp_path / "views", freeze_cnn=True,
                              cache_features=2, timbre_augment=True, epochs=1))
    cache, n = trainer.features, len(trainer.train_set)
    assert cache.views == 2 and len(cache) == n
    a = cache.batch(torch.arange(n), torch.zeros(n, dtype=int))["audio"]
    b = cache.batch(torch.arange(n), torch.ones(n, dtype=int))["audio"]
    assert a.shape == b.shape and not torch.equal(a, b)  # each view its own equaliser draw
    with pytest.raises(ConfigError, match="freeze_cnn"):
        TrainConfig.load(overrides=["cache_features=2"])
