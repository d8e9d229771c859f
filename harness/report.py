"""Leaderboard output: rich tables for the terminal, Markdown, CSV, and a self-contained HTML report.

A board may span families (`quick` holds tabular, poisoning, auctions and distillation); every output is
split into one section per family, each with its own tasks, methods and mean rank, because a rank that
averages a distillation loss against a tabular classifier means nothing. A summary is built either from
stored records or from a saved baseline (`show BOARD --baseline NAME`), and both draw the same report.
"""

from __future__ import annotations

import html
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from harness import papers
from harness.aggregate import Cell, cells, interval95, mean_ranks_by_family, ranks
from harness.figures import MetricDots, MetricSeries, figures_of
from harness.leaderboard import Leaderboard, PlannedRun
from harness.papers import Reported
from harness.store import Record

DEGENERATE_NOTE = "⚠ degenerate k/n: k of n seeds predict one class for nearly everything"
LEGEND = (
    "mean ± std over seeds; ★ best in task; mean rank within the family; a failed or missing seed leaves "
)
LEGEND += "the cell empty"


@dataclass(frozen=True)
class Section:
    """One family of a board: its tasks, its methods (best mean rank first) and their mean ranks."""

    family: str
    tasks: list[str]
    methods: list[str]
    mean_ranks: dict[str, float]


