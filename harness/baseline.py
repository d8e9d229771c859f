"""Saved baselines and the comparison that gates a change on them.

A baseline freezes, per cell and gated metric, the per-seed values and the environment they came from.
`compare` tests each cell's current values against them with Welch's t-test and gives a verdict; a cell
significantly worse than its baseline (or failed, or not run) makes the comparison fail.

Where baselines live: `baseline save` writes to `--dir`, else to $LOGITBENCH_BASELINES, else to
`./logitbench-baselines/` (never into the installed package). `compare` reads from `--dir` alone when it
is given, else from that same folder and then from the baselines shipped with the package
(`leaderboards/baselines/<board>/<name>.json`, such as the committed `reference`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.aggregate import Cell, cells
from harness.environment import environment
from harness.errors import UserError
from harness.leaderboard import Leaderboard, PlannedRun, leaderboards_dir, short_repr
from harness.store import Record, finite_number

BASELINE_SCHEMA = 1
BASELINES_ENV = "LOGITBENCH_BASELINES"
# A baseline's name is a file name inside its board's folder: nothing that could leave that folder.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def default_dir() -> Path:
    """Where `baseline save` writes without --dir: $LOGITBENCH_BASELINES or ./logitbench-baselines."""
    return Path(os.environ.get(BASELINES_ENV) or "logitbench-baselines")


def shipped_dir() -> Path:
    return leaderboards_dir() / "baselines"


def check_name(name: str, what: str = "baseline name") -> str:
    if not SAFE_NAME.fullmatch(name) or name.endswith(".json"):
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise UserError(
            f"{what} {shown!r} ({len(name)} characters): expected 1 to 100 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit, without '.json' (no folders: use --dir)"
        )
    return name


def baseline_path(board: str, name: str, folder: Path | None = None) -> Path:
    """The file of baseline `name` of `board` in `folder` (default: the save folder)."""
    check_name(board, "leaderboard name")
    check_name(name)
    root = folder if folder is not None else default_dir()
    path = root / board / f"{name}.json"
    if not path.resolve().is_relative_to(root.resolve()):  # belt and braces: names are checked above
        raise UserError(f"baseline {path} would lie outside its folder {root}")
    return path


def search_dirs(folder: Path | None = None) -> list[Path]:
    """The folders `compare` looks in, in order."""
    return [folder] if folder is not None else [default_dir(), shipped_dir()]


def find(board: str, name: str, folder: Path | None = None) -> Path:
    """The first file of baseline `name` of `board` among the search folders; UserError when none has it."""
    candidates = [baseline_path(board, name, d) for d in search_dirs(folder)]
    for path in candidates:
        if path.is_file():
            return path
    have = sorted({p.stem for c in candidates if c.parent.is_dir() for p in c.parent.glob("*.json")})
    raise UserError(
        f"no baseline '{name}' for leaderboard '{board}' (looked for "
        f"{' and '.join(str(c) for c in candidates)}; saved: {', '.join(have) or 'none'}; "
        f"`logitbench baseline save {board} {name}` makes one)"
    )


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
                label = f"{cell.task}\t{cell.method}"
                if label not in saved:  # the cell's first metric: its versions, looked up once
                    runs = [r for r in plan if r.task == cell.task and r.method == cell.method]
                    saved[label] = {
                        "task": cell.task,
                        "method": cell.method,
                        **versions_of(runs),
                        "degenerate": cell.degenerate,
                        "metrics": {},
                    }
                entry = saved[label]
                entry["metrics"][metric.name] = {
                    "values": list(cell.values),
                    "higher_is_better": metric.higher_is_better,
                    "tolerance": metric.tolerance,
                }
    path = baseline_path(board.name, name, folder)
    if not saved:
        raise UserError(f"leaderboard '{board.name}' has no complete cell to save; run it first")
    _make_folder(path.parent)
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
    try:
        tmp.write_text(json.dumps(document, indent=1))
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"baseline {path} cannot be written ({err.strerror or err})") from None
    return path, skipped


def versions_of(runs: list[PlannedRun]) -> dict[str, str]:
    """The task's and the method's versions a cell's runs have (one each: a cell is one task x method)."""
    return {
        "task_version": ",".join(sorted({r.spec.task.version for r in runs})),
        "method_version": ",".join(sorted({r.spec.method.version for r in runs})),
    }


def version_note(saved: dict[str, Any], runs: list[PlannedRun]) -> str:
    """Says which component's version differs from the baseline's: a version is bumped when a result
    changes on purpose, so such a difference is expected and the baseline is due to be saved again.
    Empty when the versions agree or the baseline predates recorded versions."""
    now = versions_of(runs)
    changed = [
        f"{what} v{saved[field]} in the baseline, v{now[field]} now"
        for what, field in (("task", "task_version"), ("method", "method_version"))
        if field in saved and saved[field] != now[field]
    ]
    return "; ".join(changed)


