"""The offline optimum (the one-constraint LP, solved exactly with one Lagrange multiplier) and the hindsight oracle.

Notation as in ``docs/theory.md``: T requests, M models in cost order, ``P[t, m]`` the probability that model m
satisfies request t, ``E[t, m]`` its cost, ``alpha`` the SLA target.

- :func:`offline_optimum` -- the LP solved exactly; :func:`lp_value_linprog` -- the same LP through scipy (tests).
- :func:`hindsight_oracle` -- the cheapest model among those that realised the best satisfaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from sim.evaluation.numerics import CHOICE, check_matrices, neumaier_add

#: Slack on feasibility of the LP: alpha counts as reachable when mean max_m P >= alpha - FEAS_TOL.
FEAS_TOL = 1e-12

_F64_EPS = float(np.finfo(np.float64).eps)


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
        out = values_at(A[lo:hi], self.choice[lo:hi]).astype(np.float64)
        if lo <= self.split < hi:
            t = self.split
            out[t - lo] = (1.0 - self.split_weight) * A[t, self.choice[t]] + self.split_weight * A[t, self.split_model]
        return out


@nb.njit(cache=True)
def values_at(A, choice):
    """A[t, choice[t]] for every row t."""
    out = np.empty(A.shape[0], A.dtype)
    for t in range(A.shape[0]):
        out[t] = A[t, choice[t]]
    return out


@nb.njit(cache=True)
def routing_sums(P, E, choice):
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
    sp, se = routing_sums(P, E, choice)
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
    P, E = check_matrices(P, E)
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
        return OfflineOptimum(0.0, x0, -1, -1, 0.0, routing_sums(P, E, x0)[1] / T, s0 / T, True)

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

    P, E = check_matrices(P, E)
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


def hindsight_oracle(S, E) -> np.ndarray:
    """Per request, the cheapest model (by ``E[t, m]``) among those with the maximal realised ``S[t, m]``.

    Ties in cost go to the lower index. With 0/1 labels this is "the cheapest model that actually
    satisfied the request" (or the cheapest model overall when none did). Non-causal: it reads the labels.
    """
    S, E = check_matrices(S, E)
    x = np.empty(S.shape[0], CHOICE)
    _max_p_routing(S, E, x)
    return x
