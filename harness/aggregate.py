"""From records to leaderboard cells: mean and std over seeds, ranks per task, mean rank per method.

A cell has a value only when every planned seed ran and succeeded; a failed or missing seed makes the
whole cell failed or missing, so a failure is never averaged away.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from harness.leaderboard import Leaderboard, PlannedRun
from harness.store import Record

RECORD_COLUMNS = {
    "task": pl.String,
    "method": pl.String,
    "seed": pl.Int64,
    "key": pl.String,
    "status": pl.String,
    "metric": pl.String,
    "value": pl.Float64,
    "higher_is_better": pl.Boolean,
    "reason": pl.String,
}


def records_table(plan: list[PlannedRun], records: dict[str, Record]) -> pl.DataFrame:
    """One row per (run, metric); a run without a record is one row with status 'missing'."""
    rows = []
    for run in plan:
        record = records.get(run.spec.key)
        base = {"task": run.task, "method": run.method, "seed": run.spec.seed, "key": run.spec.key}
        if record is None:
            rows.append(
                {
                    **base,
                    "status": "missing",
                    "metric": None,
                    "value": None,
                    "higher_is_better": None,
                    "reason": "not run",
                }
            )
            continue
        metrics = record.data["metrics"] or {"": {"value": None, "higher_is_better": None}}
        for name, entry in metrics.items():
            rows.append(
                {
                    **base,
                    "status": record.status,
                    "metric": name or None,
                    "value": entry["value"],
                    "higher_is_better": entry["higher_is_better"],
                    "reason": record.reason or None,
                }
            )
    return pl.DataFrame(rows, schema=RECORD_COLUMNS)


@dataclass(frozen=True)
class Cell:
    task: str
    method: str
    metric: str
    status: str  # ok | failed | missing
    mean: float | None
    std: float | None
    n: int
    planned: int
    values: tuple[float, ...]
    reason: str = ""
    degenerate: int = 0  # ok seeds whose model predicted one class for nearly everything (harness/health.py)


def cells(
    board: Leaderboard, plan: list[PlannedRun], records: dict[str, Record], metric: str | None = None
) -> list[Cell]:
    """One cell per (task, method) for `metric` (default: each task's primary metric)."""
    out = []
    groups: dict[tuple[str, str], list[PlannedRun]] = {}
    for run in plan:
        groups.setdefault((run.task, run.method), []).append(run)
    for (task, method), runs in groups.items():
        name = metric or board.primary_metric(task)
        values, failed, reasons, degenerate = [], 0, [], 0
        for run in runs:
            record = records.get(run.spec.key)
            if record is None:
                continue
            if record.status != "ok":
                failed += 1
                reasons.append(f"seed {run.spec.seed}: {record.status} ({record.reason})")
                continue
            value = record.metric(name)
            if value is not None:
                values.append(value)
            degenerate += record.degenerate
        status = "failed" if failed else ("ok" if len(values) == len(runs) else "missing")
        series = pl.Series(values, dtype=pl.Float64)
        out.append(
            Cell(
                task,
                method,
                name,
                status,
                mean=float(series.mean()) if status == "ok" else None,
                std=float(series.std())
                if status == "ok" and len(values) > 1
                else (0.0 if status == "ok" else None),
                n=len(values),
                planned=len(runs),
                values=tuple(values),
                reason="; ".join(reasons),
                degenerate=degenerate,
            )
        )
    return out


def ranks(board: Leaderboard, cell_list: list[Cell]) -> dict[tuple[str, str], int]:
    """Rank of each complete cell within its task (1 = best; ties share the better rank)."""
    out: dict[tuple[str, str], int] = {}
    for task in {c.task for c in cell_list}:
        complete = [c for c in cell_list if c.task == task and c.mean is not None]
        if not complete:
            continue
        higher = board.task_class(task).metric(complete[0].metric).higher_is_better
        ordered = sorted({c.mean for c in complete}, reverse=higher)
        for c in complete:
            out[(task, c.method)] = 1 + sum(1 for v in ordered if (v > c.mean if higher else v < c.mean))
    return out


def mean_ranks(rank_map: dict[tuple[str, str], int]) -> dict[str, float]:
    per_method: dict[str, list[int]] = {}
    for (_, method), rank in rank_map.items():
        per_method.setdefault(method, []).append(rank)
    return {m: sum(r) / len(r) for m, r in per_method.items()}


def mean_ranks_by_family(
    rank_map: dict[tuple[str, str], int], family_of: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Per family, each method's mean rank over that family's tasks only: a rank never averages a
    distillation loss against a tabular classifier."""
    out: dict[str, dict[tuple[str, str], int]] = {}
    for (task, method), rank in rank_map.items():
        out.setdefault(family_of[task], {})[(task, method)] = rank
    return {family: mean_ranks(ranks_) for family, ranks_ in out.items()}


def interval95(values: tuple[float, ...] | list[float]) -> tuple[float, float]:
    """Student-t 95% confidence interval of the mean over seeds; a single seed is its own interval."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, mean
    from scipy.stats import t

    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    half = float(t.ppf(0.975, n - 1)) * std / n**0.5
    return mean - half, mean + half
