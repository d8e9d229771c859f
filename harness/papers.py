"""Numbers the papers report (`leaderboards/papers/*.yaml`), to show beside `paper`-scale results."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from harness.errors import UserError
from harness.leaderboard import leaderboards_dir


@dataclass(frozen=True)
class Reported:
    task: str
    method: str
    metric: str
    value: float
    unit: str
    source: str


def reported_numbers() -> list[Reported]:
    out = []
    for path in sorted((leaderboards_dir() / "papers").glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        source = " ".join(str(data.get("source", path.stem)).split())
        for i, item in enumerate(data.get("reported", [])):
            try:
                out.append(
                    Reported(
                        str(item["task"]),
                        str(item.get("method", "")),
                        str(item["metric"]),
                        float(item["value"]),
                        str(item.get("unit", "")),
                        source,
                    )
                )
            except (KeyError, TypeError, ValueError) as err:
                raise UserError(
                    f"{path}: reported[{i}] needs task, metric and a numeric value ({err})"
                ) from None
    return out


def for_tasks(task_names: list[str]) -> list[Reported]:
    """The reported numbers for `task_names` (registered names; a note in brackets may follow the name)."""
    wanted = set(task_names)
    return [r for r in reported_numbers() if r.task.split(" (")[0] in wanted]
