"""Exact optimisation under MNL users, shared by the MNL mechanisms and the tasks' optimum.

The welfare of a matching x under MNL users is a ratio of two linear functions of x,
    F(x) = sum_ij x_ij v_i w_ij / (1 + sum_ij x_ij w_ij),
so it is maximised exactly by Dinkelbach's iteration: for the current ratio lambda, the matching that
maximises sum_ij x_ij (v_i - lambda) w_ij is an assignment problem (scipy's linear_sum_assignment on the
positive part, a pair of non-positive profit being left out); its ratio is the next lambda, and lambda
stops rising exactly when no matching beats it. Each step strictly improves a finite set, so it ends.

How one ad's clicks change with its value t, everyone else fixed, is what VCG and Myerson payments
integrate. The optimum V(t) is the upper envelope of one line per matching (intercept: the others'
value, slope: the ad's click probability), hence convex and piecewise linear, and the ad's click
probability is its slope. Its kinks are found by intersecting supporting lines (Eisner and Severance's
parametric search): one optimisation per line, so a handful per ad.
"""

from __future__ import annotations

import numpy as np

from tasks.auctions.clicks import mnl_clicks

RATIO_TOL = 1e-13  # relative: lambda has stopped rising
MAX_STEPS = 200  # Dinkelbach steps; in practice a few


def best_matching(values: np.ndarray, weights: np.ndarray, start: float = 0.0) -> tuple[np.ndarray, float]:
    """The allocation maximising F and its value F*. `start` is a guess at F* from below (the value of
    some matching): the closer, the fewer steps; a guess above F* costs a step, never the answer."""
    from scipy.optimize import linear_sum_assignment  # here, not at the top: it costs 0.3 s to import

    n = len(values)
    best, value = np.full(n, -1), 0.0
    lam = max(start, 0.0)
    for _ in range(MAX_STEPS):
        profit = (values - lam)[:, None] * weights
        np.maximum(profit, 0.0, out=profit)
        rows, cols = linear_sum_assignment(profit, maximize=True)
        keep = profit[rows, cols] > 0
        rows, cols = rows[keep], cols[keep]
        if not len(rows):
            if lam > 0 and value == 0.0:
                lam = 0.0  # the guess was above every value, so above F*: start again from 0
                continue
            break
        w = weights[rows, cols]
        ratio = float(values[rows] @ w) / (1.0 + float(w.sum()))
        if ratio > value:
            best, value = np.full(n, -1), ratio
            best[rows] = cols
        if abs(ratio - lam) <= RATIO_TOL * lam:
            break  # max_x N(x) - lam D(x) is 0: lam is F*, and this matching attains it
        lam = ratio  # up from a lower bound; down (to a value reached) from a guess above F*
    return best, value


def welfare_without(values: np.ndarray, weights: np.ndarray, ad: int) -> float:
    """F* when `ad` takes no part (its value set to 0: it is then never worth a position)."""
    others = values.copy()
    others[ad] = 0.0
    return best_matching(others, weights)[1]


def click_steps(values: np.ndarray, weights: np.ndarray, ad: int, t_max: float) -> list[tuple[float, float]]:
    """Where `ad`'s click probability jumps as its value rises from 0 to t_max, and by how much:
    a list of (value, jump), increasing in value, jumps summing to its clicks at t_max."""
    trial = values.copy()

    def optimum(t: float, guess: float = 0.0) -> tuple[float, float]:
        trial[ad] = t
        positions, value = best_matching(trial, weights, guess)
        return value, float(mnl_clicks(weights, positions)[ad])

    steps: list[tuple[float, float]] = []

    def search(ta: float, va: float, xa: float, tb: float, vb: float, xb: float, depth: int) -> None:
        if xb - xa <= 1e-15:
            return
        t = (vb - va + xa * ta - xb * tb) / (xa - xb)  # where the two supporting lines cross
        t = min(max(t, ta), tb)
        v, x = optimum(t, va + xa * (t - ta))  # the line is a matching's value at t: a lower bound
        if v <= va + xa * (t - ta) + 1e-12 * (1.0 + abs(v)) or depth > 60:
            steps.append((t, xb - xa))
            return
        search(ta, va, xa, t, v, x, depth + 1)
        search(t, v, x, tb, vb, xb, depth + 1)

    v0, x0 = optimum(0.0)
    v1, x1 = optimum(t_max)
    search(0.0, v0, x0, t_max, v1, x1, 0)
    return sorted(steps)
