"""Tabular tasks: stratified k-fold cross-validation whose folds depend only on the seed.

Metrics are computed on the pooled out-of-fold predictions, so every row is predicted exactly once by a
model that never saw it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness.components import Metric, Resources, Task
from harness.context import RunContext
from harness.errors import UserError
from harness.health import HEALTH_METRIC, report_health
from harness.registries import register_task
from tasks.tabular.datasets import TabularData, check_table, load_openml, load_sklearn, load_table
from tasks.tabular.protocol import TabularMethod

TABULAR_METRICS = (
    Metric("accuracy", True, tolerance=0.01, description="share of rows predicted right"),
    Metric("balanced_accuracy", True, tolerance=0.01, description="mean recall over classes"),
    Metric("log_loss", False, tolerance=0.02, description="cross-entropy of predicted probabilities, nats"),
    Metric("roc_auc", True, tolerance=0.01, description="one-vs-rest macro ROC-AUC"),
    Metric("fit_seconds", False, gate=False, description="mean wall seconds to fit one fold"),
    HEALTH_METRIC,
)


@dataclass(kw_only=True)
class TabularTask(Task):
    family: ClassVar[str] = "tabular"
    method_protocol: ClassVar[type] = TabularMethod
    metrics: ClassVar[tuple[Metric, ...]] = TABULAR_METRICS
    primary_metric: ClassVar[str] = "accuracy"
    # cpu: the built-in tables' runs took 1.1-5.5 s at the median, 2.8 s on average over the five tables
    # (2 cores shared with other jobs)
    resources: ClassVar[dict[str, Resources]] = {
        "smoke": Resources(expected_s=1.0),
        "cpu": Resources(expected_s=2.5),
        "paper": Resources(cpus=2.0, memory_gb=4.0, expected_s=600.0),
    }
    scales: ClassVar[dict] = {
        "smoke": {"folds": 2, "max_rows": 120},
        "cpu": {"folds": 5},
        "paper": {"folds": 10},
    }

    folds: int = 5
    max_rows: int = 0  # 0 keeps every row; otherwise a stratified subsample fixed by the seed

    def check_inputs(self) -> None:
        if self.folds < 2:
            raise UserError(f"parameter 'folds' must be at least 2, got {self.folds}")
        if self.max_rows < 0:
            raise UserError(f"parameter 'max_rows' must be 0 (all) or more, got {self.max_rows}")

    def load(self) -> TabularData:
        raise NotImplementedError

    def run(self, method: TabularMethod, ctx: RunContext) -> dict[str, float]:
        from sklearn.model_selection import StratifiedKFold, train_test_split

        with ctx.phase("load"):
            data = self.load()
        X, categorical = data.features(method.categories_native)
        y = data.y
        rows = np.arange(len(y))  # each row's place in the loaded table (the split only indexes it)
        if self.max_rows and len(y) > self.max_rows:
            X, _, y, _, rows, _ = train_test_split(
                X, y, rows, train_size=self.max_rows, stratify=y, random_state=ctx.seed
            )
        proba = np.zeros((len(y), data.n_classes))
        fold_of = np.zeros(len(y), dtype=np.int64)
        folds = StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=ctx.seed)
        for fold, (train, test) in enumerate(folds.split(X, y)):
            fold_of[test] = fold
            estimator = method.make_estimator(ctx.seed, data.n_classes)
            if len(categorical):
                estimator.set_params(categorical_features=categorical)
            with ctx.phase("fit"):
                estimator.fit(X[train], y[train])
            with ctx.phase("predict"):
                fold_proba = estimator.predict_proba(X[test])
            proba[np.ix_(test, np.asarray(estimator.classes_, dtype=np.int64))] = fold_proba
        pred = proba.argmax(axis=1)
        ctx.samples(
            {
                "row": rows,
                "fold": fold_of,
                "label": y,
                "prediction": pred,
                "correct": pred == y,
                **{f"p_{name}": proba[:, i] for i, name in enumerate(data.class_names)},
            },
            index="row",
            prediction="prediction",
            label="label",
        )
        return {
            **classification_metrics(y, proba),
            "fit_seconds": ctx.phases["fit"] / self.folds,
            HEALTH_METRIC.name: report_health(ctx, proba.argmax(axis=1), y),
        }


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss, roc_auc_score

    labels = np.arange(proba.shape[1])
    clipped = np.clip(proba, 1e-15, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    if proba.shape[1] == 2:
        auc = roc_auc_score(y, proba[:, 1])
    else:
        auc = roc_auc_score(y, clipped, multi_class="ovr", average="macro", labels=labels)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "log_loss": float(log_loss(y, clipped, labels=labels)),
        "roc_auc": float(auc),
    }


def _sklearn_task(dataset: str, description: str) -> type[TabularTask]:
    """A registered task for one of scikit-learn's bundled datasets."""

    @dataclass(kw_only=True)
    class SklearnDatasetTask(TabularTask):
        def load(self) -> TabularData:
            return load_sklearn(dataset)

    SklearnDatasetTask.__name__ = SklearnDatasetTask.__qualname__ = f"{dataset.title().replace('_', '')}Task"
    SklearnDatasetTask.description = description
    return register_task(f"tabular/{dataset}")(SklearnDatasetTask)


BreastCancerTask = _sklearn_task("breast_cancer", "Wisconsin breast cancer, 569 rows, 30 features, 2 classes")
WineTask = _sklearn_task("wine", "wine cultivars, 178 rows, 13 features, 3 classes")
DigitsTask = _sklearn_task("digits", "8x8 handwritten digits, 1,797 rows, 64 features, 10 classes")
IrisTask = _sklearn_task("iris", "iris flowers, 150 rows, 4 features, 3 classes")


@register_task("tabular/openml")
@dataclass(kw_only=True)
class OpenMLTask(TabularTask):
    description: ClassVar[str] = "any OpenML dataset by id (needs a network the first time)"
    data_id: int
    target: str = ""

    def load(self) -> TabularData:
        return load_openml(self.data_id, self.target or None)


@register_task("tabular/table")
@dataclass(kw_only=True)
class LocalTableTask(TabularTask):
    local_inputs: ClassVar[tuple[str, ...]] = ("path",)
    description: ClassVar[str] = "a local CSV or parquet table with a named target column"
    path: str
    target: str

    def load(self) -> TabularData:
        return load_table(self.path, self.target)

    def check_inputs(self) -> None:
        super().check_inputs()
        check_table(self.path, self.target)
