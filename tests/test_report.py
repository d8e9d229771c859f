"""Reports: one section per family, tables that fit 80 columns, charts whose axes hold every interval,
and saved baselines shown as boards. Records are made by hand; nothing runs and no browser is needed."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from harness import charts
from harness import leaderboard as lb
from harness.aggregate import interval95
from harness.baseline import shipped_dir
from harness.cli import main
from harness.report import (
    Summary,
    external_references,
    render_csv,
    render_html,
    render_markdown,
    render_table,
)
from harness.store import Record
from harness.worker import build_record

LONG = "a-distillation-loss-with-a-long-name"
MIXED = f"""
name: mixed
scale: cpu
seeds: [0, 1, 2]
tasks: [tabular/iris, tabular/wine, poisoning/digits, distillation/digits]
methods:
  - logreg
  - svm
  - dpa
  - fa+roe
  - kd
  - {{name: dkd, label: {LONG}}}
"""
# per (task, method): the primary metric's value on seeds 0, 1, 2
VALUES = {
    ("tabular/iris", "logreg"): (0.96, 0.95, 0.97),
    ("tabular/iris", "svm"): (0.90, 0.91, 0.92),
    ("tabular/wine", "logreg"): (0.93, 0.94, 0.95),
    ("tabular/wine", "svm"): (0.985, 0.98, 0.99),
    ("poisoning/digits", "dpa"): (7.9, 8.0, 8.1),
    ("poisoning/digits", "fa+roe"): (8.1, 8.2, 8.3),
    ("distillation/digits", "kd"): (0.975, 0.978, 0.98),
    ("distillation/digits", LONG): (0.96, 0.965, 0.97),
}


def _metrics(task: str, value: float, seed: int) -> dict:
    if task.startswith("tabular"):
        return {"accuracy": value}
    if task.startswith("poisoning"):
        radii = {f"certified_accuracy_r{r}": 0.8 - 0.03 * i - 0.01 * seed for i, r in enumerate((1, 2, 4, 8))}
        return {"certified_auc": value, "clean_accuracy": 0.84, **radii}
    return {"student_top1": value, "gain_over_ce": value - 0.966}


def _records(plan, skip=()):
    out = {}
    for run in plan:
        if (run.task, run.method) in skip:
            continue
        raw = _metrics(run.task, VALUES[(run.task, run.method)][run.spec.seed], run.spec.seed)
        metrics = {k: {"value": v, "higher_is_better": True} for k, v in raw.items()}
        out[run.spec.key] = Record(build_record(run.spec, "r", "ok", metrics, None, "t", 0.0))
    return out


@pytest.fixture
def mixed(board_file):
    board = lb.load(str(board_file(MIXED)))
    plan = board.plan()
    return board, plan, _records(plan)


def _console(width: int = 80) -> Console:
    return Console(width=width, record=True, file=io.StringIO(), color_system=None)


def test_a_mixed_board_splits_into_one_section_per_family(mixed):
    board, plan, records = mixed
    summary = Summary.build(board, plan, records)
    assert [(s.family, s.tasks) for s in summary.sections] == [
        ("tabular", ["tabular/iris", "tabular/wine"]),
        ("poisoning", ["poisoning/digits"]),
        ("distillation", ["distillation/digits"]),
    ]
    methods = {s.family: set(s.methods) for s in summary.sections}
    assert methods == {
        "tabular": {"logreg", "svm"},
        "poisoning": {"dpa", "fa+roe"},
        "distillation": {"kd", LONG},
    }
    md = render_markdown(summary)
    assert md.count("\n## ") == 3 and "## poisoning" in md
    section = md.split("## poisoning")[1].split("## ")[0]
    assert "logreg" not in section and "| fa+roe | **8.2000 ± 0.1000** ★ | 1.00 |" in section
    rows = render_csv(summary).splitlines()
    assert rows[0].startswith("family,task,method,") and "mean_rank" in rows[0]
    assert sum(r.startswith("poisoning,poisoning/digits,") for r in rows) == 2


def test_mean_rank_is_taken_within_each_family(mixed):
    board, plan, records = mixed
    summary = Summary.build(board, plan, records)
    ranks = {s.family: s.mean_ranks for s in summary.sections}
    # tabular: logreg 1st on iris, 2nd on wine; svm the reverse
    assert ranks["tabular"] == {"logreg": 1.5, "svm": 1.5}
    # each one-task family ranks on its own task only: the winners are both 1, never averaged together
    assert ranks["poisoning"] == {"fa+roe": 1.0, "dpa": 2.0}
    assert ranks["distillation"] == {"kd": 1.0, LONG: 2.0}
    # a cell that did not run leaves the method unranked on that task, not penalised elsewhere
    partial = Summary.build(board, plan, _records(plan, skip={("tabular/iris", "logreg")}))
    tabular = next(s for s in partial.sections if s.family == "tabular")
    assert tabular.mean_ranks == {"logreg": 2.0, "svm": 1.0} and tabular.methods == ["svm", "logreg"]


def test_no_name_is_cut_at_80_columns(mixed):
    board, plan, records = mixed
    console = _console()
    render_table(Summary.build(board, plan, records), console)
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "…" not in text
    for name in [*{r.task for r in plan}, *{r.method for r in plan}]:
        assert name in text, f"{name} is cut or missing:\n{text}"


def test_a_section_too_wide_folds_into_split_tables_then_task_rows(board_file):
    tasks = ["tabular/breast_cancer", "tabular/wine", "tabular/digits", "tabular/iris"]
    board = lb.load(
        str(board_file(f"name: wide\nscale: cpu\nseeds: [0, 1]\ntasks: {tasks}\nmethods: [logreg, svm]\n"))
    )
    plan = board.plan()
    records = {}
    for run in plan:
        value = 0.9 + 0.01 * run.spec.seed + (0.05 if run.method == "svm" else 0.0)
        metrics = {"accuracy": {"value": value, "higher_is_better": True}}
        records[run.spec.key] = Record(build_record(run.spec, "r", "ok", metrics, None, "t", 0.0))
    summary = Summary.build(board, plan, records)
    wide = _console(200)
    render_table(summary, wide)
    assert "(1/2)" not in wide.export_text(), "a wide terminal gets one table"
    narrow = _console(80)
    render_table(summary, narrow)
    text = narrow.export_text()
    assert "(1/2)" in text and "(2/2)" in text and all(len(line) <= 80 for line in text.splitlines())
    assert all(t in text for t in tasks) and "mean" in text.split("(2/2)")[1]
    tiny = _console(40)
    render_table(summary, tiny)
    rows = tiny.export_text()
    assert all(t in rows for t in tasks) and "logreg" in rows and "svm" in rows, "tasks as rows"


def test_the_axis_of_every_chart_holds_every_interval_and_fits_the_values():
    values = {"a": (0.960, 0.962, 0.958), "b": (0.985, 0.986, 0.984), "c": (0.97, 0.99, 0.95)}
    points = [charts.Point(m, sum(v) / 3, *interval95(v), best=m == "b") for m, v in values.items()]
    lo, hi = charts.dot_whisker(points, "accuracy").axes[0].get_xlim()
    assert all(lo < p.low and p.high < hi for p in points)
    assert lo > 0.9, "not zero-based: 0.960 and 0.985 stay apart"
    # the interval is Student's t at 95% with n - 1 degrees of freedom: 4.303 * s / sqrt(3) for c
    assert interval95(values["c"])[1] - 0.97 == pytest.approx(4.302653 * 0.02 / 3**0.5, rel=1e-5)
    lines = {p.label: [(1.0, p), (2.0, p)] for p in points}
    lo, hi = charts.series(lines, "radius", "certified accuracy", log_x=True).axes[0].get_ylim()
    assert all(lo < p.low and p.high < hi for p in points)
    ax = charts.scatter([(p, p) for p in points], "x", "y").axes[0]
    (x_lo, x_hi), (y_lo, y_hi) = ax.get_xlim(), ax.get_ylim()
    assert all(x_lo < p.low and p.high < x_hi and y_lo < p.low and p.high < y_hi for p in points)
    same = charts.axis_range([2.0], [2.0])
    assert same[0] < 2.0 < same[1], "a constant still gets a visible axis"


def test_a_chart_is_as_wide_as_its_longest_label():
    def width(label: str) -> float:
        svg = charts.to_svg(charts.dot_whisker([charts.Point(label, 1.0, 0.9, 1.1)], "m"), "t")
        return float(re.search(r'width="([\d.]+)pt"', svg).group(1))

    short, long = width("kd"), width("x" * 80)
    fig = charts.dot_whisker([charts.Point("x" * 80, 1.0, 0.9, 1.1)], "m")
    fig.canvas.draw()
    label = fig.axes[0].get_yticklabels()[0].get_window_extent()
    assert long - short > 0.8 * label.width * 72 / fig.dpi, "the label is inside the saved figure, whole"


def test_the_html_report_has_contents_per_family_and_the_family_figures(mixed):
    board, plan, records = mixed
    page = render_html(Summary.build(board, plan, records))
    assert external_references(page) == [] and "<script" not in page
    nav = page.split("<nav>")[1].split("</nav>")[0]
    for family in ("tabular", "poisoning", "distillation"):
        assert f'href="#family-{family}"' in nav and f'<section id="family-{family}">' in page
    assert "poisoning/digits: certified accuracy against radius" in nav
    assert "distillation/digits: gain_over_ce" in nav
    assert page.count("<svg") == 6  # 4 tasks' primary metrics, the radius curve, the gain over CE
    assert external_references('<img src="https://example.org/x.png">') != []


def test_the_radius_curve_starts_at_the_clean_accuracy(mixed):
    from harness.figures import FAMILY_FIGURES
    from harness.report import metric_series

    board, plan, records = mixed
    summary = Summary.build(board, plan, records)
    section = next(s for s in summary.sections if s.family == "poisoning")
    lines = metric_series(summary, section, "poisoning/digits", FAMILY_FIGURES["poisoning"][0])
    xs = [x for x, _ in lines["dpa"]]
    assert xs == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert lines["dpa"][0][1].mean == pytest.approx(0.84) and lines["dpa"][1][1].mean == pytest.approx(0.79)


@pytest.mark.parametrize("board", ["quick", "mcq"])
def test_show_baseline_renders_the_committed_baselines(board, capsys, tmp_path):
    document = json.loads((shipped_dir() / board / "reference.json").read_text())
    assert main(["show", board, "--baseline", "reference", "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    header = rows[0].split(",")
    parsed = [dict(zip(header, r.split(","), strict=False)) for r in rows[1:]]
    loaded = lb.load(board)
    for cell in document["cells"]:
        primary = loaded.primary_metric(cell["task"])
        values = cell["metrics"][primary]["values"]
        row = next(r for r in parsed if r["task"] == cell["task"] and r["method"] == cell["method"])
        assert float(row["mean"]) == pytest.approx(sum(values) / len(values)) and row["status"] == "ok"
    console_out = tmp_path / "table.txt"
    assert main(["show", board, "--baseline", "reference", "--format", "md", "-o", str(console_out)]) == 0
    assert f"From baseline 'reference' saved {document['saved_at']}" in console_out.read_text()
    page = tmp_path / "page.html"
    assert main(["show", board, "--baseline", "reference", "--format", "html", "-o", str(page)]) == 0
    assert "<nav>" in page.read_text() and external_references(page.read_text()) == []


def test_show_narrows_to_a_family_or_a_task_and_rejects_an_unknown_family(capsys):
    assert main(["show", "quick", "--baseline", "reference", "--family", "poisoning", "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert rows and all(r.startswith("poisoning,") for r in rows)
    assert (
        main(["show", "quick", "--baseline", "reference", "--task", "tabular/iris", "--format", "csv"]) == 0
    )
    rows = capsys.readouterr().out.splitlines()[1:]
    assert rows and all(r.startswith("tabular,tabular/iris,") for r in rows)
    assert main(["show", "quick", "--baseline", "reference", "--family", "lm"]) == 2
    err = capsys.readouterr().err
    assert "no family 'lm'" in err and "poisoning" in err and "Traceback" not in err
    assert main(["show", "quick", "--baseline", "no-such-name"]) == 2
    assert main(["show", "quick", "--baseline", "reference", "--format", "parquet", "-o", "x.parquet"]) == 2


def test_auctions_draw_their_ratios_and_the_welfare_revenue_tradeoff(board_file):
    text = "name: a\nscale: cpu\nseeds: [0, 1]\ntasks: [auctions/mnl]\nmethods: [gsp, vcg-separable]\n"
    board = lb.load(str(board_file(text)))
    plan = board.plan()
    records = {}
    for run in plan:
        shift = 0.01 * run.spec.seed + (0.1 if run.method == "gsp" else 0.0)
        raw = {"welfare": 2 + shift, "revenue": 1 - shift, "welfare_ratio": 0.8 + shift, "revenue_ratio": 0.5}
        metrics = {k: {"value": v, "higher_is_better": True} for k, v in raw.items()}
        records[run.spec.key] = Record(build_record(run.spec, "r", "ok", metrics, None, "t", 0.0))
    page = render_html(Summary.build(board, plan, records))
    nav = page.split("<nav>")[1].split("</nav>")[0]
    for caption in (
        "auctions/mnl: welfare ↑",
        "auctions/mnl: welfare_ratio ↑",
        "auctions/mnl: revenue_ratio ↑",
    ):
        assert caption in nav
    assert "auctions/mnl: revenue against welfare" in nav and page.count("<svg") == 4
    empty = render_html(Summary.build(board, plan, {}))
    assert "nothing to chart" in empty and "<svg" not in empty


def test_run_ends_with_the_sections_and_where_the_report_is(board_file, results, capsys):
    board = board_file("name: ends\nseeds: [0, 1]\ntasks: [diag/echo]\nmethods: [diag-constant]\n")
    assert main(["run", str(board), "--no-progress"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    report = results / "reports" / "ends.html"
    assert out[-1] == f"report: {report}" and report.is_file()
    assert "diagnostics: 1 task(s), 1 method(s)" in "\n".join(out)
    assert external_references(report.read_text()) == [] and "<nav>" in report.read_text()