@dataclass(frozen=True)
class Summary:
    """Everything a report shows, computed once."""

    board: Leaderboard
    tasks: list[str]
    methods: list[str]
    cells: dict[tuple[str, str], Cell]
    ranks: dict[tuple[str, str], int]
    sections: list[Section]
    reported: list[Reported]  # the papers' numbers, for paper-scale boards
    # (task, method) -> metric -> per-seed values, for the cells whose every planned seed is ok
    values: dict[tuple[str, str], dict[str, tuple[float, ...]]]
    # (task, method, curve name) -> the curve a task kept in its records' details, averaged over seeds
    curves: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    source: str = ""  # where the numbers come from, when not the board's own records

    @classmethod
    def build(
        cls, board: Leaderboard, plan: list[PlannedRun], records: dict[str, Record], metric: str | None = None
    ) -> Summary:
        return cls.assemble(
            board,
            cells(board, plan, records, metric),
            complete_values(plan, records),
            mean_curves(plan, records),
        )

    @classmethod
    def from_baseline(
        cls, board: Leaderboard, document: dict[str, Any], plan: list[PlannedRun], metric: str | None = None
    ) -> Summary:
        """The cells a baseline froze, for the tasks and methods of `plan` (the board narrowed by the
        command line), as if they were records: per-seed values of every metric it saved."""
        wanted = {(r.task, r.method) for r in plan}
        cell_list, values = [], {}
        for saved in document["cells"]:
            key = (saved["task"], saved["method"])
            if key not in wanted:
                continue
            name = metric or board.primary_metric(key[0])
            kept = {m: tuple(float(v) for v in e["values"]) for m, e in saved["metrics"].items()}
            values[key] = kept
            cell_list.append(cell_of(key[0], key[1], name, kept.get(name), len(document.get("seeds", []))))
        source = f"baseline '{document.get('name', '?')}' saved {document.get('saved_at', '?')}"
        commit = (document.get("environment") or {}).get("git_commit")
        source += f" at commit {str(commit)[:10]}" if commit else ""
        return cls.assemble(board, cell_list, values, {}, source)

    @classmethod
    def assemble(
        cls,
        board: Leaderboard,
        cell_list: list[Cell],
        values: dict[tuple[str, str], dict[str, tuple[float, ...]]],
        curves: dict[tuple[str, str, str], dict],
        source: str = "",
    ) -> Summary:
        rank_map = ranks(board, cell_list)
        order = {t.shown: i for i, t in enumerate(board.tasks)}
        tasks = sorted(dict.fromkeys(c.task for c in cell_list), key=lambda t: order.get(t, len(order)))
        methods = list(dict.fromkeys(c.method for c in cell_list))
        family_of = {t: board.task_class(t).family for t in tasks}
        by_family = mean_ranks_by_family(rank_map, family_of)
        sections = []
        for family in dict.fromkeys(family_of.values()):
            family_tasks = [t for t in tasks if family_of[t] == family]
            members = [m for m in methods if any(c.method == m and c.task in family_tasks for c in cell_list)]
            ranked = by_family.get(family, {})
            members.sort(key=lambda m: ranked.get(m, math.inf))  # stable: board order breaks ties
            sections.append(Section(family, family_tasks, members, ranked))
        reported = papers.for_tasks([t.name for t in board.tasks]) if board.scale == "paper" else []
        return cls(
            board,
            tasks,
            methods,
            {(c.task, c.method): c for c in cell_list},
            rank_map,
            sections,
            reported,
            values,
            curves,
            source,
        )

    def narrowed(self, families: list[str]) -> Summary:
        """Only the sections of `families` (every name must be one of the board's)."""
        keep = [s for s in self.sections if s.family in families]
        tasks = [t for s in keep for t in s.tasks]
        return Summary(
            self.board,
            tasks,
            [m for m in self.methods if any((t, m) in self.cells for t in tasks)],
            {k: c for k, c in self.cells.items() if k[0] in tasks},
            {k: r for k, r in self.ranks.items() if k[0] in tasks},
            keep,
            [r for r in self.reported if r.task in tasks],
            {k: v for k, v in self.values.items() if k[0] in tasks},
            {k: v for k, v in self.curves.items() if k[0] in tasks},
            self.source,
        )

    def families(self) -> list[str]:
        return [s.family for s in self.sections]

    def metric_of(self, task: str) -> str:
        return next(c.metric for c in self.cells.values() if c.task == task)

    def arrow(self, task: str, metric: str | None = None) -> str:
        return "↑" if self.higher_is_better(task, metric or self.metric_of(task)) else "↓"

    def higher_is_better(self, task: str, metric: str) -> bool:
        try:
            return self.board.task_class(task).metric(metric).higher_is_better
        except KeyError:  # a metric a task reports without declaring it (an extra radius): higher wins
            return True

    def text(self, task: str, method: str, digits: int = 4) -> str:
        cell = self.cells.get((task, method))
        if cell is None:
            return "n/a"
        if cell.status == "failed":
            return f"failed ({cell.planned - cell.n}/{cell.planned})"
        if cell.status == "missing":
            return f"missing ({cell.planned - cell.n}/{cell.planned})"
        return f"{_number(cell.mean, digits)} ± {_number(cell.std, digits)}" + degenerate_mark(cell)

    def seeds_text(self) -> str:
        counts = sorted({c.planned for c in self.cells.values()})
        return f"n={'/'.join(map(str, counts))} seeds"

    def is_best(self, task: str, method: str) -> bool:
        return self.ranks.get((task, method)) == 1

    def rank_text(self, section: Section, method: str) -> str:
        value = section.mean_ranks.get(method)
        return "—" if value is None else f"{value:.2f}"

    def failures(self) -> list[str]:
        return [f"{c.task} × {c.method}: {c.reason}" for c in self.cells.values() if c.status == "failed"]

    def any_degenerate(self) -> bool:
        return any(getattr(c, "degenerate", 0) for c in self.cells.values())


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if abs(value) < 10**5 else f"{value:.{digits}g}"


def degenerate_mark(cell: Cell) -> str:
    """' ⚠ degenerate k/n' when k seeds of the cell collapsed to one class (harness/health.py), else ''."""
    degenerate = getattr(cell, "degenerate", 0)
    return f" ⚠ degenerate {degenerate}/{cell.planned}" if degenerate else ""


def cell_of(task: str, method: str, metric: str, values: tuple[float, ...] | None, planned: int) -> Cell:
    """A cell from per-seed values (a baseline's): missing when the metric was not saved."""
    if not values:
        return Cell(task, method, metric, "missing", None, None, 0, planned or 1, (), "not in the baseline")
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return Cell(task, method, metric, "ok", mean, std, len(values), len(values), values)


