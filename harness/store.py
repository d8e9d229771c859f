"""The result store: one JSON record per run, written atomically the moment the run ends.

A record is written to a temporary file and renamed over its final name, so a reader sees a whole
record or none, whatever kills the writer. A record that fails validation (truncated, hand-edited, key
not matching its spec) is reported and treated as absent, so the run is redone instead of crashing.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.spec import RunSpec

RECORD_SCHEMA = 1
STATUSES = ("ok", "failed", "timeout")
RESULTS_ENV = "LOGITBENCH_RESULTS"


def default_results_dir() -> Path:
    return Path(os.environ.get(RESULTS_ENV, "logitbench-results"))


class InvalidRecordError(ValueError):
    pass


@dataclass(frozen=True)
class Record:
    data: dict[str, Any]

    @property
    def key(self) -> str:
        return self.data["key"]

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def spec(self) -> RunSpec:
        return RunSpec.from_json(self.data["spec"])

    def metric(self, name: str) -> float | None:
        entry = self.data["metrics"].get(name)
        return None if entry is None else entry["value"]

    @property
    def details(self) -> dict[str, Any]:
        """What the task kept beside its metrics (empty for records written before details existed)."""
        return self.data.get("details") or {}

    @property
    def reason(self) -> str:
        error = self.data.get("error") or {}
        return f"{error.get('type', '')}: {error.get('message', '')}".strip(": ")


class ResultStore:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_results_dir()
        self.runs_dir = self.root / "runs"
        self.artifacts_dir = self.root / "artifacts"

    def path(self, key: str) -> Path:
        return self.runs_dir / key[:2] / f"{key}.json"

    def write(self, record: dict[str, Any]) -> Path:
        validate_record(record)
        final = self.path(record["key"])
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{record['key']}.", suffix=".tmp", dir=final.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh, indent=1, sort_keys=True, allow_nan=False)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(final)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return final

    def read(self, key: str) -> Record | None:
        """The stored record for `key`, None when there is none; InvalidRecordError when it is unreadable."""
        path = self.path(key)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InvalidRecordError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
        try:
            validate_record(data)
        except InvalidRecordError as err:
            raise InvalidRecordError(f"{path}: {err}") from None
        if data["key"] != key:
            raise InvalidRecordError(f"{path}: record key {data['key']} does not match its file name")
        return Record(data)

    def read_many(self, keys: list[str]) -> tuple[dict[str, Record], list[str]]:
        """Records found by key, and a message for each invalid one (those count as absent)."""
        found: dict[str, Record] = {}
        problems: list[str] = []
        for key in keys:
            try:
                record = self.read(key)
            except InvalidRecordError as err:
                problems.append(f"{err}; it will be redone")
                continue
            if record is not None:
                found[key] = record
        return found, problems

    def all_keys(self) -> list[str]:
        if not self.runs_dir.exists():
            return []
        return sorted(p.stem for p in self.runs_dir.glob("*/*.json"))


def validate_record(data: Any) -> None:
    """Raise InvalidRecordError naming the first field that is missing or wrong."""
    if not isinstance(data, dict):
        raise InvalidRecordError("record is not a JSON object")
    for field, kind in (("schema", int), ("key", str), ("spec", dict), ("status", str), ("metrics", dict)):
        if not isinstance(data.get(field), kind):
            raise InvalidRecordError(f"field '{field}' is missing or not a {kind.__name__}")
    if data["schema"] != RECORD_SCHEMA:
        raise InvalidRecordError(f"field 'schema' is {data['schema']}, expected {RECORD_SCHEMA}")
    if data["status"] not in STATUSES:
        raise InvalidRecordError(
            f"field 'status' is {data['status']!r}, expected one of {', '.join(STATUSES)}"
        )
    try:
        spec = RunSpec.from_json(data["spec"])
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidRecordError(f"field 'spec' is malformed ({err!r})") from None
    if spec.key != data["key"]:
        raise InvalidRecordError("field 'key' does not match the hash of field 'spec' (edited by hand?)")
    for name, entry in data["metrics"].items():
        if not isinstance(entry, dict) or "value" not in entry or "higher_is_better" not in entry:
            raise InvalidRecordError(f"metric '{name}' needs 'value' and 'higher_is_better'")
        value = entry["value"]
        if data["status"] == "ok" and not (isinstance(value, int | float) and math.isfinite(value)):
            raise InvalidRecordError(f"metric '{name}' of an ok record is not a finite number: {value!r}")
