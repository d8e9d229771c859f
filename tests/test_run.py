"""End to end through the CLI: caching, failures, timeouts, rerun policies, output formats."""

from __future__ import annotations

import json
import os

import pytest

from harness.cli import main
from harness.store import ResultStore

BOARD = """
name: diag
scale: cpu
seeds: [0, 1, 2]
timeout_s: 5
tasks: [diag/echo]
methods:
  - {name: diag-constant, params: {jitter: 0.1}}
  - {name: diag-constant, params: {value: 0.5}, label: half}
"""


def _records(results):
    store = ResultStore(results)
    return {k: store.read(k) for k in store.all_keys()}


def test_run_stores_records_and_a_second_run_does_no_work(board_file, results, capsys):
    path = board_file(BOARD)
    assert main(["run", str(path), "--workers", "2", "--no-progress"]) == 0
    first = _records(results)
    assert len(first) == 6 and all(r.status == "ok" for r in first.values())
    scores = sorted(r.metric("score") for r in first.values())
    assert scores == sorted([0.5, 0.5, 0.5, 1.0, 1.1, 1.2])
    record = next(iter(first.values()))
    assert record.data["environment"]["git_commit"] and "score" in record.data["phases"]
    assert record.data["threads"] >= 1 and record.data["device"] == "cpu"
    out = capsys.readouterr().out
    assert "6 runs: 0 cached, 6 ran, 0 failed" in out

    assert main(["run", str(path), "--no-progress"]) == 0
    assert "6 runs: 6 cached, 0 ran" in capsys.readouterr().out
    assert {k: r.data["run_id"] for k, r in _records(results).items()} == {
        k: r.data["run_id"] for k, r in first.items()
    }


def test_dry_run_prints_the_plan_without_running(board_file, results, capsys):
    assert main(["run", str(board_file(BOARD)), "--dry-run"]) == 0
    assert "6 to run, 0 cached" in capsys.readouterr().out
    assert not results.exists()


def test_raising_nan_and_hanging_methods_become_failed_records_and_others_finish(board_file, results, capsys):
    text = """
name: bad
seeds: [0]
timeout_s: 2
tasks: [diag/echo]
methods: [diag-constant, diag-raise, diag-nan, {name: diag-sleep, params: {seconds: 60}}]
"""
    assert main(["run", str(board_file(text)), "--workers", "2", "--no-progress"]) == 1
    by_method = {r.spec.method.name: r for r in _records(results).values()}
    assert by_method["diag-constant"].status == "ok"
    assert by_method["diag-raise"].status == "failed"
    assert "diag-raise always raises" in by_method["diag-raise"].data["error"]["traceback"]
    assert by_method["diag-nan"].status == "failed" and "not finite" in by_method["diag-nan"].reason
    assert by_method["diag-sleep"].status == "timeout" and "timeout of 2 s" in by_method["diag-sleep"].reason
    out = capsys.readouterr().out
    for name in ("diag-raise", "diag-nan", "diag-sleep"):
        assert name in out.split("failed\n")[-1] or name in out


def test_rerun_policies(board_file, results, capsys):
    text = "name: p\nseeds: [0]\ntasks: [diag/echo]\nmethods: [diag-constant, diag-raise]\n"
    path = str(board_file(text))
    main(["run", path, "--no-progress"])
    ids = {r.spec.method.name: r.data["run_id"] for r in _records(results).values()}
    main(["run", path, "--no-progress", "--rerun", "never"])
    assert {r.spec.method.name: r.data["run_id"] for r in _records(results).values()} == ids
    main(["run", path, "--no-progress"])  # default: failed runs are redone
    after = {r.spec.method.name: r.data["run_id"] for r in _records(results).values()}
    assert after["diag-constant"] == ids["diag-constant"] and after["diag-raise"] != ids["diag-raise"]
    main(["run", path, "--no-progress", "--rerun", "always"])
    again = {r.spec.method.name: r.data["run_id"] for r in _records(results).values()}
    assert again["diag-constant"] != ids["diag-constant"]