def complete_values(
    plan: list[PlannedRun], records: dict[str, Record]
) -> dict[tuple[str, str], dict[str, tuple[float, ...]]]:
    """Per cell whose every planned seed is ok: each metric that all its seeds report, seed by seed."""
    groups: dict[tuple[str, str], list[PlannedRun]] = {}
    for run in plan:
        groups.setdefault((run.task, run.method), []).append(run)
    out = {}
    for key, runs in groups.items():
        found = [records.get(r.spec.key) for r in runs]
        if not all(rec is not None and rec.status == "ok" for rec in found):
            continue
        names = set.intersection(*(set(rec.data["metrics"]) for rec in found))  # type: ignore[union-attr]
        kept = {}
        for name in sorted(names):
            seeds = [rec.metric(name) for rec in found]  # type: ignore[union-attr]
            if all(isinstance(v, int | float) and math.isfinite(v) for v in seeds):
                kept[name] = tuple(float(v) for v in seeds)
        out[key] = kept
    return out


def mean_curves(plan: list[PlannedRun], records: dict[str, Record]) -> dict[tuple[str, str, str], dict]:
    """Per (task, method, curve), each series averaged point by point over the ok seeds that kept it."""
    gathered: dict[tuple[str, str, str], list[dict]] = {}
    for run in plan:
        record = records.get(run.spec.key)
        if record is None or record.status != "ok":
            continue
        kept = record.details.get("curves")
        for name, curve in kept.items() if isinstance(kept, dict) else ():
            if _is_curve(curve):  # else a record from before checksums, edited: no figure from it
                gathered.setdefault((run.task, run.method, name), []).append(curve)
    out = {}
    for key, curves in gathered.items():
        labels = [
            label
            for label in curves[0]["series"]
            if all(
                label in c["series"] and len(c["series"][label]) == len(curves[0]["series"][label])
                for c in curves
            )
        ]
        series = {
            label: [sum(v) / len(v) for v in zip(*(c["series"][label] for c in curves), strict=True)]
            for label in labels
        }
        out[key] = {**curves[0], "series": series, "seeds": len(curves)}
    return out


def _is_curve(curve: Any) -> bool:
    """A curve as tasks keep it: a mapping whose 'series' maps labels to lists of numbers."""
    series = curve.get("series") if isinstance(curve, dict) else None
    return isinstance(series, dict) and all(
        isinstance(v, list) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
        for v in series.values()
    )


# -- terminal -------------------------------------------------------------------------------------------


def render_table(summary: Summary, console: Console) -> None:
    """One table per family, each folded to the console's width: fewer digits first, then the tasks split
    over several tables, then tasks as rows. Method names and task names are never cut."""
    heading = f"[bold]{escape(summary.board.name)}[/] ({summary.board.scale} scale, {summary.seeds_text()})"
    if summary.source:
        heading += f" from {escape(summary.source)}"
    console.print(heading, highlight=False)
    for section in summary.sections:
        console.print()
        for table in section_tables(summary, section, console):
            console.print(table)
    console.print(LEGEND + (f"; {DEGENERATE_NOTE}" if summary.any_degenerate() else ""), highlight=False)
    for line in summary.failures():
        console.print(f"[red]failed:[/] {escape(line)}", highlight=False)
    if summary.reported:
        paper = Table(title="reported by the papers")
        for col in ("task", "method", "metric", "value", "source"):
            paper.add_column(col)
        for r in summary.reported:
            paper.add_row(
                escape(r.task),
                escape(r.method),
                escape(r.metric),
                escape(f"{r.value:g} {r.unit}"),
                escape(r.source),
            )
        console.print(paper)


