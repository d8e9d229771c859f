"""Cells, ranks and the baseline gate, on hand-made records."""

from __future__ import annotations

import json

import pytest
from scipy.stats import ttest_ind

from harness import baseline
from harness import leaderboard as lb
from harness.aggregate import cells, mean_ranks, ranks
from harness.cli import main
from harness.store import Record
from harness.worker import build_record

BOARD = """
name: agg
seeds: [0, 1, 2]
tasks: [diag/echo]
methods:
  - {name: diag-constant, label: a}
  - {name: diag-constant, params: {value: 2.0}, label: b}
  - {name: diag-constant, params: {value: 3.0}, label: c}
"""


def _records(plan, values, statuses=None):
    out = {}
    for run in plan:
        key = (run.method, run.spec.seed)
        if key not in values:
            continue
        status = (statuses or {}).get(key, "ok")
        metrics = {
            "score": {"value": values[key], "higher_is_better": True},
            "seconds": {"value": 0.0, "higher_is_better": False},
        }
        out[run.spec.key] = Record(
            build_record(run.spec, "r", status, metrics if status == "ok" else {}, None, "t", 0.0)
        )
    return out


def test_failed_or_missing_seed_empties_the_cell_and_ranks_skip_it(board_file):
    board = lb.load(str(board_file(BOARD)))
    plan = board.plan()
    values = {
        ("a", 0): 1.0,
        ("a", 1): 2.0,
        ("a", 2): 3.0,
        ("b", 0): 5.0,
        ("b", 1): 5.0,
        ("c", 0): 9.0,
        ("c", 1): 9.0,
        ("c", 2): 9.0,
    }
    recs = _records(plan, values, statuses={("c", 2): "failed"})
    by_method = {c.method: c for c in cells(board, plan, recs)}
    assert by_method["a"].status == "ok" and by_method["a"].mean == 2.0 and by_method["a"].std == 1.0
    assert by_method["b"].status == "missing" and by_method["b"].mean is None and by_method["b"].n == 2
    assert by_method["c"].status == "failed" and by_method["c"].mean is None
    rank_map = ranks(board, list(by_method.values()))
    assert rank_map == {("diag/echo", "a"): 1}
    assert mean_ranks(rank_map) == {"a": 1.0}


def test_ranks_follow_the_metric_direction_and_ties_share(board_file):
    board = lb.load(str(board_file(BOARD)))
    plan = board.plan()
    values = {(m, s): v for m, v in (("a", 1.0), ("b", 3.0), ("c", 3.0)) for s in range(3)}
    rank_map = ranks(board, cells(board, plan, _records(plan, values)))
    assert rank_map == {("diag/echo", "b"): 1, ("diag/echo", "c"): 1, ("diag/echo", "a"): 2}
    # 'seconds' is lower-is-better: the order flips
    secs = cells(board, plan, _records(plan, values), metric="seconds")
    assert all(c.mean == 0.0 for c in secs)


def test_welch_p_matches_scipy_and_handles_constant_samples():
    a, b = (0.90, 0.91, 0.92), (0.80, 0.83, 0.81)
    assert baseline.welch_p(a, b) == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue)
    assert baseline.welch_p((1.0, 1.0), (1.0, 1.0)) == 1.0
    assert baseline.welch_p((1.0, 1.0), (2.0, 2.0)) == 0.0
    assert baseline.welch_p((1.0,), (2.0, 2.0)) is None


@pytest.mark.parametrize(
    ("base", "current", "higher", "tol", "expected"),
    [
        ((0.90, 0.91, 0.92), (0.80, 0.81, 0.82), True, 0.0, "worse"),
        ((0.90, 0.91, 0.92), (0.80, 0.81, 0.82), False, 0.0, "better"),  # lower is better: a drop improves
        ((0.90, 0.91, 0.92), (0.905, 0.915, 0.925), True, 0.01, "same"),  # within tolerance
        ((0.80, 0.90, 1.00), (0.75, 0.95, 0.85), True, 0.0, "same"),  # noisy: not significant
        ((0.9,), (0.8,), True, 0.0, "worse"),  # one seed: judged on the delta
    ],
)
def test_verdicts(base, current, higher, tol, expected):
    assert baseline.verdict(base, current, higher, tol, 0.05)[2] == expected


