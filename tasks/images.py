"""Image classification data shared by the families that need it (poisoning, distillation).

Embedded real data: scikit-learn's 8x8 digits and the real MNIST-5k asset. Any local image set: an .npz
with `x` (or `images`) and `y` (or `labels`), or a CSV/parquet table of pixel columns and a `label`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from harness.errors import UserError


@dataclass(frozen=True)
class ImageData:
    x: np.ndarray  # (samples, channels, height, width) float32 in [0, 1]
    y: np.ndarray  # (samples,) int64
    classes: int
    source: str

    def subset(self, index: np.ndarray) -> ImageData:
        return ImageData(self.x[index], self.y[index], self.classes, self.source)


def load_digits() -> ImageData:
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    return ImageData(x, bunch.target.astype(np.int64), 10, "sklearn:digits")


def load_mnist_5k(local_path: str | None = None) -> ImageData:
    """The 5,000 real MNIST digits of the `mnist-5k` asset (784 pixel columns, then the label)."""
    from harness.assets import resolve

    folder = resolve("mnist-5k", local_path)
    file = folder / "mnist_5k.csv.gz" if folder.is_dir() else folder
    try:
        table = np.loadtxt(file, delimiter=",", dtype=np.float32)
    except (OSError, ValueError) as err:
        raise UserError(
            f"{file}: cannot read MNIST-5k ({err}); expected 785 comma-separated columns"
        ) from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise UserError(f"{file}: expected 785 columns (784 pixels and a label), found {table.shape[-1]}")
    x = (table[:, :784] / 255.0).reshape(-1, 1, 28, 28)
    return ImageData(x, table[:, 784].astype(np.int64), 10, "mnist-5k")


def load_local(path: str) -> ImageData:
    file = Path(path).expanduser()
    if not file.exists():
        raise UserError(f"image file {file} does not exist")
    if file.suffix == ".npz":
        with np.load(file) as archive:
            keys = set(archive.files)
            xkey = next((k for k in ("x", "images") if k in keys), None)
            ykey = next((k for k in ("y", "labels") if k in keys), None)
            if xkey is None or ykey is None:
                raise UserError(
                    f"{file}: expected arrays 'x' (or 'images') and 'y' (or 'labels'), found {sorted(keys)}"
                )
            x, y = archive[xkey].astype(np.float32), archive[ykey].astype(np.int64)
    elif file.suffix in (".parquet", ".csv"):
        import polars as pl

        frame = pl.read_parquet(file) if file.suffix == ".parquet" else pl.read_csv(file)
        if "label" not in frame.columns:
            raise UserError(f"{file}: no 'label' column (columns: {', '.join(frame.columns[:8])}, ...)")
        y = frame.get_column("label").to_numpy().astype(np.int64)
        pixels = frame.drop("label").to_numpy().astype(np.float32)
        side = round(pixels.shape[1] ** 0.5)
        if side * side != pixels.shape[1]:
            raise UserError(
                f"{file}: {pixels.shape[1]} pixel columns do not make a square single-channel image"
            )
        x = pixels.reshape(-1, side, side)
    else:
        raise UserError(f"image file {file}: expected .npz, .parquet or .csv")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or len(x) != len(y):
        raise UserError(
            f"{file}: images must be (n, h, w) or (n, c, h, w) with one label each; got {x.shape}"
        )
    if x.max(initial=0) > 1.0:
        x = x / 255.0
    return ImageData(x, y, int(y.max()) + 1, str(file))


def split(data: ImageData, test_fraction: float, seed: int = 0) -> tuple[ImageData, ImageData]:
    """A stratified train/test split fixed by `seed` (the task's, not the run's: one test set for all)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(data.y))
    train, test = train_test_split(index, test_size=test_fraction, stratify=data.y, random_state=seed)
    return data.subset(np.sort(train)), data.subset(np.sort(test))


@dataclass(frozen=True)
class HubImageSet:
    """Where a Hugging Face dataset keeps its images and labels (the field names differ per set)."""

    dataset_id: str
    image_field: str
    label_field: str
    train_split: str = "train"
    test_split: str = "test"


HUB_IMAGE_SETS = {
    "mnist": HubImageSet("ylecun/mnist", "image", "label"),
    "cifar10": HubImageSet("uoft-cs/cifar10", "img", "label"),
    "cifar100": HubImageSet("uoft-cs/cifar100", "img", "fine_label"),
    "imagenet-1k": HubImageSet("ILSVRC/imagenet-1k", "image", "label", test_split="validation"),
}


