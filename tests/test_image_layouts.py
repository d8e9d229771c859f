"""Local image sets in the layouts they are usually shared in load to the same arrays: npz under any of the
usual key names, pixel tables, tables of encoded images (plain bytes, {bytes, path} structs, arrow files),
and torchvision's ImageFolder; a separate test file is used as it is. Files are written here."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from harness.errors import UserError
from harness.registries import METHODS, TASKS
from tasks import images

PIL = pytest.importorskip("PIL.Image")
pl = pytest.importorskip("polars")

CLASSES = ("ant", "bee", "cat")


def reference(
    n: int = 12, side: int = 5, seed: int = 0, colour: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(images as uint8 (n, h, w) or (n, h, w, 3), labels 0..2), labels not sorted."""
    rng = np.random.default_rng(seed)
    shape = (n, side, side, 3) if colour else (n, side, side)
    return rng.integers(0, 256, size=shape, dtype=np.uint8), (np.arange(n) * 7) % 3


def png(picture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PIL.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()


def expected(pictures: np.ndarray) -> np.ndarray:
    x = pictures.astype(np.float32) / 255.0
    return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)


def write_folder(root, pictures, labels, names=CLASSES):  # type: ignore[no-untyped-def]
    for i, (picture, label) in enumerate(zip(pictures, labels, strict=True)):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:03d}.png").write_bytes(png(picture))
    return root


def folder_order(labels: np.ndarray) -> np.ndarray:
    """The order ImageFolder lists samples in: by class, then by file name (here the sample index)."""
    return np.lexsort((np.arange(len(labels)), labels))


def test_every_layout_loads_to_the_same_arrays(tmp_path):
    pictures, labels = reference()
    want_x, want_y = expected(pictures), labels
    blobs = [png(p) for p in pictures]
    flat = pictures.reshape(len(pictures), -1).astype(np.int64)
    np.savez(tmp_path / "xy.npz", x=pictures, y=labels)
    np.savez(tmp_path / "hf.npz", image=pictures, label=labels)
    np.savez(tmp_path / "img.npz", img=pictures, targets=labels)
    pixel_table = pl.DataFrame({**{f"p{i}": flat[:, i] for i in range(flat.shape[1])}, "label": labels})
    pixel_table.write_csv(tmp_path / "pixels.csv")
    pixel_table.write_parquet(tmp_path / "pixels.parquet")
    pl.DataFrame({"image": blobs, "label": labels}).write_parquet(tmp_path / "bytes.parquet")
    structs = [{"bytes": b, "path": f"{i}.png"} for i, b in enumerate(blobs)]
    pl.DataFrame({"image": structs, "labels": labels}).write_parquet(tmp_path / "structs.parquet")
    (tmp_path / "files").mkdir()
    for i, blob in enumerate(blobs):
        (tmp_path / "files" / f"{i}.png").write_bytes(blob)
    by_path = [{"bytes": None, "path": f"files/{i}.png"} for i in range(len(blobs))]
    schema = {"image": pl.Struct({"bytes": pl.Binary, "path": pl.String}), "label": pl.Int64}
    pl.DataFrame({"image": by_path, "label": labels}, schema=schema).write_parquet(tmp_path / "paths.parquet")
    pl.DataFrame({"image": blobs, "label": labels}).write_ipc(tmp_path / "table.arrow")
    pl.DataFrame({"img": blobs, "fine_label": labels}).write_ipc_stream(tmp_path / "stream.arrow")
    for name in (
        "xy.npz", "hf.npz", "img.npz", "pixels.csv", "pixels.parquet", "bytes.parquet", "structs.parquet",
        "paths.parquet", "table.arrow", "stream.arrow",
    ):  # fmt: skip
        data = images.load_local(str(tmp_path / name))
        np.testing.assert_array_equal(data.x, want_x, err_msg=name)
        np.testing.assert_array_equal(data.y, want_y, err_msg=name)
        assert data.classes == 3, name
    folder = images.load_local(str(write_folder(tmp_path / "tree", pictures, labels)))
    order = folder_order(labels)
    np.testing.assert_array_equal(folder.x, want_x[order])
    np.testing.assert_array_equal(folder.y, want_y[order])
    assert folder.names == CLASSES and folder.classes == 3


