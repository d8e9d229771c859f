"""Each distillation loss against arithmetic written out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from methods.distillation.dhkd import binary_kl, binary_kl_norm
from methods.distillation.dkd import dkd_loss
from methods.distillation.gld import graph_distance
from methods.distillation.kd import kd_loss
from methods.distillation.nkd import nkd_losses, non_target
from methods.distillation.uskd import zipf_non_target_labels
from tasks.distillation.protocol import aligned_gradients

LN2, LN3 = math.log(2), math.log(3)


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_kd_against_hand_value():
    # teacher softmax [3/4, 1/4], student [1/2, 1/2]: KL = 3/4 ln(3/2) + 1/4 ln(1/2)
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kd_loss(t([0.0, 0.0]), t([LN3, 0.0]), 1.0).item() == pytest.approx(expected)
    # T = 2 scales the logits and multiplies by T^2 = 4
    assert kd_loss(t([0.0, 0.0]), t([2 * LN3, 0.0]), 2.0).item() == pytest.approx(4 * expected)


def test_dkd_splits_target_and_non_target_terms():
    labels = torch.tensor([0])
    # teacher [ln2, 0, 0] -> [1/2, 1/4, 1/4]; student uniform. Binary (gold, rest): [1/2, 1/2] vs [1/3, 2/3];
    # the non-target parts are both uniform, so only TCKD = 1/2 ln(3/2) + 1/2 ln(3/4) remains.
    tckd = 0.5 * math.log(1.5) + 0.5 * math.log(0.75)
    assert dkd_loss(t([0.0, 0, 0]), t([LN2, 0, 0]), labels, 1.0, 8.0, 1.0).item() == pytest.approx(tckd)
    # teacher [0, ln3, 0] -> gold 1/5; non-target renormalised [3/4, 1/4] vs [1/2, 1/2].
    tckd = 0.2 * math.log(0.2 / (1 / 3)) + 0.8 * math.log(0.8 / (2 / 3))
    nckd = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    got = dkd_loss(t([0.0, 0, 0]), t([0.0, LN3, 0]), labels, 1.0, 8.0, 1.0).item()
    assert got == pytest.approx(tckd + 8 * nckd)


def test_nkd_terms_and_normalised_non_target():
    labels = torch.tensor([0])
    target, rest = nkd_losses(t([0.0, 0, 0]), t([LN2, 0, 0]), labels, 1.0, 1.5)
    assert target.item() == pytest.approx(-0.5 * math.log(1 / 3))  # teacher gold 1/2, student gold 1/3
    assert rest.item() == pytest.approx(1.5 * LN2)  # both non-target parts uniform over 2: entropy ln 2
    logits = torch.randn(5, 7, dtype=torch.float64)
    assert torch.allclose(
        non_target(logits, torch.arange(5), 3.0).sum(dim=1), torch.ones(5, dtype=torch.float64)
    )
    # With a perfect teacher (gold probability 1) the target term is the student's cross-entropy.
    student = torch.randn(4, 3, dtype=torch.float64)
    perfect = torch.full((4, 3), -1e4, dtype=torch.float64).scatter(
        1, torch.tensor([[1], [0], [2], [1]]), 1e4
    )
    target, _ = nkd_losses(student, perfect, torch.tensor([1, 0, 2, 1]), 1.0, 1.5)
    assert target.item() == pytest.approx(
        torch.nn.functional.cross_entropy(student, torch.tensor([1, 0, 2, 1])).item()
    )


def test_uskd_zipf_labels_rank_drop_gold_and_renormalise():
    # scores rank classes 1, 2, 3, 0 -> Zipf 1, 1/2, 1/3, 1/4; gold class 2 dropped; 1/4 + 1 + 1/3 = 19/12
    labels = zipf_non_target_labels(t([0.1, 0.5, 0.3, 0.2]), torch.tensor([2]))
    assert labels[0].tolist() == pytest.approx([3 / 19, 12 / 19, 4 / 19])


def test_binary_kl_variants_against_hand_values():
    # sigmoid(ln 3) = 3/4 against sigmoid(0) = 1/2
    assert binary_kl(t([0.0]), t([LN3]), 1.0).item() == pytest.approx(
        0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    )
    d = 1 / (1 + math.exp(-2.0))
    expected = -LN2 - 0.5 * (math.log(d) + math.log(1 - d))
    assert binary_kl_norm(t([2.0]), t([0.0]), 1.0).item() == pytest.approx(expected)
    assert binary_kl_norm(t([1.0, -3.0]), t([1.0, -3.0]), 2.0).item() == pytest.approx(0.0, abs=1e-12)


def test_dhkd_aux_loss_reaches_the_backbone_not_the_main_head():
    from methods.distillation.dhkd import DualHeadKD
    from tasks.distillation.networks import build
    from tasks.distillation.protocol import StudentOutput

    torch.manual_seed(0)
    student = build("mlp-small", (1, 8, 8), 10)
    method = DualHeadKD()
    heads = torch.nn.ModuleDict(method.extra_heads(student.feature_dim, student.middle_dim, 10))
    x = torch.randn(8, 1, 8, 8)
    middle, pooled = student.features(x)
    out = StudentOutput(student.fc(pooled), pooled, middle)
    method.losses(out, heads, torch.randn(8, 10), torch.arange(8))["kd"].backward()
    assert student.fc.weight.grad is None, "the main head gets no gradient from the logit-level loss"
    assert student.layers[0].weight.grad.abs().sum() > 0, "the backbone does"
    assert heads["aux"][0].weight.grad.abs().sum() > 0


def test_gradient_alignment_removes_exactly_the_conflicting_component():
    ce = [torch.tensor([1.0, 0.0]), None, torch.tensor([0.0])]
    kd = [torch.tensor([-1.0, 1.0]), torch.tensor([5.0]), torch.tensor([0.0])]
    out = aligned_gradients(ce, kd)
    assert out[0].tolist() == [0.0, 1.0]  # -1 * ce removed: now orthogonal to ce
    assert out[1].tolist() == [5.0], "a parameter only KD reaches keeps its gradient"
    assert aligned_gradients(ce, [torch.tensor([1.0, 1.0]), None, torch.tensor([0.0])])[0].tolist() == [
        1.0,
        1.0,
    ]


def test_graph_loss_zero_for_identical_and_blind_to_class_permutations():
    torch.manual_seed(0)
    teacher, student = torch.randn(16, 6), torch.randn(16, 6)
    assert graph_distance(teacher, teacher, 3, 1.0).item() == pytest.approx(0.0, abs=1e-12)
    permuted = teacher[:, torch.randperm(6)]
    assert graph_distance(student, permuted, 3, 1.0).item() == pytest.approx(
        graph_distance(student, teacher, 3, 1.0).item()
    )
    assert graph_distance(student, teacher, 3, 1.0).item() > 0
