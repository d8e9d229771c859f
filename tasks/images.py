"""Image classification data shared by the families that need it (poisoning, distillation).

Embedded real data: scikit-learn's 8x8 digits and the real MNIST-5k asset. Any local image set, in the
layouts image sets are usually shared in (LAYOUTS):
- an .npz with the images under `x`, `images`, `image`, `img` or `x_train` and the labels under `y`,
  `labels`, `label`, `targets` or `y_train` (the first present name wins); Keras' `x_train`/`x_test` files
  bring their own test split;
- a parquet, arrow (IPC) or CSV table with a label column (`label`, `labels`, `fine_label`, `target` or
  `y`) and either h*h numeric pixel columns (one grey image a row) or one column of encoded images (PNG,
  JPEG, .. as plain bytes or as the `{bytes, path}` structs a Hugging Face export writes);
- a folder of class sub-folders of image files (torchvision's ImageFolder: classes are the sub-folder
  names in sorted order).

Every loader checks what it reads, so a malformed file is a one-line error naming the file, the array or
column, and what was expected, never a silently different data set:
- labels are integers 0..C-1 with every class present; a column vector of shape (n, 1) is squeezed to
  (n,), integral floats (3.0) are accepted, anything else (-1, 1.7, NaN, one-hot rows) is an error;
- pixels are finite numbers in [0, 1] or [0, 255]; a set whose largest value is above 1 is divided by 255;
- images are (n, h, w), (n, c, h, w), or channels-last (n, h, w, c) with c of 1 or 3 (moved first when
  the second axis is not itself 1 or 3).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.errors import UserError


@dataclass(frozen=True)
class ImageData:
    x: np.ndarray  # (samples, channels, height, width) float32 in [0, 1]
    y: np.ndarray  # (samples,) int64
    classes: int
    source: str
    names: tuple[str, ...] = ()  # class names, where the layout has them (an ImageFolder's sub-folders)

    def subset(self, index: np.ndarray) -> ImageData:
        return ImageData(self.x[index], self.y[index], self.classes, self.source, self.names)


def check_labels(
    y: Any, where: str, item: str = "index", classes: int | None = None, every_class: bool = True
) -> np.ndarray:
    """`y` as (n,) int64 labels 0..C-1, or a UserError naming `where` and the first bad `item`.

    With `classes` given (a hub set's ClassLabel), labels must be below it. Without it C is the largest
    label + 1, and (with `every_class`) every class 0..C-1 must appear, which is what catches 1-based
    labels; a slice of a hub set may miss classes, so its check is off there."""
    y = np.asarray(y)
    expected = "integers 0..C-1" if classes is None else f"integers 0..{classes - 1}"
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        hint = " (one-hot rows? give the class index of each)" if y.ndim == 2 else ""
        raise UserError(f"{where}: expected one label per image, shape (n,) or (n, 1); got {y.shape}{hint}")
    if len(y) == 0:
        raise UserError(f"{where}: no labels")
    if y.dtype.kind not in "biuf":
        raise UserError(f"{where}: labels must be {expected}; got values of type {y.dtype}")
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if bad.size:
            raise UserError(
                f"{where}: label {float(y[bad[0]]):g} at {item} {bad[0]} is not an integer "
                f"(expected {expected}; {bad.size} such label(s))"
            )
    y = y.astype(np.int64)
    if y.min() < 0:
        first = int(np.argmax(y < 0))
        raise UserError(
            f"{where}: label {y[first]} at {item} {first} is negative (expected {expected}; "
            f"labels span {y.min()}..{y.max()})"
        )
    if classes is not None:
        if y.max() >= classes:
            first = int(np.argmax(y >= classes))
            raise UserError(
                f"{where}: label {y[first]} at {item} {first} is not below {classes} ({expected})"
            )
        return y
    if not every_class:
        return y
    counts = np.bincount(y)
    if np.count_nonzero(counts) < 2:
        raise UserError(f"{where}: every label is {y[0]}; a classification set needs at least two classes")
    absent = np.flatnonzero(counts == 0)
    if absent.size:
        shown = ", ".join(map(str, absent[:5])) + (", ..." if absent.size > 5 else "")
        raise UserError(
            f"{where}: no image has label {shown} (expected {expected} with every class present, here "
            f"0..{len(counts) - 1}; 1-based labels? subtract 1)"
        )
    return y


def check_pixels(x: Any, where: str, item: str = "image") -> np.ndarray:
    """`x` as float32 (n, c, h, w) in [0, 1], or a UserError naming `where` and what was expected."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise UserError(
            f"{where}: pixels must be numbers in [0, 1] or [0, 255]; got values of type {x.dtype}"
        )
    if len(x) == 0:
        raise UserError(f"{where}: no images")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            first = int(np.argmax(bad.reshape(len(x), -1).any(axis=1)))
            raise UserError(
                f"{where}: {int(bad.sum())} pixel(s) are NaN or infinite, the first in {item} {first} "
                "(expected finite values in [0, 1] or [0, 255])"
            )
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 255:
        raise UserError(
            f"{where}: pixel values span {low:g}..{high:g}; expected [0, 1] or [0, 255] "
            "(standardised images? give the raw pixels)"
        )
    x = x.astype(np.float32)
    if high > 1.0:
        x = x / 255.0
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if x.ndim != 4:
        raise UserError(
            f"{where}: images must be (n, h, w), (n, c, h, w) or (n, h, w, c); got shape {x.shape}"
        )
    return x