def load_hub(source: HubImageSet, split_name: str, limit: int = 0, image_size: int = 0) -> ImageData:
    """One split of an image dataset, from the hub by id or from a local folder of parquet files in the
    hub's layout (`<split>*.parquet` or `<split>/*.parquet`), decoded to (n, c, h, w) floats in [0, 1]."""
    try:
        import datasets
    except ImportError:
        raise UserError("hub image sets need the `datasets` package: pip install 'logitbench[hub]'") from None
    local = Path(source.dataset_id).expanduser()
    try:
        if local.exists():
            files = sorted(local.glob(f"{split_name}*.parquet")) + sorted(
                local.glob(f"{split_name}/*.parquet")
            )
            if not files:
                raise UserError(f"{local}: no {split_name}*.parquet or {split_name}/*.parquet files")
            table = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
        else:
            table = datasets.load_dataset(source.dataset_id, split=split_name)
    except (OSError, ValueError, ConnectionError) as err:
        raise UserError(
            f"dataset {source.dataset_id} (split {split_name}) could not be loaded: "
            f"{str(err).splitlines()[0]}"
        ) from None
    for needed in (source.image_field, source.label_field):
        if needed not in table.column_names:
            raise UserError(
                f"dataset {source.dataset_id}: no field '{needed}' (fields: {', '.join(table.column_names)})"
            )
    if limit and len(table) > limit:
        table = table.select(range(limit))
    pictures = [_to_array(img, image_size) for img in table[source.image_field]]
    x = np.stack(pictures).astype(np.float32) / 255.0
    y = np.asarray(table[source.label_field], dtype=np.int64)
    feature = table.features[source.label_field]
    classes = getattr(feature, "num_classes", None) or int(y.max()) + 1
    return ImageData(x, y, classes, f"hub:{source.dataset_id}:{split_name}")


def _to_array(image, size: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A PIL image as (channels, h, w) uint8, grey kept as one channel, optionally resized to size x size."""
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    if size and image.size != (size, size):
        image = image.resize((size, size))
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def train_test(
    data: ImageData, test_fraction: float, max_train: int, max_test: int
) -> tuple[ImageData, ImageData]:
    """The task's fixed split, each side cut to its first max_* samples (0 keeps all)."""
    train, test = split(data, test_fraction)
    return _first(train, max_train), _first(test, max_test)


def hub_train_test(
    source: HubImageSet, max_train: int, max_test: int, image_size: int
) -> tuple[ImageData, ImageData]:
    """A hub set's own train and test splits."""
    return (
        load_hub(source, source.train_split, max_train, image_size),
        load_hub(source, source.test_split, max_test, image_size),
    )


def _first(data: ImageData, limit: int) -> ImageData:
    return data.subset(np.arange(limit)) if limit and len(data.y) > limit else data


@dataclass(kw_only=True)
class Mnist5kSource:
    """Mixin for tasks on the real MNIST-5k asset (first in the bases, so its `load` is the task's)."""

    asset_path: str = ""  # a local copy of mnist_5k.csv.gz instead of the asset cache

    def load(self) -> ImageData:
        return load_mnist_5k(self.asset_path or None)


@dataclass(kw_only=True)
class LocalImagesSource:
    """Mixin for tasks on any local image set (first in the bases, so its `load` is the task's)."""

    description: ClassVar[str] = (
        "any local image set (.npz with x, y; or parquet/CSV pixel columns and label)"
    )
    path: str

    def load(self) -> ImageData:
        return load_local(self.path)


@dataclass(kw_only=True)
class HubImagesSource:
    """Mixin for tasks on a hub image set with its own train and test splits (network and `hub` extra)."""

    offline: ClassVar[bool] = False
    hub_set: ClassVar[str] = ""  # a key of HUB_IMAGE_SETS
    image_size: int = 0  # resize to image_size x image_size (0 keeps the size; GTSRB's vary)
    max_train: int = 0
    max_test: int = 0

    def source(self) -> HubImageSet:
        return HUB_IMAGE_SETS[self.hub_set]

    def data(self) -> tuple[ImageData, ImageData]:
        return hub_train_test(self.source(), self.max_train, self.max_test, self.image_size)
