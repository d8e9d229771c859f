"""Issue 16's bad inputs: each is one `error:` line on stderr and exit 2 (or a warning, for a damaged record),
never a traceback or a hang, and the results folder is left byte for byte as it was.

The cases are the issue's commands; the property tests feed random bytes and random YAML or JSON to every
command that reads a file (leaderboards, records, baselines, asset wheels) and random text to the options.
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import os
import re
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import assets, baseline
from harness import cli as cli_module
from harness.cli import main
from harness.store import ResultStore

GOOD = {
    "name": "bad-inputs",
    "scale": "cpu",
    "seeds": [0, 1],
    "tasks": ["diag/echo"],
    "methods": [
        {"name": "diag-constant", "label": "a", "params": {"value": 1.0, "jitter": 0.1}},
        {"name": "diag-constant", "label": "b", "params": {"value": 2.0}},
    ],
}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path, with its bytes (an absent folder is empty)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The single error line the last command printed (and no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A board that ran once (4 ok records) and a baseline saved from it: (board, results, baselines)."""
    root = tmp_path_factory.mktemp("ran")
    board = root / "board.yaml"
    board.write_text(yaml.safe_dump(GOOD))
    results, baselines = root / "results", root / "baselines"
    assert main(["run", str(board), "--results", str(results), "--no-progress"]) == 0
    assert (
        main(["baseline", "save", str(board), "v1", "--results", str(results), "--dir", str(baselines)]) == 0
    )
    return board, results, baselines


# --- item 6: run options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--workers", "-1"], "--workers: expected a whole number from 1 to 512, got '-1'"),
        (["--workers", "0"], "--workers: expected a whole number from 1 to 512, got '0'"),
        (["--workers", "two"], "--workers: expected a whole number"),
        (["--timeout", "0"], "--timeout: expected seconds above 0"),
        (["--timeout", "-5"], "--timeout: expected seconds above 0"),
        (["--timeout", "nan"], "--timeout: expected seconds above 0.*got 'nan'"),
        (["--timeout", "inf"], "--timeout: expected seconds above 0.*got 'inf'"),
        (["--seeds", "3-1"], "seed range '3-1' runs backwards; write 1-3"),
        (["--seeds", "0-100000"], "'0-100000' asks for more than 1000 seeds"),
        (["--seeds", "0-99999999999999999999"], "above the largest seed"),
        (["--seeds", "-1"], "expected seeds like 0,1,2 or 0-4"),
        (["--seeds", "1,x"], "expected seeds like 0,1,2 or 0-4.*'x'"),
        (["--seeds", ","], "expected seeds like"),
        (["--tasks", ","], "--tasks: expected comma-separated labels"),
        (["--rerun", "sometimes"], "--rerun: invalid choice"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False])
def test_bad_run_options_are_one_line_errors(ran, capsys, options, message, dry_run):
    board, results, _ = ran
    before = snapshot(results)
    started = time.perf_counter()
    command = ["run", str(board), "--results", str(results), *options] + (["--dry-run"] if dry_run else [])
    assert main(command) == 2
    assert time.perf_counter() - started < 5, "a bad option is refused at once, not after planning"
    line = one_error(capsys)
    assert re.search(message, line), line
    assert snapshot(results) == before


def test_seed_lists_are_deduplicated_and_capped(ran, capsys):
    board, results, _ = ran
    assert cli_module._seeds("0-2,1,5") == [0, 1, 2, 5]
    assert len(cli_module._seeds("0-999")) == 1000
    started = time.perf_counter()
    assert main(["run", str(board), "--results", str(results), "--seeds", "0-999", "--dry-run"]) == 0
    assert time.perf_counter() - started < 60
    out = capsys.readouterr().out
    assert "plan for bad-inputs: 1996 to run, 4 cached" in out


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("seeds", [0, 0], r"seed\(s\) 0 appear more than once"),
        ("seeds", [-1], "seed -1 is outside 0..2147483647"),
        ("seeds", list(range(1001)), "1001 seeds, more than the 1000"),
        ("seeds", [], "non-empty list of integers"),
        ("timeout_s", float("nan"), "field 'timeout_s' must be a number of seconds above 0"),
        ("timeout_s", True, "field 'timeout_s' must be a number of seconds"),
        ("timeout_s", 0, "field 'timeout_s' must be a number of seconds"),
        ("builtin_only", "yes", "field 'builtin_only' must be true or false"),
        ("name", "../../escaped", "field 'name' must be 1 to 100 letters"),
        ("name", "x" * 300, "field 'name' must be 1 to 100 letters"),
        ("families", "tabular", "field 'families' must be a list of family names"),
        ("families", ["tabulr"], "unknown family 'tabulr'; did you mean 'tabular'"),
        ("description", {"a": 1}, "field 'description' must be text"),
    ],
)
def test_bad_board_fields_are_one_line_errors(tmp_path, capsys, field, value, message):
    board = tmp_path / "b.yaml"
    board.write_text(yaml.safe_dump({**GOOD, field: value}))
    assert main(["run", str(board), "--results", str(tmp_path / "r"), "--dry-run"]) == 2
    line = one_error(capsys)
    assert re.search(message, line) and str(board) in line, line
    assert not (tmp_path / "r").exists()


# --- item 7: files, folders, parameters ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "message"),
    [
        (".nan", r"params.value: nan is not a finite number"),
        ("-.inf", r"params.value: -inf is not a finite number"),
        ("2024-01-31", r"params.value: datetime.date\(2024, 1, 31\) is a date"),
        ("2024-13-45", "malformed YAML"),
        ("1" * 30, "does not fit in 64 bits"),
        ("!!set {a: null}", "is a set"),
        ("!!binary aGVsbG8=", "is a bytes"),
        ("!!python/object:os.system x", "malformed YAML"),
    ],
)
def test_method_params_must_be_plain_finite_data(tmp_path, capsys, param, message):
    board = tmp_path / "b.yaml"
    board.write_text(
        f"name: x\ntasks: [diag/echo]\nmethods: [{{name: diag-constant, params: {{value: {param}}}}}]\n"
    )
    assert main(["run", str(board), "--results", str(tmp_path / "r"), "--dry-run"]) == 2
    line = one_error(capsys)
    assert re.search(message, line), line


@pytest.mark.parametrize("label", ["[/]", "a,b", "x" * 101, "[bold]"])
def test_labels_that_tables_or_the_tasks_option_cannot_show_are_refused(tmp_path, capsys, label):
    board = tmp_path / "b.yaml"
    board.write_text(yaml.safe_dump({**GOOD, "methods": [{"name": "diag-constant", "label": label}]}))
    assert main(["show", str(board), "--results", str(tmp_path / "r")]) == 2
    assert "'label' must be up to 100 printable characters" in one_error(capsys)


