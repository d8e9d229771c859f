from __future__ import annotations

import json

import pytest

from harness.registries import METHODS, TASKS
from harness.spec import make_spec
from harness.store import InvalidRecordError, ResultStore
from harness.worker import build_record


def _record(seed=0, status="ok", value=0.5):
    spec = make_spec(TASKS.get("diag/echo"), METHODS.get("diag-constant"), seed, "cpu")
    metrics = {"score": {"value": value, "higher_is_better": True}}
    return build_record(spec, "run-1", status, metrics, None, "2026-01-01T00:00:00", 0.1)


def test_write_then_read_round_trips(tmp_path):
    store = ResultStore(tmp_path)
    data = _record()
    store.write(data)
    record = store.read(data["key"])
    assert record is not None and record.metric("score") == 0.5 and record.status == "ok"
    assert record.data["environment"]["packages"]["python"]
    assert not list(tmp_path.rglob("*.tmp")), "no temporary file is left behind"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: text.replace('"status": "ok"', '"status": "great"'), "field 'status'"),
        (lambda text: text.replace('"seed": 0', '"seed": 7'), "does not match the hash"),
        (lambda text: text.replace('"value": 0.5', '"value": "high"'), "not a finite number"),
    ],
)
def test_truncated_or_edited_record_is_reported_not_crashed_on(tmp_path, edit, message):
    store = ResultStore(tmp_path)
    data = _record()
    path = store.write(data)
    path.write_text(edit(path.read_text()))
    with pytest.raises(InvalidRecordError, match=message):
        store.read(data["key"])
    found, problems = store.read_many([data["key"]])
    assert found == {} and len(problems) == 1 and "will be redone" in problems[0]


def test_write_refuses_an_ok_record_with_nan(tmp_path):
    data = _record(value=float("nan"))
    with pytest.raises(InvalidRecordError):
        ResultStore(tmp_path).write(data)


def test_records_are_plain_json_with_spec_and_key(tmp_path):
    data = _record()
    path = ResultStore(tmp_path).write(data)
    stored = json.loads(path.read_text())
    assert stored["key"] == data["key"] and stored["spec"]["method"]["name"] == "diag-constant"
