"""A compiled row gather with a per-row constant: the VQ-Logits scatter of code logits to tokens.

torch does it in two passes over the (V, N) output (index_select, then the bias add); at V = 50,257 and
4,096 positions that output is 823 MB, so the second pass costs as much as the first. numba fuses them.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def gather_rows_add(
    source: np.ndarray, rows: np.ndarray, row_bias: np.ndarray, out: np.ndarray, start: int, stop: int
) -> None:
    """out[v] = source[rows[v]] + row_bias[v] for v in [start, stop)."""
    for v in range(start, stop):
        src = source[rows[v]]
        dst = out[v]
        add = row_bias[v]
        for n in range(src.size):
            dst[n] = src[n] + add