def test_board_paths_that_are_binary_folders_or_missing(tmp_path, capsys):
    binary = tmp_path / "board.yaml"
    binary.write_bytes(bytes(range(256)))
    no_suffix = tmp_path / "board"
    no_suffix.write_bytes(b"\xff\xfe\x00garbage")
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    cases = [
        (str(binary), "not UTF-8 text"),
        (str(no_suffix), "not UTF-8 text"),
        (str(folder), "is a folder, expected a leaderboard YAML file"),
        (str(tmp_path), "is a folder"),
        (".", "is a folder"),
        (str(tmp_path / "missing.yaml"), "leaderboard file .*missing.yaml does not exist"),
        ("quik", "unknown leaderboard 'quik'; did you mean 'quick'"),
    ]
    for path, message in cases:
        for command in (["run", path, "--dry-run"], ["show", path], ["baseline", "save", path, "v"]):
            assert main([*command, "--results", str(tmp_path / "r")]) == 2
            line = one_error(capsys)
            assert re.search(message, line), line
    assert not (tmp_path / "r").exists()


def test_a_results_path_that_is_a_file_or_not_writable(ran, tmp_path, capsys, monkeypatch):
    board, _results, baselines = ran
    a_file = tmp_path / "file"
    a_file.write_text("x")
    commands = [
        ["run", str(board)],
        ["run", str(board), "--dry-run"],
        ["show", str(board)],
        ["baseline", "save", str(board), "v2", "--dir", str(tmp_path / "b")],
        ["compare", str(board), "--baseline", "v1", "--dir", str(baselines)],
    ]
    for command in commands:
        for where in (a_file, a_file / "sub"):
            assert main([*command, "--results", str(where)]) == 2
            assert "is a file, expected a folder" in one_error(capsys)
    monkeypatch.setenv("LOGITBENCH_RESULTS", str(a_file))
    assert main(["show", str(board)]) == 2
    assert "($LOGITBENCH_RESULTS or default)" in one_error(capsys)
    assert a_file.read_text() == "x" and not (tmp_path / "b").exists()

    # Not writable: `run` refuses before it starts; reading commands still work.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        cli_module.os,
        "access",
        lambda p, mode: real_access(p, mode) and not (mode & os.W_OK and Path(p) == locked),
    )
    assert main(["run", str(board), "--results", str(locked)]) == 2
    assert f"results folder {locked} is not writable" in one_error(capsys)
    assert main(["run", str(board), "--results", str(locked), "--dry-run"]) == 0
    assert main(["show", str(board), "--results", str(locked)]) == 0
    assert list(locked.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_a_read_only_results_folder_is_refused_by_run(ran, tmp_path, capsys):
    board, _, _ = ran
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["run", str(board), "--results", str(locked)]) == 2
        assert "is not writable" in one_error(capsys)
    finally:
        locked.chmod(0o700)


def test_show_output_into_a_missing_folder_or_onto_a_folder(ran, tmp_path, capsys):
    board, results, _ = ran
    for output, message in (
        (tmp_path / "missing" / "x.html", "folder .*missing does not exist"),
        (tmp_path, "is a folder; give a file name"),
    ):
        for fmt in ("html", "md", "csv", "parquet"):
            assert (
                main(["show", str(board), "--results", str(results), "--format", fmt, "-o", str(output)]) == 2
            )
            assert re.search(message, one_error(capsys))
    assert not (tmp_path / "missing").exists()
    good = tmp_path / "x.md"
    assert main(["show", str(board), "--results", str(results), "--format", "md", "-o", str(good)]) == 0
    assert "diag/echo" in good.read_text()


def test_show_metric_must_be_one_the_tasks_report(ran, tmp_path, capsys, board_file):
    board, results, _ = ran
    assert main(["show", str(board), "--results", str(results), "--metric", "scor"]) == 2
    assert "no task reports metric 'scor'; did you mean 'score'? (metrics: score, seconds)" in one_error(
        capsys
    )
    assert main(["show", str(board), "--results", str(results), "--metric", "seconds"]) == 0
    capsys.readouterr()
    mixed = board_file("name: m\ntasks: [diag/echo, tabular/iris]\nmethods: [diag-constant, logreg]\n")
    assert main(["show", str(mixed), "--results", str(results), "--metric", "accuracyy"]) == 2
    assert "did you mean 'accuracy'" in one_error(capsys)
    assert main(["show", str(mixed), "--results", str(results), "--metric", "accuracy"]) == 2
    assert (
        "metric 'accuracy' is not reported by task(s) diag/echo; narrow the board with --tasks"
        in one_error(capsys)
    )
    assert (
        main(
            ["show", str(mixed), "--results", str(results), "--metric", "accuracy", "--tasks", "tabular/iris"]
        )
        == 0
    )


def test_argparse_errors_are_one_line_and_main_returns_their_code(capsys):
    assert main(["run"]) == 2
    assert "the following arguments are required: leaderboard" in one_error(capsys)
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in one_error(capsys)
    assert main(["--help"]) == 0


# --- item 9: baselines -----------------------------------------------------------------------------------


def _baseline_doc(ran) -> dict:
    _, _, baselines = ran
    return json.loads((baselines / "bad-inputs" / "v1.json").read_text())


def _without(document: dict, *path: object) -> dict:
    out = copy.deepcopy(document)
    target = out
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return out


