"""Distillation tasks at smoke scale: every method runs, teachers are shared, CE is the reference."""

from __future__ import annotations

import pytest

from harness.registries import METHODS, TASKS
from harness.spec import make_spec
from harness.store import ResultStore
from harness.worker import WorkerOptions, run_spec

METHOD_NAMES = ["ce", "kd", "dkd", "nkd", "uskd", "dhkd", "dhkd+ga", "binarykl-same-head", "gld", "kd+gld"]


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    return tmp_path_factory.mktemp("distill")


def _run(root, method, seed=0, task="distillation/digits"):
    spec = make_spec(TASKS.get(task), METHODS.get(method), seed, "smoke")
    record = run_spec(spec, ResultStore(root), WorkerOptions(str(root)), "t")
    assert record["status"] == "ok", record["error"]
    return {k: v["value"] for k, v in record["metrics"].items()}


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_trains_a_student(store_root, method):
    metrics = _run(store_root, method)
    assert 0.0 <= metrics["student_top1"] <= metrics["student_top5"] <= 1.0
    assert metrics["teacher_top1"] > 0.3  # chance is 0.1, even after two smoke epochs


def test_teacher_is_trained_once_and_ce_is_its_own_reference(store_root):
    first, second = _run(store_root, "ce"), _run(store_root, "kd")
    assert first["teacher_seconds"] == second["teacher_seconds"], "one teacher artifact serves every method"
    assert first["gain_over_ce"] == 0.0, "the CE method reproduces the CE reference exactly on the CPU"
    teachers = list((store_root / "artifacts" / "distillation-teacher").glob("*/teacher.pt"))
    assert len(teachers) == 1


def test_same_seed_same_student(tmp_path):
    a, b = _run(tmp_path / "a", "nkd", seed=2), _run(tmp_path / "b", "nkd", seed=2)
    assert a["student_top1"] == b["student_top1"] and a["teacher_top1"] == b["teacher_top1"]


@pytest.mark.parametrize(
    ("network", "stage_before_last", "width"),
    [("resnet20", 1, 32), ("wrn-16-2", 1, 64), ("resnet18", 2, 256), ("cnn", 1, 64), ("cnn-small", 0, 16)],
)
def test_penultimate_is_the_pooled_stage_before_the_last(network, stage_before_last, width):
    """USKD's weak head reads it: on a ResNet-18 the 256-channel third stage, as the official code."""
    import torch

    from tasks.distillation.networks import build

    torch.manual_seed(0)
    net = build(network, (3, 32, 32), 10).eval()
    x = torch.randn(2, 3, 32, 32)
    h = net.stem(x) if hasattr(net, "stem") else x
    for stage in net.stages[: stage_before_last + 1]:
        h = stage(h)
    penultimate, pooled = net.features(x)
    assert net.penultimate_dim == width == penultimate.shape[1]
    assert torch.allclose(penultimate, h.mean(dim=(2, 3)))
    assert torch.allclose(net.fc(pooled), net(x))


def test_penultimate_of_an_mlp_is_the_hidden_layer_before_the_last():
    import torch

    from tasks.distillation.networks import build

    x = torch.randn(3, 1, 8, 8)
    two = build("mlp", (1, 8, 8), 10)
    assert two.penultimate_dim == 256
    assert torch.allclose(two.features(x)[0], torch.relu(two.layers[0](x.flatten(1))))
    one = build("mlp-small", (1, 8, 8), 10)  # one hidden layer: the stage before it is the input
    assert one.penultimate_dim == 64 and torch.equal(one.features(x)[0], x.flatten(1))


def test_the_task_hands_its_network_pair_to_the_method(tmp_path, monkeypatch):
    from methods.distillation.dkd import DecoupledKD

    seen = []
    original = DecoupledKD.for_networks

    def spy(self, teacher, student):
        seen.append((teacher, student))
        return original(self, teacher, student)

    monkeypatch.setattr(DecoupledKD, "for_networks", spy)
    _run(tmp_path, "dkd")
    assert seen == [("cnn-small", "mlp-small")], "the smoke scale's teacher and student"
