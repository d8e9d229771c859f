"""Each distillation loss against arithmetic written out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from methods.distillation.dhkd import binary_kl, binary_kl_norm
from methods.distillation.dkd import OFFICIAL_BETA, DecoupledKD, dkd_loss
from methods.distillation.gld import coactivation_graph, graph_distance
from methods.distillation.kd import kd_loss
from methods.distillation.nkd import nkd_losses, non_target
from methods.distillation.uskd import rank_scores, uskd_losses, zipf_non_target_labels
from tasks.distillation.protocol import StudentOutput, aligned_gradients

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

    torch.manual_seed(0)
    student = build("mlp-small", (1, 8, 8), 10)
    method = DualHeadKD()
    heads = torch.nn.ModuleDict(method.extra_heads(student.feature_dim, student.penultimate_dim, 10))
    x = torch.randn(8, 1, 8, 8)
    penultimate, pooled = student.features(x)
    out = StudentOutput(student.fc(pooled), pooled, penultimate)
    method.losses(out, heads, torch.randn(8, 10), torch.arange(8))["kd"].backward()
    assert student.fc.weight.grad is None, "the main head gets no gradient from the logit-level loss"
    assert student.layers[0].weight.grad.abs().sum() > 0, "the backbone does"
    assert heads["aux"][0].weight.grad.abs().sum() > 0


def test_gradient_alignment_projects_over_the_whole_gradient_as_the_official_code():
    # parameters [backbone (2 values), fc, aux]; fc only CE reaches, aux only KD.
    ce = [torch.tensor([1.0, 0.0]), torch.tensor([1.0]), None]
    kd = [torch.tensor([-1.0, 1.0]), None, torch.tensor([1.0])]
    # flattened: ce = (1, 0, 1, 0), kd = (-1, 1, 0, 1); kd.ce = -1 < 0, |ce|^2 = 2, so
    # kd' = kd + ce / 2 = (-0.5, 1, 0.5, 1) and the merged gradient ce + kd' = (0.5, 1, 1.5, 1).
    merged = aligned_gradients(ce, kd)
    assert merged[0].tolist() == [0.5, 1.0]
    assert merged[1].tolist() == [1.5], "the projection moves the parameters only CE reaches too"
    assert merged[2].tolist() == [1.0], "CE is zero on aux: KD's gradient there is kept"
    # No conflict (kd.ce >= 0): the plain sum; a parameter neither loss reaches stays None.
    merged = aligned_gradients([torch.tensor([1.0, 0.0]), None], [torch.tensor([1.0, 1.0]), None])
    assert merged[0].tolist() == [2.0, 1.0] and merged[1] is None


def test_graph_loss_zero_for_identical_and_blind_to_class_permutations():
    torch.manual_seed(0)
    teacher, student = torch.randn(16, 6), torch.randn(16, 6)
    assert graph_distance(teacher, teacher, 3, 1.0).item() == pytest.approx(0.0, abs=1e-12)
    permuted = teacher[:, torch.randperm(6)]
    assert graph_distance(student, permuted, 3, 1.0).item() == pytest.approx(
        graph_distance(student, teacher, 3, 1.0).item()
    )
    assert graph_distance(student, teacher, 3, 1.0).item() > 0


def test_uskd_ranks_by_weak_probabilities_and_student_log_probabilities():
    student, weak, gold = t([2.0, 1, 0, -1]), t([0.0, 0, 2, 1]), torch.tensor([0])
    # The official score: w_i / (1 - w_gold + 1e-6) + log s_i / (1 - log s_gold + 1e-6).
    z_w = sum(math.exp(v) for v in (0, 0, 2, 1))
    w = [math.exp(v) / z_w for v in (0, 0, 2, 1)]
    log_z_s = math.log(sum(math.exp(v) for v in (2, 1, 0, -1)))
    log_s = [v - log_z_s for v in (2, 1, 0, -1)]
    hand = [w[i] / (1 - w[0] + 1e-6) + log_s[i] / (1 - log_s[0] + 1e-6) for i in range(4)]
    assert rank_scores(student, weak, gold)[0].tolist() == pytest.approx(hand, abs=1e-12)
    # It ranks classes 0, 1, 2, 3 (Zipf 1, 1/2, 1/3, 1/4); gold dropped: [1/2, 1/3, 1/4] / (13/12).
    labels = zipf_non_target_labels(rank_scores(student, weak, gold), gold)
    assert labels[0].tolist() == pytest.approx([6 / 13, 4 / 13, 3 / 13])  # 0.4615, 0.3077, 0.2308


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uskd_non_target_gradient_survives_a_class_far_below(dtype):
    # Student [1, 0, -40], uniform weak head, gold 0: ranks 0, 1, 2, so the non-target labels are
    # [1/2, 1/3] / (5/6) = [3/5, 2/5]. d(-sum z log q)/d logit = q - z with q = softmax([0, -40]) ~ [1, 0].
    student = torch.tensor([[1.0, 0.0, -40.0]], dtype=dtype, requires_grad=True)
    parts = uskd_losses(student, torch.zeros(1, 3, dtype=dtype), torch.tensor([0]), 0.005)
    parts["non_target"].backward()
    assert student.grad[0].tolist() == pytest.approx([0.0, 0.4, -0.4], abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nkd_edge_input_keeps_log_softmax_values_and_gradient(dtype):
    # Student [0, 0, -30], teacher logits 0, gold 0, T = 1, gamma = 1.5. Teacher gold 1/3, non-target
    # uniform: target = (1/3) ln(2 + e^-30); rest = -0.75 (log q_1 + log q_2) with q = softmax([0, -30]),
    # = 0.75 (30 + 2 ln(1 + e^-30)).
    student = torch.tensor([[0.0, 0.0, -30.0]], dtype=dtype, requires_grad=True)
    target, rest = nkd_losses(student, torch.zeros(1, 3, dtype=dtype), torch.tensor([0]), 1.0, 1.5)
    e = math.exp(-30)
    expected = math.log(2 + e) / 3 + 0.75 * (30 + 2 * math.log1p(e))
    assert (target + rest).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(22.731049, abs=1e-6)
    (target + rest).backward()
    # target: (1/3)(softmax - onehot) = [-1/6, 1/6, 0]; rest: -0.75 (1 - 2q) on classes 1, 2 = [0.75, -0.75].
    assert student.grad[0].tolist() == pytest.approx([-1 / 6, 1 / 6 + 0.75, -0.75], abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dkd_edge_inputs_use_log_softmax_and_the_sum_of_non_gold_probabilities(dtype):
    teacher, beta = torch.zeros(1, 3, dtype=dtype), 8.0  # teacher binary (gold, rest) = [1/3, 2/3]
    # Gold far below: p_g = e^-30 / (2 + e^-30). TCKD = 1/3 ln((1/3)/p_g) + 2/3 ln((2/3)/(1 - p_g)); the
    # non-target parts are both uniform, so NCKD = 0. Gradient: gold -(1/3)(1 - p_g) + (2/3) p_g ~ -1/3,
    # each other class (1/3) p_j - (2/3) p_j p_g / (1 - p_g) ~ 1/6.
    student = torch.tensor([[0.0, 0.0, -30.0]], dtype=dtype, requires_grad=True)
    e = math.exp(-30)
    p_g = e / (2 + e)
    tckd = math.log((1 / 3) / p_g) / 3 + 2 / 3 * math.log((2 / 3) / (1 - p_g))
    loss = dkd_loss(student, teacher, torch.tensor([2]), 1.0, beta, 1.0)
    assert loss.item() == pytest.approx(tckd, rel=1e-6)
    loss.backward()
    assert student.grad[0].tolist() == pytest.approx([1 / 6, 1 / 6, -1 / 3], abs=1e-6)
    # Gold far above: 1 - p_g is 2 e^-30 / (1 + 2 e^-30), which float32 loses as 1 - p_g but keeps as the sum.
    p_rest = 2 * e / (1 + 2 * e)
    tckd = math.log((1 / 3) / (1 - p_rest)) / 3 + 2 / 3 * math.log((2 / 3) / p_rest)
    got = dkd_loss(torch.tensor([[30.0, 0.0, 0.0]], dtype=dtype), teacher, torch.tensor([0]), 1.0, beta, 1.0)
    assert got.item() == pytest.approx(tckd, rel=1e-6)
    assert tckd == pytest.approx(20 - LN3, abs=1e-9)


def test_dkd_beta_per_network_pair_as_the_official_configs():
    assert DecoupledKD().for_networks("resnet56", "resnet20").beta == 2.0  # res56_res20.yaml
    assert DecoupledKD().for_networks("wrn-40-2", "wrn-16-2").beta == 6.0  # wrn40_2_wrn_16_2.yaml
    assert DecoupledKD().for_networks("cnn", "mlp-small").beta == 2.0  # the cpu-scale tasks' small pair
    assert DecoupledKD().for_networks("resnet20", "cnn-small").beta == 2.0
    assert DecoupledKD().for_networks("resnet110", "resnet32").beta == 8.0  # in neither table: CFG.DKD.BETA
    assert DecoupledKD(beta=3.0).for_networks("resnet56", "resnet20").beta == 3.0, "a given beta wins"
    # The paper-scale CIFAR tasks name exactly those pairs.
    from harness.registries import TASKS

    for task, beta in (("distillation/cifar10", 2.0), ("distillation/cifar100", 6.0)):
        params = TASKS.get(task).params_for_scale("paper", {}, "test")
        assert OFFICIAL_BETA[(params["teacher"], params["student"])] == beta


def test_dkd_warms_up_per_epoch_over_twenty_epochs():
    torch.manual_seed(0)
    student, teacher, labels = torch.randn(4, 5), torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    method = DecoupledKD(beta=8.0)
    full = dkd_loss(student, teacher, labels, 1.0, 8.0, 4.0).item()
    for epoch, progress, ramp in (
        (1, 0.0, 1 / 20),
        (1, 0.004, 1 / 20),
        (10, 0.5, 0.5),
        (20, 0.1, 1.0),
        (99, 1, 1.0),
    ):
        out = StudentOutput(student, student, student, progress=progress, epoch=epoch)
        assert method.losses(out, None, teacher, labels)["kd"].item() == pytest.approx(ramp * full)


def test_graph_keeps_top_k_logits_or_on_request_probabilities():
    logits = t([3.0, 1.0, -2.0])
    # top 2 logits kept: v = (3, 1, 0), graph v v^T
    assert coactivation_graph(logits, 2, 1.0).tolist() == [[9.0, 3.0, 0.0], [3.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    p = torch.softmax(logits, dim=1)[0].tolist()
    expected = [[p[0] * p[0], p[0] * p[1], 0.0], [p[1] * p[0], p[1] * p[1], 0.0], [0.0, 0.0, 0.0]]
    got = coactivation_graph(logits, 2, 1.0, "probabilities").tolist()
    assert [v for row in got for v in row] == pytest.approx([v for row in expected for v in row])
    # Degrees: student (12, 4, 0), teacher [1, 0, 0] -> (1, 0, 0); sorted (0, 4, 12) vs (0, 0, 1).
    assert graph_distance(logits, t([1.0, 0.0, 0.0]), 2, 1.0).item() == pytest.approx((16 + 121) / 3)