def section_tables(summary: Summary, section: Section, console: Console) -> list[Table]:
    """The tables of one family that fit `console.width` (see `render_table`)."""
    width = console.width
    for digits in (4, 3):
        table = _wide(summary, section, section.tasks, digits, True, _title(section))
        if _natural_width(console, table) <= width:
            return [table]
    chunks: list[list[str]] = []
    for task in section.tasks:
        trial = [*chunks[-1], task] if chunks else [task]
        # room for the mean-rank column in every chunk: any of them may turn out to be the last
        if chunks and _natural_width(console, _wide(summary, section, trial, 3, True, "")) <= width:
            chunks[-1] = trial
        else:
            chunks.append([task])
    tables = [
        _wide(summary, section, chunk, 3, i == len(chunks) - 1, f"{_title(section)} ({i + 1}/{len(chunks)})")
        for i, chunk in enumerate(chunks)
    ]
    if all(_natural_width(console, t) <= width for t in tables):
        return tables
    return [_long(summary, section)]


def _title(section: Section) -> str:
    return f"{section.family}: {len(section.tasks)} task(s), {len(section.methods)} method(s)"


def _natural_width(console: Console, table: Table) -> int:
    return Measurement.get(console, console.options.update_width(100_000), table).maximum


def _wide(
    summary: Summary, section: Section, tasks: list[str], digits: int, with_rank: bool, title: str
) -> Table:
    table = Table(title=escape(title), title_justify="left")
    table.add_column("method", style="bold", no_wrap=True)
    for task in tasks:
        table.add_column(
            f"{escape(task)}\n{escape(summary.metric_of(task))} {summary.arrow(task)}",
            justify="right",
            no_wrap=True,
        )
    if with_rank:
        table.add_column("mean\nrank", justify="right", no_wrap=True)
    for method in section.methods:
        row = [_styled(summary, task, method, digits) for task in tasks]
        table.add_row(escape(method), *row, *([summary.rank_text(section, method)] if with_rank else []))
    return table


def _long(summary: Summary, section: Section) -> Table:
    """Tasks as rows: one row per (task, method), for names too long to sit side by side."""
    table = Table(title=escape(_title(section)), title_justify="left")
    table.add_column("task / method", overflow="fold")
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("mean rank", justify="right", no_wrap=True)
    for task in section.tasks:
        table.add_row(f"[bold]{escape(task)}[/] ({escape(summary.metric_of(task))} {summary.arrow(task)})")
        for method in section.methods:
            if (task, method) in summary.cells:
                table.add_row(
                    f"  {escape(method)}",
                    _styled(summary, task, method, 3),
                    summary.rank_text(section, method),
                )
    return table


def _styled(summary: Summary, task: str, method: str, digits: int) -> str:
    text = escape(summary.text(task, method, digits))
    cell = summary.cells.get((task, method))
    if summary.is_best(task, method):
        return f"[bold green]★ {text}[/]"
    if cell is not None and cell.status != "ok":
        return f"[red]{text}[/]"
    return text


# -- Markdown and CSV -----------------------------------------------------------------------------------


def render_markdown(summary: Summary) -> str:
    lines = [f"# {summary.board.name} ({summary.board.scale} scale)", ""]
    if summary.source:
        lines += [f"From {summary.source}.", ""]
    for section in summary.sections:
        head = ["method", *[f"{t} ({summary.metric_of(t)} {summary.arrow(t)})" for t in section.tasks]]
        lines += [f"## {section.family}", "", _md_row([*head, "mean rank"])]
        lines.append("|" + "---|" * (len(head) + 1))
        for method in section.methods:
            row = [method]
            for task in section.tasks:
                text = summary.text(task, method)
                row.append(f"**{text}** ★" if summary.is_best(task, method) else text)
            lines.append(_md_row([*row, summary.rank_text(section, method)]))
        lines.append("")
    note = f"; {DEGENERATE_NOTE}" if summary.any_degenerate() else ""
    lines += [f"{LEGEND.replace('seeds', summary.seeds_text(), 1)}{note}."]
    lines += [f"- failed: {f}" for f in summary.failures()]
    if summary.reported:
        lines += [
            "",
            "## Reported by the papers",
            "",
            "| task | method | metric | value | source |",
            "|---|---|---|---|---|",
        ]
        lines += [
            _md_row([r.task, r.method, r.metric, f"{r.value:g} {r.unit}", r.source]) for r in summary.reported
        ]
    return "\n".join(lines) + "\n"


