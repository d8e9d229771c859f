"""Distillation tasks: an image set, a teacher and a student architecture, and a training budget.

The teacher is trained once per (task, seed) and kept as an artifact (or loaded from `teacher_checkpoint`);
so is a cross-entropy student, the reference for `gain_over_ce`. Every method's student starts from the
same seed-fixed initialisation and sees the same batches, so differences come from the loss alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from harness.artifacts import artifact_id
from harness.components import Metric, Resources, Task
from harness.context import RunContext
from harness.errors import UserError
from harness.health import HEALTH_METRIC, report_health
from harness.registries import register_task
from tasks.distillation.protocol import DistillationMethod
from tasks.images import (
    HubImagesSource,
    ImageData,
    LocalImagesSource,
    Mnist5kSource,
    load_digits,
    train_test,
)

DISTILLATION_METRICS = (
    Metric("student_top1", True, tolerance=0.01, description="student accuracy, main head"),
    Metric("student_top5", True, tolerance=0.01),
    Metric("teacher_top1", True, tolerance=0.01),
    Metric(
        "gain_over_ce", True, tolerance=0.01, description="student_top1 minus a CE-only student's, same seed"
    ),
    Metric("train_seconds", False, gate=False, description="training the student with this method"),
    Metric("teacher_seconds", False, gate=False, description="training the teacher (once per task and seed)"),
    HEALTH_METRIC,
)


@dataclass(kw_only=True)
class DistillationTask(Task):
    local_inputs: ClassVar[tuple[str, ...]] = ("teacher_checkpoint",)
    family: ClassVar[str] = "distillation"
    method_protocol: ClassVar[type] = DistillationMethod
    metrics: ClassVar[tuple[Metric, ...]] = DISTILLATION_METRICS
    primary_metric: ClassVar[str] = "student_top1"
    # cpu: runs took 3 s (digits) and 5 s (mnist-5k) at the median, the seed's teacher builder 30-200 s
    # (2 cores shared with other jobs); paper: a GPU each.
    resources: ClassVar[dict[str, Resources]] = {
        "smoke": Resources(expected_s=3.0),
        "cpu": Resources(expected_s=5.0),
        "paper": Resources(cpus=4.0, gpus=1, memory_gb=16.0, expected_s=3600.0),
    }

    teacher: str = "cnn"  # the teacher's network (tasks/distillation/networks.py)
    student: str = "mlp-small"  # the student's network
    teacher_epochs: int = 30  # epochs of teacher training (once per task and seed)
    epochs: int = 30  # epochs of student training, for every method and the CE reference
    batch_size: int = 64  # examples per step, teacher and student
    optimizer: str = "sgd"  # sgd (Nesterov momentum 0.9) or adam
    lr: float = 0.05  # initial learning rate
    weight_decay: float = 5e-4  # L2 weight decay
    augment: str = "none"  # none, or flip-crop (CIFAR's random flip and 4-pixel-padded crop)
    test_fraction: float = 0.2  # share held out for testing when the data has no test split
    # 0 keeps every training image; otherwise the first this many of the fixed split (a local image set:
    # a fixed random subset of this size, tasks/images.py)
    max_train: int = 0
    max_test: int = 0  # 0 keeps every test image; otherwise this many of the fixed split, as max_train
    teacher_checkpoint: str = ""  # a state_dict file for the teacher instead of training one

    def load(self) -> ImageData:
        raise NotImplementedError

    def data(self) -> tuple[ImageData, ImageData]:
        return train_test(self.load(), self.test_fraction, self.max_train, self.max_test)

    def schedule(self, epochs: int):  # type: ignore[no-untyped-def]
        from tasks.distillation.training import Schedule

        return Schedule(epochs, self.batch_size, self.optimizer, self.lr, self.weight_decay, self.augment)

    def run(self, method: DistillationMethod, ctx: RunContext) -> dict[str, float]:
        import torch

        from tasks.distillation import training
        from tasks.distillation.networks import build

        device = torch.device(ctx.device)
        with ctx.phase("load"):
            train, test = self.data()
            x, y = torch.from_numpy(train.x).to(device), torch.from_numpy(train.y).to(device)
            x_test, y_test = torch.from_numpy(test.x).to(device), torch.from_numpy(test.y).to(device)
        shape, classes = tuple(train.x.shape[1:]), train.classes

        with ctx.phase("teacher"):
            teacher = build(self.teacher, shape, classes).to(device)
            folder = self._teacher_artifact(ctx, teacher, x, y, x_test, y_test)
            teacher.load_state_dict(torch.load(folder / "teacher.pt", map_location=device))
            teacher.eval()
            teacher_meta = json.loads((folder / "meta.json").read_text())
        with ctx.phase("ce_reference"):
            reference = ctx.artifacts.get_or_build(
                "distillation-ce-student",
                self.reference_identity(ctx.seed),
                lambda out: self._ce_student(out, ctx, x, y, x_test, y_test),
            )
            ce_top1 = json.loads((reference / "meta.json").read_text())["top1"]
        with ctx.phase("train"):
            method = method.for_networks(self.teacher, self.student)
            torch.manual_seed(ctx.seed)
            student = build(self.student, shape, classes).to(device)
            teacher_logits = training.predict(teacher, x) if self.augment == "none" else None
            training.train(
                student,
                x,
                y,
                self.schedule(self.epochs),
                ctx.seed,
                method,
                teacher=teacher,
                teacher_logits=teacher_logits,
            )
        with ctx.phase("evaluate"):
            logits = training.predict(student, x_test)
        top1 = training.top_k_accuracy(logits, y_test, 1)
        predicted = logits.topk(1, dim=1).indices[:, 0].cpu().numpy()  # top-1 as student_top1 counts it
        ctx.samples(
            {
                "test_index": list(range(len(test.y))),
                "label": test.y,
                "prediction": predicted,
                "correct": predicted == test.y,
            },
            index="test_index",
            prediction="prediction",
            label="label",
        )
        return {
            "student_top1": top1,
            "student_top5": training.top_k_accuracy(logits, y_test, 5),
            "teacher_top1": teacher_meta["top1"],
            "gain_over_ce": top1 - ce_top1,
            "train_seconds": ctx.phases["train"],
            "teacher_seconds": teacher_meta["seconds"],
            HEALTH_METRIC.name: report_health(ctx, logits.argmax(dim=1).cpu(), y_test.cpu()),
        }

    def reference_identity(self, seed: int) -> dict:
        """What determines the CE reference student of a seed: everything the task has."""
        return {"task": self.name, "params": asdict(self), "seed": seed}

    def teacher_identity(self, seed: int) -> dict:
        """What determines the teacher of a seed: the task without the student's own settings."""
        identity = self.reference_identity(seed)
        identity["params"] = {k: v for k, v in identity["params"].items() if k not in ("student", "epochs")}
        return identity

    def artifact_keys(self, method: DistillationMethod, seed: int, scale: str) -> tuple[str, ...]:
        return (
            artifact_id("distillation-teacher", self.teacher_identity(seed), (self, method)),
            artifact_id("distillation-ce-student", self.reference_identity(seed), (self, method)),
        )

    def _teacher_artifact(self, ctx, teacher, x, y, x_test, y_test) -> Path:  # type: ignore[no-untyped-def]
        import torch

        from tasks.distillation import training

        def build_teacher(out: Path) -> None:
            start = time.perf_counter()
            if self.teacher_checkpoint:
                path = Path(self.teacher_checkpoint).expanduser()
                if not path.exists():
                    raise UserError(f"teacher checkpoint {path} does not exist")
                teacher.load_state_dict(torch.load(path, map_location=x.device))
            else:
                torch.manual_seed(ctx.seed + 10_000)
                for module in teacher.modules():
                    if hasattr(module, "reset_parameters"):
                        module.reset_parameters()
                training.train(teacher, x, y, self.schedule(self.teacher_epochs), ctx.seed + 10_000)
            top1 = training.top_k_accuracy(training.predict(teacher, x_test), y_test, 1)
            torch.save(teacher.state_dict(), out / "teacher.pt")
            (out / "meta.json").write_text(json.dumps({"top1": top1, "seconds": time.perf_counter() - start}))

        identity = self.teacher_identity(ctx.seed)
        return ctx.artifacts.get_or_build("distillation-teacher", identity, build_teacher)

    def _ce_student(self, out: Path, ctx, x, y, x_test, y_test) -> None:  # type: ignore[no-untyped-def]
        import torch

        from tasks.distillation import training
        from tasks.distillation.networks import build

        torch.manual_seed(ctx.seed)
        student = build(self.student, tuple(x.shape[1:]), int(y.max()) + 1).to(x.device)
        training.train(student, x, y, self.schedule(self.epochs), ctx.seed)
        top1 = training.top_k_accuracy(training.predict(student, x_test), y_test, 1)
        (out / "meta.json").write_text(json.dumps({"top1": top1}))


