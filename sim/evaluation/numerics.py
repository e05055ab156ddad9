"""Numerical building blocks shared by the evaluation: compensated sums, row-chunked reductions, checks.

Every per-request sum of the evaluation runs over row chunks of ``ROW_CHUNK`` so that a 10^7-request run never
makes a (T, M) or length-T temporary (docs/performance.md); sums that must not drift are compensated (Neumaier).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

#: Rows per chunk where a (T, M) or length-T temporary would otherwise be made at once.
ROW_CHUNK = 1 << 18
#: dtype of a routing (model index per request): 2 bytes a request.
CHOICE = np.int16


def check_matrices(P, E) -> tuple[np.ndarray, np.ndarray]:
    # 0/1 labels stored as uint8 (sim/trace/format.py) are read as they are: a float64 copy would be 8 bytes a label
    P = P if isinstance(P, np.ndarray) and P.dtype == np.uint8 else np.asarray(P, dtype=np.float64)
    E = np.asarray(E, dtype=np.float64)
    if P.ndim != 2 or P.shape != E.shape:
        raise ValueError(f"P and E must be T x M matrices of the same shape, got {P.shape} and {E.shape}")
    if P.shape[0] == 0 or P.shape[1] == 0:
        raise ValueError("P and E must have at least one request and one model")
    if P.shape[1] > np.iinfo(CHOICE).max:
        raise ValueError(f"at most {np.iinfo(CHOICE).max} models, got {P.shape[1]}")
    if not (all_finite(P) and all_finite(E)):
        raise ValueError("P and E must be finite")
    return P, E


def all_finite(A) -> bool:
    return all(np.isfinite(A[a:a + ROW_CHUNK]).all() for a in range(0, A.shape[0], ROW_CHUNK))


@nb.njit(cache=True, inline="always")
def neumaier_add(total, comp, x):
    """Neumaier's compensated sum: (total, compensation) after adding x."""
    y = total + x
    if abs(total) >= abs(x):
        comp += (total - y) + x
    else:
        comp += (x - y) + total
    return y, comp


def chunked_sum(f, T: int) -> float:
    """sum_t of ``f(rows)`` over row chunks (``f`` maps a slice to that chunk's terms): no length-T temporary."""
    return float(sum(float(np.sum(f(slice(a, min(T, a + ROW_CHUNK))))) for a in range(0, T, ROW_CHUNK)))


def chunked_var(f, T: int, ddof: int = 0) -> float:
    """Variance of the length-T series ``f(rows)``, two-pass over row chunks."""
    mean = chunked_sum(f, T) / T
    return chunked_sum(lambda r: (f(r) - mean) ** 2, T) / (T - ddof)


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    return x
