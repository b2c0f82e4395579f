"""The NumPy forward pass (models/numpy_forward.py) against the PyTorch model it was exported
from: each passage embedded alone by torch is the naive reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scorelink import checkpoint
from scorelink.constants import AUDIO_SNIPPET_FRAMES, N_BINS
from scorelink.models.numpy_forward import NumpyPassageModel, export
from scorelink.models.passage import PassageModel, PassageModelConfig
from scorelink.models.snippets import sheet_snippets
from scorelink.search.embed import Embedder, NumpyEmbedder


def _model(rnn: str, cca: bool) -> PassageModel:
    """A tiny model whose BatchNorm statistics and CCA map are not the identity (as after
    training), so that folding them into the convolutions is put to the test."""
    torch.manual_seed(3)
    model = PassageModel(PassageModelConfig.preset("tiny", rnn=rnn, cca=cca))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
        for tower in (model.sheet, model.audio):
            if tower.cca is not None:
                dim = tower.cca.mean.shape[0]
                tower.cca.set(torch.randn(dim) * 0.1, torch.eye(dim) + 0.2 * torch.randn(dim, dim))
    return model.eval()


@pytest.mark.parametrize(("rnn", "cca"), [("gru", False), ("lstm", True)])
def test_numpy_model_equals_torch_one_passage_at_a_time(tmp_path, rnn, cca):
    model = _model(rnn, cca)
    export(model, tmp_path / "m.npz", fingerprint="f", name="tiny")
    fast = NumpyPassageModel.load(tmp_path / "m.npz")
    rng = np.random.default_rng(0)
    inputs = {"audio": rng.random((7, N_BINS, AUDIO_SNIPPET_FRAMES), dtype=np.float32),
              "sheet": sheet_snippets(rng.integers(0, 256, (160, 500), dtype=np.uint8))}
    for side, snippets in inputs.items():
        feats = fast.features(side, snippets)
        sequences = [np.arange(len(snippets)), np.array([2]), np.array([3, 1, 0])]
        vectors = fast.summarize(side, feats, sequences)
        tower = getattr(model, side)
        with torch.no_grad():
            ref = tower.features(torch.from_numpy(snippets)[:, None]).numpy()
            np.testing.assert_allclose(feats, ref, atol=1e-5)
            for seq, v in zip(sequences, vectors, strict=True):
                x = torch.from_numpy(snippets[seq])[:, None]
                alone = tower(x, torch.tensor([len(seq)]))[0].numpy()
                np.testing.assert_allclose(v, alone, atol=1e-5)


def test_numpy_embedder_equals_the_shipped_model(tmp_path):
    """The paper-sized shipped model: whole strips and overlapping audio spans."""
    model, _ = checkpoint.load_model(None, kind="rnn")
    torch_side = Embedder(model, bf16=False)
    torch_side.export(tmp_path / "model.npz")
    numpy_side = NumpyEmbedder.load(tmp_path / "model.npz")
    assert numpy_side.fingerprint == torch_side.fingerprint
    rng = np.random.default_rng(1)
    spec = rng.random((N_BINS, 300), dtype=np.float32)
    spans = [(0, 300), (18, 120), (36, 41)]
    np.testing.assert_allclose(numpy_side.audio(spec, spans), torch_side.audio(spec, spans),
                               atol=1e-4)
    strips = rng.integers(0, 256, (2, 160, 400), dtype=np.uint8)
    np.testing.assert_allclose(numpy_side.sheet(strips), torch_side.sheet(strips), atol=1e-4)


def test_search_runs_without_importing_torch(data_index, chorale_dataset):
    """An index keeps its model (model.npz), and `scorelink search` answers from it in NumPy:
    the same answers as the torch model's, without importing torch."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    assert (data_index / "model.npz").is_file()
    flac = next(Path(chorale_dataset).rglob("musescore-grand@1.00.flac"))
    script = ("import json, sys; from scorelink.cli import main; "
              f"code = main(['search', '--index', {str(data_index)!r}, '--audio', "
              f"{str(flac)!r}, '--end', '8', '--top', '5', '--json']); "
              "print(json.dumps({'torch': 'torch' in sys.modules}), file=sys.stderr); "
              "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1]) == {"torch": False}
    answers = json.loads(done.stdout)["results"]
    assert answers

    from scorelink.data.spectrogram import spectrogram
    from scorelink.search import query
    from scorelink.search.index import Index
    from scorelink.search.recordings import read_audio

    index = Index(data_index)
    samples = read_audio(flac, end=8)
    exported = query.search_audio(index, NumpyEmbedder.load(data_index / "model.npz"),
                                  samples, top=5)
    assert [a["id"] for a in answers] == [a["id"] for a in exported]
    # the torch model (float32) scores the same systems alike
    model, _ = checkpoint.load_model(json.loads((data_index / "index.json").read_text())
                                     ["model"]["name"], kind="rnn")
    reference = query.audio_evidence(index, Embedder(model, bf16=False),
                                     spectrogram(samples))["image"]
    for a in exported:
        assert abs(a["image_score"] - reference[a["id"]]) < 2e-4  # scores are rounded to 1e-4
