"""The terminal view of `compare`: one section per family, one table per task, folded to the width.

A board such as `quick` gives hundreds of cell metrics; one table with task, method, metric and note as
columns cuts every name at 80 columns. Here the task is the table's title, each method is a row heading
with its metrics indented below it, the headers are short (Δ, p), notes go under the table, and when the
list is long only the cells that are not 'same' are listed, with a count of the others (`--all` lists
every one). Like `show` (harness/report.py) each table falls back to fewer digits, then to one line per
cell metric, so that method and metric names are never cut.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from harness.baseline import Comparison

# Beyond this many cell metrics the 'same' ones are counted instead of listed (unless show_all).
LONG_LIST = 40
COLOUR = {"better": "green", "worse": "red", "failed": "red", "missing": "red", "same": "dim"}
# Notes that only restate the verdict are left out of the notes under a table.
PLAIN_NOTES = {"within tolerance"}
LEGEND = (
    "Δ: current mean − baseline mean; p: two-sided Welch t-test; "
    "'same' is within tolerance unless a note says otherwise"
)


def render_comparison(
    results: Sequence[Comparison],
    console: Console,
    family_of: Callable[[str], str],
    show_all: bool = False,
) -> None:
    """Print `results` per family and task; `family_of` maps a task label to its family."""
    seeds = _usual_n(results)
    listed = (
        list(results)
        if show_all or len(results) <= LONG_LIST
        else [c for c in results if c.verdict != "same"]
    )
    hidden = len(results) - len(listed)
    legend = f"{LEGEND}; values are mean ± std over {seeds} seeds unless marked n=K"
    by_family: dict[str, dict[str, list[Comparison]]] = {}
    for c in results:
        by_family.setdefault(family_of(c.task), {}).setdefault(c.task, [])
    for c in listed:
        by_family[family_of(c.task)][c.task].append(c)
    for family, tasks in by_family.items():
        everything = [c for c in results if family_of(c.task) == family]
        console.print()
        console.print(f"[bold]{escape(family)}[/]: {_counts_text(everything)}", highlight=False)
        all_same = []
        for task, rows in tasks.items():
            if rows:
                _print_task(console, task, rows, sum(c.task == task for c in everything), seeds)
            else:
                all_same.append(f"{escape(task)} ({sum(c.task == task for c in everything)})")
        if all_same:
            console.print(f"all same, not listed: {', '.join(all_same)}", highlight=False)
    console.print()
    console.print(legend, highlight=False, style="dim")
    if hidden:
        console.print(f"{hidden} 'same' cell metric(s) not listed; --all lists every one", highlight=False)


def _print_task(console: Console, task: str, rows: list[Comparison], total: int, seeds: int) -> None:
    title = escape(task) + ("" if len(rows) == total else f" ({len(rows)} of {total} listed)")
    for digits, spaced in ((4, True), (3, True), (3, False)):
        table = _table(title, rows, digits, spaced, seeds)
        if _natural_width(console, table) <= console.width:
            console.print(table)
            break
    else:
        console.print(f"[bold]{title}[/]", highlight=False)
        for c in rows:
            console.print(f"  {_line(c, seeds)}", highlight=False)
    for line in notes(rows):
        console.print(f"  {line}", highlight=False, style="dim")


def notes(rows: list[Comparison]) -> list[str]:
    """The notes under a task's table, one per method and note: 'method: note' when it holds for every
    listed metric of the method, else 'method metric, metric: note'."""
    metrics_of: dict[tuple[str, str], list[str]] = {}
    for c in rows:
        if c.note and c.note not in PLAIN_NOTES:
            metrics_of.setdefault((c.method, c.note), []).append(c.metric)
    out = []
    for (method, note), metrics in metrics_of.items():
        every = len(metrics) == sum(c.method == method for c in rows)
        which = "" if every else " " + ", ".join(escape(m) for m in metrics)
        out.append(f"{escape(method)}{which}: {escape(note)}")
    return out


def _table(title: str, rows: list[Comparison], digits: int, spaced: bool, seeds: int) -> Table:
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True
    )
    table.add_column("method / metric", no_wrap=True)
    for header in ("baseline", "current", "Δ", "p"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    method = None
    for c in rows:
        if c.method != method:
            method = c.method
            table.add_row(f"[bold]{escape(c.method)}[/]")
        table.add_row(
            f"  {escape(c.metric)}",
            values_text(c.baseline, digits, spaced, seeds),
            values_text(c.current, digits, spaced, seeds),
            delta_text(c.delta, digits),
            p_text(c.p_value),
            f"[{COLOUR[c.verdict]}]{c.verdict}[/]",
        )
    return table


def _line(c: Comparison, seeds: int) -> str:
    """One cell metric as a line, for widths where no table fits: wraps between words, never inside a name."""
    return (
        f"[bold]{escape(c.method)}[/] {escape(c.metric)}: {values_text(c.baseline, 3, False, seeds)} → "
        f"{values_text(c.current, 3, False, seeds)}, Δ {delta_text(c.delta, 3)}, p {p_text(c.p_value)}, "
        f"[{COLOUR[c.verdict]}]{c.verdict}[/]"
    )


def _natural_width(console: Console, table: Table) -> int:
    return Measurement.get(console, console.options.update_width(100_000), table).maximum


def values_text(values: tuple[float, ...], digits: int, spaced: bool, seeds: int) -> str:
    """'mean ± std' of the seeds' values (sample std), with ' n=K' when K is not the usual count."""
    if not values:
        return "—"
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    sep = " ± " if spaced else "±"
    count = "" if len(values) == seeds else f" n={len(values)}"
    return f"{mean:.{digits}f}{sep}{std:.{digits}f}{count}"


def delta_text(delta: float | None, digits: int) -> str:
    return "—" if delta is None else f"{delta:+.{digits}f}"


def p_text(p: float | None) -> str:
    return "—" if p is None else f"{p:.2g}"


def _usual_n(results: Sequence[Comparison]) -> int:
    counts = Counter(len(v) for c in results for v in (c.baseline, c.current) if v)
    return counts.most_common(1)[0][0] if counts else 0


def _counts_text(results: Sequence[Comparison]) -> str:
    counts = Counter(c.verdict for c in results)
    shown = ", ".join(
        f"{counts[v]} {v}" for v in ("better", "same", "worse", "failed", "missing") if counts[v]
    )
    return f"{len(results)} cell metric(s): {shown}"
