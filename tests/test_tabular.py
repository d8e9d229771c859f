from __future__ import annotations

import math

import numpy as np
import pytest

from harness.artifacts import ArtifactCache
from harness.context import RunContext
from harness.errors import UserError
from harness.registries import METHODS, TASKS
from harness.spec import make_spec
from harness.store import ResultStore
from harness.worker import WorkerOptions, run_spec
from tasks.tabular.tasks import classification_metrics

TABULAR_METHODS = ["logreg", "hist-gb", "random-forest", "svm", "mlp"]


def _run(tmp_path, task, method, seed=0, scale="smoke", task_params=None):
    spec = make_spec(TASKS.get(task), METHODS.get(method), seed, scale, task_params)
    return run_spec(spec, ResultStore(tmp_path), WorkerOptions(str(tmp_path)), "test")


def test_classification_metrics_against_hand_values():
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.8, 0.2], [0.4, 0.6], [0.7, 0.3], [0.5, 0.5]])
    m = classification_metrics(y, proba)
    assert m["accuracy"] == 0.75  # the tie at row 4 goes to class 0 (argmax takes the first)
    assert m["balanced_accuracy"] == 0.75  # recall 1.0 on class 0, 0.5 on class 1
    expected_loss = -(math.log(0.8) + math.log(0.6) + math.log(0.3) + math.log(0.5)) / 4
    assert m["log_loss"] == pytest.approx(expected_loss)
    # positive scores 0.6, 0.3 against negatives 0.2, 0.5: pairs won 0.6>0.2, 0.6>0.5, 0.3>0.2 -> 3/4
    assert m["roc_auc"] == pytest.approx(0.75)


@pytest.mark.parametrize("method", TABULAR_METHODS)
def test_every_method_runs_on_iris_and_beats_chance(tmp_path, method):
    record = _run(tmp_path, "tabular/iris", method)
    assert record["status"] == "ok", record["error"]
    assert record["metrics"]["accuracy"]["value"] > 0.6  # chance is 1/3
    assert set(record["phases"]) >= {"load", "fit", "predict"}


def test_same_seed_same_metrics_other_seed_other_folds(tmp_path):
    a = _run(tmp_path, "tabular/wine", "random-forest", seed=3)
    b = _run(tmp_path, "tabular/wine", "random-forest", seed=3)
    c = _run(tmp_path, "tabular/wine", "random-forest", seed=4)

    def values(record):
        return {k: v["value"] for k, v in record["metrics"].items() if k != "fit_seconds"}

    assert values(a) == values(b)
    assert values(a) != values(c)


def test_folds_depend_only_on_the_seed():
    from sklearn.model_selection import StratifiedKFold

    from tasks.tabular.datasets import load_sklearn

    data = load_sklearn("iris")

    def split(seed):
        folds = StratifiedKFold(5, shuffle=True, random_state=seed).split(data.X, data.y)
        return [test.tolist() for _, test in folds]

    assert split(1) == split(1) != split(2)