def test_hugging_face_parquet_export_loads(tmp_path):
    datasets = pytest.importorskip("datasets")
    pictures, labels = reference()
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(CLASSES))}
    )
    table = datasets.Dataset.from_dict(
        {"image": [PIL.fromarray(p) for p in pictures], "label": labels.tolist()}, features=features
    )
    table.to_parquet(str(tmp_path / "train.parquet"))
    data = images.load_local(str(tmp_path / "train.parquet"))
    np.testing.assert_array_equal(data.x, expected(pictures))
    np.testing.assert_array_equal(data.y, labels)


def test_colour_folders_and_grey_images_among_colour_ones(tmp_path):
    pictures, labels = reference(colour=True)
    folder = images.load_local(str(write_folder(tmp_path / "rgb", pictures, labels)))
    np.testing.assert_array_equal(folder.x, expected(pictures)[folder_order(labels)])
    grey, _ = reference(1, seed=5)
    (tmp_path / "rgb" / "ant" / "zzz.png").write_bytes(png(grey[0]))
    mixed = images.load_local(str(tmp_path / "rgb"))
    assert mixed.x.shape == (13, 3, 5, 5)
    last_ant = int(np.flatnonzero(mixed.y == 0)[-1])
    for channel in range(3):
        np.testing.assert_array_equal(mixed.x[last_ant, channel], grey[0] / np.float32(255.0))


def fails(call, pattern: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and len(message) < 500, message
    assert pytest.importorskip("re").search(pattern, message), message
    return message


def test_unknown_layouts_and_undecodable_bytes_are_one_line_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    fails(
        lambda: images.load_local(str(tmp_path / "notes.txt")),
        r"notes\.txt: expected an \.npz with images \(x, images, image, img or x_train\).*a folder of class "
        r"sub-folders of image files",
    )
    secret = b"\x89PNG-not-really-" + b"Z" * 6000
    pl.DataFrame({"image": [png(reference(1)[0][0]), secret], "label": [0, 1]}).write_parquet(
        tmp_path / "bad.parquet"
    )
    message = fails(
        lambda: images.load_local(str(tmp_path / "bad.parquet")),
        r"bad\.parquet: row 1, column 'image': 6016 bytes that Pillow cannot decode as an image",
    )
    assert "ZZZ" not in message and "PNG-not" not in message
    np.savez(tmp_path / "keys.npz", pixels=np.zeros((2, 2, 2)), classes=np.zeros(2))
    fails(
        lambda: images.load_local(str(tmp_path / "keys.npz")),
        r"keys\.npz: expected arrays 'x', 'images', 'image', 'img', 'x_train' \(the images, one of them\) "
        r"and 'y', 'labels', 'label', 'targets', 'y_train' \(the labels\), found \['classes', 'pixels'\]",
    )
    pl.DataFrame({"image": [png(reference(1)[0][0])], "kind": [0]}).write_parquet(
        tmp_path / "nolabel.parquet"
    )
    fails(
        lambda: images.load_local(str(tmp_path / "nolabel.parquet")),
        r"nolabel\.parquet: no 'label' column \(nor labels",
    )


def test_folder_defects(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "0.png").write_bytes(png(reference(1)[0][0]))
    fails(
        lambda: images.load_local(str(tmp_path / "flat")),
        r"flat: a folder of images needs one sub-folder per class",
    )
    tree = write_folder(tmp_path / "tree", *reference())
    (tree / "dog").mkdir()
    (tree / "dog" / "readme.txt").write_text("no images here")
    fails(lambda: images.load_local(str(tree)), r"tree/dog: no image files \(\.png")
    (tree / "dog" / "readme.txt").unlink()
    (tree / "dog").rmdir()
    (tree / "bee" / "broken.png").write_bytes(b"nope")
    fails(lambda: images.load_local(str(tree)), r"tree/bee/broken\.png: 4 bytes that Pillow cannot decode")
    (tree / "bee" / "broken.png").write_bytes(png(reference(1, side=7)[0][0]))
    fails(
        lambda: images.load_local(str(tree)),
        r"tree: images differ in size \(ant/000\.png is 5x5, bee/broken\.png is 7x7\); "
        r"resize them to one size",
    )


def _task(name: str = "poisoning/images", **params):  # type: ignore[no-untyped-def]
    cls = TASKS.get(name)
    return cls(**cls.params_for_scale("smoke", params, "test"))


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x}