def _md_row(cells: list[str]) -> str:
    """A Markdown table row; a '|' in a label would end its cell, so it is escaped."""
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def cell_frame(summary: Summary) -> pl.DataFrame:
    """One row per cell, in section order; `rank` is within the task, `mean_rank` within the family."""
    rows = []
    for section in summary.sections:
        for task in section.tasks:
            for method in section.methods:
                c = summary.cells.get((task, method))
                if c is None:
                    continue
                rows.append(
                    {
                        "family": section.family,
                        "task": c.task,
                        "method": c.method,
                        "metric": c.metric,
                        "status": c.status,
                        "mean": c.mean,
                        "std": c.std,
                        "n": c.n,
                        "planned": c.planned,
                        "rank": summary.ranks.get((c.task, c.method)),
                        "reason": c.reason,
                        "degenerate": getattr(c, "degenerate", 0),
                        "mean_rank": section.mean_ranks.get(method),
                    }
                )
    schema = {
        "family": pl.String,
        "task": pl.String,
        "method": pl.String,
        "metric": pl.String,
        "status": pl.String,
        "mean": pl.Float64,
        "std": pl.Float64,
        "n": pl.Int64,
        "planned": pl.Int64,
        "rank": pl.Int64,
        "reason": pl.String,
        "degenerate": pl.Int64,
        "mean_rank": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def render_csv(summary: Summary) -> str:
    buffer = io.StringIO()
    cell_frame(summary).write_csv(buffer)
    return buffer.getvalue()


# -- HTML -----------------------------------------------------------------------------------------------


def slug(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9]+", "-", p).strip("-").lower() for p in parts)


@dataclass(frozen=True)
class Chart:
    """A figure of the report: its anchor, caption and inline SVG."""

    anchor: str
    caption: str
    svg: str


def render_html(summary: Summary) -> str:
    """One self-contained page: a contents list per family, then per family its table, a dot-and-whisker
    chart per task, the family's own figures, and the curves its runs kept."""
    esc = html.escape
    contents, sections = [], []
    for section in summary.sections:
        charts = section_charts(summary, section)
        anchor = slug("family", section.family)
        items = "".join(f'<li><a href="#{c.anchor}">{esc(c.caption)}</a></li>' for c in charts)
        contents.append(
            f'<li><a href="#{anchor}">{esc(section.family)}</a> ({len(section.tasks)} task(s), '
            f"{len(section.methods)} method(s))<ul>{items}</ul></li>"
        )
        figures = "".join(
            f'<figure id="{c.anchor}">{c.svg}<figcaption>{esc(c.caption)}</figcaption></figure>'
            for c in charts
        )
        if not charts:
            figures = "<p>No cell of this family has every seed done yet: nothing to chart.</p>"
        sections.append(
            f'<section id="{anchor}"><h2>{esc(section.family)}</h2>{_html_table(summary, section)}'
            f'<div class="charts">{figures}</div></section>'
        )
    failures = "".join(f"<li>{esc(f)}</li>" for f in summary.failures())
    reported = "".join(
        f"<tr><td>{esc(r.task)}</td><td>{esc(r.method)}</td><td>{esc(r.metric)}</td>"
        f"<td>{r.value:g} {esc(r.unit)}</td><td>{esc(r.source)}</td></tr>"
        for r in summary.reported
    )
    note = f"; {DEGENERATE_NOTE}" if summary.any_degenerate() else ""
    source = f"<p>From {esc(summary.source)}.</p>" if summary.source else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(summary.board.name)} leaderboard</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}}
