"""The HTML report's charts, drawn with matplotlib and inlined as SVG.

matplotlib (not hand-written SVG, not a JavaScript runtime): a maintained library whose SVG output is
static, so the report stays one self-contained file that opens offline in any browser with scripts off.
Glyphs are written as paths, so a label is drawn exactly as it was measured, and every figure is saved
with a tight bounding box, so no label is cut whatever its length. The figures are built on
`matplotlib.figure.Figure` directly: no pyplot, no global state, no display needed.
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from typing import Any

from matplotlib import rc_context
from matplotlib.figure import Figure

BEST = "#2e8b2e"
DOT = "#3b6fb6"
PALETTE = (
    "#3b6fb6", "#d0703c", "#2e8b2e", "#9b59b6", "#c0392b", "#7f8c8d", "#b8860b", "#17a2b8",
    "#e377c2", "#4b4b4b", "#8c564b", "#1f3a93", "#6ab04c", "#f39c12", "#5d6d7e", "#a93226",
)  # fmt: skip
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
WIDTH_IN = 5.0
_salt = count()


@dataclass(frozen=True)
class Point:
    """One method's value: the mean over seeds and its interval (equal to the mean with one seed)."""

    label: str
    mean: float
    low: float
    high: float
    best: bool = False


def axis_range(lows: list[float], highs: list[float], pad: float = 0.06) -> tuple[float, float]:
    """Limits that hold every interval with a margin, fitted to the values (never forced to zero)."""
    lo, hi = min(lows), max(highs)
    span = hi - lo
    if span <= 0:
        span = abs(hi) * 0.02 or 0.02
    return lo - pad * span, hi + pad * span


# matplotlib reads text between two $ as math: a label such as 'a$\frac$' failed to draw (ValueError)
# and one such as '$5 or $6' was drawn as math. Labels, names and axis titles are drawn as written.
PLAIN_TEXT = {"text.parse_math": False}


def _plain_text(build: Callable[..., Figure]) -> Callable[..., Figure]:
    @functools.wraps(build)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with rc_context(PLAIN_TEXT):
            return build(*args, **kwargs)

    return wrapper


