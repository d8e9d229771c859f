"""MCQ sets from the Hugging Face hub (each with its field mapping) and from local JSONL / CSV / parquet.

A hub id loads through `datasets`; a local file or folder in the same schema loads through polars (CSV,
parquet) or the json module (JSONL, JSON), which is how the tests exercise every mapping without a network.
A local file in the generic schema has `question`, `choices` (a list, or a JSON list in CSV) and `answer`
(an index 0..k-1, or a letter A.. / one of the set's labels).

Every field is checked, so a malformed row is a one-line error naming the file, the row and the field: an
answer 1.7 is not read as 1, a choices string is not split into letters, an empty field is not "None".
An integral float answer (1.0, as a float column stores it) is the index 1.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from tasks.mcq.suites import LETTERS, Question

Row = dict[str, Any]


def _answer_index(value: Any, labels: Sequence[str], where: str, field: str) -> int:
    """An answer given as an index, an integral number or digit string, or one of the choice labels
    ("A", "1", ...); never a fraction rounded to an index."""
    expected = "an integer index 0..k-1 or an option letter A.." + (
        f" or one of the labels {list(labels)}" if labels else ""
    )
    if isinstance(value, bool) or value is None or isinstance(value, dict | list | tuple):
        raise UserError(f"{where}: field '{field}' is {value!r}; expected {expected}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise UserError(f"{where}: field '{field}' is {value!r}, not an integer; expected {expected}")
    text = str(value).strip()
    if text in labels:
        return list(labels).index(text)
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        if math.isfinite(number) and number.is_integer():
            return int(number)
        raise UserError(f"{where}: field '{field}' is {text!r}, not an integer; expected {expected}")
    if len(text) == 1 and text.upper() in LETTERS:
        return LETTERS.index(text.upper())
    raise UserError(f"{where}: field '{field}' is {value!r}; expected {expected}")


def _text(value: Any, where: str, field: str) -> str:
    """A question or option text: a string or a number, never empty-as-"None" or a container."""
    if value is None or isinstance(value, dict | list | tuple | bytes):
        raise UserError(f"{where}: field '{field}' is {_short(value)}; expected text")
    return str(value)


def _options(value: Any, where: str, field: str) -> tuple[str, ...]:
    """A list of at least two option texts (a tuple or a numpy array from `datasets` as well)."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise UserError(
            f"{where}: field '{field}' is {_short(value)}; expected a list of at least two options"
        )
    if len(value) < 2:
        raise UserError(f"{where}: field '{field}' has {len(value)} option(s); expected at least two")
    return tuple(_text(v, where, f"{field}[{i}]") for i, v in enumerate(value))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _labelled(choices: Any, where: str) -> tuple[tuple[str, ...], list[str]]:
    """(texts, labels) of a `{"text": [...], "label": [...]}` struct (ARC, CommonsenseQA, OpenBookQA)."""
    if not isinstance(choices, dict) or "text" not in choices or "label" not in choices:
        raise UserError(f"{where}: field 'choices' must be a struct with 'text' and 'label' lists")
    texts = _options(choices["text"], where, "choices.text")
    labels = [_text(v, where, "choices.label") for v in _as_list(choices["label"])]
    if len(labels) != len(texts):
        raise UserError(
            f"{where}: field 'choices' has {len(texts)} texts but {len(labels)} labels; expected one each"
        )
    return texts, labels


def _as_list(value: Any) -> list[Any]:
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    return list(value) if isinstance(value, list | tuple) else [value]


def generic(row: Row, where: str) -> Question:
    choices = row["choices"]
    if isinstance(choices, str):
        try:
            choices = json.loads(choices)
        except json.JSONDecodeError:
            raise UserError(f"{where}: field 'choices' is not a JSON list: {choices[:60]!r}") from None
    texts = _options(choices, where, "choices")
    return Question(
        _text(row["question"], where, "question"), texts, _answer_index(row["answer"], [], where, "answer")
    )


def mmlu(row: Row, where: str) -> Question:
    texts = _options(row["choices"], where, "choices")
    return Question(
        _text(row["question"], where, "question"), texts, _answer_index(row["answer"], [], where, "answer")
    )


def arc(row: Row, where: str) -> Question:
    """ARC's schema, which CommonsenseQA shares: labelled choices and an `answerKey` label."""
    texts, labels = _labelled(row["choices"], where)
    answer = _answer_index(row["answerKey"], labels, where, "answerKey")
    return Question(_text(row["question"], where, "question"), texts, answer)


def openbookqa(row: Row, where: str) -> Question:
    texts, labels = _labelled(row["choices"], where)
    answer = _answer_index(row["answerKey"], labels, where, "answerKey")
    return Question(_text(row["question_stem"], where, "question_stem"), texts, answer)


def hellaswag(row: Row, where: str) -> Question:
    """The context is the question and the endings the options ("How does it go on?" in the letter
    format); the label is a digit string."""
    texts = _options(row["endings"], where, "endings")
    return Question(_text(row["ctx"], where, "ctx"), texts, _answer_index(row["label"], [], where, "label"))