def load_digits() -> ImageData:
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    return ImageData(x, bunch.target.astype(np.int64), 10, "sklearn:digits")


def load_mnist_5k(local_path: str | None = None) -> ImageData:
    """The 5,000 real MNIST digits of the `mnist-5k` asset (784 pixel columns 0..255, then the label)."""
    from harness.assets import resolve

    folder = resolve("mnist-5k", local_path)
    file = folder / "mnist_5k.csv.gz" if folder.is_dir() else folder
    try:
        table = np.loadtxt(file, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(
            f"{file}: cannot read MNIST-5k ({reason}); expected 785 comma-separated columns"
        ) from None
    if table.size == 0:
        raise UserError(f"{file}: no rows; expected 785 comma-separated columns (784 pixels and a label)")
    if table.shape[1] != 785:
        raise UserError(f"{file}: expected 785 columns (784 pixels and a label), found {table.shape[1]}")
    pixels = table[:, :784]
    bad = ~np.isfinite(pixels) | (pixels < 0) | (pixels > 255)
    if bad.any():
        row, column = (int(i[0]) for i in np.nonzero(bad))
        raise UserError(
            f"{file}: row {row}, column {column}: pixel {pixels[row, column]:g} is not in 0..255 "
            f"({int(bad.sum())} such value(s))"
        )
    y = check_labels(table[:, 784], f"{file}: column 785 (the label)", "row", classes=10)
    x = (pixels / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return ImageData(x, y, 10, "mnist-5k")


NPZ_IMAGE_KEYS = ("x", "images", "image", "img", "x_train")
NPZ_LABEL_KEYS = ("y", "labels", "label", "targets", "y_train")
NPZ_TEST_KEYS = ("x_test", "y_test")
TABLE_SUFFIXES = (".parquet", ".arrow", ".feather", ".ipc", ".csv")
TABLE_LABEL_COLUMNS = ("label", "labels", "fine_label", "target", "y")
IMAGE_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
LAYOUTS = (
    "an .npz with images (x, images, image, img or x_train) and labels (y, labels, label, targets or "
    "y_train); a parquet, arrow or CSV table with a label column and pixel columns or one column of encoded "
    "images; or a folder of class sub-folders of image files"
)


def load_local(path: str, like: ImageData | None = None) -> ImageData:
    """An image set in any of LAYOUTS. `like`: the training set this one is the test set of, whose classes
    (and class names) it must use; a test set may miss classes."""
    file = Path(path).expanduser()
    if not file.exists():
        raise UserError(f"image file {file} does not exist")
    names: tuple[str, ...] = ()
    classes, every = (like.classes, False) if like is not None else (None, True)
    if file.is_dir():
        if like is not None and not like.names:
            raise UserError(
                f"{file}: a folder test set needs a folder training set (its class folders give the labels)"
            )
        x, y, names = _read_image_folder(file, like.names if like is not None else None)
    elif file.suffix == ".npz":
        (xkey, x), (ykey, y) = _read_npz(file)
        x, y = _checked_pair(file, x, y, f"array '{xkey}'", f"array '{ykey}'", classes, every)
    elif file.suffix in TABLE_SUFFIXES:
        x, y = _read_table(file, classes, every)
    else:
        raise UserError(f"image file {file}: expected {LAYOUTS}")
    if like is not None and x.shape[1:] != like.x.shape[1:]:
        raise UserError(
            f"{file}: images are {_shape(x)} but the training set's are {_shape(like.x)}; expected the same"
        )
    return ImageData(x, y, classes or int(y.max()) + 1, str(file), names)


def _shape(x: np.ndarray) -> str:
    return f"{x.shape[1]}x{x.shape[2]}x{x.shape[3]} (channels x height x width)"


def _checked_pair(
    file: Path, x: Any, y: Any, xwhere: str, ywhere: str, classes: int | None = None, every: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    x = check_pixels(x, f"{file}: {xwhere}")
    y = check_labels(y, f"{file}: {ywhere}", classes=classes, every_class=every)
    if len(x) != len(y):
        raise UserError(f"{file}: {xwhere} holds {len(x)} images but {ywhere} {len(y)} labels")
    return x, y


def npz_test_part(path: str, like: ImageData) -> ImageData | None:
    """The `x_test`/`y_test` arrays of a Keras-style .npz, as the test set of `like`; None without them."""
    file = Path(path).expanduser()
    if file.suffix != ".npz":
        return None
    archive = _open_npz(file)
    with archive:
        if not set(NPZ_TEST_KEYS) <= set(archive.files):
            return None
        try:
            x, y = archive["x_test"], archive["y_test"]
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise UserError(f"{file}: arrays x_test, y_test could not be read ({err})") from None
    x, y = _checked_pair(file, x, y, "array 'x_test'", "array 'y_test'", like.classes, every=False)
    if x.shape[1:] != like.x.shape[1:]:
        raise UserError(f"{file}: x_test images are {_shape(x)} but x_train's are {_shape(like.x)}")
    return ImageData(x, y, like.classes, f"{file}:test")


def npz_keys(file: Path, keys: set[str]) -> tuple[str, str]:
    """The names of an .npz's image and label arrays: the first present of NPZ_IMAGE_KEYS and of
    NPZ_LABEL_KEYS."""
    xkey = next((k for k in NPZ_IMAGE_KEYS if k in keys), None)
    ykey = next((k for k in NPZ_LABEL_KEYS if k in keys), None)
    if xkey is None or ykey is None:
        raise UserError(
            f"{file}: expected arrays {', '.join(map(repr, NPZ_IMAGE_KEYS))} (the images, one of them) and "
            f"{', '.join(map(repr, NPZ_LABEL_KEYS))} (the labels), found {sorted(keys)}"
        )
    return xkey, ykey


def _open_npz(file: Path) -> Any:
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"{file}: not a readable .npz archive of numeric arrays ({_reason(err)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UserError(f"{file}: a single .npy array, not an .npz archive of images and labels")
    return archive


def _reason(err: BaseException) -> str:
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "pickle" in reason or "Object arrays" in reason:
        return "it holds Python objects, not numeric arrays"
    return reason


def _read_npz(file: Path) -> tuple[tuple[str, np.ndarray], tuple[str, np.ndarray]]:
    """The (key, array) of the images and of the labels of an .npz archive."""
    archive = _open_npz(file)
    with archive:
        xkey, ykey = npz_keys(file, set(archive.files))
        try:
            return (xkey, archive[xkey]), (ykey, archive[ykey])
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise UserError(
                f"{file}: not a readable .npz archive of numeric arrays ({_reason(err)})"
            ) from None


def _read_frame(file: Path, rows: int | None = None, columns: list[str] | None = None) -> Any:
    """A polars frame of a parquet, arrow (file or stream format) or CSV file; `rows` limits a CSV read,
    `columns` picks columns."""
    import polars as pl

    try:
        if file.suffix == ".parquet":
            return pl.read_parquet(file, columns=columns)
        if file.suffix == ".csv":
            return pl.read_csv(file, n_rows=rows, columns=columns)
        try:
            return pl.read_ipc(file, columns=columns)
        except pl.exceptions.PolarsError:
            return pl.read_ipc_stream(file, columns=columns)  # what `datasets` writes to .arrow
    except (pl.exceptions.PolarsError, OSError) as err:
        raise UserError(f"{file}: could not be read ({str(err).splitlines()[0]})") from None


def table_label_column(file: Path, columns: list[str]) -> str:
    label = next((c for c in TABLE_LABEL_COLUMNS if c in columns), None)
    if label is None:
        shown = ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")
        raise UserError(
            f"{file}: no 'label' column (nor {', '.join(TABLE_LABEL_COLUMNS[1:])}; columns: {shown})"
        )
    return label


def _encoded_column(frame: Any, label: str) -> str | None:
    """The column of encoded images: bytes, or `{bytes, path}` structs (a Hugging Face Image feature)."""
    import polars as pl

    for name, dtype in frame.schema.items():
        if name == label:
            continue
        if dtype == pl.Binary or (isinstance(dtype, pl.Struct) and "bytes" in [f.name for f in dtype.fields]):
            return name
    return None


def _read_table(file: Path, classes: int | None, every: bool) -> tuple[np.ndarray, np.ndarray]:
    frame = _read_frame(file)
    label = table_label_column(file, frame.columns)
    if frame.height == 0:
        raise UserError(f"{file}: no rows")
    row = "line {} (row {})" if file.suffix == ".csv" else "row {1}"
    labels = _numeric(frame, label, file, row)
    y = check_labels(labels, f"{file}: column '{label}'", "row", classes, every)
    encoded = _encoded_column(frame, label)
    if encoded is not None:
        return _decode_column(frame, encoded, file), y
    pixels = np.stack([_numeric(frame, c, file, row) for c in frame.columns if c != label], axis=1)
    side = round(pixels.shape[1] ** 0.5)
    if side * side != pixels.shape[1] or side == 0:
        raise UserError(
            f"{file}: {pixels.shape[1]} pixel columns do not make a square single-channel image "
            f"(expected {LAYOUTS})"
        )
    return check_pixels(pixels.reshape(-1, side, side), f"{file}: pixel columns", "row"), y


def _numeric(frame: Any, name: str, file: Path, row: str) -> np.ndarray:
    """One column as float64; a text cell, an empty cell or a non-numeric column is an error naming it."""
    import polars as pl

    series = frame.get_column(name)
    dtype = series.dtype
    if not (dtype.is_numeric() or dtype == pl.Boolean):
        if dtype != pl.String:
            raise UserError(f"{file}: column '{name}' holds {dtype} values; expected numbers (or {LAYOUTS})")
        numbers = series.cast(pl.Float64, strict=False)
        wrong = (numbers.is_null() & series.is_not_null()).arg_true()
        if len(wrong):
            at = int(wrong[0])
            raise UserError(
                f"{file}: {row.format(at + 2, at)}, column '{name}': {series[at]!r} is not a number"
            )
        series = numbers
    if series.null_count():
        at = int(series.is_null().arg_true()[0])
        raise UserError(
            f"{file}: {row.format(at + 2, at)}, column '{name}' is empty (expected a number; a short row?)"
        )
    return series.cast(pl.Float64).to_numpy()


def _decode_column(frame: Any, name: str, file: Path) -> np.ndarray:
    """Each row's encoded image decoded; a struct's `path` (relative to the table) stands in for missing
    bytes. Grey images join a colour set as three channels; sizes must agree."""
    pictures = []
    for at, cell in enumerate(frame.get_column(name).to_list()):
        where = f"{file}: row {at}, column '{name}'"
        blob, origin = (cell.get("bytes"), cell.get("path")) if isinstance(cell, dict) else (cell, None)
        if blob is None and origin:
            image_file = (file.parent / origin) if not Path(origin).is_absolute() else Path(origin)
            if not image_file.is_file():
                raise UserError(f"{where}: no bytes, and its path {origin} is not a file")
            blob = image_file.read_bytes()
        if not blob:
            raise UserError(f"{where}: empty; expected an encoded image (PNG, JPEG, ..)")
        pictures.append(_decode(blob, where))
    return _stack(pictures, str(file), "resize them to one size first").astype(np.float32) / 255.0


def _decode(blob: bytes, where: str) -> np.ndarray:
    """Encoded image bytes as (channels, h, w) uint8; undecodable bytes are named by count, never shown."""
    try:
        from PIL import Image
    except ImportError:
        raise UserError("decoding encoded images needs Pillow: pip install 'logitbench[hub]'") from None
    import io

    try:
        with Image.open(io.BytesIO(blob)) as image:
            image.load()
            return _to_array(image, 0, where)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise UserError(f"{where}: {len(blob)} bytes that Pillow cannot decode as an image") from None


def _read_image_folder(
    folder: Path, names: tuple[str, ...] | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """torchvision's ImageFolder layout: one sub-folder per class (sorted names give the labels), image
    files at any depth inside it. A test folder (`names` given) uses the training set's classes."""
    found = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise UserError(
            f"{folder}: a folder of images needs one sub-folder per class (found none); expected {LAYOUTS}"
        )
    classes = names if names else tuple(found)
    unknown = [c for c in found if c not in classes]
    if unknown:
        raise UserError(
            f"{folder}: class folder(s) {', '.join(unknown)} are not classes of the training set "
            f"({', '.join(classes)})"
        )
    pictures, labels, paths = [], [], []
    for name in found:
        files = image_files(folder / name)
        if not files and names is None:
            raise UserError(f"{folder / name}: no image files ({', '.join(IMAGE_FILE_SUFFIXES)})")
        for image_file in files:
            pictures.append(_decode(image_file.read_bytes(), str(image_file)))
            labels.append(classes.index(name))
            paths.append(str(image_file.relative_to(folder)))
    if not pictures:
        raise UserError(f"{folder}: no image files in its class folders")
    x = _stack(pictures, str(folder), "resize them to one size first", paths).astype(np.float32) / 255.0
    return x, np.asarray(labels, dtype=np.int64), tuple(classes)


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_FILE_SUFFIXES and p.is_file())


def split(data: ImageData, test_fraction: float, seed: int = 0) -> tuple[ImageData, ImageData]:
    """A stratified train/test split fixed by `seed` (the task's, not the run's: one test set for all)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(data.y))
    try:
        train, test = train_test_split(index, test_size=test_fraction, stratify=data.y, random_state=seed)
    except ValueError as err:
        counts = np.bincount(data.y, minlength=data.classes)
        raise UserError(
            f"{data.source}: cannot split {len(index)} images of {data.classes} classes (the smallest has "
            f"{counts.min()}) into train and test with test_fraction {test_fraction}: "
            f"{str(err).splitlines()[0]}"
        ) from None
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
    where = f"dataset {source.dataset_id} (split {split_name})"
    pictures: list[np.ndarray] = []
    try:
        for img in table[source.image_field]:  # decoded lazily, one by one
            pictures.append(
                _to_array(img, image_size, f"{where}: row {len(pictures)}, field '{source.image_field}'")
            )
    except (OSError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
        raise UserError(
            f"{where}: row {len(pictures)}, field '{source.image_field}': the image cannot be decoded "
            f"({str(err).splitlines()[0][:120]})"
        ) from None
    x = _stack(pictures, where).astype(np.float32) / 255.0
    feature = table.features[source.label_field]
    classes = getattr(feature, "num_classes", None)
    y = check_labels(
        table[source.label_field], f"{where}: field '{source.label_field}'", "row", classes, every_class=False
    )
    return ImageData(x, y, classes or int(y.max()) + 1, f"hub:{source.dataset_id}:{split_name}")


def _to_array(image: Any, size: int, where: str) -> np.ndarray:
    """A PIL image as (channels, h, w) uint8, grey kept as one channel, optionally resized to size x size."""
    if not hasattr(image, "mode") or not hasattr(image, "convert"):
        raise UserError(f"{where}: expected a decoded image, got {type(image).__name__}")
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    if size and image.size != (size, size):
        image = image.resize((size, size))
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _stack(
    pictures: list[np.ndarray],
    where: str,
    fix: str = "set the task's image_size to resize them",
    names: list[str] | None = None,
) -> np.ndarray:
    """One (n, c, h, w) array: grey images join a colour set as three equal channels; sizes must agree."""
    if not pictures:
        raise UserError(f"{where}: no images")
    channels = max(p.shape[0] for p in pictures)
    pictures = [np.repeat(p, channels, axis=0) if p.shape[0] != channels else p for p in pictures]
    sizes = [p.shape[1:] for p in pictures]
    odd = next((i for i, s in enumerate(sizes) if s != sizes[0]), None)
    if odd is not None:
        (h, w), (oh, ow) = sizes[0], sizes[odd]
        first, other = (names[0], names[odd]) if names else ("row 0", f"row {odd}")
        raise UserError(f"{where}: images differ in size ({first} is {h}x{w}, {other} is {oh}x{ow}); {fix}")
    return np.stack(pictures)


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

    local_inputs: ClassVar[tuple[str, ...]] = ("asset_path",)
    asset_path: str = ""  # a local copy of mnist_5k.csv.gz instead of the asset cache

    def load(self) -> ImageData:
        return load_mnist_5k(self.asset_path or None)


@dataclass(kw_only=True)
class LocalImagesSource:
    """Mixin for tasks on any local image set (first in the bases, so its `load` and `data` are the
    task's). The test set is `test_path` when given (then `test_fraction` is unused), else an .npz's own
    x_test/y_test, else the task's stratified split of `path`. `max_train`/`max_test` keep a fixed random
    subset (seed 0), not the first samples: a file sorted by class would otherwise lose whole classes."""

    description: ClassVar[str] = "any local image set (.npz, parquet / arrow / CSV table, or class folders)"
    local_inputs: ClassVar[tuple[str, ...]] = ("path", "test_path")
    path: str
    test_path: str = ""  # a separate test set in any of the same layouts, with the training set's classes

    def load(self) -> ImageData:
        return load_local(self.path)

    def data(self) -> tuple[ImageData, ImageData]:
        train = self.load()
        test = load_local(self.test_path, like=train) if self.test_path else npz_test_part(self.path, train)
        if test is None:
            train, test = split(train, self.test_fraction)  # type: ignore[attr-defined]
        return _sample(train, self.max_train), _sample(test, self.max_test)  # type: ignore[attr-defined]

    def check_inputs(self) -> None:
        check_local(self.path)
        if self.test_path:
            check_local(self.test_path, every_class=False)


def _sample(data: ImageData, limit: int) -> ImageData:
    """A fixed random `limit` of the samples (all when 0), in their order."""
    if not limit or len(data.y) <= limit:
        return data
    keep = np.sort(np.random.default_rng(0).permutation(len(data.y))[:limit])
    return data.subset(keep)


def _table_columns(file: Path) -> list[str]:
    """A table's column names, from its header or schema where the format has one."""
    import polars as pl

    try:
        if file.suffix == ".parquet":
            return list(pl.read_parquet_schema(file))
        if file.suffix in (".arrow", ".feather", ".ipc"):
            return list(pl.read_ipc_schema(file))
    except (pl.exceptions.PolarsError, OSError) as err:
        if file.suffix == ".parquet":
            raise UserError(f"{file}: could not be read ({str(err).splitlines()[0]})") from None
    return list(_read_frame(file, rows=1).columns)  # a CSV header, or an arrow stream read whole


def check_local(path: str, every_class: bool = True) -> None:
    """The cheap part of `load_local`, for planning: the file exists, names its images and labels (an
    .npz's array names, a table's header, a folder's class sub-folders), and its labels are integers 0..C-1
    (every class present unless `every_class` is off, as for a test set); the pixels are not read."""
    file = Path(path).expanduser()
    if not file.exists():
        raise UserError(f"image file {file} does not exist")
    if file.is_dir():
        found = sorted(d for d in file.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not found:
            raise UserError(
                f"{file}: a folder of images needs one sub-folder per class (found none); expected {LAYOUTS}"
            )
        empty = next(
            (d for d in found if not any(p.suffix.lower() in IMAGE_FILE_SUFFIXES for p in d.rglob("*"))), None
        )
        if empty is not None:
            raise UserError(f"{empty}: no image files ({', '.join(IMAGE_FILE_SUFFIXES)})")
    elif file.suffix == ".npz":
        try:
            with zipfile.ZipFile(file) as archive:
                keys = {n.removesuffix(".npy") for n in archive.namelist()}
        except (OSError, zipfile.BadZipFile) as err:
            raise UserError(f"{file}: not a readable .npz archive ({err})") from None
        _, ykey = npz_keys(file, keys)
        archive = _open_npz(file)
        with archive:
            try:
                labels = archive[ykey]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
                raise UserError(f"{file}: array '{ykey}' could not be read ({_reason(err)})") from None
        check_labels(labels, f"{file}: array '{ykey}'", every_class=every_class)
    elif file.suffix in TABLE_SUFFIXES:
        label = table_label_column(file, _table_columns(file))
        frame = _read_frame(file, columns=[label])
        row = "line {} (row {})" if file.suffix == ".csv" else "row {1}"
        labels = _numeric(frame, label, file, row)
        check_labels(labels, f"{file}: column '{label}'", "row", every_class=every_class)
    else:
        raise UserError(f"image file {file}: expected {LAYOUTS}")


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
