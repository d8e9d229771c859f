"""Sentence classification data: Rotten Tomatoes (embedded) and GLUE (hub), with each task's metric."""

from __future__ import annotations

import bz2
import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import UserError


@dataclass(frozen=True)
class TextSet:
    first: list[str]
    second: list[str] | None  # the second sentence of pair tasks
    labels: np.ndarray  # int64
    classes: int


def rotten_tomatoes(folder: Path) -> dict[str, TextSet]:
    """Fresh (1) and rotten (0) review snippets; the plot summaries are left out. Fixed 80/10/10 split by
    a hash of the text, so it never depends on the run."""
    csv.field_size_limit(1 << 24)
    splits: dict[str, tuple[list[str], list[int]]] = {s: ([], []) for s in ("train", "dev", "test")}
    with bz2.open(folder / "rotten_tomatoes_corpus_full.csv.bz2", "rt", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["category"] not in ("fresh", "rotten"):
                continue
            value = (
                int.from_bytes(hashlib.blake2b(row["text"].encode(), digest_size=8).digest(), "little")
                / 2**64
            )
            split = "train" if value < 0.8 else ("dev" if value < 0.9 else "test")
            splits[split][0].append(row["text"])
            splits[split][1].append(int(row["category"] == "fresh"))
    return {
        k: TextSet(texts, None, np.asarray(labels, dtype=np.int64), 2)
        for k, (texts, labels) in splits.items()
    }


@dataclass(frozen=True)
class GlueTask:
    config: str
    first: str
    second: str | None
    classes: int
    metric: str  # accuracy | f1 | matthews
    test_split: str = "validation"  # GLUE's test labels are hidden


GLUE = {
    "sst2": GlueTask("sst2", "sentence", None, 2, "accuracy"),
    "cola": GlueTask("cola", "sentence", None, 2, "matthews"),
    "mrpc": GlueTask("mrpc", "sentence1", "sentence2", 2, "f1"),
    "rte": GlueTask("rte", "sentence1", "sentence2", 2, "accuracy"),
    "qnli": GlueTask("qnli", "question", "sentence", 2, "accuracy"),
    "qqp": GlueTask("qqp", "question1", "question2", 2, "f1"),
    "mnli": GlueTask("mnli", "premise", "hypothesis", 3, "accuracy", "validation_matched"),
}


def glue(task: GlueTask, source: str = "nyu-mll/glue") -> dict[str, TextSet]:
    """train / dev / test from the hub, or from a local folder of `<split>*.parquet` files in its schema.
    `test` is GLUE's validation split (its test labels are hidden); `dev` is carved from train."""
    try:
        import datasets
    except ImportError:
        raise UserError("GLUE needs the `datasets` package: pip install 'logitbench[hub]'") from None
    local = Path(source).expanduser()

    def load(split: str):  # type: ignore[no-untyped-def]
        if local.exists():
            files = sorted(local.glob(f"{split}*.parquet")) or sorted(
                (local / task.config).glob(f"{split}*.parquet")
            )
            if not files:
                raise UserError(f"{local}: no {split}*.parquet files for GLUE {task.config}")
            return datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
        return datasets.load_dataset(source, task.config, split=split)

    try:
        train, test = load("train"), load(task.test_split)
    except (OSError, ValueError, ConnectionError) as err:
        raise UserError(f"GLUE {task.config} could not be loaded: {str(err).splitlines()[0]}") from None
    for field in (task.first, task.second, "label"):
        if field and field not in train.column_names:
            raise UserError(
                f"GLUE {task.config}: no field '{field}' (fields: {', '.join(train.column_names)})"
            )

    def text_set(table, rows=None) -> TextSet:  # type: ignore[no-untyped-def]
        rows = rows if rows is not None else range(len(table))
        pick = table.select(rows)
        return TextSet(
            list(pick[task.first]),
            list(pick[task.second]) if task.second else None,
            np.asarray(pick["label"], dtype=np.int64),
            task.classes,
        )

    order = np.random.default_rng(0).permutation(len(train))
    cut = max(1, len(order) // 10)
    return {
        "train": text_set(train, order[cut:].tolist()),
        "dev": text_set(train, order[:cut].tolist()),
        "test": text_set(test),
    }


def score(metric: str, labels: np.ndarray, predictions: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    if metric == "f1":
        return float(f1_score(labels, predictions))
    if metric == "matthews":
        return float(matthews_corrcoef(labels, predictions))
    return float(accuracy_score(labels, predictions))