def test_save_then_compare_gates_on_regressions(board_file, results, tmp_path, capsys):
    path = str(board_file(BOARD))
    assert main(["run", path, "--no-progress"]) == 0
    folder = tmp_path / "baselines"
    assert main(["baseline", "save", path, "v1", "--dir", str(folder)]) == 0
    saved = baseline.load("agg", "v1", folder)
    assert {c["method"] for c in saved["cells"]} == {"a", "b", "c"}
    assert "seconds" not in saved["cells"][0]["metrics"], "timings are not gated"
    capsys.readouterr()
    assert main(["baseline", "save", path, "v1", "--dir", str(folder), "--methods", "a,b"]) == 0
    assert (
        "it replaced the one saved before (3 cells); 1 of them is no longer in it" in capsys.readouterr().out
    )
    assert main(["baseline", "save", path, "v1", "--dir", str(folder)]) == 0
    assert main(["compare", path, "--baseline", "v1", "--dir", str(folder)]) == 0
    assert "0 worse" in capsys.readouterr().out

    # A baseline that was better than today's results: method b regressed by a whole point.
    file = folder / "agg" / "v1.json"
    document = json.loads(file.read_text())
    for cell in document["cells"]:
        if cell["method"] == "b":
            cell["metrics"]["score"]["values"] = [3.0, 3.0, 3.0]
    file.write_text(json.dumps(document))
    assert main(["compare", path, "--baseline", "v1", "--dir", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "worse" in out and "regression" in out
    assert main(["compare", path, "--baseline", "v1", "--dir", str(folder), "--tolerance", "1.5"]) == 0
    assert main(["compare", path, "--baseline", "nope", "--dir", str(folder)]) == 2
    capsys.readouterr()

    # Gating a selection: the cells --methods leaves out are not compared, so not "missing" either.
    assert main(["compare", path, "--baseline", "v1", "--dir", str(folder), "--methods", "a,c"]) == 0
    out = capsys.readouterr().out
    assert "0 missing" in out and "1 saved cell(s) outside --tasks / --methods left out" in out
    assert main(["compare", path, "--baseline", "v1", "--dir", str(folder), "--methods", "b"]) == 1
    # A cell of a method the board no longer has: missing with no selection, left out of one without it.
    document["cells"].append({**document["cells"][0], "method": "gone"})
    file.write_text(json.dumps(document))
    capsys.readouterr()
    assert main(["compare", path, "--baseline", "v1", "--dir", str(folder), "--methods", "a"]) == 0
    assert "3 saved cell(s) outside --tasks / --methods left out" in capsys.readouterr().out
    assert main(["compare", path, "--baseline", "v1", "--dir", str(folder), "--tolerance", "1.5"]) == 1


@pytest.mark.parametrize("board_name", ["quick", "mcq"])
def test_committed_baseline_covers_every_cell_of_its_board(board_name):
    board = lb.load(board_name)
    saved = baseline.load(board_name, "reference")
    cells_saved = {(c["task"], c["method"]) for c in saved["cells"]}
    planned = {(r.task, r.method) for r in board.plan()}
    assert planned == cells_saved
    for cell in saved["cells"]:
        primary = board.primary_metric(cell["task"])
        assert len(cell["metrics"][primary]["values"]) == len(board.seeds)


def test_curves_kept_in_details_are_averaged_over_seeds_and_drawn(board_file):
    from harness.report import Summary, mean_curves, render_html

    board = lb.load(str(board_file(BOARD)))
    plan = [r for r in board.plan() if r.method == "a"]
    recs = {}
    for run in plan:
        metrics = {"score": {"value": 1.0, "higher_is_better": True}}
        curve = {
            "title": "lens",
            "x": "layer",
            "series": {"before": [run.spec.seed, 1.0], "after": [0.0, 0.0]},
        }
        details = {"curves": {"logit_lens": curve}}
        recs[run.spec.key] = Record(
            build_record(run.spec, "r", "ok", metrics, None, "t", 0.0, details=details)
        )
    averaged = mean_curves(plan, recs)[("diag/echo", "a", "logit_lens")]
    assert averaged["series"] == {"before": [1.0, 1.0], "after": [0.0, 0.0]} and averaged["seeds"] == 3
    page = render_html(Summary.build(board, plan, recs))
    assert page.count('<figure id="curve-') == 1 and "diag/echo × a: lens" in page


def _quick_records_like_reference(worse: str | None = None, by: float = 0.0):
    """Records of every planned run of `quick` holding the committed reference's values, with every metric
    of method `worse` lowered by `by` (a regression the gate must list)."""
    board = lb.load("quick")
    document = baseline.load("quick", "reference")
    saved = {(c["task"], c["method"]): c["metrics"] for c in document["cells"]}
    plan = board.plan()
    records = {}
    for run in plan:
        index = board.seeds.index(run.spec.seed)
        shift = by if run.method == worse else 0.0
        metrics = {
            name: {"value": entry["values"][index] - shift, "higher_is_better": entry["higher_is_better"]}
            for name, entry in saved[(run.task, run.method)].items()
        }
        records[run.spec.key] = Record(build_record(run.spec, "r", "ok", metrics, None, "t", 0.0))
    return board, plan, records, document


@pytest.mark.parametrize("show_all", [False, True])
def test_compare_output_of_quick_cuts_no_name_at_80_columns(show_all):
    import io
    import re

    from rich.console import Console

    from harness.cli import _family_of
    from harness.comparison_table import render_comparison

    board, plan, records, document = _quick_records_like_reference("binarykl-same-head", 0.5)
    results = baseline.compare(board, plan, records, document)
    worse = [c for c in results if c.verdict == "worse"]
    assert worse and {c.method for c in worse} == {"binarykl-same-head"}
    assert sum(c.verdict == "same" for c in results) == len(results) - len(worse)

    buffer = io.StringIO()
    console = Console(file=buffer, width=80, color_system=None)
    render_comparison(results, console, lambda task: _family_of(board, task), show_all)
    text = buffer.getvalue()
    lines = text.splitlines()
    assert "…" not in text and max(map(len, lines)) <= 80

    def whole(name: str) -> bool:
        return re.search(rf"(?<![\w+-]){re.escape(name)}(?![\w+-])", text) is not None

    listed = results if show_all else worse
    assert all(whole(c.method) and whole(c.metric) for c in listed)
    assert all(whole(task) for task in {c.task for c in results}), "every task is named, listed or counted"
    if show_all:
        assert all(whole(r.method) for r in plan), "every method of the board appears whole"
        assert "not listed" not in text
    else:
        hidden = len(results) - len(worse)
        assert f"{hidden} 'same' cell metric(s) not listed" in text
        assert not whole("hist-gb"), "a method whose cells are all 'same' is only counted"


def test_compare_output_keeps_names_whole_where_no_table_fits():
    import io

    from rich.console import Console

    from harness.comparison_table import render_comparison

    board, plan, records, document = _quick_records_like_reference()
    results = [c for c in baseline.compare(board, plan, records, document) if c.task == "poisoning/mnist-5k"]
    buffer = io.StringIO()
    render_comparison(results, Console(file=buffer, width=50, color_system=None), lambda t: "poisoning", True)
    text = buffer.getvalue()
    assert "…" not in text and "method / metric" not in text, "one line per cell metric, not a cut table"
    assert all(f"{c.method} {c.metric}:" in text for c in results)


def test_compare_notes_are_given_once_per_method_and_note():
    from harness.comparison_table import notes

    def row(method, metric, note):
        return baseline.Comparison("t/x", method, metric, (1.0,), (), None, None, "missing", note)

    rows = [
        row("svm", "accuracy", "not run"),
        row("svm", "log_loss", "not run"),
        row("mlp", "accuracy", "within tolerance"),
        row("mlp", "log_loss", "fewer than 2 seeds"),
        row("mlp", "roc_auc", "fewer than 2 seeds"),
    ]
    assert notes(rows) == ["svm: not run", "mlp log_loss, roc_auc: fewer than 2 seeds"]


def test_baseline_keeps_versions_and_compare_names_a_bumped_one(board_file, results, tmp_path, capsys):
    path = str(board_file(BOARD))
    assert main(["run", path, "--no-progress"]) == 0
    folder = tmp_path / "baselines"
    assert main(["baseline", "save", path, "v1", "--dir", str(folder)]) == 0
    file = folder / "agg" / "v1.json"
    document = json.loads(file.read_text())
    plan = lb.load(path).plan()
    version = plan[0].spec.method.version
    assert {(c["task_version"], c["method_version"]) for c in document["cells"]} == {
        (plan[0].spec.task.version, version)
    }
    capsys.readouterr()
    for cell in document["cells"]:
        if cell["method"] == "b":
            cell["method_version"] = "0"
    file.write_text(json.dumps(document))
    assert main(["compare", path, "--baseline", "v1", "--dir", str(folder), "--all"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"method v0 in the baseline, v{version} now" in out
    assert out.count("in the baseline, v") == 1, "only the bumped cell is noted"

    cell = document["cells"][0]
    cell["method_version"] = 3
    file.write_text(json.dumps(document))
    assert main(["compare", path, "--baseline", "v1", "--dir", str(folder)]) == 2
    assert "'method_version' must be a non-empty string" in capsys.readouterr().err
