"""Leaderboard output: a rich table for the terminal, Markdown, CSV, and a self-contained HTML report."""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass

import polars as pl
from rich.console import Console
from rich.table import Table

from harness import papers
from harness.aggregate import Cell, cells, mean_ranks, ranks
from harness.leaderboard import Leaderboard, PlannedRun
from harness.papers import Reported
from harness.store import Record


@dataclass(frozen=True)
class Summary:
    """Everything a report shows, computed once."""

    board: Leaderboard
    tasks: list[str]
    methods: list[str]
    cells: dict[tuple[str, str], Cell]
    ranks: dict[tuple[str, str], int]
    mean_ranks: dict[str, float]
    reported: list[Reported]  # the papers' numbers, for paper-scale boards
    tradeoffs: dict[str, list[tuple[str, float, float]]]  # task -> (method, x, y) for tasks that declare one
    # (task, method, curve name) -> the curve a task kept in its records' details, averaged over seeds
    curves: dict[tuple[str, str, str], dict]

    @classmethod
    def build(
        cls, board: Leaderboard, plan: list[PlannedRun], records: dict[str, Record], metric: str | None = None
    ) -> Summary:
        cell_list = cells(board, plan, records, metric)
        rank_map = ranks(board, cell_list)
        tasks = list(dict.fromkeys(r.task for r in plan))
        methods = list(dict.fromkeys(r.method for r in plan))
        reported = papers.for_tasks([t.name for t in board.tasks]) if board.scale == "paper" else []
        tradeoffs = {}
        for task in tasks:
            axes = board.task_class(task).tradeoff
            if axes:
                runs = [r for r in plan if r.task == task]
                xs = {c.method: c.mean for c in cells(board, runs, records, axes[0]) if c.mean is not None}
                ys = {c.method: c.mean for c in cells(board, runs, records, axes[1]) if c.mean is not None}
                tradeoffs[task] = [(m, xs[m], ys[m]) for m in xs if m in ys]
        return cls(
            board,
            tasks,
            methods,
            {(c.task, c.method): c for c in cell_list},
            rank_map,
            mean_ranks(rank_map),
            reported,
            tradeoffs,
            mean_curves(plan, records),
        )

    def metric_of(self, task: str) -> str:
        return next(c.metric for c in self.cells.values() if c.task == task)

    def text(self, task: str, method: str) -> str:
        cell = self.cells.get((task, method))
        if cell is None:
            return "n/a"
        if cell.status == "failed":
            return f"failed ({cell.planned - cell.n}/{cell.planned})"
        if cell.status == "missing":
            return f"missing ({cell.planned - cell.n}/{cell.planned})"
        return f"{cell.mean:.4f} ± {cell.std:.4f}"

    def seeds_text(self) -> str:
        counts = sorted({c.planned for c in self.cells.values()})
        return f"n={'/'.join(map(str, counts))} seeds"

    def is_best(self, task: str, method: str) -> bool:
        return self.ranks.get((task, method)) == 1

    def rank_text(self, method: str) -> str:
        value = self.mean_ranks.get(method)
        return "—" if value is None else f"{value:.2f}"

    def failures(self) -> list[str]:
        return [f"{c.task} × {c.method}: {c.reason}" for c in self.cells.values() if c.status == "failed"]

    def ordered_methods(self) -> list[str]:
        return sorted(self.methods, key=lambda m: self.mean_ranks.get(m, math.inf))


def mean_curves(plan: list[PlannedRun], records: dict[str, Record]) -> dict[tuple[str, str, str], dict]:
    """Per (task, method, curve), each series averaged point by point over the ok seeds that kept it."""
    gathered: dict[tuple[str, str, str], list[dict]] = {}
    for run in plan:
        record = records.get(run.spec.key)
        if record is None or record.status != "ok":
            continue
        for name, curve in record.details.get("curves", {}).items():
            gathered.setdefault((run.task, run.method, name), []).append(curve)
    out = {}
    for key, curves in gathered.items():
        labels = [label for label in curves[0]["series"] if all(label in c["series"] for c in curves)]
        series = {
            label: [sum(v) / len(v) for v in zip(*(c["series"][label] for c in curves), strict=True)]
            for label in labels
        }
        out[key] = {**curves[0], "series": series, "seeds": len(curves)}
    return out


def render_table(summary: Summary, console: Console) -> None:
    table = Table(
        title=f"{summary.board.name} ({summary.board.scale} scale)",
        caption=f"mean ± std over "
        f"{summary.seeds_text()}; ★ best in task; a failed or missing seed leaves the cell empty",
    )
    table.add_column("method", style="bold")
    for task in summary.tasks:
        arrow = (
            "↑" if summary.board.task_class(task).metric(summary.metric_of(task)).higher_is_better else "↓"
        )
        table.add_column(f"{task}\n{summary.metric_of(task)} {arrow}", justify="right")
    table.add_column("mean rank", justify="right")
    for method in summary.ordered_methods():
        row = []
        for task in summary.tasks:
            text = summary.text(task, method)
            cell = summary.cells.get((task, method))
            if summary.is_best(task, method):
                text = f"[bold green]★ {text}[/]"
            elif cell is not None and cell.status != "ok":
                text = f"[red]{text}[/]"
            row.append(text)
        table.add_row(method, *row, summary.rank_text(method))
    console.print(table)
    for line in summary.failures():
        console.print(f"[red]failed:[/] {line}", highlight=False)
    if summary.reported:
        paper = Table(title="reported by the papers")
        for col in ("task", "method", "metric", "value", "source"):
            paper.add_column(col)
        for r in summary.reported:
            paper.add_row(r.task, r.method, r.metric, f"{r.value:g} {r.unit}", r.source)
        console.print(paper)


