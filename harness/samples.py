"""Per-example results of a run (what lm-eval's `--log_samples` gives): a parquet table beside its record.

A task hands its table to `RunContext.samples` (one value per example and column, with the columns that
name an example and, where there is one, its prediction and label). For an `ok` run only, the worker
writes the table next to the record, atomically (a temporary file renamed)
and before the record, and the record names it with its rows and sha256 (`record["samples"]`), so a
record never points to a missing file. A failed attempt writes no table, so an `ok` run's table stays
with the `ok` record the store keeps (harness/store.py); an `ok` record written without a table removes
the key's old ones. Each attempt writes a file of its own (`<key>.<run id>.samples.parquet`), so one killed
between its table and its record leaves the standing record's table as it was; a file that no longer
matches its record's sha256 (edited, or damaged) is refused.

Which tables are kept is `$LOGITBENCH_SAMPLES` (`logitbench run --samples`): `auto` (the default) keeps
tables up to AUTO_MAX_BYTES in memory (16 MiB: a 10,000-question MCQ run with 5 options is about 0.7
MiB), `all` keeps every table, `none` keeps none. Whichever way, the mode changes no result, so it is not
in the run's key: a table left out is kept by running the key again (`--rerun always`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UserError

if TYPE_CHECKING:
    import polars as pl

    from harness.store import Record, ResultStore

SAMPLES_ENV = "LOGITBENCH_SAMPLES"
MODES = ("auto", "all", "none")
AUTO_MAX_BYTES = 16 * 2**20


@dataclass(frozen=True)
class SampleTable:
    """One run's per-example results: `index` columns name an example (the same across methods of a
    task and seed), `prediction` and `label` are what `diff-samples` compares and shows (None: none)."""

    frame: pl.DataFrame
    index: tuple[str, ...]
    prediction: str | None = None
    label: str | None = None

    @classmethod
    def build(
        cls,
        table: dict[str, Any],
        index: str | Sequence[str],
        prediction: str | None = None,
        label: str | None = None,
    ) -> SampleTable:
        """The table as a polars frame; ValueError/TypeError saying which column is wrong."""
        import polars as pl

        if not isinstance(table, dict) or not table:
            raise TypeError("the table must be a non-empty dict of column name -> values")
        columns: dict[str, Any] = {}
        for name, values in table.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"column name {name!r} is not a non-empty string")
            columns[name] = _column(name, values)
        lengths = {name: len(v) for name, v in columns.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k}={n}" for k, n in lengths.items())
            raise ValueError(f"columns have different lengths ({shown})")
        index = (index,) if isinstance(index, str) else tuple(index)
        for role, names in (("index", index), ("prediction", (prediction,)), ("label", (label,))):
            missing = [n for n in names if n is not None and n not in columns]
            if missing:
                raise ValueError(f"{role} column {', '.join(missing)} is not in the table")
        if not index:
            raise ValueError("no index column names the examples")
        try:
            frame = pl.DataFrame(columns, strict=False)
        except (TypeError, ValueError, pl.exceptions.PolarsError) as err:
            raise ValueError(f"the table cannot be stored ({err})") from None
        if frame.select(index).is_duplicated().any():
            raise ValueError(f"index column(s) {', '.join(index)} repeat a value")
        return cls(frame, index, prediction, label)


def _column(name: str, values: Any) -> list[Any]:
    """A column as a plain list: numpy arrays and torch tensors (1-D) become lists of Python values."""
    if type(values).__module__.split(".")[0] == "torch":
        values = values.detach().cpu().numpy()
    if hasattr(values, "ndim") and hasattr(values, "tolist"):
        if values.ndim != 1:
            raise ValueError(f"column '{name}' has {values.ndim} dimensions; give one column per field")
        return values.tolist()
    if isinstance(values, list | tuple):
        return list(values)
    raise TypeError(f"column '{name}' is a {type(values).__name__}, expected a list or a 1-D array")


def mode_from_env() -> tuple[str, str | None]:
    """(the keep mode, a warning when $LOGITBENCH_SAMPLES holds something else)."""
    mode = os.environ.get(SAMPLES_ENV, "auto").strip().lower() or "auto"
    if mode in MODES:
        return mode, None
    return "auto", f"${SAMPLES_ENV} is {mode!r}, expected one of {', '.join(MODES)}: used auto"


def keep(store: ResultStore, key: str, run_id: str, table: SampleTable, mode: str) -> dict[str, Any]:
    """Write run `run_id`'s `table` for `key` when `mode` keeps it; the record's `samples` entry either
    way. OSError when the file cannot be written."""
    frame = table.frame
    entry: dict[str, Any] = {
        "rows": frame.height,
        "columns": frame.columns,
        "index": list(table.index),
        "prediction": table.prediction,
        "label": table.label,
    }
    size = frame.estimated_size()
    if mode == "none" or (mode == "auto" and size > AUTO_MAX_BYTES):
        why = (
            "the run had --samples none"
            if mode == "none"
            else f"{size / 2**20:.1f} MiB, above the {AUTO_MAX_BYTES >> 20} MiB that --samples auto keeps"
        )
        return {**entry, "file": None, "not_kept": why}
    final = store.samples_path(key, run_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    try:
        frame.write_parquet(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
            digest = hashlib.sha256(fh.read()).hexdigest()
        Path(tmp).replace(final)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {**entry, "file": final.name, "sha256": digest}


def load(store: ResultStore, record: Record, what: str) -> tuple[pl.DataFrame, dict[str, Any]]:
    """(the per-example table of `record`, its entry); a UserError saying why there is none."""
    import polars as pl

    entry = record.data.get("samples")
    if record.status != "ok":
        raise UserError(
            f"{what}: the stored run {record.status} ({record.reason}); it kept no per-example results"
        )
    if not isinstance(entry, dict):
        raise UserError(
            f"{what}: the run kept no per-example results (its task keeps none, or the run is older than "
            "them; `logitbench run ... --rerun always` runs it again)"
        )
    if not entry.get("file"):
        raise UserError(
            f"{what}: per-example results were not kept ({entry.get('not_kept', 'no file')}); "
            "`logitbench run ... --samples all --rerun always` keeps them"
        )
    path = store.samples_file(record.key, str(entry["file"]))
    if path is None:
        raise UserError(f"{what}: the record names {entry['file']!r}, not one of its key's tables")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what}: {path} is missing (removed by hand?); run the key again") from None
    if hashlib.sha256(raw).hexdigest() != entry.get("sha256"):
        raise UserError(f"{what}: {path} does not match its record (written by another attempt); run again")
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as err:
        raise UserError(f"{what}: {path} cannot be read ({err})") from None
    index, named = entry.get("index"), [entry.get("prediction"), entry.get("label")]
    wanted = [*(index if isinstance(index, list) else [None]), *(c for c in named if c is not None)]
    if not index or not all(isinstance(c, str) and c in frame.columns for c in wanted):
        raise UserError(  # only a record without a checksum can be edited so (one from before checksums)
            f"{what}: the record's samples entry names index {index!r}, prediction {named[0]!r}, label "
            f"{named[1]!r}; expected columns of {path.name} ({', '.join(frame.columns)})"
        )
    return frame, entry


def disagreements(
    a: pl.DataFrame, b: pl.DataFrame, entry_a: dict[str, Any], entry_b: dict[str, Any], names: tuple[str, str]
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The examples (joined on their index columns) where `a` and `b` predict differently: index, label,
    each side's prediction (and whether it is right, when the table says); and counts (common examples,
    examples of one side only, disagreements, each side right among them)."""
    import polars as pl

    index, prediction = entry_a["index"], entry_a.get("prediction")
    if prediction is None:
        raise UserError("these per-example results have no prediction column to compare")
    if entry_b["index"] != index or entry_b.get("prediction") != prediction:
        raise UserError(
            "the two runs' per-example results name their examples differently; nothing to compare"
        )
    label = entry_a.get("label")
    first, second = names
    keep_a = [*index, *([label] if label else []), prediction]
    left = a.select(keep_a).rename({prediction: first})
    right = b.select([*index, prediction]).rename({prediction: second})
    both = left.join(right, on=index, how="inner")
    differ = both.filter(pl.col(first).ne_missing(pl.col(second)))
    counts = {
        "common": both.height,
        "only_first": a.height - both.height,
        "only_second": b.height - both.height,
        "disagree": differ.height,
    }
    if label:
        differ = differ.with_columns(
            (pl.col(first) == pl.col(label)).alias(f"{first} right"),
            (pl.col(second) == pl.col(label)).alias(f"{second} right"),
        )
        counts["first_right"] = int(differ[f"{first} right"].sum())
        counts["second_right"] = int(differ[f"{second} right"].sum())
    return differ.sort(index), counts