@dataclass(frozen=True)
class HubSet:
    """A hub set: its id, config, the split with public labels, the fields it must have, its mapping."""

    hub_id: str
    config: str | None
    split: str
    fields: tuple[str, ...]
    mapping: Callable[[Row, str], Question]


HUB_SETS = {
    "mmlu": HubSet("cais/mmlu", "all", "test", ("question", "choices", "answer"), mmlu),
    "arc-challenge": HubSet(
        "allenai/ai2_arc", "ARC-Challenge", "test", ("question", "choices", "answerKey"), arc
    ),
    "arc-easy": HubSet("allenai/ai2_arc", "ARC-Easy", "test", ("question", "choices", "answerKey"), arc),
    # CommonsenseQA's and HellaSwag's test labels are hidden: their validation splits are the test sets.
    "commonsense-qa": HubSet(
        "tau/commonsense_qa", None, "validation", ("question", "choices", "answerKey"), arc
    ),
    "openbookqa": HubSet(
        "allenai/openbookqa", "main", "test", ("question_stem", "choices", "answerKey"), openbookqa
    ),
    "hellaswag": HubSet("Rowan/hellaswag", None, "validation", ("ctx", "endings", "label"), hellaswag),
}
GENERIC_FIELDS = ("question", "choices", "answer")
LOCAL_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def read_rows(source: str, hub: HubSet | None) -> list[tuple[Row, str]]:
    """Each row of a local file or folder, or of the hub set's labelled split (`datasets`), with where it
    is (file and row) for error messages."""
    path = Path(source).expanduser()
    if path.exists():
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in LOCAL_SUFFIXES)
        if hub is not None and path.is_dir():
            files = [f for f in files if hub.split in f.name] or files
        if not files:
            raise UserError(f"{path}: no {', '.join(LOCAL_SUFFIXES)} files")
        rows: list[tuple[Row, str]] = []
        for file in files:
            rows.extend(_read_local(file))
        if not rows:
            raise UserError(f"{path}: no questions (the file{'s are' if len(files) > 1 else ' is'} empty)")
        return rows
    if hub is None:
        raise UserError(f"{source}: no such file or folder (expected JSONL, CSV or parquet)")
    try:
        import datasets
    except ImportError:
        raise UserError("hub MCQ sets need the `datasets` package: pip install 'logitbench[hub]'") from None
    try:
        table = datasets.load_dataset(source, hub.config, split=hub.split)
    except (OSError, ValueError, ConnectionError) as err:
        raise UserError(f"{source}: could not be loaded ({str(err).splitlines()[0]})") from None
    return [(row, f"{source} ({hub.split}): row {i}") for i, row in enumerate(table)]


def _read_local(file: Path) -> list[tuple[Row, str]]:
    if file.suffix in (".jsonl", ".json"):
        return _read_json(file)
    import polars as pl

    if file.suffix not in (".parquet", ".csv"):
        raise UserError(f"{file}: expected a {', '.join(LOCAL_SUFFIXES)} file")
    try:
        frame = (
            pl.read_parquet(file) if file.suffix == ".parquet" else pl.read_csv(file, infer_schema_length=0)
        )
    except pl.exceptions.NoDataError:
        return []
    except (pl.exceptions.PolarsError, OSError) as err:
        raise UserError(f"{file}: could not be read ({str(err).splitlines()[0]})") from None
    line = " (line {})" if file.suffix == ".csv" else ""
    return [(row, f"{file}: row {i}" + line.format(i + 2)) for i, row in enumerate(frame.to_dicts())]


def _read_json(file: Path) -> list[tuple[Row, str]]:
    """A JSON array of objects, or JSON Lines (one object a line, as `datasets` writes even to .json)."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{file}: not UTF-8 text (expected JSON Lines or a JSON array of objects)") from None
    except OSError as err:
        raise UserError(f"{file}: could not be read ({err.strerror})") from None
    if file.suffix == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{file}: not valid JSON ({err.msg} at line {err.lineno})") from None
        located = [(item, f"{file}: row {i}") for i, item in enumerate(items)]
    else:
        located = []
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except json.JSONDecodeError as err:
                raise UserError(f"{file}: line {number} is not valid JSON ({err.msg})") from None
            located.append((item, f"{file}: row {len(located)} (line {number})"))
    for item, where in located:
        if not isinstance(item, dict):
            raise UserError(f"{where}: expected a JSON object with the question's fields, got {_short(item)}")
    return located


def load_questions(source: str, hub: HubSet | None = None) -> list[Question]:
    """Every question of `source`, mapped by the hub set's schema (or the generic one)."""
    fields = hub.fields if hub else GENERIC_FIELDS
    mapping = hub.mapping if hub else generic
    out = []
    for row, where in read_rows(source, hub):
        missing = [f for f in fields if row.get(f) is None]
        if missing:
            raise UserError(f"{where} has no field(s) {', '.join(missing)} (expected {', '.join(fields)})")
        question = mapping(row, where)
        if not 0 <= question.answer < len(question.choices):
            raise UserError(
                f"{where}: answer {question.answer} is outside its {len(question.choices)} choices "
                f"(expected an index 0..{len(question.choices) - 1})"
            )
        out.append(question)
    return out
