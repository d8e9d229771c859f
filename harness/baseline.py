"""Saved baselines and the comparison that gates a change on them.

A baseline freezes, per cell and gated metric, the per-seed values and the environment they came from.
`compare` tests each cell's current values against them with Welch's t-test and gives a verdict; a cell
significantly worse than its baseline (or failed, or not run) makes the comparison fail.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.aggregate import cells
from harness.environment import environment
from harness.errors import UserError
from harness.leaderboard import Leaderboard, PlannedRun, leaderboards_dir
from harness.store import Record

BASELINE_SCHEMA = 1


def baseline_path(board: str, name: str, folder: Path | None = None) -> Path:
    return (folder or leaderboards_dir() / "baselines") / board / f"{name}.json"


def save(
    board: Leaderboard,
    plan: list[PlannedRun],
    records: dict[str, Record],
    name: str,
    folder: Path | None = None,
) -> tuple[Path, list[str]]:
    """Write the baseline; returns its path and the cells left out because they are not complete."""
    saved: dict[str, Any] = {}
    skipped: list[str] = []
    for task in dict.fromkeys(r.task for r in plan):
        task_cls = board.task_class(task)
        for metric in (m for m in task_cls.metrics if m.gate):
            for cell in cells(board, [r for r in plan if r.task == task], records, metric.name):
                if cell.status != "ok":
                    if metric.name == task_cls.primary_metric:
                        skipped.append(f"{cell.task} × {cell.method} ({cell.status})")
                    continue
                entry = saved.setdefault(
                    f"{cell.task}\t{cell.method}", {"task": cell.task, "method": cell.method, "metrics": {}}
                )
                entry["metrics"][metric.name] = {
                    "values": list(cell.values),
                    "higher_is_better": metric.higher_is_better,
                    "tolerance": metric.tolerance,
                }
    if not saved:
        raise UserError(f"leaderboard '{board.name}' has no complete cell to save; run it first")
    path = baseline_path(board.name, name, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "schema": BASELINE_SCHEMA,
        "leaderboard": board.name,
        "name": name,
        "scale": board.scale,
        "seeds": sorted({r.spec.seed for r in plan}),
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "cells": list(saved.values()),
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=1))
    tmp.replace(path)
    return path, skipped


def load(board: str, name: str, folder: Path | None = None) -> dict[str, Any]:
    path = baseline_path(board, name, folder)
    if not path.exists():
        have = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.exists() else []
        raise UserError(
            f"no baseline '{name}' for leaderboard '{board}' at {path} "
            f"(saved: {', '.join(have) or 'none'}; `logitbench baseline save {board} {name}` makes one)"
        )
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if (
        not isinstance(document, dict)
        or document.get("schema") != BASELINE_SCHEMA
        or not isinstance(document.get("cells"), list)
    ):
        raise UserError(f"{path}: not a logitbench baseline (expected schema {BASELINE_SCHEMA} with 'cells')")
    return document


@dataclass(frozen=True)
class Comparison:
    task: str
    method: str
    metric: str
    baseline: tuple[float, ...]
    current: tuple[float, ...]
    delta: float | None  # current mean - baseline mean
    p_value: float | None
    verdict: str  # better | worse | same | failed | missing
    note: str = ""

    @property
    def regression(self) -> bool:
        return self.verdict in ("worse", "failed", "missing")


def welch_p(a: tuple[float, ...], b: tuple[float, ...]) -> float | None:
    """Two-sided Welch t-test p-value; exact 0/1 when both samples are constant; None when untestable."""
    if len(a) < 2 or len(b) < 2:
        return None
    var_a = sum((x - sum(a) / len(a)) ** 2 for x in a)
    var_b = sum((x - sum(b) / len(b)) ** 2 for x in b)
    if var_a == 0 and var_b == 0:
        return 1.0 if sum(a) / len(a) == sum(b) / len(b) else 0.0
    import warnings

    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # nearly equal samples warn about precision; the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_ind(a, b, equal_var=False).pvalue)


def verdict(
    baseline: tuple[float, ...],
    current: tuple[float, ...],
    higher_is_better: bool,
    tolerance: float,
    alpha: float,
) -> tuple[float, float | None, str, str]:
    """(delta, p, verdict, note): within tolerance is 'same'; beyond it, significance decides."""
    delta = sum(current) / len(current) - sum(baseline) / len(baseline)
    p = welch_p(current, baseline)
    if abs(delta) <= tolerance:
        return delta, p, "same", "within tolerance"
    if p is None:
        note = "fewer than 2 seeds: not testable, judged on the delta"
    elif p >= alpha:
        return delta, p, "same", f"not significant (p ≥ {alpha:g})"
    else:
        note = ""
    improved = delta > 0 if higher_is_better else delta < 0
    return delta, p, "better" if improved else "worse", note


def compare(
    board: Leaderboard,
    plan: list[PlannedRun],
    records: dict[str, Record],
    document: dict[str, Any],
    tolerance: float | None = None,
    alpha: float = 0.05,
) -> list[Comparison]:
    out = []
    for saved in document["cells"]:
        task, method = saved["task"], saved["method"]
        runs = [r for r in plan if r.task == task and r.method == method]
        for metric, entry in saved["metrics"].items():
            base = tuple(entry["values"])
            if not runs:
                out.append(
                    Comparison(
                        task,
                        method,
                        metric,
                        base,
                        (),
                        None,
                        None,
                        "missing",
                        "cell is not in the current leaderboard selection",
                    )
                )
                continue
            cell = cells(board, runs, records, metric)[0]
            if cell.status != "ok":
                out.append(
                    Comparison(task, method, metric, base, cell.values, None, None, cell.status, cell.reason)
                )
                continue
            tol = entry["tolerance"] if tolerance is None else tolerance
            delta, p, word, note = verdict(base, cell.values, entry["higher_is_better"], tol, alpha)
            out.append(Comparison(task, method, metric, base, cell.values, delta, p, word, note))
    return out


def describe(values: tuple[float, ...]) -> str:
    if not values:
        return "—"
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {std:.4f} (n={len(values)})"