def test_corrupt_record_is_reported_and_redone(board_file, results, capsys):
    path = str(board_file(BOARD))
    main(["run", path, "--no-progress"])
    store = ResultStore(results)
    key = store.all_keys()[0]
    store.path(key).write_text('{"schema": 1, "key": "trunc')
    assert main(["run", path, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "not valid JSON" in out and "5 cached, 1 ran" in out
    assert store.read(key).status == "ok"


def test_show_formats(board_file, results, tmp_path, capsys):
    path = str(board_file(BOARD))
    main(["run", path, "--no-progress"])
    capsys.readouterr()
    assert main(["show", path, "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "| diag-constant | **1.1000 ± 0.1000** ★ | 1.00 |" in md
    assert main(["show", path, "--format", "csv"]) == 0
    assert "task,method,metric,status,mean,std,n,planned,rank,reason" in capsys.readouterr().out
    html_file = tmp_path / "r.html"
    assert main(["show", path, "--format", "html", "-o", str(html_file)]) == 0
    page = html_file.read_text()
    assert (
        page.count("<svg") == 1
        and "<script" not in page
        and "http" not in page.replace("http://www.w3.org/2000/svg", "")
    )
    parquet = tmp_path / "r.parquet"
    assert main(["show", path, "--format", "parquet", "-o", str(parquet)]) == 0
    import polars as pl

    frame = pl.read_parquet(parquet)
    assert frame.filter(pl.col("metric") == "score").height == 6


def test_record_json_carries_versions_and_times(board_file, results):
    main(["run", str(board_file(BOARD)), "--no-progress"])
    data = json.loads(next((results / "runs").rglob("*.json")).read_text())
    assert {"python", "numpy", "logitbench"} <= set(data["environment"]["packages"])
    assert data["started_at"] <= data["ended_at"] and data["peak_memory_mb"]["cpu_rss"] > 0


def test_paper_scale_boards_show_the_papers_numbers(results, capsys):
    assert main(["show", "poisoning-paper", "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "Reported by the papers" in out and "| poisoning/mnist | dpa+roe |" in out and "4.73" in out
    assert main(["show", "poisoning", "--format", "md"]) == 0
    assert "Reported by the papers" not in capsys.readouterr().out, "cpu-scale boards do not mix them in"


def test_html_plots_a_declared_tradeoff(board_file, results, tmp_path, monkeypatch):
    from lb_diagnostics import EchoTask

    monkeypatch.setattr(EchoTask, "tradeoff", ("seconds", "score"))
    path = str(board_file(BOARD))
    main(["run", path, "--no-progress"])
    html_file = tmp_path / "r.html"
    assert main(["show", path, "--format", "html", "-o", str(html_file)]) == 0
    page = html_file.read_text()
    assert page.count("<svg") == 2 and "<title>diag/echo: score against seconds</title>" in page


# -- the store's guarantees, end to end -----------------------------------------------------------


@pytest.fixture
def probes(monkeypatch, tmp_path):
    """The probe plugin (tests/plugins/lb_store_probe.py) here and in every worker; a private cache."""
    import lb_store_probe  # noqa: F401  (registers the probes in this process)

    monkeypatch.setenv("LOGITBENCH_PLUGIN_MODULES", "lb_diagnostics,lb_store_probe")
    monkeypatch.setenv("LOGITBENCH_CACHE", str(tmp_path / "cache"))


def _file_board(path):
    return (
        "name: f\nseeds: [0]\n"
        f"tasks: [{{name: probe/file, params: {{path: '{path}'}}}}]\n"
        "methods: [{name: diag-constant, params: {value: 0.0}}]\n"
    )


def test_an_edited_input_file_is_run_again_and_a_moved_one_is_not(
    board_file, results, tmp_path, probes, capsys
):
    data = tmp_path / "value.txt"
    data.write_text("0.25")
    assert main(["run", str(board_file(_file_board(data))), "--no-progress"]) == 0
    assert [r.metric("score") for r in _records(results).values()] == [0.25]
    data.write_text("0.75")  # an edit: the old result is stale
    assert main(["run", str(board_file(_file_board(data))), "--no-progress"]) == 0
    assert "1 runs: 0 cached, 1 ran" in capsys.readouterr().out
    assert sorted(r.metric("score") for r in _records(results).values()) == [0.25, 0.75]
    moved = tmp_path / "renamed.txt"
    data.rename(moved)  # a move: same content, same result
    assert main(["run", str(board_file(_file_board(moved))), "--no-progress"]) == 0
    assert "1 runs: 1 cached, 0 ran" in capsys.readouterr().out


def test_an_input_edited_after_planning_is_refused_not_stored_under_its_old_key(results, tmp_path, probes):
    from harness.executors import LocalExecutor
    from harness.registries import METHODS, TASKS
    from harness.spec import make_spec

    data = tmp_path / "value.txt"
    data.write_text("1.0")
    spec = make_spec(TASKS.get("probe/file"), METHODS.get("diag-constant"), 0, "cpu", {"path": str(data)})
    data.write_text("2.0")
    executor = LocalExecutor(ResultStore(results), workers=1)
    try:
        record = executor.submit(spec).result()
    finally:
        executor.shutdown()
    assert record.status == "failed" and "has changed since the run was planned" in record.reason


def test_a_timed_out_attempt_never_replaces_an_ok_record(board_file, results, capsys):
    text = (
        "name: t\nseeds: [0, 1]\ntasks: [diag/echo]\nmethods: [{name: diag-sleep, params: {seconds: 0.5}}]\n"
    )
    path = str(board_file(text))
    assert main(["run", path, "--no-progress"]) == 0
    good = {k: r.data["run_id"] for k, r in _records(results).items()}
    capsys.readouterr()
    assert main(["run", path, "--no-progress", "--rerun", "always", "--timeout", "0.05"]) == 1
    out = capsys.readouterr().out
    assert out.count("the earlier ok record is kept and shown") == 2
    store = ResultStore(results)
    assert {k: r.data["run_id"] for k, r in _records(results).items()} == good, "ok records survive"
    assert all(store.read_failed_attempt(k).status == "timeout" for k in good)
    assert "2 runs: 0 cached, 2 ran, 2 failed" in out and "1.0000 ± 0.0000" in out, "the board shows the ok"
    assert main(["show", path, "--format", "csv"]) == 0
    assert capsys.readouterr().out.count(",ok,") == 1
    assert main(["run", path, "--no-progress"]) == 0, "the default policy keeps the ok records"
    assert "2 cached, 0 ran" in capsys.readouterr().out


def test_a_tampered_record_is_reported_redone_and_kept_aside(board_file, results, capsys):
    path = str(board_file(BOARD))
    main(["run", path, "--no-progress"])
    store = ResultStore(results)
    key = next(k for k, r in _records(results).items() if r.metric("score") == 0.5)
    data = json.loads(store.path(key).read_text())
    data["metrics"]["score"]["value"] = 0.95  # a hand edit that leaves valid JSON and a valid spec
    store.path(key).write_text(json.dumps(data, indent=1))
    capsys.readouterr()
    assert main(["show", path, "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert "checksum" in captured.err and "0.95" not in captured.out, "a tampered value is never averaged in"
    assert main(["run", path, "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "checksum" in out.out + out.err and "5 cached, 1 ran" in out.out
    assert store.read(key).metric("score") == 0.5
    assert len(list(store.path(key).parent.glob(f"{key}.rejected-*.json"))) == 1


def test_a_binary_record_is_reported_by_show_and_redone_by_run(board_file, results, capsys):
    path = str(board_file(BOARD))
    main(["run", path, "--no-progress"])
    store = ResultStore(results)
    key = store.all_keys()[0]
    store.path(key).write_bytes(bytes(range(256)) * 8)
    capsys.readouterr()
    assert main(["show", path, "--format", "md"]) == 0
    assert "not UTF-8" in capsys.readouterr().err
    assert main(["run", path, "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "not UTF-8" in out.out + out.err and "5 cached, 1 ran" in out.out and "Traceback" not in out.out
    assert store.read(key).status == "ok"


def test_details_that_json_cannot_hold_cost_a_warning_not_the_metrics(board_file, results, probes, capsys):
    text = "name: d\nseeds: [0]\ntasks: [probe/details]\nmethods: [diag-constant]\n"
    assert main(["run", str(board_file(text)), "--no-progress"]) == 0
    (record,) = _records(results).values()
    assert record.status == "ok" and record.metric("score") == 1.0
    assert record.details == {
        "curve": [0.5, None, 2.0],
        "loss": None,
        "layer": 3,
        "model": None,
        "kept": {"name": "edit", "heads": [1, 2]},
    }
    assert any("details.curve[1] is nan" in w for w in record.warnings)
    assert any("details.model (object) is not a JSON value" in w for w in record.warnings)
    assert "warning:" in capsys.readouterr().out


def test_an_artifact_damaged_in_place_is_rebuilt_and_the_run_succeeds(board_file, results, probes, capsys):
    text = "name: a\nseeds: [0]\ntasks: [probe/artifact]\nmethods: [diag-constant]\n"
    path = str(board_file(text))
    assert main(["run", path, "--no-progress"]) == 0
    (value,) = (results / "artifacts" / "probe-value").glob("*/value.txt")
    stat = value.stat()
    value.write_text("x" * len(value.read_text()))  # unreadable, same size, mtime put back
    os.utime(value, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert main(["run", path, "--no-progress", "--rerun", "always"]) == 0
    (record,) = _records(results).values()
    assert record.status == "ok" and record.metric("score") == 1.5
    assert any("damaged" in w for w in record.warnings) and value.read_text() == "1.5"


def test_threads_flag_sets_each_workers_threads_and_the_default_is_one(board_file, results, capsys):
    assert main(["run", str(board_file(BOARD)), "--workers", "1", "--threads", "3", "--no-progress"]) == 0
    assert {r.data["threads"] for r in _records(results).values()} == {3}
    assert main(["run", str(board_file(BOARD)), "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err

    three = _records(results)
    assert main(["run", str(board_file(BOARD)), "--workers", "2", "--no-progress"]) == 0
    records = _records(results)
    one = {k: r for k, r in records.items() if k not in three}
    assert len(one) == len(three) and {r.data["threads"] for r in one.values()} == {1}  # any --workers
    # The thread count is keyed (it moves results slightly): `show` finds the runs of the count it is given.
    assert all(r.data["spec"].get("threads") == 3 and r.spec.threads == 3 for r in three.values())
    assert all("threads" not in r.data["spec"] for r in one.values()), "1-thread keys read as before"
    ended = {k: r.data["ended_at"] for k, r in records.items()}
    assert main(["run", str(board_file(BOARD)), "--threads", "3", "--no-progress"]) == 0
    assert {k: r.data["ended_at"] for k, r in _records(results).items()} == ended, "nothing ran again"


def test_runs_show_no_tqdm_bars_unless_asked(monkeypatch):
    import transformers

    from harness.worker import quiet_progress_bars

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    transformers.utils.logging.enable_progress_bar()
    try:
        quiet_progress_bars()
        assert not transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.enable_progress_bar()
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
        quiet_progress_bars()
        assert transformers.utils.logging.is_progress_bar_enabled(), "the user's choice stands"
    finally:
        transformers.utils.logging.enable_progress_bar()
