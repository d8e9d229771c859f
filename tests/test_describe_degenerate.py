"""`describe` shows each parameter at each scale; a collapsed model is flagged `degenerate` in its record,
in every report and by `compare`; without a live display each finished run is one line."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import polars as pl
import pytest

from harness import baseline
from harness import leaderboard as lb
from harness.aggregate import cells
from harness.cli import main
from harness.describe import describe_lines, param_help
from harness.health import DEGENERATE_SHARE, prediction_health
from harness.registries import METHODS, TASKS
from harness.report import Summary, render_csv, render_html, render_markdown
from harness.store import Record, ResultStore
from harness.worker import build_record


@pytest.fixture
def health_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-class learner (tests/plugins/lb_health_probe.py) here and in every worker."""
    import lb_health_probe  # noqa: F401  (registers the probe in this process)

    monkeypatch.setenv("LOGITBENCH_PLUGIN_MODULES", "lb_diagnostics,lb_health_probe")
    TASKS.reset()
    METHODS.reset()


def _row(lines: list[str], name: str) -> list[str]:
    return next(line.split() for line in lines if line.split()[:1] == [name])


def test_describe_prints_every_scale_value_and_the_meaning(capsys):
    assert main(["describe", "distillation/mnist-5k"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert _row(lines, "parameter")[3:6] == ["smoke", "cpu", "paper"]
    # teacher_epochs: default 30; smoke 2, cpu 15, paper 60 (Mnist5kDistillationTask.scales)
    assert _row(lines, "teacher_epochs")[:6] == ["teacher_epochs", "int", "30", "2", "15", "60"]
    checkpoint = " ".join(_row(lines, "teacher_checkpoint"))
    assert "a state_dict file for the teacher instead of training one" in checkpoint, "the field's comment"
    assert "local input" in checkpoint
    assert max(map(len, lines)) > 80, "long lines are printed whole, not cut at 80 columns"

    assert main(["describe", "distillation/mnist-5k", "--scale", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert _row(lines, "parameter")[3:] == ["cpu", "meaning"]
    assert _row(lines, "epochs")[:4] == ["epochs", "int", "30", "20"]


def test_describe_a_method_and_bad_names(capsys):
    assert main(["describe", "dkd"]) == 0
    out = capsys.readouterr().out
    assert "dkd (method, version" in out and "Decoupled KD" in out
    assert "float | None" in " ".join(_row(out.splitlines(), "beta"))
    assert main(["describe", "dkdd"]) == 2
    assert "did you mean 'dkd'" in capsys.readouterr().err
    assert main(["describe", "tabular/iris", "--scale", "huge"]) == 2


def test_help_from_metadata_and_comments_for_plugins(health_probe):
    helps = param_help(METHODS.get("probe-one-class"))
    assert helps["strategy"] == "DummyClassifier's rule, from metadata"
    assert helps["spare"] == "a comment above a field documents it over two lines"
    assert helps["unused"] == "a trailing comment documents it"
    assert any(
        "a trailing comment documents it" in line for line in describe_lines(METHODS.get("probe-one-class"))
    )


def test_health_rule():
    labels = np.arange(200) % 4
    assert prediction_health(np.zeros(200, int), labels)["degenerate"]
    assert not prediction_health(labels, labels)["degenerate"]
    zeros = int(200 * DEGENERATE_SHARE)  # 190 of 200 predictions one class: flagged; 189: not
    at = np.concatenate([np.zeros(zeros, int), np.arange(200 - zeros) % 3 + 1])
    under = np.concatenate([np.zeros(zeros - 1, int), np.arange(201 - zeros) % 3 + 1])
    assert prediction_health(at, labels)["degenerate"]
    assert not prediction_health(under, labels)["degenerate"], "just under the share is not flagged"
    skewed = (np.arange(200) >= 192).astype(int)  # 96% class 0: predicting 0 everywhere is faithful
    assert not prediction_health(np.zeros(200, int), skewed)["degenerate"]
    health = prediction_health(np.zeros(200, int), labels)
    assert health["top_prediction_share"] == 1.0 and health["label_top_share"] == 0.25
    assert (
        health["prediction_entropy"] == 0.0 and prediction_health(labels, labels)["prediction_entropy"] == 2.0
    )


BOARD = """
name: health
scale: smoke
seeds: [0, 1]
tasks: [tabular/iris]
methods: [probe-one-class, logreg]
"""


def test_one_class_model_is_flagged_and_a_real_one_is_not(health_probe, board_file, results, capsys):
    path = str(board_file(BOARD))
    assert main(["run", path, "--no-progress"]) == 0
    out = capsys.readouterr().out
    finished = [line for line in out.splitlines() if line.startswith("[") and "tabular/iris" in line]
    assert len(finished) == 4, out
    assert (
        sum("probe-one-class seed" in line and "ok (degenerate), accuracy" in line for line in finished) == 2
    )
    assert sum("logreg seed" in line and ": ok, accuracy 0." in line for line in finished) == 2
    assert all(re.search(r", \d+\.\d s \(\d+ failed, ETA [^)]+\)$", line.rstrip()) for line in finished), (
        finished
    )

    board = lb.load(path)
    plan = board.plan()
    records, _ = ResultStore(results).read_many([r.spec.key for r in plan])
    flags = {(r.method, r.spec.seed): records[r.spec.key].degenerate for r in plan}
    assert flags == {
        ("probe-one-class", 0): True,
        ("probe-one-class", 1): True,
        ("logreg", 0): False,
        ("logreg", 1): False,
    }
    one_class = next(records[r.spec.key] for r in plan if r.method == "probe-one-class")
    assert one_class.status == "ok" and one_class.metric("top_prediction_share") == 1.0
    assert one_class.details["health"]["label_top_share"] == pytest.approx(1 / 3)

    summary = Summary.build(board, plan, records)
    assert "degenerate 2/2" in summary.text("tabular/iris", "probe-one-class")
    assert "degenerate" not in summary.text("tabular/iris", "logreg")
    for text in (render_markdown(summary), render_html(summary)):
        assert text.count("⚠ degenerate 2/2") == 1
    frame = pl.read_csv(io.StringIO(render_csv(summary)))
    assert dict(zip(frame["method"], frame["degenerate"], strict=True)) == {"probe-one-class": 2, "logreg": 0}
    assert main(["show", path]) == 0
    assert "degenerate 2/2" in capsys.readouterr().out


def _records(plan, degenerate: set[str]) -> dict[str, Record]:
    out = {}
    for run in plan:
        metrics = {"score": {"value": 1.0 + run.spec.seed, "higher_is_better": True}}
        details = {"health": {"degenerate": run.method in degenerate}}
        record = build_record(run.spec, "r", "ok", metrics, None, "t", 0.0, details=details)
        out[run.spec.key] = Record(record)
    return out


COMPARE_BOARD = """
name: healthcmp
seeds: [0, 1, 2]
tasks: [diag/echo]
methods:
  - {name: diag-constant, label: a}
  - {name: diag-constant, params: {value: 2.0}, label: b}
"""


def test_compare_treats_a_newly_degenerate_cell_as_worse(board_file, tmp_path):
    board = lb.load(str(board_file(COMPARE_BOARD)))
    plan = board.plan()
    path, _ = baseline.save(board, plan, _records(plan, degenerate={"b"}), "before", tmp_path)
    document = baseline.read(path)
    assert {c["method"]: c["degenerate"] for c in document["cells"]} == {"a": 0, "b": 3}

    # Same values, but a's model collapsed since: worse; b was degenerate already: same.
    now = _records(plan, degenerate={"a", "b"})
    assert {c.method: c.degenerate for c in cells(board, plan, now)} == {"a": 3, "b": 3}
    verdicts = {c.method: c for c in baseline.compare(board, plan, now, document)}
    assert verdicts["a"].verdict == "worse" and verdicts["a"].regression
    assert "newly degenerate 3/3" in verdicts["a"].note
    assert verdicts["b"].verdict == "same" and "as in the baseline" in verdicts["b"].note

    # A baseline saved before health figures does not say: noted, not judged.
    for cell in document["cells"]:
        del cell["degenerate"]
    verdicts = {c.method: c for c in baseline.compare(board, plan, now, document)}
    assert verdicts["a"].verdict == "same" and "does not say" in verdicts["a"].note
    # Back to health: the same values without collapse are the same.
    healthy = baseline.compare(board, plan, _records(plan, degenerate=set()), baseline.read(path))
    assert {c.verdict for c in healthy} == {"same"}


def test_a_bad_degenerate_field_in_a_baseline_is_one_line(board_file, tmp_path, capsys):
    board = lb.load(str(board_file(COMPARE_BOARD)))
    plan = board.plan()
    path, _ = baseline.save(board, plan, _records(plan, degenerate=set()), "v", tmp_path)
    document = json.loads(path.read_text())
    document["cells"][0]["degenerate"] = "yes"
    path.write_text(json.dumps(document))
    with pytest.raises(Exception, match="field 'degenerate' must be a whole number"):
        baseline.read(path)


def test_failure_messages_with_markup_are_printed_as_text(health_probe, board_file, results, capsys):
    path = board_file("name: markup\nseeds: [0]\ntasks: [diag/echo]\nmethods: [probe-markup-raise]\n")
    assert main(["run", str(path), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "bad [/x] value [bold]" in out