def render_markdown(summary: Summary) -> str:
    head = ["method", *[f"{t} ({summary.metric_of(t)})" for t in summary.tasks], "mean rank"]
    lines = [
        f"# {summary.board.name} ({summary.board.scale} scale)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for method in summary.ordered_methods():
        row = [method]
        for task in summary.tasks:
            text = summary.text(task, method)
            row.append(f"**{text}** ★" if summary.is_best(task, method) else text)
        lines.append("| " + " | ".join([*row, summary.rank_text(method)]) + " |")
    lines += [
        "",
        f"mean ± std over {summary.seeds_text()}; ★ best in task; a failed or missing seed leaves the "
        "cell empty.",
    ]
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
            f"| {r.task} | {r.method} | {r.metric} | {r.value:g} {r.unit} | {r.source} |"
            for r in summary.reported
        ]
    return "\n".join(lines) + "\n"


def cell_frame(summary: Summary) -> pl.DataFrame:
    rows = [
        {
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
        }
        for c in summary.cells.values()
    ]
    return pl.DataFrame(
        rows,
        schema={
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
        },
    )


def render_csv(summary: Summary) -> str:
    buffer = io.StringIO()
    cell_frame(summary).write_csv(buffer)
    return buffer.getvalue()


def render_html(summary: Summary) -> str:
    """One self-contained page: the table, then one bar chart per task with std error bars (inline SVG)."""
    esc = html.escape
    head = "".join(f"<th>{esc(t)}<br><small>{esc(summary.metric_of(t))}</small></th>" for t in summary.tasks)
    body = []
    for method in summary.ordered_methods():
        tds = []
        for task in summary.tasks:
            cell = summary.cells.get((task, method))
            cls = "best" if summary.is_best(task, method) else ("bad" if cell and cell.status != "ok" else "")
            tds.append(f'<td class="{cls}">{esc(summary.text(task, method))}</td>')
        body.append(f"<tr><th>{esc(method)}</th>{''.join(tds)}<td>{summary.rank_text(method)}</td></tr>")
    charts = "".join(_chart(summary, task) for task in summary.tasks)
    charts += "".join(_scatter(summary, task, points) for task, points in summary.tradeoffs.items())
    lines = "".join(_lines(task, method, curve) for (task, method, _), curve in summary.curves.items())
    failures = "".join(f"<li>{esc(f)}</li>" for f in summary.failures())
    reported = "".join(
        f"<tr><td>{esc(r.task)}</td><td>{esc(r.method)}</td><td>{esc(r.metric)}</td>"
        f"<td>{r.value:g} {esc(r.unit)}</td><td>{esc(r.source)}</td></tr>"
        for r in summary.reported
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(summary.board.name)} leaderboard</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} th:first-child{{text-align:left}}
td.best{{background:#d9f2d9;font-weight:bold}} td.bad{{color:#b00}}
.charts{{display:flex;flex-wrap:wrap;gap:1em}}
figure{{margin:0}} figcaption{{font-size:90%;text-align:center}}
</style></head><body>
<h1>{esc(summary.board.name)} <small>({esc(summary.board.scale)} scale)</small></h1>
<p>{esc(summary.board.description)}</p>
<table><tr><th>method</th>{head}<th>mean rank</th></tr>{"".join(body)}</table>
<p><small>mean ± std over {summary.seeds_text()}; green: best in task;
a failed or missing seed leaves the cell empty.</small></p>
{f"<h2>Failures</h2><ul>{failures}</ul>" if failures else ""}
<h2>Primary metric per task</h2><div class="charts">{charts}</div>
{f'<h2>Per-run curves</h2><div class="charts">{lines}</div>' if lines else ""}
{f"<h2>Reported by the papers</h2><table>{reported}</table>" if reported else ""}
</body></html>
"""


def _chart(summary: Summary, task: str, width: int = 360, bar_h: int = 22) -> str:
    """Horizontal bars of the cell means with ±std whiskers; missing cells are listed, not drawn."""
    esc = html.escape
    done = [
        (m, summary.cells[(task, m)])
        for m in summary.methods
        if (task, m) in summary.cells and summary.cells[(task, m)].mean is not None
    ]
    if not done:
        return f"<figure><figcaption>{esc(task)}: no complete cell</figcaption></figure>"
    lows = [c.mean - (c.std or 0) for _, c in done]
    highs = [c.mean + (c.std or 0) for _, c in done]
    lo, hi = min(0.0, min(lows)), max(highs)
    span = (hi - lo) or 1.0
    left, plot_w = 110, width - 130
    x = lambda v: left + (v - lo) / span * plot_w  # noqa: E731
    parts = []
    for i, (method, cell) in enumerate(done):
        y = 10 + i * bar_h
        best = summary.is_best(task, method)
        parts.append(
            f'<text x="{left - 6}" y="{y + 14}" font-size="11" text-anchor="end">{esc(method)}</text>'
        )
        parts.append(
            f'<rect x="{x(lo):.1f}" y="{y + 3}" width="{x(cell.mean) - x(lo):.1f}" height="{bar_h - 8}" '
            f'fill="{"#3a9a3a" if best else "#6b8fc7"}">'
            f"<title>{cell.mean:.4f} ± {cell.std:.4f}</title></rect>"
        )
        std = cell.std or 0.0
        parts.append(
            f'<line x1="{x(cell.mean - std):.1f}" x2="{x(cell.mean + std):.1f}" y1="{y + 11}" '
            f'y2="{y + 11}" stroke="#222" stroke-width="1.5"/>'
        )
    height = 20 + len(done) * bar_h
    parts.append(f'<text x="{left}" y="{height - 2}" font-size="10">{lo:.3g}</text>')
    parts.append(
        f'<text x="{left + plot_w}" y="{height - 2}" font-size="10" text-anchor="end">{hi:.3g}</text>'
    )
    size = f'width="{width}" height="{height + 4}"'
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" {size}>{"".join(parts)}</svg>'
    return f"<figure>{svg}<figcaption>{esc(task)}: {esc(summary.metric_of(task))}</figcaption></figure>"


def _scatter(summary: Summary, task: str, points: list[tuple[str, float, float]], size: int = 360) -> str:
    """Each method's mean (x, y) for a task's declared trade-off (e.g. accuracy against layers used)."""
    esc = html.escape
    x_name, y_name = summary.board.task_class(task).tradeoff
    if not points:
        return ""
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    pad = 40

    def x(v: float) -> float:
        return pad + (v - x_lo) / ((x_hi - x_lo) or 1.0) * (size - 2 * pad)

    def y(v: float) -> float:
        return size - pad - (v - y_lo) / ((y_hi - y_lo) or 1.0) * (size - 2 * pad)

    dots = "".join(
        f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="4" fill="#6b8fc7">'
        f"<title>{esc(m)}: {px:.4g}, {py:.4g}</title></circle>"
        f'<text x="{x(px) + 6:.1f}" y="{y(py) - 6:.1f}" font-size="10">{esc(m)}</text>'
        for m, px, py in points
    )
    axes = (
        f'<text x="{size / 2}" y="{size - 8}" font-size="11" text-anchor="middle">{esc(x_name)} '
        f"({x_lo:.3g} to {x_hi:.3g})</text>"
        f'<text x="12" y="{size / 2}" font-size="11" transform="rotate(-90 12 {size / 2})" '
        f'text-anchor="middle">'
        f"{esc(y_name)} ({y_lo:.3g} to {y_hi:.3g})</text>"
    )
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}">{axes}{dots}</svg>'
    return f"<figure>{svg}<figcaption>{esc(task)}: {esc(y_name)} against {esc(x_name)}</figcaption></figure>"


LINE_COLOURS = ("#6b8fc7", "#d0703c", "#3a9a3a", "#9b59b6")


def _lines(task: str, method: str, curve: dict, width: int = 420, height: int = 260) -> str:
    """A curve a run kept (e.g. the logit lens per layer, before and after an edit), one line a series."""
    esc = html.escape
    series = curve["series"]
    values = [v for points in series.values() for v in points]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    steps = max(len(points) for points in series.values())
    pad = 40

    def x(i: float) -> float:
        return pad + i / max(steps - 1, 1) * (width - 2 * pad)

    def y(v: float) -> float:
        return height - pad - (v - lo) / ((hi - lo) or 1.0) * (height - 2 * pad)

    parts = []
    if lo < 0 < hi:
        parts.append(
            f'<line x1="{pad}" x2="{width - pad}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#bbb" '
            'stroke-dasharray="3,3"/>'
        )
    for i, (label, points) in enumerate(series.items()):
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        path = " ".join(f"{x(j):.1f},{y(v):.1f}" for j, v in enumerate(points))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        parts.append(
            f'<text x="{width - pad}" y="{14 + 13 * i}" font-size="11" fill="{colour}" '
            f'text-anchor="end">{esc(label)}</text>'
        )
    parts.append(
        f'<text x="{width / 2}" y="{height - 8}" font-size="11" text-anchor="middle">'
        f"{esc(curve.get('x', ''))} (0 to {steps - 1})</text>"
        f'<text x="4" y="{pad - 8}" font-size="10">{hi:.3g}</text>'
        f'<text x="4" y="{height - pad}" font-size="10">{lo:.3g}</text>'
    )
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{"".join(parts)}</svg>'
    caption = f"{task} × {method}: {curve.get('title', '')} ({curve.get('y', '')}; {curve['seeds']} seed(s))"
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>"
