"""What a task's or method's parameters mean: type, default, per-scale value and a one-line help.

The help of a parameter is, first, `field(metadata={"help": "..."})` when the class declares it that way,
else the `# comment` written after the field on its line, else the comment lines right above the field.
Both ways work for plugins (the comments are read from the class's source with `inspect`, so they need
the source installed, as pip does). The first class in the MRO that documents a field wins, so a
subclass may re-document an inherited parameter.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import typing
from typing import Any

from harness.components import SCALES, Component, Task


def param_help(cls: type) -> dict[str, str]:
    """Parameter name -> one-line meaning ('' when nothing documents it)."""
    if not dataclasses.is_dataclass(cls):
        return {}
    out: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        text = f.metadata.get("help") if f.metadata else None
        if isinstance(text, str) and text.strip():
            out[f.name] = " ".join(text.split())
    for klass in cls.__mro__:
        for name, text in _source_comments(klass).items():
            out.setdefault(name, text)
    return {f.name: out.get(f.name, "") for f in dataclasses.fields(cls) if f.init}


def _source_comments(klass: type) -> dict[str, str]:
    """Field name -> its comment, from the class body's source; {} when there is no source."""
    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):
        return {}
    try:
        tree = ast.parse(source)
        comments = {
            tok.start[0]: tok.string.lstrip("#").strip()
            for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT
        }
    except (SyntaxError, tokenize.TokenError, IndentationError):
        return {}
    body = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
    if body is None:
        return {}
    lines = source.splitlines()
    out: dict[str, str] = {}
    for node in body.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        trailing = comments.get(node.end_lineno or node.lineno)
        if trailing is not None and lines[(node.end_lineno or node.lineno) - 1].lstrip()[:1] != "#":
            out[node.target.id] = trailing
            continue
        above, line = [], node.lineno - 1
        while line >= 1 and lines[line - 1].lstrip().startswith("#"):
            above.insert(0, comments.get(line, ""))
            line -= 1
        if above:
            out[node.target.id] = " ".join(above)
    return out


def _type_text(annotation: Any) -> str:
    if typing.get_origin(annotation) is None and isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return repr(value)


def _about(cls: type[Component]) -> str:
    """A task's description, else the class's own docstring, else its module's (first paragraph)."""
    text = getattr(cls, "description", "") or ""
    own = cls.__dict__.get("__doc__") or ""
    if not text and own and not own.startswith(f"{cls.__name__}("):  # not the dataclass's generated one
        text = own
    if not text:
        module = inspect.getmodule(cls)
        text = (module.__doc__ or "") if module is not None else ""
    return " ".join(text.strip().split("\n\n")[0].split())


def describe_lines(cls: type[Component], scale: str | None = None) -> list[str]:
    """The description of a task or method, one parameter a line, nothing cut: its name, kind, version
    and family, then each parameter's name, type, default, value at each scale (tasks) and meaning."""
    kind = cls.kind()
    head = f"{cls.name} ({kind}, version {cls.version}"
    if issubclass(cls, Task):
        head += f", family {cls.family}, primary metric {cls.primary_metric})"
        scales = [scale] if scale else list(cls.scales)
    else:
        head += f", families {', '.join(cls.families()) or 'none'})"  # type: ignore[attr-defined]
        scales = []
    lines = [head]
    about = _about(cls)
    if about:
        lines.append("  " + about)
    types_, defaults, helps = cls.param_types(), cls.param_defaults(), param_help(cls)
    inputs = set(cls.local_input_params())
    rows = [["parameter", "type", "default", *scales, "meaning"]]
    for name, annotation in types_.items():
        default = _shown(defaults[name]) if name in defaults else "(required)"
        per_scale = []
        for s in scales:
            settings = cls.scales.get(s, {})  # type: ignore[attr-defined]
            per_scale.append(_shown(settings[name]) if name in settings else default)
        meaning = helps.get(name, "")
        if name in inputs:
            meaning = "; ".join(filter(None, [meaning, "local input: its content enters the run key"]))
        rows.append([name, _type_text(annotation), default, *per_scale, meaning])
    if len(rows) == 1:
        lines.append("  no parameters")
        return lines
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        lines.append(("  " + "  ".join([*cells, row[-1]])).rstrip())
    if scales:
        lines.append(
            "  (a scale column shows the value that scale runs with: the default unless the scale sets it)"
        )
    else:
        lines.append(
            "  (a method's parameters are the same at every scale; a leaderboard entry may set them)"
        )
    return lines


def check_scale(cls: type[Component], scale: str | None) -> None:
    """A --scale a task does not have, or any --scale for a method, is bad input."""
    from harness.errors import UserError

    if scale is None:
        return
    if scale not in SCALES:
        raise UserError(f"--scale {scale!r}: expected one of {', '.join(SCALES)}")
    if issubclass(cls, Task) and scale not in cls.scales:
        raise UserError(
            f"--scale {scale}: task '{cls.name}' has no such scale (it has: {', '.join(cls.scales)})"
        )