def test_test_path_is_the_test_set_and_nothing_leaks(tmp_path):
    train_pictures, train_labels = reference(30, seed=1)
    test_pictures, test_labels = reference(9, seed=2)
    test_labels = test_labels % 2  # a test set may miss a class
    np.savez(tmp_path / "train.npz", x=train_pictures, y=train_labels)
    np.savez(tmp_path / "test.npz", image=test_pictures, label=test_labels)
    for family in ("poisoning/images", "distillation/images"):
        task = _task(
            family, path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "test.npz"), max_train=0
        )
        task.check_inputs()
        train, test = task.data()
        np.testing.assert_array_equal(train.x, expected(train_pictures))
        np.testing.assert_array_equal(test.x, expected(test_pictures))
        np.testing.assert_array_equal(test.y, test_labels)
        assert train.classes == test.classes == 3
        assert _rows(train.x).isdisjoint(_rows(test.x))
    split_train, split_test = _task(path=str(tmp_path / "train.npz"), max_train=0).data()
    assert len(split_train.y) + len(split_test.y) == 30, "without test_path the one file is split"
    assert _rows(split_train.x).isdisjoint(_rows(split_test.x))


def test_test_path_must_match_the_training_set(tmp_path):
    np.savez(tmp_path / "train.npz", x=reference(12)[0], y=reference(12)[1])
    np.savez(tmp_path / "wide.npz", x=reference(6)[0], y=np.array([0, 1, 2, 3, 0, 1]))
    fails(
        lambda: _task(path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "wide.npz")).data(),
        r"wide\.npz: array 'y': label 3 at index 3 is not below 3 \(integers 0\.\.2\)",
    )
    np.savez(tmp_path / "big.npz", x=reference(6, side=6)[0], y=reference(6)[1])
    fails(
        lambda: _task(path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "big.npz")).data(),
        r"big\.npz: images are 1x6x6 \(channels x height x width\) but the training set's are 1x5x5",
    )
    fails(
        lambda: _task(
            path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "missing.npz")
        ).check_inputs(),
        r"image file .*missing\.npz does not exist",
    )
    write_folder(tmp_path / "tree", *reference(6))
    fails(
        lambda: _task(path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "tree")).data(),
        r"tree: a folder test set needs a folder training set",
    )


def test_folder_test_set_uses_the_training_folders_classes(tmp_path):
    pictures, labels = reference(12, seed=3)
    write_folder(tmp_path / "train", pictures, labels)
    test_pictures = reference(4, seed=4)[0]
    write_folder(tmp_path / "test", test_pictures, np.array([0, 2, 2, 0]))  # no "bee" folder
    _, test = _task(path=str(tmp_path / "train"), test_path=str(tmp_path / "test"), max_train=0).data()
    assert test.y.tolist() == [0, 0, 2, 2] and test.names == CLASSES and test.classes == 3
    (tmp_path / "test" / "eel").mkdir()
    (tmp_path / "test" / "eel" / "0.png").write_bytes(png(test_pictures[0]))
    fails(
        lambda: _task(path=str(tmp_path / "train"), test_path=str(tmp_path / "test")).data(),
        r"test: class folder\(s\) eel are not classes of the training set \(ant, bee, cat\)",
    )


