from __future__ import annotations

import pytest

from harness import leaderboard as lb
from harness.cli import main
from harness.errors import UserError

GOOD = """
name: diag
scale: cpu
seeds: [0, 1]
tasks: [diag/echo]
methods:
  - diag-constant
  - {name: diag-constant, params: {value: 2.0}, label: two}
"""


def test_plan_crosses_tasks_methods_and_seeds(board_file):
    board = lb.load(str(board_file(GOOD)))
    plan = board.plan()
    assert [(r.method, r.spec.seed) for r in plan] == [
        ("diag-constant", 0),
        ("diag-constant", 1),
        ("two", 0),
        ("two", 1),
    ]
    assert plan[2].spec.method.params_dict()["value"] == 2.0
    assert [r.spec.seed for r in board.plan(methods=["two"], seeds=[5])] == [5]


def test_families_expand_to_their_parameter_free_tasks_and_methods():
    board = lb.load("quick")
    tasks = {t.name for t in board.tasks}
    assert {"tabular/iris", "tabular/digits", "tabular/wine", "tabular/breast_cancer"} <= tasks
    assert "tabular/table" not in tasks, "a task that needs a path cannot join by family"
    assert {m.name for m in board.methods} >= {"logreg", "hist-gb", "random-forest", "svm", "mlp"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nseeds: [0\n", r"line \d+, column \d+: malformed YAML"),
        ("name: x\nsceds: [0]\ntasks: [diag/echo]\nmethods: [diag-nan]\n", "unknown field.*sceds"),
        (
            "name: x\ntasks: [diag/ech]\nmethods: [diag-nan]\n",
            r"tasks\[0\]: unknown task 'diag/ech'; did you mean",
        ),
        ("name: x\nscale: huge\ntasks: [diag/echo]\nmethods: [diag-nan]\n", "field 'scale' is 'huge'"),
        ("name: x\nseeds: [a]\ntasks: [diag/echo]\nmethods: [diag-nan]\n", "field 'seeds' must be"),
        (
            "name: x\ntasks: [diag/echo]\nmethods: [{name: diag-sleep, params: {seconds: fast}}]\n",
            "parameter 'seconds' of method 'diag-sleep': expected float",
        ),
        ("name: x\ntasks: [diag/echo]\nmethods: [logreg]\n", "no compatible"),
        (
            "name: x\ntasks: [diag/echo, tabular/iris]\n"
            "methods: [diag-nan, logreg, {name: logreg, label: diag-nan}]\n",
            "label.*diag-nan appear twice",
        ),
    ],
)
def test_bad_leaderboards_are_one_line_errors_naming_file_and_field(board_file, text, message):
    path = board_file(text)
    with pytest.raises(UserError, match=message) as err:
        lb.load(str(path)).plan()
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_cli_exits_2_with_one_line_on_bad_input(board_file, results, capsys):
    assert main(["run", "no-such-board"]) == 2
    assert main(["run", str(board_file("name: x\nseeds: [0\n"))]) == 2
    assert main(["run", str(board_file(GOOD)), "--methods", "three"]) == 2
    err = capsys.readouterr().err
    assert "unknown leaderboard 'no-such-board'" in err and "malformed YAML" in err
    assert "has no method 'three'" in err
    assert not results.exists(), "nothing is written on bad input"