# -- showing ---------------------------------------------------------------------------------------------

MAX_TEXT = 40  # characters of a text cell shown in the terminal (the file keeps it whole)


def cell_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("\n", "⏎")


def fit_columns(
    frame: pl.DataFrame, width: int, wanted: list[str] | None = None
) -> tuple[list[str], list[str], bool]:
    """(columns shown, columns left out, whether a text was shortened): the frame's columns in order while
    the table fits `width` characters (each column takes its widest cell + 3, the table 1 more); texts are
    cut to MAX_TEXT characters."""
    shown: list[str] = []
    used, shortened = 1, False
    for name in wanted or frame.columns:
        cells = [cell_text(v) for v in frame[name].to_list()]
        widest = max([len(name), *map(len, cells)])
        if widest > MAX_TEXT:
            widest, shortened = max(MAX_TEXT, len(name)), True
        if used + widest + 3 > width and shown:
            continue
        shown.append(name)
        used += widest + 3
    return shown, [c for c in (wanted or frame.columns) if c not in shown], shortened


def rows_text(frame: pl.DataFrame, columns: list[str]) -> list[list[str]]:
    out = []
    for row in frame.select(columns).iter_rows():
        cells = [cell_text(v) for v in row]
        out.append([c if len(c) <= MAX_TEXT else c[: MAX_TEXT - 1] + "…" for c in cells])
    return out


def write(frame: pl.DataFrame, path: Path) -> None:
    """`frame` as parquet or CSV by the file's suffix (UserError for any other suffix)."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise UserError(f"--output {path}: expected a .parquet or .csv file name")
    try:
        frame.write_parquet(path) if suffix == ".parquet" else frame.write_csv(path)
    except OSError as err:
        raise UserError(f"--output {path} cannot be written ({err.strerror or err})") from None