SMOKE = {
    "teacher": "cnn-small",
    "student": "mlp-small",
    "teacher_epochs": 2,
    "epochs": 2,
    "max_train": 300,
    "max_test": 100,
}


@register_task("distillation/digits")
@dataclass(kw_only=True)
class DigitsDistillationTask(DistillationTask):
    description: ClassVar[str] = "8x8 digits: a small CNN teacher, a one-hidden-layer MLP student"
    scales: ClassVar[dict] = {"smoke": SMOKE, "cpu": {}, "paper": {"teacher_epochs": 100, "epochs": 100}}

    def load(self) -> ImageData:
        return load_digits()


@register_task("distillation/mnist-5k")
@dataclass(kw_only=True)
class Mnist5kDistillationTask(Mnist5kSource, DistillationTask):
    description: ClassVar[str] = "real MNIST-5k: a 3-stage CNN teacher, a one-hidden-layer MLP student"
    scales: ClassVar[dict] = {
        "smoke": SMOKE,
        "cpu": {"teacher_epochs": 15, "epochs": 20},
        "paper": {"teacher_epochs": 60, "epochs": 60},
    }


@register_task("distillation/images")
@dataclass(kw_only=True)
class LocalImagesDistillationTask(LocalImagesSource, DistillationTask):
    scales: ClassVar[dict] = {"smoke": SMOKE, "cpu": {}, "paper": {}}


