"""Hub image loaders, tested on local parquet files written in the hub's own schema (no network)."""

from __future__ import annotations

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")
PIL = pytest.importorskip("PIL.Image")

from harness.errors import UserError  # noqa: E402
from tasks import images  # noqa: E402


def _write_split(folder, split, n, mode, image_field, label_field, size=8):
    rng = np.random.default_rng(len(split))
    shape = (size, size) if mode == "L" else (size, size, 3)
    pictures = [PIL.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode) for _ in range(n)]
    labels = (np.arange(n) % 3).tolist()
    features = datasets.Features(
        {image_field: datasets.Image(), label_field: datasets.ClassLabel(names=["a", "b", "c"])}
    )
    table = datasets.Dataset.from_dict({image_field: pictures, label_field: labels}, features=features)
    table.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    return pictures


def test_mnist_schema_grey_images(tmp_path):
    pictures = _write_split(tmp_path, "train", 12, "L", "image", "label")
    _write_split(tmp_path, "test", 6, "L", "image", "label")
    source = images.HubImageSet(str(tmp_path), "image", "label")
    train = images.load_hub(source, "train")
    assert train.x.shape == (12, 1, 8, 8) and train.classes == 3 and train.y.tolist()[:4] == [0, 1, 2, 0]
    assert np.allclose(train.x[0, 0], np.asarray(pictures[0]) / 255.0)
    assert images.load_hub(source, "test", limit=4).x.shape[0] == 4


def test_cifar_schema_colour_images_and_resize(tmp_path):
    _write_split(tmp_path, "train", 5, "RGB", "img", "label", size=10)
    data = images.load_hub(images.HubImageSet(str(tmp_path), "img", "label"), "train", image_size=6)
    assert data.x.shape == (5, 3, 6, 6) and data.x.min() >= 0.0 and data.x.max() <= 1.0


def test_wrong_field_names_are_one_line_errors(tmp_path):
    _write_split(tmp_path, "train", 3, "L", "image", "label")
    with pytest.raises(UserError, match="no field 'img' \\(fields: image, label\\)"):
        images.load_hub(images.HubImageSet(str(tmp_path), "img", "label"), "train")
    with pytest.raises(UserError, match="no validation\\*.parquet"):
        images.load_hub(images.HubImageSet(str(tmp_path), "image", "label"), "validation")


def test_known_hub_sets_name_their_fields():
    assert images.HUB_IMAGE_SETS["cifar10"].image_field == "img"
    assert images.HUB_IMAGE_SETS["cifar100"].label_field == "fine_label"
    assert images.HUB_IMAGE_SETS["imagenet-1k"].test_split == "validation"


def test_generic_hub_poisoning_task_runs_on_a_local_copy(tmp_path):
    from harness.registries import METHODS, TASKS
    from harness.spec import make_spec
    from harness.store import ResultStore
    from harness.worker import WorkerOptions, run_spec

    _write_split(tmp_path, "train", 60, "RGB", "img", "label")
    _write_split(tmp_path, "test", 15, "RGB", "img", "label")
    spec = make_spec(
        TASKS.get("poisoning/hub"),
        METHODS.get("dpa"),
        0,
        "smoke",
        {"dataset": str(tmp_path), "image_field": "img"},
    )
    record = run_spec(spec, ResultStore(tmp_path / "res"), WorkerOptions(str(tmp_path / "res")), "t")
    assert record["status"] == "ok", record["error"]
    assert 0.0 <= record["metrics"]["clean_accuracy"]["value"] <= 1.0
