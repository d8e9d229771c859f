"""Certified poisoning-defense tasks: a dataset, a base learner, k partitions (and d for FA).

The base models are the cost; they are trained once per (dataset, scheme, k, d, learner, seed) and kept
as an artifact holding their test logits, so DPA and DPA+ROE (and FA and FA+ROE) certify the very same
models. Metrics are computed on a fixed stratified test split.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from harness.artifacts import artifact_id
from harness.components import Metric, Resources, Task
from harness.context import RunContext
from harness.health import HEALTH_METRIC, report_health
from harness.registries import register_task
from tasks.images import (
    HubImageSet,
    HubImagesSource,
    ImageData,
    LocalImagesSource,
    Mnist5kSource,
    load_digits,
    train_test,
)
from tasks.poisoning import certify, partition
from tasks.poisoning.learners import train_and_predict
from tasks.poisoning.protocol import PoisoningMethod

REPORTED_RADII = (1, 2, 4, 8, 16)
POISONING_METRICS = (
    Metric(
        "certified_auc",
        True,
        tolerance=0.05,
        description="area under certified accuracy vs radius, "
        "in poisoned samples (= mean over test samples of (radius + 1) when right, else 0)",
    ),
    Metric("clean_accuracy", True, tolerance=0.01),
    *(Metric(f"certified_accuracy_r{r}", True, tolerance=0.01) for r in REPORTED_RADII),
    Metric(
        "median_radius", True, tolerance=0.5, description="median radius over test samples, -1 when wrong"
    ),
    Metric(
        "base_models_seconds", False, gate=False, description="training the base models (once per artifact)"
    ),
    Metric("certify_seconds", False, gate=False),
    HEALTH_METRIC,
)


SMOKE = {"k": 5, "d": 2, "learner": "logreg", "max_train": 400, "max_test": 100}


@dataclass(kw_only=True)
class PoisoningTask(Task):
    family: ClassVar[str] = "poisoning"
    method_protocol: ClassVar[type] = PoisoningMethod
    metrics: ClassVar[tuple[Metric, ...]] = POISONING_METRICS
    primary_metric: ClassVar[str] = "certified_auc"
    # cpu: runs took 1 s (digits) and 5 s (mnist-5k) at the median, the base models' builder up to 30-100 s
    # (2 cores shared with other jobs); paper: up to 1,200 base CNNs a run, on a GPU
    resources: ClassVar[dict[str, Resources]] = {
        "smoke": Resources(expected_s=2.0),
        "cpu": Resources(expected_s=3.0),
        "paper": Resources(cpus=4.0, gpus=1, memory_gb=8.0, expected_s=3600.0),
    }
    scales: ClassVar[dict] = {
        "smoke": SMOKE,
        "cpu": {},
        "paper": {"k": 1200, "d": 16, "learner": "cnn", "epochs": 300, "hidden": 64},
    }

    k: int = 50  # partitions (DPA) or the k of FA's k*d buckets
    d: int = 4  # FA: models each bucket reaches
    learner: str = "mlp"
    epochs: int = 150  # full-batch steps for the torch learners
    hidden: int = 64
    test_fraction: float = 0.2
    max_train: int = 0  # 0 keeps every training sample
    max_test: int = 0
    radii: tuple[int, ...] = REPORTED_RADII

    def load(self) -> ImageData:
        raise NotImplementedError

    def data(self) -> tuple[ImageData, ImageData]:
        return train_test(self.load(), self.test_fraction, self.max_train, self.max_test)

    def run(self, method: PoisoningMethod, ctx: RunContext) -> dict[str, float]:
        with ctx.phase("load"):
            train, test = self.data()
        d = self.d if method.scheme == "fa" else 1
        with ctx.phase("base_models"):
            folder = ctx.artifacts.get_or_build(
                "poisoning-base-models",
                self.base_models_identity(method, ctx.seed),
                lambda out: self._train(out, method.scheme, train, test, ctx),
            )
        logits = np.load(folder / "logits.npy")
        built = json.loads((folder / "meta.json").read_text())
        bucket_models = partition.fa_bucket_models(self.k, d) if method.scheme == "fa" else None
        with ctx.phase("certify"):
            pred, radius = method.certify(logits, bucket_models)
        ctx.samples(
            {
                "test_index": np.arange(len(test.y)),
                "label": test.y,
                "prediction": pred,
                "correct": pred == test.y,
                "certified_radius": np.where(pred == test.y, radius, -1),  # -1: wrong, nothing certified
                "radius": radius,  # the certificate of the prediction, right or wrong
            },
            index="test_index",
            prediction="prediction",
            label="label",
        )
        return {
            **summarise(pred, radius, test.y, self.radii),
            "base_models_seconds": built["seconds"],
            "certify_seconds": ctx.phases["certify"],
            HEALTH_METRIC.name: report_health(ctx, pred, test.y),
        }

    def base_models_identity(self, method: PoisoningMethod, seed: int) -> dict:
        """What determines the base models: the task but its radii, the method's scheme, d, the seed."""
        identity = {
            "task": self.name,
            "params": asdict(self),
            "scheme": method.scheme,
            "d": self.d if method.scheme == "fa" else 1,
            "seed": seed,
        }
        identity["params"]["radii"] = None  # radii change the report, not the models
        return identity

    def artifact_keys(self, method: PoisoningMethod, seed: int, scale: str) -> tuple[str, ...]:
        return (
            artifact_id("poisoning-base-models", self.base_models_identity(method, seed), (self, method)),
        )

    def _train(self, out: Path, scheme: str, train: ImageData, test: ImageData, ctx: RunContext) -> None:
        start = time.perf_counter()
        hashes = partition.content_hash(train.x, salt=ctx.seed)
        groups = (
            partition.fa_groups(hashes, self.k, self.d)
            if scheme == "fa"
            else partition.dpa_groups(hashes, self.k)
        )
        logits = train_and_predict(
            self.learner,
            train.x,
            train.y,
            groups,
            test.x,
            train.classes,
            ctx.seed,
            self.epochs,
            self.hidden,
            ctx.device,
        )
        np.save(out / "logits.npy", logits)
        sizes = [len(g) for g in groups]
        (out / "meta.json").write_text(
            json.dumps(
                {
                    "seconds": time.perf_counter() - start,
                    "models": len(groups),
                    "partition_sizes": [min(sizes), max(sizes)],
                }
            )
        )