@dataclass(kw_only=True)
class HubDistillationTask(HubImagesSource, DistillationTask):
    """A hub image set with its own train and test splits (needs a network and the `hub` extra)."""


CIFAR_PAPER = {"epochs": 240, "teacher_epochs": 240, "batch_size": 64, "lr": 0.05, "augment": "flip-crop"}


@register_task("distillation/cifar10")
@dataclass(kw_only=True)
class Cifar10DistillationTask(HubDistillationTask):
    description: ClassVar[str] = "CIFAR-10 (uoft-cs/cifar10): resnet56 -> resnet20, 240 epochs"
    hub_set: ClassVar[str] = "cifar10"
    scales: ClassVar[dict] = {
        "smoke": SMOKE,
        "cpu": {"teacher": "resnet20", "student": "cnn-small", "max_train": 5000, "max_test": 1000},
        "paper": {"teacher": "resnet56", "student": "resnet20", **CIFAR_PAPER},
    }


@register_task("distillation/cifar100")
@dataclass(kw_only=True)
class Cifar100DistillationTask(HubDistillationTask):
    description: ClassVar[str] = "CIFAR-100 (uoft-cs/cifar100): wrn-40-2 -> wrn-16-2, 240 epochs"
    hub_set: ClassVar[str] = "cifar100"
    scales: ClassVar[dict] = {
        "smoke": SMOKE,
        "cpu": {"teacher": "resnet20", "student": "cnn-small", "max_train": 5000, "max_test": 1000},
        "paper": {"teacher": "wrn-40-2", "student": "wrn-16-2", **CIFAR_PAPER},
    }