def style(i: int) -> tuple[str, str]:
    return PALETTE[i % len(PALETTE)], MARKERS[(i // len(PALETTE) + i) % len(MARKERS)]


@_plain_text
def dot_whisker(points: list[Point], x_label: str) -> Figure:
    """Methods as rows, top to bottom in the given order: a dot at the mean, a whisker over the interval;
    the best is a green star with its label in bold green."""
    fig = Figure(figsize=(WIDTH_IN, 0.6 + 0.26 * len(points)))
    ax = fig.add_axes((0, 0, 1, 1))
    ys = list(range(len(points)))[::-1]
    for y, p in zip(ys, points, strict=True):
        colour = BEST if p.best else DOT
        ax.errorbar(
            [p.mean],
            [y],
            xerr=[[p.mean - p.low], [p.high - p.mean]],
            fmt="*" if p.best else "o",
            markersize=11 if p.best else 6,
            color=colour,
            ecolor=colour,
            elinewidth=1.6,
            capsize=3,
        )
    ax.set_yticks(ys, [p.label for p in points])
    for tick, p in zip(ax.get_yticklabels(), points, strict=True):
        if p.best:
            tick.set_color(BEST)
            tick.set_fontweight("bold")
    ax.set_ylim(-0.7, len(points) - 0.3)
    lo, hi = axis_range([p.low for p in points], [p.high for p in points])
    ax.set_xlim(lo, hi)
    if lo < 0 < hi:  # a gain or a difference: where zero is matters
        ax.axvline(0, color="#999999", linestyle="--", linewidth=1, zorder=0)
    ax.set_xlabel(x_label)
    ax.grid(axis="x", color="#e2e2e2")
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


@_plain_text
def series(
    lines: dict[str, list[tuple[float | str, Point]]], x_label: str, y_label: str, log_x: bool = False
) -> Figure:
    """One line per method over a shared x (numbers, or categories in the order first seen), whiskers on
    every point; methods are dodged a little on a categorical axis so their whiskers do not overlap."""
    fig = Figure(figsize=(WIDTH_IN, 3.6))
    ax = fig.add_axes((0, 0, 1, 1))
    xs = list(dict.fromkeys(x for points in lines.values() for x, _ in points))
    categorical = any(isinstance(x, str) for x in xs)
    if not categorical:
        xs = sorted(xs)
    position = {x: i for i, x in enumerate(xs)} if categorical else {x: float(x) for x in xs}
    for i, (label, points) in enumerate(lines.items()):
        colour, marker = style(i)
        dodge = (i - (len(lines) - 1) / 2) * min(0.6 / max(len(lines), 1), 0.08) if categorical else 0.0
        px = [position[x] + dodge for x, _ in points]
        ax.errorbar(
            px,
            [p.mean for _, p in points],
            yerr=[[p.mean - p.low for _, p in points], [p.high - p.mean for _, p in points]],
            fmt=f"-{marker}",
            color=colour,
            markersize=5,
            linewidth=1.4,
            capsize=2,
            label=label,
        )
    if categorical:
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_xlim(-0.5, len(xs) - 0.5)
    else:
        if log_x:
            ax.set_xscale("symlog", base=2, linthresh=1)
        ax.set_xticks([float(x) for x in xs], [f"{x:g}" for x in xs])
    every = [p for points in lines.values() for _, p in points]
    ax.set_ylim(*axis_range([p.low for p in every], [p.high for p in every]))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    _finish(ax, len(lines))
    return fig


@_plain_text
def scatter(points: list[tuple[Point, Point]], x_label: str, y_label: str) -> Figure:
    """Each method at (x mean, y mean) with both intervals as a cross, told apart by colour and marker."""
    fig = Figure(figsize=(WIDTH_IN, 4.0))
    ax = fig.add_axes((0, 0, 1, 1))
    for i, (x, y) in enumerate(points):
        colour, marker = style(i)
        ax.errorbar(
            [x.mean],
            [y.mean],
            xerr=[[x.mean - x.low], [x.high - x.mean]],
            yerr=[[y.mean - y.low], [y.high - y.mean]],
            fmt=marker,
            color=colour,
            markersize=7,
            capsize=2,
            label=x.label,
        )
    ax.set_xlim(*axis_range([x.low for x, _ in points], [x.high for x, _ in points]))
    ax.set_ylim(*axis_range([y.low for _, y in points], [y.high for _, y in points]))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    _finish(ax, len(points))
    return fig


@_plain_text
def curves(lines: dict[str, list[float]], x_label: str, y_label: str) -> Figure:
    """Series a run kept point by point (e.g. the logit lens per layer, before and after an edit)."""
    fig = Figure(figsize=(WIDTH_IN, 3.2))
    ax = fig.add_axes((0, 0, 1, 1))
    values = [v for points in lines.values() for v in points]
    for i, (label, points) in enumerate(lines.items()):
        colour, _ = style(i)
        ax.plot(range(len(points)), points, color=colour, linewidth=1.6, label=label)
    if min(values) < 0 < max(values):
        ax.axhline(0, color="#bbbbbb", linestyle="--", linewidth=1)
    ax.set_ylim(*axis_range(values, values))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    _finish(ax, len(lines))
    return fig


def _finish(ax, entries: int) -> None:
    ax.grid(color="#ececec")
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    if entries:  # outside the plot, to the right: it never hides a point, and a tight box keeps it whole
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=9, borderaxespad=0)


def to_svg(fig: Figure, description: str) -> str:
    """The figure as an inline <svg> element, sized to hold every label, with `description` as its title
    (what screen readers and tooltips show). Ids are salted per figure, so many charts share a page."""
    buffer = io.StringIO()
    with rc_context({"svg.fonttype": "path", "svg.hashsalt": f"lb{next(_salt)}", **PLAIN_TEXT}):
        fig.savefig(
            buffer,
            format="svg",
            bbox_inches="tight",
            pad_inches=0.08,
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    # SVG 2 (every current browser) takes plain `href`: the page then names no namespace URL but SVG's own
    text = text.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "").replace("xlink:href=", "href=")
    title = description.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    head_end = text.index(">") + 1
    return f"{text[:head_end]}<title>{title}</title>{text[head_end:]}"


def finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)
