"""Passage model, loss and optimizer coverage (tiny preset, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scorelink.models.passage import PassageModel, PassageModelConfig
from scorelink.train.config import TrainConfig
from scorelink.train.loss import PassageLoss, info_nce, triplet_hinge
from scorelink.train.trainer import build_model, make_optimizer


def _batch(lengths, hw, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(sum(lengths), 1, *hw, generator=g), torch.tensor(lengths)


def test_paper_preset_size():
    model = PassageModel(PassageModelConfig.preset("paper"))
    n = sum(p.numel() for p in model.parameters())
    assert 0.80e6 < n < 0.86e6  # the reference's "about 0.83 M"
    with pytest.raises(ValueError):
        PassageModelConfig(embed_dim=8)


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_packed_batch_equals_one_by_one(rnn):
    torch.manual_seed(0)
    model = PassageModel(PassageModelConfig.preset("tiny", rnn=rnn)).eval()
    lengths = [3, 7, 1, 5]
    x, lens = _batch(lengths, (92, 20))
    with torch.no_grad():
        together = model.embed_audio(x, lens)
        alone = []
        for i, n in enumerate(lengths):
            a = sum(lengths[:i])
            alone.append(model.embed_audio(x[a : a + n], torch.tensor([n])))
    torch.testing.assert_close(together, torch.cat(alone), atol=1e-5, rtol=1e-5)
    assert torch.allclose(together.norm(dim=1), torch.ones(4), atol=1e-5)


def test_packed_equals_plain_recurrence_over_valid_steps():
    """Naive reference: run the GRU step by step over each passage's own snippets only."""
    torch.manual_seed(1)
    model = PassageModel(PassageModelConfig.preset("tiny")).eval()
    lengths = [4, 2]
    x, lens = _batch(lengths, (80, 90))
    tower = model.sheet
    with torch.no_grad():
        got = model.embed_sheet(x, lens)
        feats = tower.cnn(x)
        cell = torch.nn.GRUCell(tower.rnn.input_size, tower.rnn.hidden_size)
        cell.weight_ih.copy_(tower.rnn.weight_ih_l0)
        cell.weight_hh.copy_(tower.rnn.weight_hh_l0)
        cell.bias_ih.copy_(tower.rnn.bias_ih_l0)
        cell.bias_hh.copy_(tower.rnn.bias_hh_l0)
        expected, a = [], 0
        for n in lengths:
            h = torch.zeros(1, tower.rnn.hidden_size)
            for t in range(n):
                h = cell(feats[a + t : a + t + 1], h)
            expected.append(F.normalize(tower.proj(h), dim=-1))
            a += n
    torch.testing.assert_close(got, torch.cat(expected), atol=1e-5, rtol=1e-5)


def test_loss_hand_computed():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    a = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # d(s0,a0)=0, d(s0,a1)=0.4 -> max(0, .3 + 0 - .4) = 0
    # d(s1,a1)=0.2, d(s1,a0)=1 -> max(0, .3 + .2 - 1) = 0
    assert triplet_hinge(s, a, margin=0.3).item() == pytest.approx(0.0)
    # margin 0.5: first term 0.1, second 0 -> mean 0.05
    assert triplet_hinge(s, a, margin=0.5).item() == pytest.approx(0.05)
    # audio as anchor: d(a0,s1)=1, d(a1,s0)=0.4: max(0,.5+0-1)=0, max(0,.5+.2-.4)=0.3
    sym = PassageLoss(margin=0.5, symmetric=True)(s, a).item()
    assert sym == pytest.approx((0.05 + 0.15) / 2)
    with pytest.raises(ValueError):
        triplet_hinge(s[:1], a[:1], margin=0.3)


