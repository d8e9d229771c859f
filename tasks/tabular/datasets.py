"""Loading tables into a numeric matrix and integer labels: scikit-learn's sets, OpenML, local files.

Text columns are categorical. `TabularData.X` one-hot encodes them (a dummy per value, and one for an
empty cell when there is one), which every method can read; a method that embeds categories itself
reads `coded`, one column per feature with the category's code, and `categorical`, which says which
columns those are.

A text column of a local file whose values parse as numbers except a few (at most 5% of its non-empty
values, or a single one) is a typo in a numeric column, not a categorical feature: an error names the
file, the column and the first offending rows. A text column whose every value parses as a number is
numeric. A cell is missing when it is empty or holds one of the usual markers (`MISSING_MARKERS`: NA,
N/A, NaN, null, None, ?, ...), in any column of a local file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from harness.errors import UserError

SKLEARN_DATASETS = ("breast_cancer", "wine", "digits", "iris")


@dataclass(frozen=True)
class TabularData:
    X: np.ndarray  # (rows, features) float64, NaN where missing
    y: np.ndarray  # (rows,) int64 class index
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    source: str
    # One column per original feature, categories as codes 0..k-1 (NaN when missing); None when the
    # table has no categorical feature, so X is already that.
    coded: np.ndarray | None = None
    categorical: tuple[bool, ...] = ()  # per column of `coded`

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def features(self, categories_native: bool) -> tuple[np.ndarray, np.ndarray]:
        """The matrix a method reads and the indices of its categorical columns: codes for a method that
        embeds categories itself, one-hot columns for any other."""
        if categories_native and self.coded is not None:
            return self.coded, np.flatnonzero(self.categorical)
        return self.X, np.zeros(0, dtype=np.int64)


def load_sklearn(name: str) -> TabularData:
    from sklearn import datasets

    if name not in SKLEARN_DATASETS:
        raise UserError(
            f"unknown scikit-learn dataset '{name}' (expected one of {', '.join(SKLEARN_DATASETS)})"
        )
    bunch = getattr(datasets, f"load_{name}")()
    names = getattr(bunch, "target_names", None)
    classes = tuple(str(c) for c in (names if names is not None else np.unique(bunch.target)))
    features = tuple(str(f) for f in getattr(bunch, "feature_names", range(bunch.data.shape[1])))
    return TabularData(
        bunch.data.astype(np.float64), bunch.target.astype(np.int64), features, classes, f"sklearn:{name}"
    )


def load_openml(data_id: int, target: str | None = None) -> TabularData:
    """An OpenML dataset by id (needs a network once; scikit-learn caches it under the logitbench cache)."""
    from sklearn.datasets import fetch_openml

    from harness.assets import cache_root

    try:
        bunch = fetch_openml(
            data_id=data_id,
            as_frame=True,
            data_home=str(cache_root() / "openml"),
            target_column=target or "default-target",
        )
    except ImportError as err:
        raise UserError(
            f"OpenML loading needs pandas ({err}); install it: pip install 'logitbench[hub]'"
        ) from None
    except (OSError, ValueError) as err:
        raise UserError(
            f"OpenML dataset {data_id} could not be loaded ({type(err).__name__}: {err}); "
            "it needs a network the first time"
        ) from None
    frame = _from_pandas(bunch.frame)
    target_name = target or (bunch.target_names[0] if bunch.target_names else None)
    if target_name is None:
        raise UserError(f"OpenML dataset {data_id} declares no default target; set the task param 'target'")
    return frame_to_data(frame, target_name, f"openml:{data_id}")


def _from_pandas(frame) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    """Column by column (numbers as floats, anything else as text), so pyarrow is not needed."""
    import pandas as pd

    columns = {}
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype):
            columns[str(name)] = pl.Series(col.to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            columns[str(name)] = pl.Series([None if pd.isna(v) else str(v) for v in col], dtype=pl.String)
    return pl.DataFrame(columns)


MISSING_MARKERS = ("NA", "N/A", "n/a", "#N/A", "<NA>", "NaN", "nan", "-nan", "NULL", "null", "None", "?")


def _markers_to_null(frame: pl.DataFrame) -> pl.DataFrame:
    text = [c for c, t in frame.schema.items() if t == pl.String]
    if not text:
        return frame
    return frame.with_columns(
        pl.when(pl.col(c).str.strip_chars().is_in(MISSING_MARKERS)).then(None).otherwise(pl.col(c)).alias(c)
        for c in text
    )


def load_table(path: str, target: str) -> TabularData:
    """A local CSV or parquet file with a named target column."""
    file = Path(path).expanduser()
    if not file.exists():
        raise UserError(f"table file {file} does not exist")
    try:
        if file.suffix.lower() == ".parquet":
            frame = pl.read_parquet(file)
        elif file.suffix.lower() in (".csv", ".tsv"):
            frame = pl.read_csv(
                file,
                separator="\t" if file.suffix.lower() == ".tsv" else ",",
                infer_schema_length=10_000,
                null_values=list(MISSING_MARKERS),
            )
        else:
            raise UserError(f"table file {file}: expected a .csv, .tsv or .parquet file")
    except pl.exceptions.PolarsError as err:
        raise UserError(f"table file {file} cannot be read: {str(err).splitlines()[0]}") from None
    return frame_to_data(_markers_to_null(frame), target, str(file), strict_text=True)


def check_table(path: str, target: str) -> None:
    """The cheap part of `load_table`, for planning: the file exists, is a table, and has the target
    column (read from the header alone)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"table file {file} {'is a folder' if file.is_dir() else 'does not exist'}")
    suffix = file.suffix.lower()
    if suffix not in (".parquet", ".csv", ".tsv"):
        raise UserError(f"table file {file}: expected a .csv, .tsv or .parquet file")
    try:
        if suffix == ".parquet":
            columns = list(pl.read_parquet_schema(file))
        else:
            columns = pl.read_csv(file, separator="\t" if suffix == ".tsv" else ",", n_rows=0).columns
    except (pl.exceptions.PolarsError, OSError) as err:
        raise UserError(f"table file {file} cannot be read: {str(err).splitlines()[0]}") from None
    if target not in columns:
        shown = ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
        raise UserError(f"{file}: target column '{target}' not found (columns: {shown})")


