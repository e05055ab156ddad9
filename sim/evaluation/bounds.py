"""Guarantees as code: the checkable MESS+ bounds, for one run.

The derivations are in ``docs/theory.md``; this module implements them in the same notation:
T requests, M models in cost order (index M-1 the largest), ``P[t, m]`` the probability that model m
satisfies request t, ``E[t, m]`` its cost, ``alpha`` the SLA target, ``V`` the Lyapunov trade-off,
``c`` the exploration constant (``p_t = min(1, c / max(t, 1) ** 0.25)``, t 0-based),
``B = max(alpha, 1 - alpha) ** 2 / 2`` and the virtual queue ``Q_{t+1} = max(0, Q_t + alpha - s_t)``.

Public API
----------
- :func:`queue_recursion`, :func:`queue_identity` -- the SLA queue recomputed from realised satisfaction by the
  literal recursion (``sim.evaluation.metrics.queue_series`` is the drift-free evaluator the results use).
- :func:`exploration_probabilities` -- ``p_t`` for t = 0..T-1.
- :func:`bounds` -- every checkable bound for one run, with measured value, margin and tolerance.
- :func:`guarantees_block` -- a JSON-serialisable ``guarantees`` block for ``summary.json``.

The offline optimum and the hindsight oracle are in :mod:`sim.evaluation.optimum`.

Per-request loops (the queue recursion, kept literal so that it rounds as a sequential simulator does; the
LP's best responses) are numba kernels; every other per-request sum runs over row chunks of ``ROW_CHUNK``, so
that a 10^7-request run never makes a (T, M) or length-T temporary (docs/performance.md).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numba as nb
import numpy as np

from sim.evaluation.numerics import ROW_CHUNK, check_matrices, chunked_sum, chunked_var, jsonable
from sim.evaluation.optimum import OfflineOptimum, hindsight_oracle, offline_optimum, routing_sums, values_at

_F64_EPS = float(np.finfo(np.float64).eps)

#: Absolute tolerance on time averages for the queue identity (1e-9 * T on the sums). The recursion's
#: own rounding is at most about T * 2**-52 * max_t Q_t on the sums, far below this for T * max Q < 1e15.
IDENTITY_TOL = 1e-9
#: Confidence of every statistical tolerance (two-sided normal z = 3.2905; one-sided tail 1e-3 for Azuma).
DEFAULT_CONFIDENCE = 0.999
#: Predictors whose s-hat is E[s | request] exactly.
EXACT_PREDICTORS = ("oracle",)
#: Predictors that are epsilon-accurate with a known error series (the bounds then carry the eps term).
EPS_PREDICTORS = ("noisy_oracle",)


def lyapunov_B(alpha: float) -> float:
    """``B = max(alpha, 1 - alpha)**2 / 2`` = max over s in [0, 1] of (alpha - s)**2 / 2."""
    return max(float(alpha), 1.0 - float(alpha)) ** 2 / 2.0


def queue_recursion(s, alpha: float) -> np.ndarray:
    """``[Q_0, ..., Q_T]`` with ``Q_0 = 0`` and ``Q_{t+1} = max(0, Q_t + alpha - s_t)``, in the order of ``s``.

    The literal recursion (evaluated as ``(Q_t + alpha) - s_t``), so it rounds as a sequential simulator does.
    """
    return _queue_kernel(np.asarray(s, dtype=np.float64).ravel(), float(alpha))


@nb.njit(cache=True)
def _queue_kernel(s, a):
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


def queue_identity(s, alpha: float) -> float:
    """Recompute the final backlog ``Q_T`` from realised satisfaction ``s`` (length T).

    Identity: ``Q_T >= sum_t (alpha - s_t)``, i.e. ``mean(s) >= alpha - Q_T / T``. It holds exactly in exact
    arithmetic; in floating point we check it with absolute tolerance ``IDENTITY_TOL`` on the time average
    (``1e-9 * T`` on the sums).
    """
    return float(queue_recursion(s, alpha)[-1])


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
        P, E = check_matrices(P, E)
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
    Qs = queue_recursion(s, alpha)
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
    dE = chunked_sum(lambda r: Eb[r].max(axis=1) - Eb[r].min(axis=1), T) / T
    eps_sum = chunked_sum(lambda r: Qt[r] * eps[r], T) if eps is not None else 0.0
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
        expl_cost = chunked_sum(lambda r: p[r] * (Eb[r].sum(axis=1) - Eb[r].min(axis=1)), T) / T
        expl_queue = chunked_sum(lambda r: p[r] * Qt[r] * gap_top(r), T) / (V * T)
        eps_term = 2.0 * eps_sum / (V * T)
        value = opt.cost + B / V + expl_cost + expl_queue + eps_term + 2.0 * dlt_mean
        # Statistical tolerance: standard errors of (i) the realised per-request cost, (ii) the comparator's
        # queue term sum_t (Q_t/V - lam)(alpha - P*_t)/T, (iii) the outcome noise sum_t (Q_t/V)(P_{m_t} - s_t)/T.
        sd_cost = math.sqrt(chunked_var(lambda r: cost[r], T, ddof=1)) / math.sqrt(T) if T > 1 else 0.0
        var_pstar = chunked_var(lambda r: opt.per_request(P, r), T)
        sd_cmp = math.sqrt(chunked_sum(lambda r: (Qt[r] / V - lam) ** 2, T) * var_pstar) / T
        if choice is not None:
            ch = np.asarray(choice).ravel()

            def outcome_var(r):
                pm = values_at(P[r], ch[r])
                return pm * (1.0 - pm)
        else:
            def outcome_var(r):
                return 0.25
        sd_out = math.sqrt(chunked_sum(lambda r: (Qt[r] / V) ** 2 * outcome_var(r), T)) / T
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
            extras += chunked_sum(lambda r: (Qt[r] * gap_top(r))[explored[r]], T)
        else:
            q_ok = False
            q_why.append("exploration happened and P is unknown (cannot bound the exploration queue term)")
    elif explored is None and c > 0:
        if gap_top is not None:
            extras += chunked_sum(lambda r: p[r] * Qt[r] * gap_top(r), T)  # expected version
        else:
            q_ok = False
            q_why.append("exploration flags and P unknown")
    if opt is not None and not opt.feasible:
        q_ok = False
        q_why.append("alpha is infeasible (mean max_m P < alpha): no policy keeps Q_T / T -> 0")
    base = T * (B + V * dE) + extras
    value_q = math.sqrt(2.0 * base) / T
    u = math.sqrt(2.0 * math.log(1.0 / delta) * chunked_sum(lambda r: Qt[r] ** 2, T))
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
        var = chunked_sum(lambda r: p[r] * (1.0 - p[r]), T)
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
        S, _ = check_matrices(S, E)
        sat_h, cost_h = routing_sums(S, E, hindsight_oracle(S, E))
        block["hindsight_cost"] = cost_h / S.shape[0]
        block["hindsight_satisfaction"] = sat_h / S.shape[0]
        oh = solve(S, E, alpha)
        block["hindsight_lp_cost"] = oh.cost if oh.feasible else None
    block["bounds"] = bounds(**kwargs)
    return jsonable(block)