def _with(document: dict, value: object, *path: object) -> dict:
    out = copy.deepcopy(document)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: _without(d, "cells"), "field 'cells' must be a non-empty list"),
        (lambda d: _without(d, "schema"), "not a logitbench baseline"),
        (lambda d: _with(d, [], "cells"), "field 'cells' must be a non-empty list"),
        (lambda d: _without(d, "cells", 0, "metrics"), r"cells\[0\] \(diag/echo × a\): field 'metrics'"),
        (lambda d: _without(d, "cells", 0, "task"), r"cells\[0\]: field 'task' must be a non-empty string"),
        (lambda d: _without(d, "cells", 0, "metrics", "score", "values"), "metric 'score': field 'values'"),
        (
            lambda d: _with(d, [], "cells", 0, "metrics", "score", "values"),
            "field 'values' must be a non-empty",
        ),
        (lambda d: _with(d, ["0.9", "1"], "cells", 0, "metrics", "score", "values"), "finite numbers"),
        (lambda d: _with(d, "high", "cells", 0, "metrics", "score", "higher_is_better"), "true or false"),
        (lambda d: _with(d, "0.1", "cells", 0, "metrics", "score", "tolerance"), "field 'tolerance' must be"),
        (lambda d: _with(d, -1, "cells", 0, "metrics", "score", "tolerance"), "field 'tolerance' must be"),
        (lambda d: _with(d, "x", "cells", 0), r"cells\[0\]: expected an object"),
    ],
)
def test_damaged_baselines_are_one_line_errors(ran, tmp_path, capsys, damage, message):
    board, results, _ = ran
    file = tmp_path / "bad-inputs" / "v1.json"
    file.parent.mkdir()
    file.write_text(json.dumps(damage(_baseline_doc(ran))))
    before = snapshot(results)
    assert (
        main(["compare", str(board), "--results", str(results), "--baseline", "v1", "--dir", str(tmp_path)])
        == 2
    )
    line = one_error(capsys)
    assert re.search(message, line) and str(file) in line, line
    assert snapshot(results) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (bytes(range(256)), "not UTF-8 text"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a logitbench baseline"),
        (b"", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_binary_or_non_json_baselines_are_one_line_errors(ran, tmp_path, capsys, content, message):
    board, results, _ = ran
    file = tmp_path / "bad-inputs" / "v1.json"
    file.parent.mkdir()
    file.write_bytes(content)
    assert (
        main(["compare", str(board), "--results", str(results), "--baseline", "v1", "--dir", str(tmp_path)])
        == 2
    )
    assert message in one_error(capsys)


def test_compare_refuses_a_negative_tolerance_and_an_alpha_outside_0_1(ran, capsys):
    board, results, baselines = ran
    base = ["compare", str(board), "--results", str(results), "--baseline", "v1", "--dir", str(baselines)]
    for options, message in (
        (["--tolerance", "-1", "--alpha", "5"], "--tolerance: expected a finite number ≥ 0"),
        (["--alpha", "5"], "--alpha: expected a significance level between 0 and 1"),
        (["--alpha", "0"], "--alpha: expected a significance level"),
        (["--tolerance", "nan"], "--tolerance: expected a finite number"),
    ):
        assert main(base + options) == 2
        assert message in one_error(capsys)
    assert main(base) == 0, "identical results are the same, not worse"
    assert "0 worse" in capsys.readouterr().out
    with pytest.raises(Exception, match="tolerance must be a finite number"):
        baseline.compare(None, [], {}, {"cells": []}, tolerance=-1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "/abs", "..", ".hidden", "x" * 300, "v1.json", ""])
def test_baseline_names_cannot_leave_their_folder(ran, tmp_path, capsys, name):
    board, results, _ = ran
    folder = tmp_path / "deep" / "D"
    assert main(["baseline", "save", str(board), name, "--results", str(results), "--dir", str(folder)]) == 2
    assert "baseline name" in one_error(capsys)
    assert (
        main(["compare", str(board), "--results", str(results), "--baseline", name, "--dir", str(folder)])
        == 2
    )
    assert "baseline name" in one_error(capsys)
    assert snapshot(tmp_path) == {}, "nothing is written anywhere"


def test_baseline_save_defaults_to_the_working_directory_and_compare_finds_it(
    ran, tmp_path, capsys, monkeypatch
):
    from harness.leaderboard import leaderboards_dir

    board, results, _ = ran
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOGITBENCH_BASELINES", raising=False)
    shipped = snapshot(leaderboards_dir())
    assert main(["baseline", "save", str(board), "mine", "--results", str(results)]) == 0
    saved = tmp_path / "logitbench-baselines" / "bad-inputs" / "mine.json"
    assert saved.is_file() and snapshot(leaderboards_dir()) == shipped, "never into the installed package"
    assert main(["compare", str(board), "--results", str(results), "--baseline", "mine"]) == 0
    assert "logitbench-baselines/bad-inputs/mine.json" in capsys.readouterr().out
    monkeypatch.setenv("LOGITBENCH_BASELINES", str(tmp_path / "elsewhere"))
    assert main(["baseline", "save", str(board), "env", "--results", str(results)]) == 0
    assert (tmp_path / "elsewhere" / "bad-inputs" / "env.json").is_file()
    assert main(["compare", str(board), "--results", str(results), "--baseline", "mine"]) == 2
    assert "looked for" in one_error(capsys)
    assert baseline.search_dirs() == [tmp_path / "elsewhere", leaderboards_dir() / "baselines"]


def test_baseline_save_into_a_folder_below_a_file_is_a_one_line_error(ran, tmp_path, capsys):
    board, results, _ = ran
    (tmp_path / "f").write_text("")
    assert (
        main(["baseline", "save", str(board), "v", "--results", str(results), "--dir", str(tmp_path / "f")])
        == 2
    )
    assert "is a file, not a folder" in one_error(capsys)


# --- item 13: inputs checked at plan time ----------------------------------------------------------------


def test_missing_files_and_columns_are_found_by_dry_run_before_anything_runs(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("a,b,y\n1,2,0\n3,4,1\n")
    images = tmp_path / "i.npz"
    np.savez(images, pixels=np.zeros((4, 8, 8)), y=np.arange(4))
    questions = tmp_path / "q.jsonl"
    rows = [{"question": f"q{i}", "choices": ["a", "b", "c", "d"], "answer": i % 4} for i in range(10)]
    questions.write_text("\n".join(json.dumps(r) for r in rows))
    board = tmp_path / "b.yaml"
    board.write_text(
        yaml.safe_dump(
            {
                "name": "inputs",
                "tasks": [
                    {"name": "tabular/table", "params": {"path": str(tmp_path / "none.csv"), "target": "y"}},
                    {
                        "name": "tabular/table",
                        "params": {"path": str(table), "target": "label"},
                        "label": "t2",
                    },
                    {"name": "tabular/table", "params": {"path": str(table), "target": "y"}, "label": "ok"},
                    {"name": "poisoning/images", "params": {"path": str(images)}},
                    {"name": "mcq/file", "params": {"path": str(questions)}},
                    {
                        "name": "mcq/file",
                        "params": {"path": str(questions), "calibration": 4, "test": 6},
                        "label": "q",
                    },
                ],
                "methods": ["logreg", "dpa", "zero-shot"],
            }
        )
    )
    results = tmp_path / "r"
    for dry in (["--dry-run"], []):
        assert main(["run", str(board), "--results", str(results), *dry]) == 2
        line = one_error(capsys)
        assert "task 'tabular/table': table file" in line and "none.csv does not exist" in line
        assert "task 't2': " in line and "target column 'label' not found (columns: a, b, y)" in line
        assert "task 'poisoning/images': " in line and "found ['pixels', 'y']" in line
        assert "task 'mcq/file': the suite has 10 questions; calibration=60 + test=160 is more" in line
        assert "'ok'" not in line and "'q'" not in line
    assert not results.exists(), "nothing ran"
    assert main(["run", str(board), "--results", str(results), "--tasks", "ok,q", "--dry-run"]) == 0


# --- property tests: random files and random option values ------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["diag/echo", "diag-constant", "[/]", "../x", "0-3", "cpu", "tabular"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(document: object, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON-like document."""
    out = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            out += _paths(value, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, document: object) -> object:
    """`document` with one value anywhere inside replaced (or one key added to a mapping)."""
    out = copy.deepcopy(document)
    path = draw(st.sampled_from(_paths(out)))
    value = draw(VALUES)
    target = out
    for step in path[:-1]:
        target = target[step]
    if draw(st.booleans()) and isinstance(target, dict):
        target[draw(st.text(max_size=8))] = value
    else:
        target[path[-1]] = value
    return out


def file_contents(document: object, dump) -> st.SearchStrategy[bytes]:  # type: ignore[no-untyped-def]
    """Random bytes, random text, a random YAML/JSON document, or the real document with one value changed."""
    return st.one_of(
        st.binary(max_size=400),
        st.text(max_size=200).map(str.encode),
        VALUES.map(lambda v: yaml.safe_dump(v).encode()),
        mutated(document).map(lambda d: dump(d).encode()),
    )


# 60 random inputs a test keep the default run fast; LOGITBENCH_FUZZ_EXAMPLES=2000 searches harder.
PROPERTY = settings(
    max_examples=int(os.environ.get("LOGITBENCH_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)


def _check(command: list[str], capsys: pytest.CaptureFixture[str]) -> int:
    code = main(command)  # an exception escaping main is the traceback the property forbids
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 1, 2), (command, code, err)
    if code == 2:
        assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err
    return code


@PROPERTY
@given(content=file_contents(GOOD, yaml.safe_dump))
def test_random_leaderboard_files(ran, tmp_path, capsys, content):
    _, results, baselines = ran
    board = tmp_path / "random.yaml"
    board.write_bytes(content)
    before, saved = snapshot(results), snapshot(baselines)
    out = tmp_path / "out"
    for command in (
        ["run", str(board), "--dry-run"],
        ["show", str(board)],
        ["show", str(board), "--format", "csv"],
        ["baseline", "save", str(board), "fuzz", "--dir", str(out)],
        ["compare", str(board), "--baseline", "v1", "--dir", str(baselines)],
    ):
        _check([*command, "--results", str(results)], capsys)
    assert snapshot(results) == before and snapshot(baselines) == saved


@pytest.fixture(scope="module")
def record(ran) -> tuple[Path, dict]:
    _, results, _ = ran
    store = ResultStore(results)
    (key,) = list(store.all_keys())[:1]
    return store.path(key), json.loads(store.path(key).read_text())


@PROPERTY
@given(data=st.data())
def test_random_record_files(ran, record, tmp_path, capsys, data):
    board, results, baselines = ran
    path, document = record
    original = path.read_bytes()
    content = data.draw(file_contents(document, json.dumps))
    try:
        path.write_bytes(content)
        before = snapshot(results)
        for command in (
            ["show", str(board)],
            ["run", str(board), "--dry-run"],
            ["compare", str(board), "--baseline", "v1", "--dir", str(baselines)],
            ["baseline", "save", str(board), "fuzz", "--dir", str(tmp_path / "out")],
        ):
            code = _check([*command, "--results", str(results)], capsys)
            assert code != 2 or command[0] == "baseline", "a damaged record is a warning, not an error"
        assert snapshot(results) == before, "reading never rewrites or removes a record"
    finally:
        path.write_bytes(original)


@PROPERTY
@given(content=file_contents(GOOD, json.dumps))
def test_random_baseline_files(ran, tmp_path, capsys, content):
    board, results, _baselines = ran
    file = tmp_path / "bad-inputs" / "fuzz.json"
    file.parent.mkdir(exist_ok=True)
    file.write_bytes(content)
    before = snapshot(results)
    _check(
        ["compare", str(board), "--results", str(results), "--baseline", "fuzz", "--dir", str(tmp_path)],
        capsys,
    )
    assert snapshot(results) == before


@PROPERTY
@given(data=st.data())
def test_random_baseline_contents_of_the_right_shape(ran, tmp_path, capsys, data):
    board, results, _ = ran
    content = data.draw(mutated(_baseline_doc(ran)).map(json.dumps))
    file = tmp_path / "bad-inputs" / "fuzz.json"
    file.parent.mkdir(exist_ok=True)
    file.write_text(content)
    _check(
        ["compare", str(board), "--results", str(results), "--baseline", "fuzz", "--dir", str(tmp_path)],
        capsys,
    )


@pytest.fixture
def fake_asset(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGITBENCH_CACHE", str(tmp_path / "cache"))
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/data.txt", "real data")
    asset = assets.Asset(
        "fuzz", "pkg", "1.0", hashlib.sha256(wheel.read_bytes()).hexdigest(), ("pkg/data.txt",), ""
    )
    monkeypatch.setitem(assets.ASSETS, "fuzz", asset)
    return asset, wheel


@PROPERTY
@given(content=st.binary(max_size=400))
def test_random_wheel_files(fake_asset, tmp_path, capsys, content):
    asset, _wheel = fake_asset
    bad = tmp_path / "random.whl"
    bad.write_bytes(content)
    before = snapshot(tmp_path / "cache")
    assert _check(["assets", "pull", "fuzz", "--wheel", str(bad)], capsys) == 2
    assert snapshot(tmp_path / "cache") == before
    assert not assets.is_cached(asset)


OPTION_TEXT = st.one_of(
    st.text(max_size=12), st.sampled_from(["nan", "inf", "-0", "1e400", "0x10", "3-1", "1--2"])
)


@PROPERTY
@given(
    option=st.sampled_from(["--seeds", "--workers", "--timeout", "--tasks", "--methods"]), value=OPTION_TEXT
)
def test_random_run_option_values(ran, capsys, option, value):
    board, results, _ = ran
    before = snapshot(results)
    _check(["run", str(board), "--results", str(results), "--dry-run", option, value], capsys)
    assert snapshot(results) == before


@PROPERTY
@given(
    option=st.sampled_from(["--tolerance", "--alpha", "--baseline"]),
    value=OPTION_TEXT,
)
def test_random_compare_option_values(ran, capsys, option, value):
    board, results, baselines = ran
    command = ["compare", str(board), "--results", str(results), "--dir", str(baselines), option, value]
    if option != "--baseline":
        command += ["--baseline", "v1"]
    _check(command, capsys)


# --- the bad-input audit: YAML aliases and repeated keys, papers' files, baselines, plugins, paths --------


def laughs(levels: int = 8) -> str:
    """A YAML value of 9**(levels+1) items in a few hundred bytes: each list repeats the one before nine
    times by alias (the 'billion laughs')."""
    text = "&a0 [x, x, x, x, x, x, x, x, x]"
    for i in range(1, levels + 1):
        text = f"&a{i} [{text}, {', '.join([f'*a{i - 1}'] * 8)}]"
    return text


@pytest.mark.parametrize(
    ("board", "message"),
    [
        (
            "name: x\ntasks: [diag/echo]\nmethods: [{name: diag-constant, params: &p {value: *p}}]\n",
            r"params\.value\.value.*: nested more than 32 levels deep \(a YAML alias inside itself\?\)",
        ),
        (
            "name: x\ntasks: [diag/echo]\n"
            f"methods: [{{name: diag-constant, params: {{value: {laughs()}}}}}]\n",
            r"params\.value[\[\]0-9]*: more than 100000 values in all",
        ),
        (f"name: {laughs()}\n", r"field 'name' must be 1 to 100 letters.*got \[\[\["),
        (f"name: x\ndescription: {laughs()}\n", r"field 'description' must be text, got \[\[\["),
        (f"name: x\nseeds: {laughs()}\n", "field 'seeds' must be a non-empty list of integers"),
        (f"name: x\nfamilies: {laughs()}\n", "field 'families' must be a list of family names"),
    ],
)
def test_yaml_aliases_that_contain_themselves_or_explode_are_one_line_errors(
    tmp_path, capsys, board, message
):
    """Before: RecursionError (a traceback), or a repr or check of 387 million values that never ended."""
    file = tmp_path / "b.yaml"
    file.write_text(board)
    started = time.perf_counter()
    assert main(["run", str(file), "--results", str(tmp_path / "r"), "--dry-run"]) == 2
    assert time.perf_counter() - started < 10
    line = one_error(capsys)
    assert re.search(message, line) and str(file) in line and len(line) < 2000, line


@pytest.mark.parametrize(
    ("board", "message"),
    [
        (
            "name: x\ntasks: [diag/echo]\nmethods: [diag-constant]\n"
            "methods: [{name: diag-constant, label: b}]\n",
            r"line 4, column 1: malformed YAML \(key 'methods' appears twice \(first on line 3\)\)",
        ),
        (
            "name: x\ntasks: [diag/echo]\nmethods: [{name: diag-constant, params: {value: 1, value: 2}}]\n",
            r"line 3, .*key 'value' appears twice \(first on line 3\)",
        ),
    ],
)
def test_a_key_written_twice_is_an_error_not_silently_the_last(tmp_path, capsys, board, message):
    """Before: PyYAML kept the last value, so the board ran only the second `methods:` list."""
    file = tmp_path / "b.yaml"
    file.write_text(board)
    for command in (["run", str(file), "--dry-run"], ["show", str(file)]):
        assert main([*command, "--results", str(tmp_path / "r")]) == 2
        line = one_error(capsys)
        assert re.search(message, line) and str(file) in line, line


def test_yaml_merge_keys_may_still_be_overridden(tmp_path, capsys):
    file = tmp_path / "b.yaml"
    file.write_text(
        "name: x\ntasks: [diag/echo]\nmethods:\n"
        "  - &base {name: diag-constant, label: a, params: {value: 1}}\n"
        "  - {<<: *base, label: b}\n"
    )
    assert main(["run", str(file), "--results", str(tmp_path / "r"), "--dry-run"]) == 0
    assert "method b (diag-constant): jitter=0.0, value=1.0" in capsys.readouterr().out


def test_a_mapping_merged_in_before_it_is_read_is_checked_as_written(tmp_path):
    """A later mapping merges one that itself merges and overrides an anchor: PyYAML flattens the inner one
    in place first, which put 'value' in it twice for a check made when it was read."""
    from harness.leaderboard import read_yaml

    text = (
        "base: &base {value: 5, jitter: 0.0}\n"
        "methods: [{name: diag-constant, params: &small {<<: *base, value: 1}}]\n"
        "extra: {<<: *small, jitter: 3}\n"
    )
    file = tmp_path / "b.yaml"
    file.write_text(text)
    assert read_yaml(file, "leaderboard") == yaml.safe_load(text)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("reported: [", "malformed YAML"),
        ("- a\n- b\n", "expected a mapping with keys source and reported"),
        ("reported: 5\n", "field 'reported' must be a list"),
        (
            "reported: [{task: diag/echo, metric: score, value: .nan}]\n",
            r"reported\[0\] needs .*finite numeric",
        ),
        ("reported: [{task: diag/echo, value: 1}]\n", r"reported\[0\] needs task and metric"),
        ("reported: [oops]\n", r"reported\[0\] needs"),
        ("reported: []\nreported: []\n", "appears twice"),
    ],
)
def test_malformed_papers_files_are_one_line_errors(tmp_path, capsys, monkeypatch, content, message):
    """Before: a YAML error, AttributeError or TypeError traceback from `show` of any paper-scale board."""
    from harness import papers

    (tmp_path / "papers").mkdir()
    bad = tmp_path / "papers" / "bad.yaml"
    bad.write_text(content)
    monkeypatch.setattr(papers, "leaderboards_dir", lambda: tmp_path)
    board = tmp_path / "b.yaml"
    board.write_text(yaml.safe_dump({**GOOD, "scale": "paper"}))
    assert main(["show", str(board), "--results", str(tmp_path / "r")]) == 2
    line = one_error(capsys)
    assert re.search(message, line) and str(bad) in line, line
    bad.write_text("source: a paper\nreported: [{task: diag/echo, metric: score, value: 9.5, unit: '%'}]\n")
    assert main(["show", str(board), "--results", str(tmp_path / "r")]) == 0
    assert "9.5 %" in capsys.readouterr().out
    # YAML reads 1e-3 (no dot) and anything quoted as text: numbers all the same, as before the audit.
    bad.write_text(
        "reported: [{task: diag/echo, metric: score, value: 1e-3},\n"
        "  {task: diag/echo, metric: score, value: '71.2'}]\n"
    )
    assert [r.value for r in papers.reported_numbers()] == [0.001, 71.2]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("seeds", 5, "field 'seeds' must be a list of whole numbers, got 5"),
        ("seeds", ["0"], "field 'seeds' must be a list of whole numbers"),
        ("environment", "x", "field 'environment' must be an object, got 'x'"),
        ("environment", [1], "field 'environment' must be an object"),
        ("saved_at", 5, "field 'saved_at' must be text, got 5"),
        ("name", None, "field 'name' must be text, got None"),
        ("scale", "paper", "saved at scale 'paper', but leaderboard 'bad-inputs' .* runs at scale 'cpu'"),
    ],
)
def test_baseline_header_fields_are_checked_for_show_and_compare(
    ran, tmp_path, capsys, field, value, message
):
    """Before: `show --baseline` raised TypeError on `seeds: 5` and AttributeError on `environment: "x"`;
    a baseline saved at another scale was compared cell by cell as if it were this one's."""
    board, results, _ = ran
    file = tmp_path / "bad-inputs" / "v1.json"
    file.parent.mkdir()
    file.write_text(json.dumps(_with(_baseline_doc(ran), value, field)))
    before = snapshot(results)
    for command in (["show", str(board), "--baseline", "v1"], ["compare", str(board), "--baseline", "v1"]):
        assert main([*command, "--results", str(results), "--dir", str(tmp_path)]) == 2
        line = one_error(capsys)
        assert re.search(message, line) and str(file) in line, line
    assert snapshot(results) == before


def test_a_home_folder_of_no_such_user_is_a_one_line_error(tmp_path, capsys):
    """`~data.csv` (for `~/data.csv`) names the home of a user 'data.csv'; before: RuntimeError traceback."""
    board = tmp_path / "b.yaml"
    board.write_text(
        yaml.safe_dump(
            {
                "name": "home",
                "tasks": [
                    {"name": "tabular/table", "params": {"path": "~no-such-user-xyz/t.csv", "target": "y"}}
                ],
                "methods": ["logreg"],
            }
        )
    )
    assert main(["run", str(board), "--results", str(tmp_path / "r"), "--dry-run"]) == 2
    line = one_error(capsys)
    assert "parameter 'path' of task 'tabular/table'" in line and str(board) in line, line
    assert "'~no-such-user-xyz' would be the home folder of user 'no-such-user-xyz'" in line, line


def test_no_home_folder_for_the_cache_is_a_one_line_error(monkeypatch):
    from harness.errors import UserError

    monkeypatch.delenv("LOGITBENCH_CACHE", raising=False)

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(assets.Path, "home", staticmethod(no_home))
    with pytest.raises(UserError, match=r"no home folder to keep the cache in; set \$LOGITBENCH_CACHE"):
        assets.cache_root()


BROKEN_PLUGIN = """
from dataclasses import dataclass
from typing import ClassVar

from harness.components import Metric, Task
from harness.registries import register_method, register_task
from lb_diagnostics import DiagnosticMethod, EchoTask


@register_task("audit/no-metrics")
@dataclass(kw_only=True)
class NoMetrics(Task):
    family: ClassVar[str] = "diagnostics"
    method_protocol: ClassVar[type] = DiagnosticMethod


@register_task("audit/wrong-primary")
@dataclass(kw_only=True)
class WrongPrimary(EchoTask):
    primary_metric: ClassVar[str] = "accuracy"


@register_task("audit/listed-primary")
@dataclass(kw_only=True)
class ListedPrimary(EchoTask):
    primary_metric: ClassVar = ["score"]


@register_method("audit-own-check-params")
@dataclass(kw_only=True)
class OwnCheckParams(DiagnosticMethod):
    def check_params(self):  # a method of the plugin's own under the class variable's name
        return True

    def score(self, seed):
        return 4.0


@register_task("audit/tradeoff")
@dataclass(kw_only=True)
class Tradeoff(EchoTask):
    tradeoff: ClassVar = "score"


@register_method("audit-unknown-type")
@dataclass(kw_only=True)
class UnknownType(DiagnosticMethod):
    size: "NoSuchType" = None  # noqa: F821

    def score(self, seed):
        return 1.0


@register_method("audit-int-version")
@dataclass(kw_only=True)
class IntVersion(DiagnosticMethod):
    version: ClassVar = 2

    def score(self, seed):
        return 1.0


@register_method("audit-check-params")
@dataclass(kw_only=True)
class CheckParams(DiagnosticMethod):
    check_params: ClassVar = ["value"]

    def score(self, seed):
        return 1.0


@register_method(5)
@dataclass(kw_only=True)
class Numbered(DiagnosticMethod):
    def score(self, seed):
        return 1.0


@register_method("audit-fine")
@dataclass(kw_only=True)
class Fine(DiagnosticMethod):
    def score(self, seed):
        return 3.0
"""


@pytest.fixture
def plugin_registries(tmp_path, monkeypatch):
    """TASKS and METHODS as they are, put back afterwards so that no test plugin leaks into other tests;
    `load(*modules)` imports plugin modules written to tmp_path through $LOGITBENCH_PLUGIN_MODULES."""
    from harness.registries import METHODS, TASKS

    TASKS.load()
    METHODS.load()
    saved = [(r, {k: dict(v) for k, v in vars(r).items() if isinstance(v, dict)}) for r in (TASKS, METHODS)]
    monkeypatch.syspath_prepend(str(tmp_path))
    modules: list[str] = []

    def load(*names: str, **sources: str) -> None:
        for name, text in sources.items():
            (tmp_path / f"{name}.py").write_text(text)
            modules.append(name)
        monkeypatch.setenv("LOGITBENCH_PLUGIN_MODULES", ",".join(["lb_diagnostics", *names, *sources]))
        TASKS.reset()
        METHODS.reset()

    yield load
    for registry, state in saved:
        for k, v in state.items():
            setattr(registry, k, v)
        registry.reset()
    for name in modules:
        sys.modules.pop(name, None)


def test_plugins_missing_declarations_are_left_out_with_a_warning(plugin_registries, tmp_path, capsys):
    """Before: `list` died on AttributeError (no metrics), NameError (an annotation naming an unknown
    type) or TypeError (a name that is a number); an int version failed every run ('version 2 here, the
    spec asks for 2')."""
    plugin_registries(audit_plugin=BROKEN_PLUGIN)
    assert main(["list"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    warnings = " ".join(captured.err.split())
    for name, cause in (
        ("audit/no-metrics", "class variable 'metrics' must be a non-empty tuple"),
        ("audit/wrong-primary", "class variable 'primary_metric' is 'accuracy', not one of its metrics"),
        ("audit/listed-primary", "class variable 'primary_metric' is ['score'], not one of its metrics"),
        ("audit/tradeoff", "class variable 'tradeoff' must be None or two metric names, got 'score'"),
        ("audit-unknown-type", "its parameters cannot be read (NameError: name 'NoSuchType' is not defined)"),
        ("audit-int-version", "its version must be non-empty text such as '1', got 2"),
        ("audit-check-params", "class variable 'check_params' must be a mapping"),
    ):
        assert f"'{name}' (module audit_plugin): {cause}" in warnings, (name, warnings)
        assert f"'{name}' is left out" in warnings
        assert main(["describe", name]) == 2
        line = " ".join(one_error(capsys).split())
        assert f"'{name}' cannot be used:" in line and cause in line, line
    assert "method name 5 (module audit_plugin) must be non-empty text; it is left out" in warnings
    assert "audit-fine" in captured.out
    assert main(["describe", "audit-fine"]) == 0
    assert main(["describe", "audit-own-check-params"]) == 0, "a method named check_params is no declaration"


def test_a_plugin_module_that_exits_or_is_a_file_name_is_a_warning(plugin_registries, capsys):
    """Before: a plugin that parsed its own arguments on import (SystemExit) ended logitbench silently."""
    plugin_registries(audit_exits="import sys\nsys.exit(3)\n")
    assert main(["list", "tasks"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "plugin module 'audit_exits' from $LOGITBENCH_PLUGIN_MODULES cannot be imported (SystemExit: 3)"
        in err
    )
    plugin_registries("audit_missing.py")
    assert main(["list", "tasks"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "'audit_missing.py'" in err and "name a module importable from PYTHONPATH" in err


def squash(text: str) -> str:
    """`text` without whitespace: rich folds a long path over lines."""
    return "".join(text.split())


def test_paths_with_markup_brackets_are_printed_as_they_are(ran, tmp_path, capsys):
    """Before: a results folder or output file named like `x[/]y` was read as rich markup: MarkupError."""
    board, results, _ = ran
    odd = tmp_path / "x[" / "]y"  # the path .../x[/]y
    odd.mkdir(parents=True)
    output = odd / "t.md"
    assert main(["show", str(board), "--results", str(results), "--format", "md", "-o", str(output)]) == 0
    assert squash(f"wrote {output}") in squash(capsys.readouterr().out)
    assert main(["run", str(board), "--results", str(odd), "--no-progress", "--seeds", "0"]) == 0
    out = squash(capsys.readouterr().out)
    assert squash(f"(results in {odd})") in out and squash(f"report: {odd}/reports/bad-inputs.html") in out


def test_a_record_with_an_infinite_or_deeply_nested_wall_time_does_not_break_the_plan(ran, tmp_path, capsys):
    """Before: `wall_seconds: 1e999` (read as inf) in a record of the kind planned made --dry-run's
    schedule raise OverflowError, and a record nested 100,000 deep a RecursionError."""
    board, results, _ = ran
    text = next(results.glob("runs/*/*.json")).read_text()
    text, changed = re.subn(r'"wall_seconds": [0-9.e+-]+', '"wall_seconds": 1e999', text)
    assert changed == 1
    folder = tmp_path / "results"
    (folder / "runs" / "zz").mkdir(parents=True)
    (folder / "runs" / "zz" / "zzinfinite.json").write_text(text)
    (folder / "runs" / "zz" / "zzdeep.json").write_text("[" * 100_000)
    before = snapshot(folder)
    assert main(["run", str(board), "--results", str(folder), "--dry-run"]) == 0
    assert "planned order: 4 run(s)" in capsys.readouterr().out
    assert snapshot(folder) == before


def test_an_empty_results_variable_means_the_default_folder(monkeypatch):
    """Before: LOGITBENCH_RESULTS= (set but empty) put runs/, artifacts/ and reports/ into the current
    folder, unlike the other variables, for which empty means unset."""
    from harness.store import default_results_dir

    monkeypatch.setenv("LOGITBENCH_RESULTS", "")
    assert default_results_dir() == Path("logitbench-results")


@pytest.mark.parametrize(
    "counts",
    [{"calibration": -1, "test": 5}, {"calibration": 2, "test": 0}, {"shuffle": False, "calibration": -2}],
)
def test_negative_or_empty_mcq_splits_are_refused_when_planned(tmp_path, capsys, counts):
    """Before: a negative count sliced from the end of the question list, so a run got an empty test set
    and failed after loading its model (or fitted on questions it was tested on)."""
    questions = tmp_path / "q.jsonl"
    rows = [{"question": f"q{i}", "choices": ["a", "b", "c", "d"], "answer": i % 4} for i in range(20)]
    questions.write_text("\n".join(json.dumps(r) for r in rows))
    board = tmp_path / "b.yaml"
    task = {"name": "mcq/file", "params": {"path": str(questions), "test": 4, **counts}}
    board.write_text(
        yaml.safe_dump({"name": "q", "scale": "smoke", "tasks": [task], "methods": ["zero-shot"]})
    )
    assert main(["run", str(board), "--results", str(tmp_path / "r"), "--dry-run"]) == 2
    line = one_error(capsys)
    assert "expected at least 0 calibration and 1 test question" in line and str(board) in line, line


def test_a_record_without_checksum_naming_columns_its_table_lacks(tmp_path, capsys):
    """A record from before checksums can be edited by hand; its samples entry naming a column its table
    lacks was a polars ColumnNotFoundError traceback from diff-samples."""
    board = tmp_path / "b.yaml"
    methods = ["logreg", {"name": "logreg", "label": "lr2", "params": {"C": 0.01}}]
    board.write_text(
        yaml.safe_dump({"name": "s", "scale": "smoke", "tasks": ["tabular/iris"], "methods": methods})
    )
    results = tmp_path / "r"
    assert main(["run", str(board), "--results", str(results), "--no-progress"]) == 0
    for path in results.glob("runs/*/*.json"):
        data = json.loads(path.read_text())
        del data["checksum"]
        data["samples"]["index"] = ["nope"]
        path.write_text(json.dumps(data))
    capsys.readouterr()
    before = snapshot(results)
    command = ["diff-samples", str(board), "--results", str(results), "--task", "tabular/iris"]
    assert main([*command, "--method", "logreg", "--against", "lr2"]) == 2
    line = one_error(capsys)
    assert "the record's samples entry names index ['nope']" in line and "expected columns of" in line, line
    assert snapshot(results) == before


def test_records_without_checksum_holding_wrong_types_are_warnings_not_tracebacks(ran, tmp_path, capsys):
    """A record from before checksums can be edited by hand. Before: `show` raised AttributeError on
    details.curves that is not a mapping, and `show --format parquet` polars' ComputeError on a failed
    record whose metric value is text."""
    board, results, _ = ran
    folder = tmp_path / "results"
    shutil.copytree(results, folder)
    paths = sorted(folder.glob("runs/*/*.json"))
    for path, damage in zip(paths, ("curves", "metric"), strict=False):
        data = json.loads(path.read_text())
        del data["checksum"]
        if damage == "curves":
            data["details"] = {**data.get("details", {}), "curves": 5}
        else:
            data["status"] = "failed"
            data["metrics"] = {"score": {"value": "x", "higher_is_better": "y"}}
        path.write_text(json.dumps(data))
    before = snapshot(folder)
    for fmt in ("table", "html", "csv", "parquet"):
        output = [] if fmt == "table" else ["-o", str(tmp_path / f"out.{fmt}")]
        assert main(["show", str(board), "--results", str(folder), "--format", fmt, *output]) == 0
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert "metric 'score' needs a number or null, and higher_is_better true or false" in err, err
    assert snapshot(folder) == before


def test_a_baseline_metric_the_task_does_not_declare_is_explained(ran, tmp_path, capsys):
    """Before: a misspelt metric in an edited baseline was only 'missing', with nothing saying why."""
    board, results, _ = ran
    document = _baseline_doc(ran)
    metrics = document["cells"][0]["metrics"]
    metrics["scroe"] = metrics.pop("score")
    file = tmp_path / "bad-inputs" / "v1.json"
    file.parent.mkdir()
    file.write_text(json.dumps(document))
    command = ["compare", str(board), "--results", str(results), "--baseline", "v1", "--dir", str(tmp_path)]
    assert main(command) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "the task declares no metric 'scroe' (score, seconds)" in out, out


@pytest.mark.parametrize("command", ["samples", "diff-samples"])
def test_a_row_count_too_large_for_polars_is_refused(capsys, command):
    """Before: `--rows 99999999999999999999999` reached polars' head(): OverflowError traceback."""
    extra = ["--against", "b"] if command == "diff-samples" else []
    argv = [command, "quick", "--task", "t", "--method", "a", *extra, "--rows", "9" * 23]
    assert main(argv) == 2
    assert "--rows: expected a whole number from 0 to 1000000000" in one_error(capsys)


def test_a_label_given_twice_on_the_command_line_counts_once(ran, capsys):
    """Before: `--tasks diag/echo,diag/echo` planned every run twice: cells of n=4 from 2 seeds, with the
    std over copies (and `baseline save` froze the copies)."""
    board, results, _ = ran
    base = ["show", str(board), "--results", str(results), "--format", "csv"]
    assert main(base) == 0
    once = capsys.readouterr().out
    assert main([*base, "--tasks", "diag/echo,diag/echo", "--methods", "a,b,a"]) == 0
    assert capsys.readouterr().out == once and ",2,2," in once
    assert cli_module._csv("row, row,fold") == ["row", "fold"]


def test_labels_with_dollar_signs_are_drawn_as_written(ran, tmp_path, capsys):
    """Before: matplotlib read 'a$\\frac$' as math and the HTML report failed to draw (ValueError), at
    the end of `run` and in `show --format html`. Labels do not enter a run's key: the stored runs serve."""
    _, results, _ = ran
    board = tmp_path / "b.yaml"
    labels = ("a$\\frac$", "$^$ or $5")
    methods = [{**m, "label": label} for m, label in zip(GOOD["methods"], labels, strict=True)]
    board.write_text(yaml.safe_dump({**GOOD, "methods": methods}))
    output = tmp_path / "r.html"
    assert main(["show", str(board), "--results", str(results), "--format", "html", "-o", str(output)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    page = output.read_text()
    assert "<svg" in page and all(html.escape(label) in page for label in labels)


def test_a_label_with_a_pipe_keeps_the_markdown_table_whole(ran, tmp_path, capsys):
    """Before: a '|' in a label ended its Markdown cell, shifting every value of the row by a column."""
    _, results, _ = ran
    board = tmp_path / "b.yaml"
    methods = [{**GOOD["methods"][0], "label": "a|b"}, GOOD["methods"][1]]
    board.write_text(yaml.safe_dump({**GOOD, "methods": methods}))
    assert main(["show", str(board), "--results", str(results), "--format", "md"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    cells = {len(re.split(r"(?<!\\)\|", row)) for row in rows}
    assert len(cells) == 1 and any("a\\|b" in row for row in rows), rows


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "quick", "--results", ""],
        ["show", "quick", "-o", " "],
        ["baseline", "save", "quick", "v", "--dir", ""],
        ["compare", "quick", "--baseline", "reference", "--dir", ""],
        ["assets", "pull", "mnist-5k", "--wheel", ""],
    ],
)
def test_an_empty_path_option_is_refused(tmp_path, capsys, monkeypatch, argv):
    """Before: `--results ""` or `--dir ""` (an unset shell variable) meant the current folder: runs/,
    reports/ or <board>/<name>.json were written there."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "expected a path, got an empty one" in one_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_an_asset_path_in_the_home_of_no_such_user_is_a_one_line_error():
    from harness.errors import UserError

    with pytest.raises(
        UserError, match="asset 'mnist-5k': local path '~no-such-user-xyz/m.csv.gz' names the"
    ):
        assets.resolve("mnist-5k", "~no-such-user-xyz/m.csv.gz")


@pytest.mark.parametrize(
    ("task", "method", "params", "message"),
    [
        ("tabular/iris", "logreg", {"folds": 1}, "parameter 'folds' must be at least 2, got 1"),
        (
            "tabular/iris",
            "logreg",
            {"max_rows": -5},
            "parameter 'max_rows' must be 0 \\(all\\) or more, got -5",
        ),
        ("mcq/arithmetic", "zero-shot", {"test": -3}, "expected at least 0 calibration and 1 test"),
        ("mcq/arithmetic", "zero-shot", {"calibration": -1}, "expected at least 0 calibration and 1 test"),
        ("mcq/arithmetic", "zero-shot", {"test": 0}, "expected at least 0 calibration and 1 test"),
    ],
)
def test_split_sizes_out_of_range_are_refused_when_planned(tmp_path, capsys, task, method, params, message):
    """Before: --dry-run passed, then each run failed after loading its data (tabular: scikit-learn's
    n_splits / train_size errors; the generated mcq suites: an empty test set sliced from the end)."""
    board = tmp_path / "b.yaml"
    board.write_text(
        yaml.safe_dump({"name": "t", "tasks": [{"name": task, "params": params}], "methods": [method]})
    )
    assert main(["run", str(board), "--results", str(tmp_path / "r"), "--dry-run"]) == 2
    line = one_error(capsys)
    assert re.search(message, line) and f"task '{task}'" in line and str(board) in line, line
    assert line.count("task '") == 1, "the task is named once"
