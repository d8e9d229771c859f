from __future__ import annotations

import pytest

from harness.components import coerce
from harness.errors import UserError
from harness.registries import METHODS, TASKS
from harness.spec import RunSpec, make_spec


def test_coerce_accepts_ints_as_floats_and_lists_as_tuples():
    assert coerce(3, float, "x") == 3.0
    assert coerce([1, 2], tuple[int, ...], "x") == (1, 2)
    assert coerce(None, int | None, "x") is None


@pytest.mark.parametrize(
    ("value", "annotation"), [("3", float), (True, int), (1.5, int), (["a"], tuple[int, ...])]
)
def test_coerce_rejects_wrong_types_naming_the_field(value, annotation):
    with pytest.raises(UserError, match="parameter 'C'"):
        coerce(value, annotation, "parameter 'C'")


def test_unknown_and_missing_params_name_the_field():
    logreg = METHODS.get("logreg")
    with pytest.raises(UserError, match="no parameter 'c'.*it has: C, max_iter"):
        logreg.validate_params({"c": 1.0}, "board.yaml")
    table = TASKS.get("tabular/table")
    with pytest.raises(UserError, match="needs parameter.*path, target"):
        table.validate_params({}, "board.yaml")


def test_spec_key_is_stable_and_covers_everything_that_changes_the_result():
    task, method = TASKS.get("tabular/iris"), METHODS.get("logreg")
    base = make_spec(task, method, 0, "cpu")
    assert make_spec(task, method, 0, "cpu").key == base.key
    assert RunSpec.from_json(base.to_json()).key == base.key
    others = {
        make_spec(task, method, 1, "cpu").key,
        make_spec(task, method, 0, "smoke").key,
        make_spec(task, method, 0, "cpu", method_params={"C": 0.5}).key,
        make_spec(task, method, 0, "cpu", task_params={"folds": 3}).key,
    }
    assert base.key not in others and len(others) == 4
    # Defaults are resolved into the spec, so spelling out a default changes nothing.
    assert make_spec(task, method, 0, "cpu", method_params={"C": 1}).key == base.key


def test_scale_settings_are_resolved_into_the_spec():
    spec = make_spec(TASKS.get("tabular/iris"), METHODS.get("logreg"), 0, "smoke")
    assert spec.task.params_dict()["folds"] == 2


def test_incompatible_pair_is_a_clear_error():
    with pytest.raises(UserError, match="cannot run on task 'tabular/iris'.*needs the tabular protocol"):
        make_spec(TASKS.get("tabular/iris"), METHODS.get("diag-constant"), 0, "cpu")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UserError, match="unknown method 'logre'; did you mean 'logreg'"):
        METHODS.get("logre")
