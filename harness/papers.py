"""Numbers the papers report (`leaderboards/papers/*.yaml`), to show beside `paper`-scale results."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.errors import UserError
from harness.leaderboard import leaderboards_dir, read_yaml


@dataclass(frozen=True)
class Reported:
    task: str
    method: str
    metric: str
    value: float
    unit: str
    source: str


def reported_numbers() -> list[Reported]:
    """Every file's numbers; a malformed file is a UserError naming the file and the entry."""
    out = []
    for path in sorted((leaderboards_dir() / "papers").glob("*.yaml")):
        data = read_yaml(path, "reported-numbers")
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise UserError(f"{path}: expected a mapping with keys source and reported")
        source = " ".join(str(data.get("source", path.stem)).split())
        entries = data.get("reported", [])
        if not isinstance(entries, list):
            raise UserError(f"{path}: field 'reported' must be a list of entries")
        for i, item in enumerate(entries):
            value = _number(item.get("value")) if isinstance(item, dict) else None
            if (
                not isinstance(item, dict)
                or not all(isinstance(item.get(k), str) and item[k] for k in ("task", "metric"))
                or value is None
            ):
                raise UserError(
                    f"{path}: reported[{i}] needs task and metric (text) and a finite numeric value"
                )
            out.append(
                Reported(
                    item["task"],
                    str(item.get("method", "")),
                    item["metric"],
                    float(value),
                    str(item.get("unit", "")),
                    source,
                )
            )
    return out


def _number(value: object) -> float | None:
    """A reported value as a finite float: a YAML number, or text that reads as one (YAML reads `1e-3`,
    without a dot, and anything quoted as text); None for anything else, booleans included."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def for_tasks(task_names: list[str]) -> list[Reported]:
    """The reported numbers for `task_names` (registered names; a note in brackets may follow the name)."""
    wanted = set(task_names)
    return [r for r in reported_numbers() if r.task.split(" (")[0] in wanted]