def summarise(
    pred: np.ndarray, radius: np.ndarray, labels: np.ndarray, radii: tuple[int, ...]
) -> dict[str, float]:
    correct = pred == labels
    effective = np.where(correct, radius, -1)
    curve = certify.certified_accuracy(pred, radius, labels, sorted(set(radii) | set(REPORTED_RADII)))
    return {
        "certified_auc": float(np.mean(np.maximum(effective + 1, 0))),
        "clean_accuracy": float(correct.mean()),
        **{f"certified_accuracy_r{r}": v for r, v in curve.items()},
        "median_radius": float(np.median(effective)),
    }


@register_task("poisoning/digits")
@dataclass(kw_only=True)
class DigitsPoisoningTask(PoisoningTask):
    description: ClassVar[str] = "scikit-learn's 8x8 digits (1,797 images), 80/20 split"
    scales: ClassVar[dict] = {**PoisoningTask.scales, "cpu": {"k": 20, "d": 4}}

    def load(self) -> ImageData:
        return load_digits()


@register_task("poisoning/mnist-5k")
@dataclass(kw_only=True)
class Mnist5kPoisoningTask(Mnist5kSource, PoisoningTask):
    description: ClassVar[str] = "5,000 real MNIST digits (the mnist-5k asset), 80/20 split"


@register_task("poisoning/images")
@dataclass(kw_only=True)
class LocalImagesPoisoningTask(LocalImagesSource, PoisoningTask):
    """Any local image set, split as every poisoning task is."""


@dataclass(kw_only=True)
class HubPoisoningTask(HubImagesSource, PoisoningTask):
    """A hub image set with its own train and test splits (needs a network and the `hub` extra)."""


@register_task("poisoning/mnist")
@dataclass(kw_only=True)
class MnistPoisoningTask(HubPoisoningTask):
    description: ClassVar[str] = "MNIST from the hub (ylecun/mnist), 60k/10k; the paper's DPA k=1200, FA d=16"
    hub_set: ClassVar[str] = "mnist"
    scales: ClassVar[dict] = {
        "smoke": SMOKE,
        "cpu": {"max_train": 10_000, "max_test": 2_000},
        "paper": {"k": 1200, "d": 16, "learner": "cnn", "epochs": 300, "hidden": 64},
    }


@register_task("poisoning/cifar10")
@dataclass(kw_only=True)
class Cifar10PoisoningTask(HubPoisoningTask):
    description: ClassVar[str] = "CIFAR-10 from the hub (uoft-cs/cifar10), 50k/10k; the paper's k=50, FA d=16"
    hub_set: ClassVar[str] = "cifar10"
    scales: ClassVar[dict] = {
        "smoke": SMOKE,
        "cpu": {"learner": "cnn", "max_train": 10_000, "max_test": 2_000},
        "paper": {"k": 50, "d": 16, "learner": "cnn", "epochs": 400, "hidden": 128},
    }


@register_task("poisoning/hub")
@dataclass(kw_only=True)
class AnyHubPoisoningTask(HubPoisoningTask):
    """Any hub image set by id and field names (e.g. a GTSRB copy), or a local folder in the hub's layout."""

    description: ClassVar[str] = "any image set on the hub (dataset id, image and label fields, split names)"
    local_inputs: ClassVar[tuple[str, ...]] = ("dataset",)  # a local folder enters the key by its content
    dataset: str
    image_field: str = "image"
    label_field: str = "label"
    train_split: str = "train"
    test_split: str = "test"

    def source(self) -> HubImageSet:
        return HubImageSet(
            self.dataset, self.image_field, self.label_field, self.train_split, self.test_split
        )
