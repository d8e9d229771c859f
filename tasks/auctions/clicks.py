"""The two user models: how likely each shown ad is to be clicked, given which ad sits in which position.

Both start from the standalone click probability p_ij of ad i in position j (the ad alone in the answer),
the (ad, position) estimate the paper argues for instead of one rate per ad.

- MNL (order-insensitive): the user weighs all shown ads at once against not clicking. With the weight
  w_ij = exp(rho_ij), ad i in position j is clicked with probability w_ij / (1 + sum of the shown weights).
  Our choice: w_ij = p_ij / (1 - p_ij), so that an ad shown alone is clicked with probability p_ij and
  both user models read the same p.
- Cascade (order-sensitive): the user reads positions in their order in the content; at position j with
  ad i they click with probability p_ij and stop; otherwise they go on to position j + 1 with the
  continuation probability q_j (also past an empty position). Our choice: positions are read in their
  index order (the paper's rendering permutation is fixed to the identity).

An allocation is `positions`: for each ad the position it gets, -1 when it is not shown.
"""

from __future__ import annotations

import numpy as np


def mnl_weights(ctr: np.ndarray) -> np.ndarray:
    """exp(rho_ij) = p_ij / (1 - p_ij)."""
    return ctr / (1.0 - ctr)


def mnl_clicks(weights: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Click probability of every ad under the MNL model."""
    shown = positions >= 0
    w = np.zeros(len(positions))
    w[shown] = weights[np.flatnonzero(shown), positions[shown]]
    return w / (1.0 + w.sum())


def cascade_clicks(ctr: np.ndarray, continuation: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Click probability of every ad under the cascade model; `positions` may be a batch (B, n)."""
    batch = np.atleast_2d(positions)
    rows, ads = np.nonzero(batch >= 0)
    cols = batch[rows, ads]
    p_at = np.zeros((len(batch), ctr.shape[1]))
    p_at[rows, cols] = ctr[ads, cols]
    # reach[:, j]: probability that the user reads position j
    through = np.cumprod(continuation * (1.0 - p_at), axis=1)
    reach = np.concatenate([np.ones((len(batch), 1)), through[:, :-1]], axis=1)
    out = np.zeros(batch.shape)
    out[rows, ads] = reach[rows, cols] * p_at[rows, cols]
    return out if positions.ndim == 2 else out[0]


def check_allocation(positions: object, n: int, m: int, who: str) -> np.ndarray:
    """`positions` as an int array of n positions in -1..m-1, no position twice; ValueError otherwise
    (a mechanism that breaks this has a bug, so the run fails with its traceback)."""
    arr = np.asarray(positions)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{who}: allocation must be {n} integer positions, got {arr.dtype} {arr.shape}")
    if arr.min(initial=-1) < -1 or arr.max(initial=-1) >= m:
        raise ValueError(f"{who}: allocation {arr.tolist()} has a position outside -1..{m - 1}")
    used = arr[arr >= 0]
    if len(np.unique(used)) != len(used):
        raise ValueError(f"{who}: allocation {arr.tolist()} gives one position to two ads")
    return arr.astype(np.int64)
