"""Auction instances: drawn by a seeded generator, or read from a local JSON or parquet file.

Generator (the parameters are ours; the paper gives no instance distribution): the logit of ad i in
position j is
    rho_ij = base_logit + quality_i - position_decay * j + context_noise * eps_ij,
quality_i ~ N(0, ad_spread^2) and eps_ij ~ N(0, 1), and p_ij = sigmoid(rho_ij), so the MNL weight is
exp(rho_ij) itself. The (ad, position) term is the paper's point: with context_noise = 0 the weights are
separable (exp(rho) = alpha_i beta_j), one rate per ad times one per position, as classic position
auctions assume. Values per click are drawn from the task's distribution; cascade users get continuation
probabilities q_j ~ U[continuation_low, continuation_high].

File: a JSON list of instances (or {"instances": [...]}) or a parquet table with one row per instance,
each with `ctr` (n rows of m standalone click probabilities in (0, 1)), `values` (n values per click
from the declared distribution) and, for cascade users, `continuation` (m probabilities in [0, 1]).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError
from tasks.auctions.protocol import AuctionSetting, UserModel
from tasks.auctions.values import ValueDistribution


@dataclass(frozen=True, eq=False)
class Instance:
    setting: AuctionSetting
    values: np.ndarray  # (n,): true values per click; bidding them is truthful


def generate(
    rng: np.random.Generator,
    count: int,
    n_ads: int,
    n_positions: int,
    user_model: UserModel,
    prior: ValueDistribution,
    base_logit: float,
    ad_spread: float,
    position_decay: float,
    context_noise: float,
    continuation: tuple[float, float] = (1.0, 1.0),
) -> list[Instance]:
    out = []
    for _ in range(count):
        quality = rng.normal(0.0, ad_spread, (n_ads, 1))
        context = rng.normal(0.0, 1.0, (n_ads, n_positions))
        rho = base_logit + quality - position_decay * np.arange(n_positions) + context_noise * context
        ctr = 1.0 / (1.0 + np.exp(-rho))
        values = prior.sample(rng, n_ads)
        read_on = rng.uniform(*continuation, n_positions) if user_model == "cascade" else None
        out.append(Instance(AuctionSetting(ctr, user_model, prior, read_on), values))
    return out


def read_instances(path: str, user_model: UserModel, prior: ValueDistribution) -> list[Instance]:
    """Every instance of a local JSON or parquet file, each field checked: a bad one is a one-line error
    naming the file, the instance and the field."""
    file = Path(path)
    if not file.is_file():
        raise UserError(
            f"auction instances file {path} does not exist" + (" (a folder)" if file.is_dir() else "")
        )
    suffix = file.suffix.lower()
    if suffix == ".json":
        rows = _json_rows(file)
    elif suffix == ".parquet":
        rows = _parquet_rows(file)
    else:
        raise UserError(
            f"{path}: expected a .json or .parquet file of auction instances, got '{suffix or file.name}'"
        )
    if not rows:
        raise UserError(f"{path}: holds no auction instances")
    return [_instance(row, f"{path}: instance {k}", user_model, prior) for k, row in enumerate(rows)]


def _json_rows(file: Path) -> list[Any]:
    try:
        data = json.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{file}: not UTF-8 text; expected a JSON file of auction instances") from None
    except json.JSONDecodeError as err:
        raise UserError(
            f"{file}: line {err.lineno}, column {err.colno}: malformed JSON ({err.msg})"
        ) from None
    except OSError as err:
        raise UserError(f"{file}: cannot be read ({err.strerror or err})") from None
    if isinstance(data, dict) and "instances" in data:
        data = data["instances"]
    if not isinstance(data, list):
        raise UserError(f"{file}: expected a JSON list of instances or an object with an 'instances' list")
    return data


def _parquet_rows(file: Path) -> list[Any]:
    import polars as pl

    try:
        return pl.read_parquet(file).to_dicts()
    except Exception as err:  # polars raises several types for a corrupt file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{file}: not a readable parquet file ({first})") from None


def _instance(row: Any, where: str, user_model: UserModel, prior: ValueDistribution) -> Instance:
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected an object with fields ctr, values, got {type(row).__name__}")
    ctr = _matrix(row, "ctr", where)
    n, m = ctr.shape
    bad = np.argwhere(~((ctr > 0) & (ctr < 1)))
    if len(bad):
        i, j = bad[0]
        raise UserError(
            f"{where}: field 'ctr' row {i} position {j} is {float(ctr[i, j])!r}; expected a click "
            "probability strictly between 0 and 1"
        )
    values = _vector(row, "values", where, n, "one value per ad (row of ctr)")
    for i, v in enumerate(values):
        problem = prior.support_problem(float(v))
        if problem:
            raise UserError(f"{where}: field 'values' entry {i} is {problem}")
    continuation = None
    if user_model == "cascade":
        continuation = _vector(row, "continuation", where, m, "one probability per position (column of ctr)")
        outside = np.flatnonzero(~((continuation >= 0) & (continuation <= 1)))
        if len(outside):
            k = outside[0]
            raise UserError(
                f"{where}: field 'continuation' entry {k} is {float(continuation[k])!r}; expected a "
                "probability in [0, 1]"
            )
    return Instance(AuctionSetting(ctr, user_model, prior, continuation), values)


def _numbers(value: Any, where: str, label: str, expected: str) -> list[float]:
    """`value` as a non-empty list of finite numbers; `label` names it ("field 'ctr' row 2")."""
    if not isinstance(value, list | tuple) or not value:
        raise UserError(f"{where}: {label} is {_short(value)}; expected {expected}")
    out = []
    for k, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            raise UserError(f"{where}: {label} entry {k} is {_short(item)}; expected a finite number")
        out.append(float(item))
    return out


def _matrix(row: dict[str, Any], field: str, where: str) -> np.ndarray:
    if row.get(field) is None:
        raise UserError(
            f"{where}: field '{field}' is missing; expected n rows (ads) of m click probabilities"
        )
    raw = row[field]
    if not isinstance(raw, list | tuple) or not raw:
        raise UserError(
            f"{where}: field '{field}' is {_short(raw)}; expected n rows (ads) of m click probabilities"
        )
    rows = [
        _numbers(r, where, f"field '{field}' row {i}", "a list of m click probabilities")
        for i, r in enumerate(raw)
    ]
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        i = next(i for i, r in enumerate(rows) if len(r) != len(rows[0]))
        raise UserError(
            f"{where}: field '{field}' row {i} has {len(rows[i])} entries, expected {len(rows[0])} (one per "
            "position, as row 0)"
        )
    return np.array(rows)


def _vector(row: dict[str, Any], field: str, where: str, size: int, expected: str) -> np.ndarray:
    if row.get(field) is None:
        raise UserError(f"{where}: field '{field}' is missing; expected {size} numbers, {expected}")
    out = np.array(_numbers(row[field], where, f"field '{field}'", f"{size} numbers, {expected}"))
    if len(out) != size:
        raise UserError(f"{where}: field '{field}' has {len(out)} entries; expected {size}, {expected}")
    return out


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