table{{border-collapse:collapse;margin:.5em 0}} .scroll{{overflow-x:auto}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}}
th:first-child{{text-align:left}} th small{{font-weight:normal;color:#555}}
td.best{{background:#d9f2d9;font-weight:bold}} td.bad{{color:#b00}} td.degenerate{{color:#b06000}}
.charts{{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}}
figure{{margin:0;max-width:100%}} figure svg{{max-width:100%;height:auto}}
figcaption{{font-size:90%;text-align:center;max-width:40em;margin:auto}}
nav ul{{margin:.2em 0}} section{{border-top:2px solid #ddd;margin-top:2em}}
</style></head><body>
<h1>{esc(summary.board.name)}
<small>({esc(summary.board.scale)} scale, {esc(summary.seeds_text())})</small></h1>
<p>{esc(summary.board.description)}</p>{source}
<p><small>{esc(LEGEND)}{esc(note)}. Charts: a dot at the mean over seeds, whiskers over its 95% interval
(Student t); ★ and green: best in task.</small></p>
<nav><h2>Contents</h2><ul>{"".join(contents)}</ul></nav>
{f"<h2>Failures</h2><ul>{failures}</ul>" if failures else ""}
{"".join(sections)}
{f"<h2>Reported by the papers</h2><table>{reported}</table>" if reported else ""}
</body></html>
"""


def _html_table(summary: Summary, section: Section) -> str:
    esc = html.escape
    head = "".join(
        f"<th>{esc(t)}<br><small>{esc(summary.metric_of(t))} {summary.arrow(t)}</small></th>"
        for t in section.tasks
    )
    body = []
    for method in section.methods:
        tds = []
        for task in section.tasks:
            cell = summary.cells.get((task, method))
            cls = "best" if summary.is_best(task, method) else ("bad" if cell and cell.status != "ok" else "")
            cls += " degenerate" if cell and getattr(cell, "degenerate", 0) else ""
            mark = "★ " if summary.is_best(task, method) else ""
            tds.append(f'<td class="{cls.strip()}">{mark}{esc(summary.text(task, method))}</td>')
        rank = summary.rank_text(section, method)
        body.append(f"<tr><th>{esc(method)}</th>{''.join(tds)}<td>{rank}</td></tr>")
    return (
        f'<div class="scroll"><table><tr><th>method</th>{head}<th>mean rank</th></tr>{"".join(body)}'
        "</table></div>"
    )


def section_charts(summary: Summary, section: Section) -> list[Chart]:
    """Per task: its primary metric, then its declared figures and trade-off; then the curves its runs
    kept. Only the cells whose every seed is ok are drawn."""
    from harness import charts

    out = []
    for task in section.tasks:
        task_cls = summary.board.task_class(task)
        metric = summary.metric_of(task)
        points = metric_points(summary, section, task, metric)
        planned = sum((task, m) in summary.cells for m in section.methods)
        complete = "" if len(points) == planned else f" ({len(points)} of {planned} methods complete)"
        if points:
            out.append(
                _chart(
                    slug("task", task, metric),
                    f"{task}: {metric} {summary.arrow(task)}{complete}",
                    charts.dot_whisker(points, f"{metric} ({_direction(summary, task, metric)})"),
                )
            )
        for figure in figures_of(task_cls):
            if isinstance(figure, MetricDots):
                for name in figure.metrics:
                    if name == metric:
                        continue
                    points = metric_points(summary, section, task, name)
                    if points:
                        caption = f"{task}: {name} {summary.arrow(task, name)}"
                        fig = charts.dot_whisker(points, f"{name} ({_direction(summary, task, name)})")
                        out.append(_chart(slug("task", task, name), caption, fig))
            elif isinstance(figure, MetricSeries):
                lines = metric_series(summary, section, task, figure)
                if lines:
                    caption = f"{task}: {figure.title or figure.y_label + ' against ' + figure.x_label}"
                    fig = charts.series(lines, figure.x_label, figure.y_label, figure.log_x)
                    out.append(_chart(slug("task", task, figure.prefix), caption, fig))
        if task_cls.tradeoff:
            x_name, y_name = task_cls.tradeoff
            pairs = _paired(summary, section, task, x_name, y_name)
            if pairs:
                caption = f"{task}: {y_name} against {x_name}"
                fig = charts.scatter(
                    pairs,
                    f"{x_name} ({_direction(summary, task, x_name)})",
                    f"{y_name} ({_direction(summary, task, y_name)})",
                )
                out.append(_chart(slug("tradeoff", task), caption, fig))
    for (task, method, name), curve in summary.curves.items():
        if task in section.tasks and method in section.methods and curve["series"]:
            what = f"{curve.get('title', name)} ({curve.get('y', '')}; {curve['seeds']} seed(s))"
            caption = f"{task} × {method}: {what}"
            fig = charts.curves(curve["series"], str(curve.get("x", "")), str(curve.get("y", "")))
            out.append(_chart(slug("curve", task, method, name), caption, fig))
    return out


def _chart(anchor: str, caption: str, fig: Any) -> Chart:
    from harness import charts

    return Chart(anchor, caption, charts.to_svg(fig, caption))


def _direction(summary: Summary, task: str, metric: str) -> str:
    return "higher is better" if summary.higher_is_better(task, metric) else "lower is better"


def metric_points(
    summary: Summary, section: Section, task: str, metric: str, mark_best: bool = True
) -> list[Any]:
    """Each method of the section with complete values of `metric` on `task`, in the section's order."""
    from harness.charts import Point

    found = [
        (m, summary.values[(task, m)][metric])
        for m in section.methods
        if metric in summary.values.get((task, m), {})
    ]
    if not found:
        return []
    means = [sum(v) / len(v) for _, v in found]
    best = (max if summary.higher_is_better(task, metric) else min)(means) if mark_best else None
    return [
        Point(method, mean, *interval95(vals), best=mean == best)
        for (method, vals), mean in zip(found, means, strict=True)
    ]


def _paired(summary: Summary, section: Section, task: str, x_name: str, y_name: str) -> list[Any]:
    xs = {p.label: p for p in metric_points(summary, section, task, x_name, mark_best=False)}
    ys = {p.label: p for p in metric_points(summary, section, task, y_name, mark_best=False)}
    return [(xs[m], ys[m]) for m in xs if m in ys]


def metric_series(
    summary: Summary, section: Section, task: str, figure: MetricSeries
) -> dict[str, list[tuple]]:
    """Per method, (x, point) for every metric `prefix<suffix>` it reports (x: the suffix, a number when
    every suffix is one), plus x = 0 from `at_zero`."""
    from harness.charts import Point

    lines: dict[str, list[tuple]] = {}
    for method in section.methods:
        kept = summary.values.get((task, method), {})
        suffixes = [name[len(figure.prefix) :] for name in kept if name.startswith(figure.prefix)]
        if not suffixes:
            continue
        numeric = all(re.fullmatch(r"\d+(\.\d+)?", s) for s in suffixes)
        points = []
        if numeric and figure.at_zero and figure.at_zero in kept:
            vals = kept[figure.at_zero]
            points.append((0.0, Point(method, sum(vals) / len(vals), *interval95(vals))))
        for suffix in sorted(suffixes, key=lambda s: float(s) if numeric else s):
            vals = kept[figure.prefix + suffix]
            x = float(suffix) if numeric else suffix
            points.append((x, Point(method, sum(vals) / len(vals), *interval95(vals))))
        lines[method] = points
    return lines


def write_report(summary: Summary, path: Path) -> Path:
    """The HTML report written atomically to `path` (its folder is made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_html(summary))
    tmp.replace(path)
    return path


EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?!#|data:)[^"']+|url\(\s*["']?(?!#|data:)""", re.I)


def external_references(page: str) -> list[str]:
    """Whatever in a page would load something from outside it (none in a self-contained report)."""
    return [m.group(0) for m in EXTERNAL.finditer(page)]