def _make_folder(folder: Path) -> None:
    for above in (folder, *folder.parents):
        if above.exists():
            if not above.is_dir():
                raise UserError(f"baselines folder {folder}: {above} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"baselines folder {folder} cannot be made ({err.strerror or err})") from None


def load(board: str, name: str, folder: Path | None = None) -> dict[str, Any]:
    """The checked document of baseline `name` of `board` (see `find` for where it is looked for)."""
    return read(find(board, name, folder))


def read(path: Path) -> dict[str, Any]:
    """A baseline file, every field checked: a bad one is a UserError naming the file and the field."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}); expected a baseline JSON file") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except (ValueError, RecursionError) as err:
        raise UserError(f"{path}: not valid JSON ({type(err).__name__})") from None
    if not isinstance(document, dict) or document.get("schema") != BASELINE_SCHEMA:
        raise UserError(
            f"{path}: not a logitbench baseline (expected a JSON object with schema {BASELINE_SCHEMA})"
        )
    for key in ("leaderboard", "name", "scale", "saved_at"):  # shown by show --baseline and compare
        if key in document and not isinstance(document[key], str):
            raise UserError(f"{path}: field '{key}' must be text, got {short_repr(document[key])}")
    seeds = document.get("seeds", [])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise UserError(f"{path}: field 'seeds' must be a list of whole numbers, got {short_repr(seeds)}")
    environment = document.get("environment")
    if not isinstance(environment, dict | None):
        raise UserError(f"{path}: field 'environment' must be an object, got {short_repr(environment)}")
    cells_ = document.get("cells")
    if not isinstance(cells_, list) or not cells_:
        raise UserError(f"{path}: field 'cells' must be a non-empty list")
    for i, cell in enumerate(cells_):
        _check_cell(cell, f"{path}: cells[{i}]")
    return document


def check_scale(document: dict[str, Any], board: Leaderboard, path: Path) -> None:
    """A baseline saved at another scale than the board's holds other settings' numbers: comparing them
    would call every cell better or worse for nothing (a baseline that does not say is taken as it is)."""
    scale = document.get("scale")
    if scale is not None and scale != board.scale:
        raise UserError(
            f"{path}: saved at scale '{scale}', but leaderboard '{board.name}' ({board.source}) runs at "
            f"scale '{board.scale}'; save a baseline at this scale to compare with"
        )


def _check_cell(cell: Any, where: str) -> None:
    if not isinstance(cell, dict):
        raise UserError(f"{where}: expected an object with task, method and metrics")
    for key in ("task", "method"):
        if not isinstance(cell.get(key), str) or not cell[key]:
            raise UserError(
                f"{where}: field '{key}' must be a non-empty string, got {short_repr(cell.get(key))}"
            )
    where = f"{where} ({cell['task']} × {cell['method']})"
    for key in ("task_version", "method_version"):  # absent in baselines saved before versions were kept
        if key in cell and (not isinstance(cell[key], str) or not cell[key]):
            raise UserError(f"{where}: field '{key}' must be a non-empty string, got {short_repr(cell[key])}")
    degenerate = cell.get("degenerate", 0)
    if isinstance(degenerate, bool) or not isinstance(degenerate, int) or degenerate < 0:
        raise UserError(
            f"{where}: field 'degenerate' must be a whole number ≥ 0 (seeds flagged), "
            f"got {short_repr(degenerate)}"
        )
    metrics = cell.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise UserError(f"{where}: field 'metrics' must be a non-empty object of metric name to values")
    for metric, entry in metrics.items():
        at = f"{where}: metric '{metric}'"
        if not isinstance(entry, dict):
            raise UserError(f"{at}: expected an object with values, higher_is_better, tolerance")
        values = entry.get("values")
        if not isinstance(values, list) or not values or not all(finite_number(v) for v in values):
            raise UserError(
                f"{at}: field 'values' must be a non-empty list of finite numbers, got {short_repr(values)}"
            )
        direction = entry.get("higher_is_better")
        if not isinstance(direction, bool):
            raise UserError(
                f"{at}: field 'higher_is_better' must be true or false, got {short_repr(direction)}"
            )
        tolerance = entry.get("tolerance")
        if not (finite_number(tolerance) and tolerance >= 0):
            raise UserError(
                f"{at}: field 'tolerance' must be a finite number ≥ 0, got {short_repr(tolerance)}"
            )


def check_tolerance(value: float | None) -> float | None:
    if value is not None and not (finite_number(value) and value >= 0):
        raise UserError(f"tolerance must be a finite number ≥ 0, got {value!r}")
    return value


def check_alpha(value: float) -> float:
    if not (finite_number(value) and 0 < value < 1):
        raise UserError(f"alpha (the Welch test's significance level) must be between 0 and 1, got {value!r}")
    return value


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
    check_tolerance(tolerance)
    check_alpha(alpha)
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
            changed = version_note(saved, runs)
            if cell.status != "ok":
                declared = [m.name for m in board.task_class(task).metrics]
                unknown = (
                    ""
                    if metric in declared
                    else f"the task declares no metric '{metric}' ({', '.join(declared)})"
                )
                reason = "; ".join(filter(None, [cell.reason, unknown, changed]))
                out.append(
                    Comparison(task, method, metric, base, cell.values, None, None, cell.status, reason)
                )
                continue
            tol = entry["tolerance"] if tolerance is None else tolerance
            delta, p, word, note = verdict(base, cell.values, entry["higher_is_better"], tol, alpha)
            if metric == board.task_class(task).primary_metric:
                word, note = degenerate_verdict(cell, saved.get("degenerate"), word, note)
            note = "; ".join(filter(None, [note, changed]))
            out.append(Comparison(task, method, metric, base, cell.values, delta, p, word, note))
    return out


def degenerate_verdict(cell: Cell, saved: int | None, word: str, note: str) -> tuple[str, str]:
    """A cell whose model collapsed (harness/health.py) where the baseline's had not is worse, whatever
    its metric says; `saved` is the baseline's count of degenerate seeds, None for a baseline saved
    before health figures (then it is only noted)."""
    if not cell.degenerate:
        return word, note
    flagged = f"degenerate {cell.degenerate}/{cell.planned} seeds (one class for nearly everything)"
    if saved == 0:
        return "worse", f"newly {flagged}; the baseline's was not"
    known = "as in the baseline" if saved else "the baseline does not say whether it was"
    return word, "; ".join(filter(None, [note, f"{flagged}, {known}"]))