def test_keras_npz_brings_its_own_test_split(tmp_path):
    train_pictures, train_labels = reference(20, seed=6)
    test_pictures, test_labels = reference(7, seed=7)
    np.savez(tmp_path / "mnist.npz", x_train=train_pictures, y_train=train_labels, x_test=test_pictures,
             y_test=test_labels)  # fmt: skip
    train, test = _task(path=str(tmp_path / "mnist.npz"), max_train=0).data()
    np.testing.assert_array_equal(train.x, expected(train_pictures))
    np.testing.assert_array_equal(test.x, expected(test_pictures))
    np.testing.assert_array_equal(test.y, test_labels)


def test_max_train_keeps_a_random_subset_not_the_first_classes(tmp_path):
    pictures, _ = reference(60, seed=8)
    labels = np.repeat(np.arange(3), 20)  # sorted by class, as an ImageFolder lists it
    np.savez(tmp_path / "sorted.npz", x=pictures, y=labels)
    train, test = _task(path=str(tmp_path / "sorted.npz"), max_train=9, max_test=6).data()
    assert len(train.y) == 9 and len(test.y) == 6
    assert len(set(train.y.tolist())) == 3, "the first 9 samples would all be class 0"
    again, _ = _task(path=str(tmp_path / "sorted.npz"), max_train=9, max_test=6).data()
    np.testing.assert_array_equal(train.x, again.x)


def test_plan_time_check_accepts_every_layout_and_names_what_is_wrong(tmp_path):
    pictures, labels = reference()
    np.savez(tmp_path / "hf.npz", image=pictures, label=labels)
    pl.DataFrame({"img": [png(p) for p in pictures], "fine_label": labels}).write_ipc_stream(
        tmp_path / "s.arrow"
    )
    pl.DataFrame({"image": [png(p) for p in pictures], "label": labels}).write_ipc(tmp_path / "f.arrow")
    write_folder(tmp_path / "tree", pictures, labels)
    for name in ("hf.npz", "s.arrow", "f.arrow", "tree"):
        images.check_local(str(tmp_path / name))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "ant").mkdir()
    fails(lambda: images.check_local(str(tmp_path / "empty")), r"empty/ant: no image files")
    np.savez(tmp_path / "minus.npz", x=pictures, y=labels - 1)
    fails(
        lambda: images.check_local(str(tmp_path / "minus.npz")), r"minus\.npz: array 'y': label -1 at index 0"
    )
    (tmp_path / "frac.csv").write_text("p0,label\n0,0\n1,1.5\n2,1\n")
    fails(
        lambda: images.check_local(str(tmp_path / "frac.csv")),
        r"frac\.csv: column 'label': label 1\.5 at row 1 is not an integer",
    )
    np.savez(tmp_path / "part.npz", x=pictures[:2], y=np.array([0, 2]))
    fails(lambda: images.check_local(str(tmp_path / "part.npz")), r"no image has label 1")
    images.check_local(str(tmp_path / "part.npz"), every_class=False)  # as a test set
    (tmp_path / "x.json").write_text(json.dumps({}))
    fails(lambda: images.check_local(str(tmp_path / "x.json")), r"x\.json: expected an \.npz with images")


def test_a_poisoning_run_on_an_image_folder_with_a_test_folder(tmp_path):
    from sklearn.datasets import load_digits

    from harness.spec import make_spec
    from harness.store import ResultStore
    from harness.worker import WorkerOptions, run_spec

    digits = load_digits()
    pictures = (digits.images[:360] * 15).astype(np.uint8)
    names = tuple(f"digit-{d}" for d in range(10))
    write_folder(tmp_path / "train", pictures[:300], digits.target[:300], names)
    write_folder(tmp_path / "test", pictures[300:], digits.target[300:360], names)
    spec = make_spec(
        TASKS.get("poisoning/images"), METHODS.get("dpa"), 0, "smoke",
        {"path": str(tmp_path / "train"), "test_path": str(tmp_path / "test")},
    )  # fmt: skip
    record = run_spec(spec, ResultStore(tmp_path / "results"), WorkerOptions(str(tmp_path)), "t")
    assert record["status"] == "ok", record["error"]
    assert record["metrics"]["clean_accuracy"]["value"] > 0.5
