"""MCQ sets from the Hugging Face hub (each with its field mapping) and from local JSONL / CSV / parquet.

A hub id loads through `datasets`; a local file or folder in the same schema loads through polars, which
is how the tests exercise every mapping without a network. A local file in the generic schema has
`question`, `choices` (a list, or a JSON list in CSV) and `answer` (an index or a letter).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from tasks.mcq.suites import LETTERS, Question

Row = dict[str, Any]


def _answer_index(value: Any, labels: list[str], where: str) -> int:
    """An answer given as an index, a digit string, or one of the choice labels ("A", "1", ...)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip()
    if text in labels:
        return labels.index(text)
    if text.isdigit():
        return int(text)
    if len(text) == 1 and text.upper() in LETTERS:
        return LETTERS.index(text.upper())
    raise UserError(f"{where}: answer {value!r} is neither an index nor one of the labels {labels}")


def _labelled(choices: Any, where: str) -> tuple[list[str], list[str]]:
    """(texts, labels) of a `{"text": [...], "label": [...]}` struct (ARC, CommonsenseQA, OpenBookQA)."""
    if not isinstance(choices, dict) or "text" not in choices or "label" not in choices:
        raise UserError(f"{where}: field 'choices' must be a struct with 'text' and 'label' lists")
    return [str(t) for t in choices["text"]], [str(label) for label in choices["label"]]


def generic(row: Row, where: str) -> Question:
    choices = row.get("choices")
    if isinstance(choices, str):
        try:
            choices = json.loads(choices)
        except json.JSONDecodeError:
            raise UserError(f"{where}: field 'choices' is not a JSON list: {choices[:60]!r}") from None
    if not isinstance(choices, list | tuple) or len(choices) < 2:
        raise UserError(f"{where}: field 'choices' must be a list of at least two options")
    texts = [str(c) for c in choices]
    return Question(str(row["question"]), tuple(texts), _answer_index(row["answer"], [], where))


def mmlu(row: Row, where: str) -> Question:
    return Question(str(row["question"]), tuple(str(c) for c in row["choices"]), int(row["answer"]))


def arc(row: Row, where: str) -> Question:
    """ARC's schema, which CommonsenseQA shares: labelled choices and an `answerKey` label."""
    texts, labels = _labelled(row["choices"], where)
    return Question(str(row["question"]), tuple(texts), _answer_index(row["answerKey"], labels, where))


def openbookqa(row: Row, where: str) -> Question:
    texts, labels = _labelled(row["choices"], where)
    return Question(str(row["question_stem"]), tuple(texts), _answer_index(row["answerKey"], labels, where))


def hellaswag(row: Row, where: str) -> Question:
    """The context is the question and the endings the options ("How does it go on?" in the letter
    format); the label is a digit string."""
    return Question(str(row["ctx"]), tuple(str(e) for e in row["endings"]), int(row["label"]))


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


def read_rows(source: str, hub: HubSet | None) -> tuple[list[Row], str]:
    """Rows of a local file or folder (polars), or of the hub set's labelled split (`datasets`)."""
    path = Path(source).expanduser()
    if path.exists():
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in LOCAL_SUFFIXES)
        if hub is not None and path.is_dir():
            files = [f for f in files if hub.split in f.name] or files
        if not files:
            raise UserError(f"{path}: no {', '.join(LOCAL_SUFFIXES)} files")
        rows: list[Row] = []
        for file in files:
            rows.extend(_read_local(file))
        return rows, str(path)
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
    return list(table), source


def _read_local(file: Path) -> list[Row]:
    import polars as pl

    try:
        if file.suffix == ".parquet":
            frame = pl.read_parquet(file)
        elif file.suffix == ".csv":
            frame = pl.read_csv(file, infer_schema_length=0)
        elif file.suffix == ".jsonl":
            frame = pl.read_ndjson(file)
        else:
            frame = pl.read_json(file)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise UserError(f"{file}: could not be read ({str(err).splitlines()[0]})") from None
    return frame.to_dicts()


def load_questions(source: str, hub: HubSet | None = None) -> list[Question]:
    """Every question of `source`, mapped by the hub set's schema (or the generic one)."""
    rows, where = read_rows(source, hub)
    fields = hub.fields if hub else GENERIC_FIELDS
    mapping = hub.mapping if hub else generic
    out = []
    for index, row in enumerate(rows):
        missing = [f for f in fields if f not in row]
        if missing:
            raise UserError(
                f"{where}: row {index} has no field(s) {', '.join(missing)} (expected {', '.join(fields)})"
            )
        question = mapping(row, f"{where}: row {index}")
        if not 0 <= question.answer < len(question.choices):
            raise UserError(
                f"{where}: row {index}: answer {question.answer} is outside its {len(question.choices)} "
                "choices"
            )
        out.append(question)
    return out