TYPO_SHARE = 0.05  # a text column this close to all-numeric holds typos, not categories


def _numeric_text_columns(features: pl.DataFrame, source: str, strict: bool) -> list[str]:
    """Text columns whose every value parses as a number (they are numeric); with `strict`, a text column
    numeric but for a few values is an error naming the first of them."""
    numeric = []
    for name, dtype in features.schema.items():
        if dtype != pl.String:
            continue
        text = features.get_column(name).str.strip_chars()
        present = text.is_not_null() & (text != "")
        parsed = text.cast(pl.Float64, strict=False)
        odd = present & parsed.is_null()
        n_present, n_odd = int(present.sum()), int(odd.sum())
        if n_present and not n_odd:
            numeric.append(name)
        elif strict and n_odd < n_present and n_odd <= max(1, TYPO_SHARE * n_present):
            rows = np.flatnonzero(odd.to_numpy())
            shown = ", ".join(f"data row {r + 1} ({text[int(r)]!r})" for r in rows[:3])
            raise UserError(
                f"{source}: column '{name}' is numeric except {n_odd} of {n_present} values: {shown}; "
                "expected a number (leave the cell empty, or NA, for a missing value)"
            )
    return numeric


def frame_to_data(frame: pl.DataFrame, target: str, source: str, strict_text: bool = False) -> TabularData:
    """Numeric columns as floats (nulls as NaN), text columns one-hot (and coded), the target
    label-encoded. `strict_text` (local files) makes a numeric column with a few text values an error."""
    if target not in frame.columns:
        raise UserError(f"{source}: target column '{target}' not found (columns: {', '.join(frame.columns)})")
    labels = frame.get_column(target)
    if labels.null_count():
        raise UserError(f"{source}: target column '{target}' has {labels.null_count()} empty value(s)")
    features = frame.drop(target)
    if features.width == 0:
        raise UserError(f"{source}: no feature columns besides the target '{target}'")
    as_numbers = _numeric_text_columns(features, source, strict_text)
    if as_numbers:
        features = features.with_columns(pl.col(as_numbers).str.strip_chars().cast(pl.Float64, strict=False))
    categorical = [c for c, t in features.schema.items() if not (t.is_numeric() or t == pl.Boolean)]
    names = tuple(features.columns)
    coded = None
    if categorical:
        features = features.with_columns(pl.col(categorical).cast(pl.String))
        coded = np.column_stack([_codes(features.get_column(c)) for c in names])
        features = features.to_dummies(categorical)
    X = features.with_columns(pl.all().cast(pl.Float64)).to_numpy().astype(np.float64)
    classes, y = np.unique(labels.cast(pl.String).to_numpy(), return_inverse=True)
    if len(classes) < 2:
        raise UserError(
            f"{source}: target column '{target}' has a single class; a classifier needs two or more"
        )
    return TabularData(
        X,
        y.astype(np.int64),
        tuple(features.columns),
        tuple(str(c) for c in classes),
        source,
        coded=coded,
        categorical=tuple(c in categorical for c in names) if categorical else (),
    )


def _codes(column: pl.Series) -> np.ndarray:
    """A text column as codes of its sorted values (NaN where empty); a numeric one as floats."""
    if column.dtype != pl.String:
        return column.cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64)
    values = column.to_numpy()
    present = np.array([v is not None for v in values])
    out = np.full(len(values), np.nan)
    if present.any():
        _, codes = np.unique(values[present].astype(str), return_inverse=True)
        out[present] = codes
    return out
