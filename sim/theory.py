"""Guarantees as code: the offline optimum, the hindsight oracle, and the checkable MESS+ bounds.

The derivations are in ``docs/theory.md``; this module implements them in the same notation:
T requests, M models in cost order (index M-1 the largest), ``P[t, m]`` the probability that model m
satisfies request t, ``E[t, m]`` its cost, ``alpha`` the SLA target, ``V`` the Lyapunov trade-off,
``c`` the exploration constant (``p_t = min(1, c / max(t, 1) ** 0.25)``, t 0-based),
``B = max(alpha, 1 - alpha) ** 2 / 2`` and the virtual queue ``Q_{t+1} = max(0, Q_t + alpha - s_t)``.

Public API
----------
- :func:`offline_optimum` -- the one-constraint LP solved exactly with one Lagrange multiplier.
- :func:`lp_value_linprog` -- the same LP through ``scipy.optimize.linprog`` (HiGHS), for tests.
- :func:`hindsight_oracle` -- the cheapest model among those that realised the best satisfaction.
- :func:`queue_series`, :func:`queue_identity` -- the SLA queue recomputed from realised satisfaction.
- :func:`exploration_probabilities` -- ``p_t`` for t = 0..T-1.
- :func:`bounds` -- every checkable bound for one run, with measured value, margin and tolerance.
- :func:`guarantees_block` -- a JSON-serialisable ``guarantees`` block for ``summary.json``.

Per-request loops (the queue recursion, kept literal so that it rounds as a sequential simulator does; the
LP's best responses) are numba kernels; every other per-request sum runs over row chunks of ``ROW_CHUNK``, so
that a 10^7-request run never makes a (T, M) or length-T temporary (docs/performance.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numba as nb
import numpy as np

__all__ = [
    "OfflineOptimum",
    "offline_optimum",
    "lp_value_linprog",
    "hindsight_oracle",
    "queue_series",
    "queue_identity",
    "exploration_probabilities",
    "lyapunov_B",
    "bounds",
    "guarantees_block",
    "IDENTITY_TOL",
    "DEFAULT_CONFIDENCE",
    "EXACT_PREDICTORS",
    "EPS_PREDICTORS",
]

#: Absolute tolerance on time averages for the queue identity (1e-9 * T on the sums). The recursion's
#: own rounding is at most about T * 2**-52 * max_t Q_t on the sums, far below this for T * max Q < 1e15.
IDENTITY_TOL = 1e-9
#: Confidence of every statistical tolerance (two-sided normal z = 3.2905; one-sided tail 1e-3 for Azuma).
DEFAULT_CONFIDENCE = 0.999
#: Predictors whose s-hat is E[s | request] exactly.
EXACT_PREDICTORS = ("oracle",)
#: Predictors that are epsilon-accurate with a known error series (the bounds then carry the eps term).
EPS_PREDICTORS = ("noisy_oracle",)
#: Slack on feasibility of the LP: alpha counts as reachable when mean max_m P >= alpha - FEAS_TOL.
FEAS_TOL = 1e-12

_F64_EPS = float(np.finfo(np.float64).eps)
#: Rows per chunk where a (T, M) or length-T temporary would otherwise be made at once.
ROW_CHUNK = 1 << 18
#: dtype of a routing (model index per request): 2 bytes a request.
CHOICE = np.int16


# --------------------------------------------------------------------------------------------------
# Offline optimum (one-multiplier LP)
# --------------------------------------------------------------------------------------------------


@dataclass
class OfflineOptimum:
    """Solution of the offline LP with known probabilities.

    ``choice[t]`` is the model taken by request t, except that request ``split`` (if not -1) takes
    ``split_model`` with probability ``split_weight`` and ``choice[split]`` otherwise. ``cost`` and
    ``satisfaction`` are the mean cost and mean P of that randomized routing (cost is the LP optimum).
    ``lam`` is the Lagrange multiplier (0 when the cheapest routing meets alpha, ``inf`` when infeasible).
    When alpha is out of reach, the routing is the max-satisfaction one (cheapest among the max-P
    models of each request) and ``feasible`` is False.
    """

    lam: float
    choice: np.ndarray
    split: int
    split_model: int
    split_weight: float
    cost: float
    satisfaction: float
    feasible: bool

    def per_request(self, A: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """Expected value of matrix ``A`` (T x M) per request under this randomized routing (for ``rows``)."""
        A = np.asarray(A)
        lo, hi, _ = rows.indices(len(self.choice))
        out = _at(A[lo:hi], self.choice[lo:hi]).astype(np.float64)
        if lo <= self.split < hi:
            t = self.split
            out[t - lo] = (1.0 - self.split_weight) * A[t, self.choice[t]] + self.split_weight * A[t, self.split_model]
        return out


def _check_matrices(P, E) -> tuple[np.ndarray, np.ndarray]:
    # 0/1 labels stored as uint8 (sim/trace.py) are read as they are: a float64 copy would be 8 bytes a label
    P = P if isinstance(P, np.ndarray) and P.dtype == np.uint8 else np.asarray(P, dtype=np.float64)
    E = np.asarray(E, dtype=np.float64)
    if P.ndim != 2 or P.shape != E.shape:
        raise ValueError(f"P and E must be T x M matrices of the same shape, got {P.shape} and {E.shape}")
    if P.shape[0] == 0 or P.shape[1] == 0:
        raise ValueError("P and E must have at least one request and one model")
    if P.shape[1] > np.iinfo(CHOICE).max:
        raise ValueError(f"at most {np.iinfo(CHOICE).max} models, got {P.shape[1]}")
    if not (_all_finite(P) and _all_finite(E)):
        raise ValueError("P and E must be finite")
    return P, E


def _all_finite(A) -> bool:
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


@nb.njit(cache=True)
def _at(A, choice):
    """A[t, choice[t]] for every row t."""
    out = np.empty(A.shape[0], A.dtype)
    for t in range(A.shape[0]):
        out[t] = A[t, choice[t]]
    return out


@nb.njit(cache=True)
def _routing_sums(P, E, choice):
    """(sum_t P[t, choice[t]], sum_t E[t, choice[t]]), compensated."""
    sp = cp = se = ce = 0.0
    for t in range(P.shape[0]):
        sp, cp = neumaier_add(sp, cp, P[t, choice[t]])
        se, ce = neumaier_add(se, ce, E[t, choice[t]])
    return sp + cp, se + ce


@nb.njit(cache=True)
def _best_response(P, E, lam, x):
    """x[t] = argmin_m E[t, m] - lam * P[t, m] (the first minimum, as numpy's argmin); returns sum_t P[t, x[t]]."""
    T, M = P.shape
    total = comp = 0.0
    for t in range(T):
        best = 0
        v_best = E[t, 0] - lam * P[t, 0]
        for m in range(1, M):
            v = E[t, m] - lam * P[t, m]
            if v < v_best:
                best, v_best = m, v
        x[t] = best
        total, comp = neumaier_add(total, comp, P[t, best])
    return total + comp


@nb.njit(cache=True)
def _max_p_routing(P, E, x):
    """x[t] = the cheapest model (then the lowest index) among those with maximal P[t, :]. Returns (sum_t max P,
    the largest multiplier at which some request still prefers a model with less P: sup dE / dP)."""
    T, M = P.shape
    total = comp = 0.0
    lam_top = 0.0
    for t in range(T):
        best = 0
        for m in range(1, M):
            if P[t, m] > P[t, best] or (P[t, m] == P[t, best] and E[t, m] < E[t, best]):
                best = m
        x[t] = best
        total, comp = neumaier_add(total, comp, P[t, best])
        for m in range(M):
            dp = P[t, best] - P[t, m]
            if dp > 0.0:
                r = (E[t, best] - E[t, m]) / dp
                if r > lam_top:
                    lam_top = r
    return total + comp, lam_top


def _routing_totals(P, E, choice, split, split_model, w):
    sp, se = _routing_sums(P, E, choice)
    if split >= 0:
        b = choice[split]
        sp += w * (float(P[split, split_model]) - float(P[split, b]))
        se += w * (E[split, split_model] - E[split, b])
    return float(sp), float(se)


def offline_optimum(P, E, alpha: float, tol: float = 1e-12, max_iter: int = 200) -> OfflineOptimum:
    """Solve ``min (1/T) sum x E  s.t. (1/T) sum x P >= alpha, sum_m x[t, m] = 1, x >= 0`` exactly.

    Method: for a multiplier lam >= 0 every request takes ``argmin_m E[t, m] - lam * P[t, m]`` (ties to the
    lower index); the mean P of that routing, S(lam), is non-decreasing in lam. Bisection on lam
    (relative width ``tol``, O(T * M * log(1/tol))) brackets the multiplier lam* between ``lo``
    (S < alpha) and ``hi`` (S >= alpha). Requests whose choice differs between the two ends are moved from
    their ``lo`` choice to their ``hi`` choice along their lower convex hull of (P, E) points, one hull
    segment at a time, in increasing order of the segment's slope dE/dP and, for equal slopes (tied,
    group-level probabilities), in request order, until the constraint is met; the last segment taken
    may be fractional (``split``). This is the exact LP optimum: every request then sits on a minimiser of
    the Lagrangian at lam = the slope of that last segment, and the constraint is tight.

    If even the max-P routing misses alpha (beyond ``FEAS_TOL``), returns that routing, ``feasible=False``,
    ``lam=inf``. If the cheapest routing (argmin E, ties to the lower index) meets alpha, ``lam=0``.
    """
    P, E = _check_matrices(P, E)
    alpha = float(alpha)
    T, M = P.shape

    # Max-satisfaction routing: max P, then min E, then the lower index. Above lam_top every request takes it.
    x_top = np.empty(T, CHOICE)
    s_top, lam_top = _max_p_routing(P, E, x_top)
    need = alpha * T
    if s_top < need - FEAS_TOL * T:
        sp, se = _routing_totals(P, E, x_top, -1, -1, 0.0)
        return OfflineOptimum(math.inf, x_top, -1, -1, 0.0, se / T, sp / T, False)
    need = min(need, s_top)

    # Cheapest routing (lam = 0).
    x0 = np.empty(T, CHOICE)
    s0 = _best_response(P, E, 0.0, x0)
    if s0 >= need:
        return OfflineOptimum(0.0, x0, -1, -1, 0.0, _routing_sums(P, E, x0)[1] / T, s0 / T, True)

    lo, hi = 0.0, (2.0 * lam_top if lam_top > 0 else 1.0)
    x_lo, s_lo, x_hi = x0, s0, x_top
    x = np.empty(T, CHOICE)
    for _ in range(max_iter):
        if hi - lo <= tol * hi:
            break
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:
            break
        s = _best_response(P, E, mid, x)
        if s >= need:
            hi, x_hi, x = mid, x, x_hi  # the replaced end's routing is not needed again: reuse its buffer
        else:
            lo, x_lo, s_lo, x = mid, x, s, x_lo

    # Walk the requests that change inside the bracket along their lower hulls.
    d = np.flatnonzero(x_lo != x_hi)
    Pd, Ed = P[d].astype(np.float64), E[d]
    nd = d.size
    cur = x_lo[d].copy()
    target = Pd[np.arange(nd), x_hi[d]]
    active = Pd[np.arange(nd), cur] < target
    seg_row, seg_step, seg_from, seg_to, seg_ratio, seg_dp = [], [], [], [], [], []
    for step in range(M):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        pc = Pd[idx, cur[idx]]
        ec = Ed[idx, cur[idx]]
        dP = Pd[idx] - pc[:, None]
        dE = Ed[idx] - ec[:, None]
        up = dP > 0
        r = np.where(up, dE / np.where(up, dP, 1.0), np.inf)
        rmin = r.min(axis=1)
        cand = up & (r == rmin[:, None])
        nxt = np.argmax(np.where(cand, Pd[idx], -np.inf), axis=1)
        seg_row.append(d[idx])
        seg_step.append(np.full(idx.size, step))
        seg_from.append(cur[idx].copy())
        seg_to.append(nxt)
        seg_ratio.append(rmin)
        seg_dp.append(Pd[idx, nxt] - pc)
        cur[idx] = nxt
        active[idx] = Pd[idx, nxt] < target[idx]

    choice = x_lo.copy()
    split, split_model, w, lam = -1, -1, 0.0, lo
    if seg_row:
        row = np.concatenate(seg_row)
        stp = np.concatenate(seg_step)
        frm = np.concatenate(seg_from)
        to = np.concatenate(seg_to)
        rat = np.concatenate(seg_ratio)
        sdp = np.concatenate(seg_dp)
        order = np.lexsort((stp, row, rat))  # slope, then request order, then hull step
        cum = np.cumsum(sdp[order])
        deficit = need - s_lo
        k = int(np.searchsorted(cum, deficit, side="left"))
        k = min(k, order.size - 1)
        prev = float(cum[k - 1]) if k > 0 else 0.0
        ks = order[k]
        w = min(1.0, max(0.0, (deficit - prev) / sdp[ks]))
        applied = order[: k + 1] if w >= 1.0 else order[:k]
        if applied.size:
            a = applied[np.lexsort((stp[applied], row[applied]))]
            last = np.ones(a.size, dtype=bool)
            last[:-1] = row[a][1:] != row[a][:-1]
            choice[row[a][last]] = to[a][last]
        if 0.0 < w < 1.0:
            split, split_model = int(row[ks]), int(to[ks])
            assert choice[split] == frm[ks]
        else:
            w = 0.0
        lam = max(0.0, float(rat[ks]))
    sp, se = _routing_totals(P, E, choice, split, split_model, w)
    return OfflineOptimum(float(lam), choice, split, split_model, float(w), se / T, sp / T, True)


def lp_value_linprog(P, E, alpha: float) -> float:
    """The same LP solved by ``scipy.optimize.linprog`` (HiGHS); mean cost, or NaN if infeasible."""
    from scipy import sparse
    from scipy.optimize import linprog

    P, E = _check_matrices(P, E)
    T, M = P.shape
    c = E.ravel() / T
    A_ub = -P.reshape(1, -1)
    b_ub = np.array([-float(alpha) * T])
    A_eq = sparse.kron(sparse.identity(T, format="csr"), np.ones((1, M)), format="csr")
    res = linprog(
        c,
        A_ub=A_ub,
        b_ub=b_ub,
        A_eq=A_eq,
        b_eq=np.ones(T),
        bounds=(0, None),
        method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    if res.status != 0:
        return math.nan
    return float(c @ res.x)


# --------------------------------------------------------------------------------------------------
# Hindsight oracle, queue, exploration
# --------------------------------------------------------------------------------------------------


def hindsight_oracle(S, E) -> np.ndarray:
    """Per request, the cheapest model (by ``E[t, m]``) among those with the maximal realised ``S[t, m]``.

    Ties in cost go to the lower index. With 0/1 labels this is "the cheapest model that actually
    satisfied the request" (or the cheapest model overall when none did). Non-causal: it reads the labels.
    """
    S, E = _check_matrices(S, E)
    x = np.empty(S.shape[0], CHOICE)
    _max_p_routing(S, E, x)
    return x


def lyapunov_B(alpha: float) -> float:
    """``B = max(alpha, 1 - alpha)**2 / 2`` = max over s in [0, 1] of (alpha - s)**2 / 2."""
    return max(float(alpha), 1.0 - float(alpha)) ** 2 / 2.0


def queue_series(s, alpha: float) -> np.ndarray:
    """``[Q_0, ..., Q_T]`` with ``Q_0 = 0`` and ``Q_{t+1} = max(0, Q_t + alpha - s_t)``, in the order of ``s``.

    The literal recursion (evaluated as ``(Q_t + alpha) - s_t``), so it rounds as a sequential simulator does.
    """
    return _queue_recursion(np.asarray(s, dtype=np.float64).ravel(), float(alpha))


@nb.njit(cache=True)
def _queue_recursion(s, a):
    out = np.empty(s.size + 1)
    out[0] = q = 0.0
    for i in range(s.size):
        q = q + a - s[i]
        if q < 0.0:
            q = 0.0
        out[i + 1] = q
    return out


@nb.njit(cache=True)
def _worst_drift(Qs, s, alpha):
    """(argmax_t, max_t) of L(Q_{t+1}) - L(Q_t) - Q_t (alpha - s_t), L = Q^2 / 2 (the first argmax)."""
    worst, value = 0, -np.inf
    for t in range(s.size):
        q0, q1 = Qs[t], Qs[t + 1]
        x = (q1 - q0) * (q1 + q0) / 2.0 - q0 * (alpha - s[t])
        if x > value:
            worst, value = t, x
    return worst, value


def _chunked_sum(f, T: int) -> float:
    """sum_t of ``f(rows)`` over row chunks (``f`` maps a slice to that chunk's terms): no length-T temporary."""
    return float(sum(float(np.sum(f(slice(a, min(T, a + ROW_CHUNK))))) for a in range(0, T, ROW_CHUNK)))


def _chunked_var(f, T: int, ddof: int = 0) -> float:
    """Variance of the length-T series ``f(rows)``, two-pass over row chunks."""
    mean = _chunked_sum(f, T) / T
    return _chunked_sum(lambda r: (f(r) - mean) ** 2, T) / (T - ddof)


def queue_identity(s, alpha: float) -> float:
    """Recompute the final backlog ``Q_T`` from realised satisfaction ``s`` (length T).

    Identity: ``Q_T >= sum_t (alpha - s_t)``, i.e. ``mean(s) >= alpha - Q_T / T``. It holds exactly in exact
    arithmetic; in floating point we check it with absolute tolerance ``IDENTITY_TOL`` on the time average
    (``1e-9 * T`` on the sums).
    """
    return float(queue_series(s, alpha)[-1])


def exploration_probabilities(c: float, T: int) -> np.ndarray:
    """``p_t = min(1, c / max(t, 1) ** 0.25)`` for t = 0..T-1 (t = 0 counts as 1)."""
    t = np.maximum(np.arange(int(T), dtype=np.float64), 1.0)
    return np.minimum(1.0, float(c) / t**0.25)


# --------------------------------------------------------------------------------------------------
# Bounds
# --------------------------------------------------------------------------------------------------


def _entry(name, value, measured, tolerance, applicable, reason, detail=None) -> dict[str, Any]:
    value = float(value) if value is not None else math.nan
    measured = float(measured) if measured is not None else math.nan
    margin = value - measured
    holds = None
    if applicable:
        holds = bool(np.isfinite(margin) and margin >= -tolerance)
    out = {
        "bound": name,
        "value": value,
        "measured": measured,
        "margin": margin,
        "holds": holds,
        "applicable": bool(applicable),
        "reason": reason,
        "tolerance": float(tolerance),
    }
    if detail is not None:
        out["detail"] = detail
    return out


def _series(x, T, name):
    if x is None:
        return None
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        return np.full(T, float(a))
    a = a.ravel()
    if a.size != T:
        raise ValueError(f"{name} has length {a.size}, expected T = {T}")
    return a


def bounds(
    *,
    alpha: float,
    V: float,
    c: float,
    E,
    cost,
    sat,
    T: int | None = None,
    P=None,
    explored=None,
    p_explore=None,
    Q_T: float | None = None,
    q_before=None,
    choice=None,
    pred_error=None,
    cost_error=None,
    decision_costs=None,
    exact_costs: bool = True,
    feedback_rate: float = 1.0,
    feedback_delay: float = 0.0,
    sequential: bool = True,
    iid: bool = True,
    predictor: str = "oracle",
    confidence: float = DEFAULT_CONFIDENCE,
    opt: OfflineOptimum | None = None,
) -> list[dict[str, Any]]:
    """Every checkable bound of ``docs/theory.md`` for one run of MESS+.

    Parameters (arrays have length T unless stated)
    ----------
    alpha, V, c: the run's SLA target, trade-off and exploration constant.
    E: T x M cost matrix of the trace; ``P``: T x M true satisfaction probabilities, or None.
    cost, sat: realised per-request cost (exploration included) and satisfaction s_t of the run.
    explored: 0/1 exploration flags; ``p_explore``: the p_t used (default: from ``c``).
    Q_T, q_before: the run's reported final SLA backlog and per-request Q_t (optional; cross-checked).
    choice: model served per request (optional; tightens the outcome-noise tolerance).
    pred_error: eps_t = max_m |s-hat_{t,m} - P[t,m]| per request (scalar allowed), if known.
    cost_error: delta_t = max_m |E-hat_{t,m} - E-bar_m| per request (scalar allowed), if known.
    decision_costs: the costs the decision rule trades off, (M,) or (T, M); default the column means of
        E (MESS+ decides with per-model estimates; "exact E-hat" means E-hat = these).
    exact_costs: whether E-hat equals ``decision_costs`` (an oracle cost estimate); if False and no
        ``cost_error`` is given, the drift-plus-penalty bounds are not applicable.
    feedback_rate, feedback_delay, sequential, iid, predictor: the run's assumptions. The drift-plus-
        penalty bounds need rate 1, no delay, sequential mode, i.i.d. requests and an ``oracle``
        predictor (or ``noisy_oracle`` with ``pred_error``).
    confidence: of the statistical tolerances (z = two-sided normal quantile, 3.29 at 0.999).
    opt: a precomputed :func:`offline_optimum` on (P, decision costs), to avoid solving twice.

    Returns a list of ``{"bound", "value", "measured", "margin", "holds", "applicable", "reason",
    "tolerance", "detail"}``; ``holds`` is ``margin >= -tolerance`` for applicable bounds and None otherwise.
    """
    s = np.asarray(sat, dtype=np.float64).ravel()
    n = s.size
    if T is not None and int(T) != n:
        raise ValueError(f"T = {T} but sat has length {n}")
    T = n
    if T == 0:
        raise ValueError("bounds need at least one request")
    alpha = float(alpha)
    V = float(V)
    if not V > 0:
        raise ValueError(f"V must be > 0, got {V}")
    E = np.asarray(E, dtype=np.float64)
    if E.ndim != 2 or E.shape[0] != T:
        raise ValueError(f"E must be T x M with T = {T}, got {E.shape}")
    M = E.shape[1]
    if P is not None:
        P, E = _check_matrices(P, E)
    cost = _series(cost, T, "cost")
    if explored is not None:
        explored = np.asarray(explored).ravel()
        explored = explored if explored.dtype == np.bool_ else _series(explored, T, "explored").astype(bool)
        if explored.size != T:
            raise ValueError(f"explored has length {explored.size}, expected T = {T}")
    p = _series(p_explore, T, "p_explore") if p_explore is not None else exploration_probabilities(c, T)
    eps = _series(pred_error, T, "pred_error")
    dlt = _series(cost_error, T, "cost_error")
    if decision_costs is None:
        Eb = np.broadcast_to(E.mean(axis=0), E.shape)
    else:
        Eb = np.broadcast_to(np.asarray(decision_costs, dtype=np.float64), E.shape)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    delta = 1.0 - confidence
    B = lyapunov_B(alpha)
    out: list[dict[str, Any]] = []

    # Queue, recomputed from realised satisfaction.
    Qs = queue_series(s, alpha)
    Qt = Qs[:-1]  # Q_t before request t
    QT = float(Qs[-1])
    viol = alpha - float(s.mean())
    out.append(
        _entry(
            "queue_identity",
            QT / T,
            viol,
            IDENTITY_TOL,
            True,
            "deterministic: Q_T >= sum_t (alpha - s_t); tolerance 1e-9 on the time average",
            {"Q_T": QT, "T": T, "mean_satisfaction": float(s.mean())},
        )
    )
    if Q_T is not None or q_before is not None:
        diffs = [abs(float(Q_T) - QT)] if Q_T is not None else []
        if q_before is not None:
            qb = _series(q_before, T, "q_before")
            diffs.append(max(float(np.max(np.abs(qb[a:a + ROW_CHUNK] - Qt[a:a + ROW_CHUNK])))
                             for a in range(0, T, ROW_CHUNK)))
        tol_q = 1e-9 * (1.0 + float(Qs.max()))
        out.append(
            _entry(
                "queue_consistency",
                0.0,
                max(diffs),
                tol_q,
                True,
                "the run's reported Q equals the recursion recomputed from its realised satisfaction "
                "(request order)",
                {"Q_T_reported": None if Q_T is None else float(Q_T), "Q_T_recomputed": QT},
            )
        )

    # Drift per step: L(Q_{t+1}) - L(Q_t) - Q_t (alpha - s_t) <= B, with L = Q^2 / 2.
    worst, worst_excess = _worst_drift(Qs, s, alpha)
    tol_d = 4.0 * _F64_EPS * (1.0 + float(Qs.max())) ** 2
    out.append(
        _entry(
            "drift_per_step",
            B,
            float(worst_excess),
            tol_d,
            True,
            "deterministic for s_t in [0, 1]: max_t [L(Q_{t+1}) - L(Q_t) - Q_t(alpha - s_t)] <= B; "
            "tolerance 4 * eps_mach * (1 + max Q)^2 (rounding of the squares)",
            {"B": B, "worst_t": worst, "s_range": [float(s.min()), float(s.max())]},
        )
    )

    # Assumptions of the drift-plus-penalty bounds.
    why: list[str] = []
    if feedback_rate < 1.0:
        why.append(f"sparse feedback (rate {feedback_rate:g}): decisions use Q_tracked, not Q")
    if feedback_delay > 0.0:
        why.append(f"delayed feedback (mean delay {feedback_delay:g}): decisions use a stale Q_tracked")
    if not sequential:
        why.append("discrete-event mode: feedback arrives only after completion (queueing)")
    if not iid:
        why.append("requests are not i.i.d. (non-stationary trace)")
    if predictor in EXACT_PREDICTORS:
        pass
    elif predictor in EPS_PREDICTORS:
        if eps is None:
            why.append(f"predictor {predictor!r} without a prediction-error series")
    else:
        why.append(f"learned predictor {predictor!r}: s-hat is not E[s | request]")
    if not exact_costs and dlt is None:
        why.append("cost estimates E-hat are not exact and no cost-error series was given")
    dpp_ok = not why

    # per-request E_max - E_min (decision basis), averaged
    dE = _chunked_sum(lambda r: Eb[r].max(axis=1) - Eb[r].min(axis=1), T) / T
    eps_sum = _chunked_sum(lambda r: Qt[r] * eps[r], T) if eps is not None else 0.0
    dlt_mean = float(dlt.mean()) if dlt is not None else 0.0
    # Exploration serves model M-1; if it is not the most accurate one, the queue term loses this much.
    if P is not None:
        def gap_top(r):
            return np.maximum(0.0, P[r].max(axis=1).astype(np.float64) - P[r, M - 1])
    else:
        gap_top = None

    # Cost <= OPT + B/V (+ exploration + prediction/cost-error terms).
    if P is None:
        out.append(
            _entry("cost_opt_B_over_V", math.nan, float(cost.mean()), 0.0, False,
                   "no per-request probabilities P: OPT is unknown")
        )
    else:
        if opt is None:
            opt = offline_optimum(P, Eb, alpha)
        lam = opt.lam if np.isfinite(opt.lam) else 0.0
        expl_cost = _chunked_sum(lambda r: p[r] * (Eb[r].sum(axis=1) - Eb[r].min(axis=1)), T) / T
        expl_queue = _chunked_sum(lambda r: p[r] * Qt[r] * gap_top(r), T) / (V * T)
        eps_term = 2.0 * eps_sum / (V * T)
        value = opt.cost + B / V + expl_cost + expl_queue + eps_term + 2.0 * dlt_mean
        # Statistical tolerance: standard errors of (i) the realised per-request cost, (ii) the comparator's
        # queue term sum_t (Q_t/V - lam)(alpha - P*_t)/T, (iii) the outcome noise sum_t (Q_t/V)(P_{m_t} - s_t)/T.
        sd_cost = math.sqrt(_chunked_var(lambda r: cost[r], T, ddof=1)) / math.sqrt(T) if T > 1 else 0.0
        var_pstar = _chunked_var(lambda r: opt.per_request(P, r), T)
        sd_cmp = math.sqrt(_chunked_sum(lambda r: (Qt[r] / V - lam) ** 2, T) * var_pstar) / T
        if choice is not None:
            ch = np.asarray(choice).ravel()

            def outcome_var(r):
                pm = _at(P[r], ch[r])
                return pm * (1.0 - pm)
        else:
            def outcome_var(r):
                return 0.25
        sd_out = math.sqrt(_chunked_sum(lambda r: (Qt[r] / V) ** 2 * outcome_var(r), T)) / T
        tol_c = z * (sd_cost + sd_cmp + sd_out)
        reason = "; ".join(why) if why else (
            "i.i.d. requests, immediate dense feedback, sequential mode, "
            + ("oracle predictor" if predictor in EXACT_PREDICTORS else f"{predictor} with eps_t series")
            + ("" if dlt is not None else ", exact per-model cost estimates")
            + f"; tolerance z = {z:.3f} times the sum of three standard errors (cost, comparator, outcomes)"
        )
        out.append(
            _entry(
                "cost_opt_B_over_V",
                value,
                float(cost.mean()),
                tol_c,
                opt.feasible and dpp_ok,
                reason if opt.feasible else "alpha is infeasible: no OPT",
                {
                    "opt_cost": opt.cost,
                    "opt_lambda": opt.lam if np.isfinite(opt.lam) else None,
                    "B_over_V": B / V,
                    "exploration_cost": expl_cost,
                    "exploration_queue": expl_queue,
                    "prediction_error": eps_term,
                    "cost_error": 2.0 * dlt_mean,
                    "z": z,
                    "se_cost": sd_cost,
                    "se_comparator": sd_cmp,
                    "se_outcomes": sd_out,
                },
            )
        )

    # Backlog: Q_T / T <= sqrt(2 (B + V dE) / T) (+ extra terms), pathwise up to an Azuma term.
    extras = 2.0 * eps_sum + 2.0 * V * float(dlt.sum() if dlt is not None else 0.0)
    q_ok = dpp_ok
    q_why = list(why)
    if explored is not None and explored.any():
        if gap_top is not None:
            extras += _chunked_sum(lambda r: (Qt[r] * gap_top(r))[explored[r]], T)
        else:
            q_ok = False
            q_why.append("exploration happened and P is unknown (cannot bound the exploration queue term)")
    elif explored is None and c > 0:
        if gap_top is not None:
            extras += _chunked_sum(lambda r: p[r] * Qt[r] * gap_top(r), T)  # expected version
        else:
            q_ok = False
            q_why.append("exploration flags and P unknown")
    if opt is not None and not opt.feasible:
        q_ok = False
        q_why.append("alpha is infeasible (mean max_m P < alpha): no policy keeps Q_T / T -> 0")
    base = T * (B + V * dE) + extras
    value_q = math.sqrt(2.0 * base) / T
    u = math.sqrt(2.0 * math.log(1.0 / delta) * _chunked_sum(lambda r: Qt[r] ** 2, T))
    tol_qb = math.sqrt(2.0 * (base + u)) / T - value_q
    out.append(
        _entry(
            "backlog_Q_T_over_T",
            value_q,
            QT / T,
            tol_qb,
            q_ok,
            "; ".join(q_why) if q_why else (
                f"i.i.d. requests, immediate dense feedback; Azuma tolerance at one-sided {delta:g} "
                "on the martingale sum_t Q_t (centred outcome + comparator noise)"
            ),
            {"B": B, "V": V, "delta_E": dE, "extra_terms": extras, "azuma_u": u},
        )
    )

    # Exploration count in a band around sum p_t (Poisson-binomial).
    if explored is None:
        out.append(_entry("exploration_count", math.nan, math.nan, 0.0, False, "no exploration flags"))
    else:
        mu = float(p.sum())
        var = _chunked_sum(lambda r: p[r] * (1.0 - p[r]), T)
        cnt = int(explored.sum())
        if var == 0.0:
            half = 0.5
            method = "deterministic (every p_t is 0 or 1): the count must equal sum p_t"
        elif var >= 9.0:
            half = z * math.sqrt(var) + 0.5
            method = f"normal approximation, z = {z:.3f}, continuity correction 0.5"
        else:
            L = math.log(2.0 / delta)
            half = L / 3.0 + math.sqrt((L / 3.0) ** 2 + 2.0 * var * L)
            method = f"Bernstein inequality at two-sided {delta:g} (variance {var:.3g} < 9)"
        out.append(
            _entry(
                "exploration_count",
                half,
                abs(cnt - mu),
                0.0,
                True,
                "X_t ~ Bernoulli(p_t) independent; |count - sum p_t| within the band; " + method,
                {"count": cnt, "expected": mu, "sd": math.sqrt(var), "lower": mu - half, "upper": mu + half,
                 "approx_4_3_c_T34": 4.0 / 3.0 * float(c) * T**0.75},
            )
        )
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def guarantees_block(*, S=None, cache: dict | None = None, **kwargs) -> dict[str, Any]:
    """The ``guarantees`` block of ``summary.json`` for one policy.

    Takes the keyword arguments of :func:`bounds` plus ``S`` (T x M realised satisfaction of every model,
    for the hindsight oracle). Returns ``{"opt_cost", "opt_lambda", "opt_satisfaction", "opt_feasible",
    "opt_cost_decision_basis", "hindsight_cost", "hindsight_satisfaction", "hindsight_lp_cost",
    "confidence", "bounds"}``. ``opt_*`` is the LP with the trace's per-request costs E (the best any
    policy that knows P could do); the cost bound uses the LP on the decision's costs (see :func:`bounds`).
    Non-finite numbers become null. ``cache`` (a dict the caller keeps for one run) reuses the LP solutions
    between policies that share the same P, E, S arrays and alpha.
    """
    memo = cache if cache is not None else {}

    def solve(A, B, a, key=None):
        key = (id(A), id(B), a) if key is None else key
        if key not in memo:  # the arrays are kept with the answer, so that their ids cannot be reused
            memo[key] = (A, B, offline_optimum(A, B, a))
        return memo[key][2]

    E = np.asarray(kwargs["E"], dtype=np.float64)
    alpha = float(kwargs["alpha"])
    P = kwargs.get("P")
    block: dict[str, Any] = {
        "opt_cost": None,
        "opt_lambda": None,
        "opt_satisfaction": None,
        "opt_feasible": None,
        "opt_cost_decision_basis": None,
        "hindsight_cost": None,
        "hindsight_satisfaction": None,
        "hindsight_lp_cost": None,
        "confidence": kwargs.get("confidence", DEFAULT_CONFIDENCE),
    }
    if P is not None:
        o = solve(P, E, alpha)
        block.update(opt_cost=o.cost, opt_lambda=o.lam, opt_satisfaction=o.satisfaction, opt_feasible=o.feasible)
        dc = kwargs.get("decision_costs")
        # per-model decision costs stay a broadcast (M,) row: no (T, M) copy
        Eb = np.broadcast_to(E.mean(axis=0) if dc is None else np.asarray(dc, dtype=np.float64), E.shape)
        key = (id(P), tuple(Eb[0]), alpha) if Eb.strides[0] == 0 else None
        ob = o if dc is not None and np.array_equal(Eb, E) else solve(P, Eb, alpha, key=key)
        block["opt_cost_decision_basis"] = ob.cost
        kwargs = dict(kwargs, opt=ob)
    if S is not None:
        S, _ = _check_matrices(S, E)
        sat_h, cost_h = _routing_sums(S, E, hindsight_oracle(S, E))
        block["hindsight_cost"] = cost_h / S.shape[0]
        block["hindsight_satisfaction"] = sat_h / S.shape[0]
        oh = solve(S, E, alpha)
        block["hindsight_lp_cost"] = oh.cost if oh.feasible else None
    block["bounds"] = bounds(**kwargs)
    return _jsonable(block)
