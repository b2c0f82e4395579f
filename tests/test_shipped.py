"""The model that ships in the package: it loads, describes itself, and retrieves.

The fixture's three chorales may be among the shipped model's training pieces, so this checks
that the weights are the trained ones (far above chance), not the model's test-set quality,
which docs/model.md reports from `scorelink evaluate --data data/chorales`.
"""

from __future__ import annotations

import json

import numpy as np

from scorelink import checkpoint
from scorelink.cli import main
from scorelink.data.store import Dataset
from scorelink.evaluate.metrics import retrieval_metrics
from scorelink.evaluate.retrieval import rank_records


def test_shipped_model_loads_and_retrieves(chorale_dataset):
    path = checkpoint.shipped_path()
    assert path.stat().st_size < 10 * 2**20  # a few MB inside the package
    model, payload = checkpoint.load_model(path)
    assert payload["kind"] == "rnn"
    assert not {"optimizer", "scheduler", "torch_rng"} & set(payload)  # exported, not a run
    assert payload["metrics"]["valid_MRR"] > 0.5

    ds = Dataset(chorale_dataset)
    records, seen = [], {}
    for r in ds.records():  # one rendition at tempo 1.0 of every piece, whatever its split
        if r["tempo"] == 1.0 and seen.setdefault(r["piece"], r["rendition"]) == r["rendition"]:
            records.append(r)
    ranks = rank_records(model, chorale_dataset, records)
    n = len({(r["piece"], r["system"]) for r in records})
    chance = float(np.mean(1 / np.arange(1, n + 1)))  # MRR of a random ranking
    assert n >= 8 and chance < 0.4
    for direction in ("a2s", "s2a"):
        mrr = retrieval_metrics(ranks[direction])["MRR"]
        assert mrr > 0.6, (direction, mrr, chance)


def test_evaluate_uses_the_shipped_model(chorale_dataset, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--data", str(chorale_dataset), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"].endswith(checkpoint.SHIPPED)
    assert set(result["a2s"]) >= {"R@1", "R@10", "R@25", "MRR", "MR"}
    for d in ("a2s", "s2a"):  # per-query ranks and intervals that hold the point estimates
        assert len(result["ranks"][d]) == len(result["query_pieces"][d]) == result["queries"][d]
        assert retrieval_metrics(np.array(result["ranks"][d])) == result[d]
        for metric, (lo, hi) in result["ci95"][d].items():
            assert lo <= result[d][metric] <= hi, (d, metric)
    capsys.readouterr()

    # the same model against itself: every difference is zero
    assert main(["evaluate", "--data", str(chorale_dataset), "--against", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "minus" in shown and "+0.000 [+0.000,+0.000]" in shown
    assert main(["evaluate", "--data", str(chorale_dataset), "--against", str(out),
                 "--tempo", "2"]) != 0  # another rendition's queries
    assert "not test at 2" in capsys.readouterr().err
    old = tmp_path / "old.json"  # a file written before evaluate kept the ranks
    old.write_text(json.dumps({k: result[k] for k in ("model", "a2s", "s2a")}))
    assert main(["evaluate", "--data", str(chorale_dataset), "--against", str(old)]) != 0
    assert "per-query ranks" in capsys.readouterr().err


def test_shipped_models_load_by_name(tmp_path):
    import pytest

    from scorelink.errors import CheckpointError

    for name, file in checkpoint.SHIPPED_MODELS.items():
        model, payload = checkpoint.load_model(name)
        assert checkpoint.resolve(name).name == file and payload["kind"] == "rnn"
    assert checkpoint.resolve(checkpoint.shipped_path()) == checkpoint.shipped_path()
    with pytest.raises(CheckpointError, match="shipped models by name: piano, chorales"):
        checkpoint.load_model("no-such-model")
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.read(tmp_path / "missing.pt")


def test_the_default_model_is_calibrated_for_every_evidence_and_the_shipped_reader():
    """A retrained model or reader must be fitted again (benchmarks/no_match.py --fit): the
    default model's calibration has every evidence, for collections and for one-piece indexes,
    and its read entries are the shipped reader's."""
    from scorelink.models.reader_file import reader_digest
    from scorelink.search import confidence
    from scorelink.search.embed import Embedder

    entry = confidence.CALIBRATION[Embedder.load(None).fingerprint[:16]]
    keys = {"notes": "notes", "image": "image", "read": f"read:{reader_digest()}"}
    for evidence, key in keys.items():
        for solo in ("", confidence.SOLO):
            coef = entry[key + solo]  # b0, one coefficient a feature, the threshold
            assert len(coef) == len(confidence.FEATURES[evidence + solo]) + 2, key + solo
            assert 0 < coef[-1] < 1
