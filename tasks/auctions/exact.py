"""Exact optima: by Dinkelbach's iteration under MNL users (any size), by enumerating every allocation
under cascade users (small auctions only: n ads and m positions have sum_k C(m, k) n!/(n-k)! of them).

The enumeration also checks the MNL solver in the tests.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from tasks.auctions.mnl import best_matching
from tasks.auctions.protocol import AuctionSetting


def allocation_count(n: int, m: int) -> int:
    return sum(math.comb(m, k) * math.perm(n, k) for k in range(min(n, m) + 1))


@lru_cache(maxsize=16)
def all_allocations(n: int, m: int) -> np.ndarray:
    """Every allocation as the ad in each position, -1 for an empty one: (count, m) ints."""
    partial = np.zeros((1, 0), dtype=np.int64)
    for _ in range(m):
        grown = [np.column_stack([partial, np.full(len(partial), -1)])]
        for ad in range(n):
            free = ~(partial == ad).any(axis=1)
            grown.append(np.column_stack([partial[free], np.full(int(free.sum()), ad)]))
        partial = np.concatenate(grown)
    partial.setflags(write=False)
    return partial


def to_positions(ad_at: np.ndarray, n: int) -> np.ndarray:
    """An allocation as the position of each ad."""
    positions = np.full(n, -1)
    filled = np.flatnonzero(ad_at >= 0)
    positions[ad_at[filled]] = filled
    return positions


def welfare_of_all(values: np.ndarray, setting: AuctionSetting, ad_at: np.ndarray) -> np.ndarray:
    """sum_i values_i x clicks_i for every allocation in `ad_at` under the setting's users."""
    m = setting.n_positions
    shown = ad_at >= 0
    safe = np.maximum(ad_at, 0)
    cols = np.arange(m)
    v = np.where(shown, values[safe], 0.0)
    if setting.user_model == "mnl":
        w = np.where(shown, setting.weights[safe, cols], 0.0)
        return (v * w).sum(axis=1) / (1.0 + w.sum(axis=1))
    p = np.where(shown, setting.ctr[safe, cols], 0.0)
    through = np.cumprod(setting.read_on * (1.0 - p), axis=1)
    reach = np.concatenate([np.ones((len(p), 1)), through[:, :-1]], axis=1)
    return (reach * p * v).sum(axis=1)


def brute_force(values: np.ndarray, setting: AuctionSetting) -> tuple[np.ndarray, float, float]:
    """The best allocation by enumeration, its value, and the gap to the second best (0 on a tie)."""
    ad_at = all_allocations(setting.n_ads, setting.n_positions)
    welfare = welfare_of_all(values, setting, ad_at)
    order = np.argsort(welfare)[::-1]
    gap = float(welfare[order[0]] - welfare[order[1]]) if len(order) > 1 else math.inf
    return to_positions(ad_at[order[0]], setting.n_ads), float(welfare[order[0]]), gap


def optimum(values: np.ndarray, setting: AuctionSetting, limit: int) -> float | None:
    """The largest sum_i values_i x clicks_i over allocations (values <= 0 never help), exactly, or None
    when the users cascade and the auction has more than `limit` allocations."""
    values = np.maximum(values, 0.0)
    if setting.user_model == "mnl":
        return best_matching(values, setting.weights)[1]
    if allocation_count(setting.n_ads, setting.n_positions) > limit:
        return None
    ad_at = all_allocations(setting.n_ads, setting.n_positions)
    return float(welfare_of_all(values, setting, ad_at).max())
