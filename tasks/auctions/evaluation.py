"""Running a mechanism on auction instances: welfare, revenue, their ratio to the optimum, incentives.

Every auction is run at truthful bids (bids = values). Welfare is sum_i v_i x clicks_i and revenue
sum_i price_i x clicks_i, clicks under the task's users, both in value units per auction. The optimum
welfare is exact (Dinkelbach under MNL users, enumeration under cascade users where the auction is
small enough); the revenue benchmark is the optimal expected virtual surplus, E[max_x sum_i
phi(v_i)^+ clicks_i(x)], which by Myerson's lemma no truthful, individually rational mechanism exceeds
in expectation, so revenue_ratio is a ratio of sums over auctions (one auction's revenue may exceed its
virtual surplus). welfare_ratio is the mean of per-auction ratios.

Incentives are measured, not assumed: for each checked bidder, every alternative bid on the grid
(multiples of its value) is tried with the others truthful, and the bidder has a profitable misreport
when some bid raises its utility (v_i - price_i) x clicks_i by more than 1e-6 of its largest possible
utility v_i x max_j p_ij. A mechanism that is not truthful (GSP) is still evaluated at truthful bids,
not at an equilibrium of its game.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tasks.auctions.clicks import check_allocation
from tasks.auctions.exact import optimum
from tasks.auctions.instances import Instance
from tasks.auctions.protocol import AuctionMechanism

GAIN_TOL = 1e-6  # relative to the bidder's largest possible utility
IR_TOL = 1e-9


@dataclass(frozen=True)
class Misreport:
    instance: int
    bidder: int
    value: float
    bid: float
    truthful_utility: float
    utility: float


def outcome(mechanism: AuctionMechanism, instance: Instance, bids: np.ndarray, bidders: Sequence[int]):  # type: ignore[no-untyped-def]
    """(positions, prices of `bidders`), checked for shape and validity."""
    setting = instance.setting
    n, m = setting.n_ads, setting.n_positions
    positions = check_allocation(mechanism.allocate(bids.copy(), setting), n, m, mechanism.name)
    prices = np.asarray(mechanism.prices(bids.copy(), setting, positions, list(bidders)), dtype=float)
    if prices.shape != (len(bidders),) or not np.isfinite(prices).all():
        raise ValueError(f"{mechanism.name}: prices must be {len(bidders)} finite numbers, got {prices!r}")
    return positions, prices


def utility(mechanism: AuctionMechanism, instance: Instance, bidder: int, bid: float) -> float:
    """The bidder's expected utility when it bids `bid` and everyone else bids their value."""
    bids = instance.values.copy()
    bids[bidder] = bid
    positions, prices = outcome(mechanism, instance, bids, [bidder])
    click = instance.setting.clicks(positions)[bidder]
    return float((instance.values[bidder] - prices[0]) * click)


def best_misreport(
    mechanism: AuctionMechanism, instance: Instance, bidder: int, grid: Sequence[float], truthful: float
) -> tuple[float, float]:
    """The grid bid with the highest utility and that utility (the truthful bid when none beats it)."""
    value = float(instance.values[bidder])
    best_bid, best = value, truthful
    for factor in grid:
        if factor == 1.0:
            continue
        u = utility(mechanism, instance, bidder, factor * value)
        if u > best:
            best_bid, best = factor * value, u
    return best_bid, best


def profitable(instance: Instance, bidder: int, gain: float) -> bool:
    scale = float(instance.values[bidder] * instance.setting.ctr[bidder].max())
    return gain > GAIN_TOL * scale


def evaluate(
    mechanism: AuctionMechanism,
    instances: Sequence[Instance],
    grid: Sequence[float],
    check_instances: int,
    check_bidders: int,
    exact_limit: int,
    per_auction: dict[str, list] | None = None,
) -> tuple[dict[str, float], dict]:
    """The task's metrics and the details kept beside them (an example of a profitable misreport);
    `per_auction`, when given, receives each auction's welfare, revenue, ads shown and welfare ratio."""
    welfare, revenue, shown, ratios = [], [], [], []
    virtual_total, ir_violations, bidders_seen = 0.0, 0, 0
    optimal_known = True
    seconds = 0.0
    checked, gains, misreports = 0, [], []
    for k, instance in enumerate(instances):
        setting, values = instance.setting, instance.values
        n = setting.n_ads
        start = time.perf_counter()
        positions, prices = outcome(mechanism, instance, values, range(n))
        seconds += time.perf_counter() - start
        clicks = setting.clicks(positions)
        utilities = (values - prices) * clicks
        welfare.append(float(values @ clicks))
        revenue.append(float(prices @ clicks))
        shown.append(int((positions >= 0).sum()))
        ir_violations += int((utilities < -IR_TOL * (1.0 + values)).sum())
        bidders_seen += n
        best = optimum(values, setting, exact_limit)
        virtual = optimum(setting.prior.virtual_value(values), setting, exact_limit)
        if best is None or virtual is None:
            optimal_known = False
        else:
            ratios.append(welfare[-1] / best if best > 0 else 1.0)
            virtual_total += virtual
        if k < check_instances:
            order = np.argsort(-values, kind="stable")
            for bidder in order[: check_bidders or n]:
                bid, u = best_misreport(mechanism, instance, int(bidder), grid, float(utilities[bidder]))
                gain = u - float(utilities[bidder])
                checked += 1
                gains.append(max(gain, 0.0))
                if profitable(instance, int(bidder), gain):
                    misreports.append(
                        Misreport(k, int(bidder), float(values[bidder]), bid, float(utilities[bidder]), u)
                    )
    metrics = {
        "welfare": float(np.mean(welfare)),
        "revenue": float(np.mean(revenue)),
        "ads_shown": float(np.mean(shown)),
        "ir_violations": ir_violations / bidders_seen,
        "ms_per_auction": 1000.0 * seconds / len(instances),
    }
    if optimal_known:
        metrics["welfare_ratio"] = float(np.mean(ratios))
        metrics["welfare_ratio_min"] = float(np.min(ratios))
        metrics["revenue_ratio"] = float(np.sum(revenue) / virtual_total) if virtual_total > 0 else 0.0
    if per_auction is not None:
        per_auction.update(
            auction=list(range(len(instances))), welfare=welfare, revenue=revenue, ads_shown=shown
        )
        if optimal_known:
            per_auction["welfare_ratio"] = ratios
    if checked:
        metrics["misreport_share"] = len(misreports) / checked
        metrics["misreport_gain"] = float(np.mean(gains))
    details = {"bidders_checked": checked, "profitable_misreports": len(misreports)}
    if misreports:
        details["misreport_example"] = asdict(max(misreports, key=lambda r: r.utility - r.truthful_utility))
    return metrics, details