def test_loss_same_system_is_no_negative_and_hardest_negatives():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    a = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
    # d(s_i, a_k): row 0: 0, .4, .2; row 1: 1, .2, .4; row 2 = row 0. Margin 0.5, terms
    # max(0, .5 + d_ii - d_ik): row 0: (.1, .3), row 1: (0, .3), row 2: (.7, .3)
    assert triplet_hinge(s, a, margin=0.5).item() == pytest.approx(1.7 / 6)
    # passages 0 and 2 show the same system: (0, 2) and (2, 0) are no negatives
    same = torch.tensor([7, 3, 7])
    assert triplet_hinge(s, a, margin=0.5, same=same).item() == pytest.approx(0.7 / 4)
    # the hardest negative of each anchor: .3, .3, .7 (.1, .3, .3 with the mask)
    assert triplet_hinge(s, a, margin=0.5, hardest=1).item() == pytest.approx(1.3 / 3)
    assert triplet_hinge(s, a, margin=0.5, same=same, hardest=1).item() == pytest.approx(0.7 / 3)
    assert triplet_hinge(s, a, margin=0.5, hardest=5).item() == pytest.approx(1.7 / 6)


def test_info_nce_hand_computed_and_same_system_left_out():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    a = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
    # cosines row 0: 1, .6, .8; row 1: 0, .8, .6; row 2 = row 0; temperature 0.5 doubles them
    logits = torch.tensor([[2.0, 1.2, 1.6], [0.0, 1.6, 1.2], [2.0, 1.2, 1.6]])
    expected = -(logits.log_softmax(1).diagonal()).mean()
    assert info_nce(s, a, temperature=0.5).item() == pytest.approx(expected.item(), rel=1e-6)
    # passages 0 and 2 show the same system: neither is in the other's softmax
    same = torch.tensor([7, 3, 7])
    masked = logits.clone()
    masked[0, 2] = masked[2, 0] = float("-inf")
    expected = -(masked.log_softmax(1).diagonal()).mean()
    got = info_nce(s, a, temperature=0.5, same=same).item()
    assert got == pytest.approx(expected.item(), rel=1e-6)
    # the loss module takes it in place of the hinge, both ways when symmetric
    both = PassageLoss(temperature=0.5, symmetric=True)(s, a, same).item()
    assert both == pytest.approx((got + info_nce(a, s, temperature=0.5, same=same).item()) / 2)
    # a closer negative costs more: it keeps teaching where the hinge is already zero
    far = info_nce(s[:2], torch.tensor([[1.0, 0.0], [0.0, 1.0]]), temperature=0.1)
    near = info_nce(s[:2], torch.tensor([[1.0, 0.0], [0.3, 0.954]]), temperature=0.1)
    assert near > far > 0
    assert triplet_hinge(s[:2], torch.tensor([[1.0, 0.0], [0.3, 0.954]]), margin=0.3) == 0


@pytest.mark.parametrize("freeze", [False, True])
def test_every_trainable_parameter_is_optimised_and_gets_a_gradient(freeze):
    torch.manual_seed(0)
    config = TrainConfig(preset="tiny", embed_dim=16, freeze_cnn=freeze)
    model = build_model(config)
    optimizer = make_optimizer(model, config)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(id(p) in in_optimizer for _, p in trainable)
    assert len(in_optimizer) == len(trainable)
    assert any("rnn" in n for n, _ in trainable)  # the GRU is trained
    if freeze:
        assert not any(".cnn." in f".{n}" for n, _ in trainable)
    s, sl = _batch([3, 2, 4], (80, 90), seed=1)
    a, al = _batch([5, 1, 2], (92, 20), seed=2)
    loss = PassageLoss(margin=0.3, symmetric=True)(*model(s, sl, a, al))
    loss.backward()
    for name, p in trainable:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    before = {n: p.detach().clone() for n, p in trainable}
    optimizer.step()
    assert all(not torch.equal(before[n], p) for n, p in trainable)


def test_batched_embedding_is_deterministic():
    torch.manual_seed(0)
    model = PassageModel(PassageModelConfig.preset("tiny")).eval()
    x, lens = _batch([2, 3], (92, 20))
    with torch.no_grad():
        assert np.array_equal(model.embed_audio(x, lens).numpy(),
                              model.embed_audio(x, lens).numpy())