def test_local_csv_with_text_column_and_missing_values(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["size,colour,label"]
    for _ in range(120):
        colour = rng.choice(["red", "blue"])
        size = rng.normal(3 if colour == "red" else 0, 1)
        rows.append(
            f"{'' if rng.random() < 0.05 else f'{size:.3f}'},{colour},{'big' if size > 1.5 else 'small'}"
        )
    csv = tmp_path / "t.csv"
    csv.write_text("\n".join(rows) + "\n")
    record = _run(tmp_path, "tabular/table", "hist-gb", task_params={"path": str(csv), "target": "label"})
    assert record["status"] == "ok", record["error"]
    assert record["metrics"]["accuracy"]["value"] > 0.8


def test_local_table_errors_name_the_file_and_column(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    task = TASKS.get("tabular/table")(path=str(csv), target="label")
    with pytest.raises(UserError, match=r"t.csv: target column 'label' not found \(columns: a, b\)"):
        task.load()
    with pytest.raises(UserError, match="does not exist"):
        TASKS.get("tabular/table")(path=str(tmp_path / "none.csv"), target="a").load()


def test_openml_loader_maps_frame_and_target(monkeypatch, tmp_path):
    """fetch_openml's answer, built from a local file of the same shape (a pandas frame and target names)."""
    import pandas as pd
    from sklearn.utils import Bunch

    frame = pd.DataFrame(
        {
            "x1": [0.1, 0.2, 0.9, 1.0] * 10,
            "kind": ["a", "b", "a", "b"] * 10,
            "class": ["neg", "neg", "pos", "pos"] * 10,
        }
    )
    frame["kind"] = frame["kind"].astype("category")
    seen = {}

    def fake_fetch(**kwargs):
        seen.update(kwargs)
        return Bunch(frame=frame, target_names=["class"])

    monkeypatch.setattr("sklearn.datasets.fetch_openml", fake_fetch)
    monkeypatch.setenv("LOGITBENCH_CACHE", str(tmp_path))
    data = TASKS.get("tabular/openml")(data_id=31).load()
    assert seen["data_id"] == 31 and str(tmp_path) in seen["data_home"]
    assert data.class_names == ("neg", "pos") and data.X.shape == (40, 3)  # x1 plus one-hot kind_a, kind_b
    assert data.coded.shape == (40, 2) and data.categorical == (False, True)  # x1 and kind as codes 0, 1
    assert data.coded[:4, 1].tolist() == [0, 1, 0, 1]
    assert data.source == "openml:31"


def test_openml_without_network_is_a_one_line_error(monkeypatch):
    def offline(**kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr("sklearn.datasets.fetch_openml", offline)
    with pytest.raises(UserError, match="OpenML dataset 61 could not be loaded.*needs a network"):
        TASKS.get("tabular/openml")(data_id=61).load()


def test_artifact_cache_builds_once(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = []

    def build(folder):
        calls.append(1)
        (folder / "weights.txt").write_text("w")

    ctx = RunContext(0, "cpu", 1, cache)
    first = ctx.artifacts.get_or_build("teacher", {"task": "x", "seed": 0}, build)
    second = ctx.artifacts.get_or_build("teacher", {"task": "x", "seed": 0}, build)
    assert first == second and len(calls) == 1 and (first / "weights.txt").read_text() == "w"
    assert cache.get_or_build("teacher", {"task": "x", "seed": 1}, build) != first and len(calls) == 2


def _write(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_text_columns_are_one_hot_for_every_method_and_coded_for_native_ones(tmp_path):
    csv = _write(tmp_path, "size,colour,label\n1.5,red,a\n2.5,,b\n0.5,blue,a\n3.0,red,b\n")
    data = TASKS.get("tabular/table")(path=str(csv), target="label").load()
    # one-hot exactly as before (a dummy per value and one for the empty cell, in polars' order)
    assert data.feature_names == ("size", "colour_blue", "colour_null", "colour_red")
    assert data.X[:, 1:].tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1]]
    X, categorical = data.features(categories_native=True)
    assert categorical.tolist() == [1]
    assert X[:, 0].tolist() == [1.5, 2.5, 0.5, 3.0]
    assert X[[0, 2, 3], 1].tolist() == [1, 0, 1] and np.isnan(X[1, 1])  # blue 0, red 1, empty NaN
    X, categorical = data.features(categories_native=False)
    assert X is data.X and categorical.size == 0


def test_a_typo_in_a_numeric_column_is_an_error_naming_file_column_and_row(tmp_path):
    rows = "\n".join(f"{i * 0.5},{'a' if i % 2 else 'b'}" for i in range(40))
    csv = _write(tmp_path, "size,label\n" + rows.replace("\n7.5,", "\n7.5x,") + "\n")
    task = TASKS.get("tabular/table")(path=str(csv), target="label")
    with pytest.raises(
        UserError, match=r"t.csv: column 'size' is numeric except 1 of 40 values: data row 16 \('7.5x'\)"
    ):
        task.load()
    # a word for a missing value that is no usual marker is the same mistake; the message says what is
    csv = _write(tmp_path, "size,label\n" + rows.replace("\n7.5,", "\nunknown,") + "\n")
    with pytest.raises(UserError, match="leave the cell empty, or NA, for a missing value"):
        task.load()
    # an empty cell, NA or ? is a missing value, not a typo, in a numeric or a text column
    for marker in ("", "NA", " ? "):
        lines = [f"{i * 0.5},k,{'a' if i % 2 else 'b'}" for i in range(40)]
        lines[15] = f"{marker},k,b"
        lines[1] = f"0.5,{marker},a"
        csv = _write(tmp_path, "size,kind,label\n" + "\n".join(lines) + "\n")
        data = task.load()
        assert np.isnan(data.X[15, 0]) and data.categorical == (False, True) and np.isnan(data.coded[1, 1])


def test_numbers_stored_as_text_are_numeric_and_real_text_stays_categorical(tmp_path):
    csv = _write(tmp_path, 'size,grade,label\n"1.5", low,a\n" 2",high,b\n3,mid,a\n4,low,b\n')
    data = TASKS.get("tabular/table")(path=str(csv), target="label").load()
    assert data.feature_names[0] == "size" and data.X[:, 0].tolist() == [1.5, 2.0, 3.0, 4.0]
    assert data.categorical == (False, True)
    # a column mostly text with a few numbers is categorical (3 of 4 values are text)
    csv = _write(tmp_path, "kind,label\nsmall,a\n2,b\nlarge,a\nsmall,b\n")
    data = TASKS.get("tabular/table")(path=str(csv), target="label").load()
    assert data.categorical == (True,) and data.X.shape == (4, 3)
