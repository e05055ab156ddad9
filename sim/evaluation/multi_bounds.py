"""The ``guarantees`` block of ``messplus_multi`` (sim/policies/multi.py): one set of bounds per virtual queue.

Derivations: docs/theory.md, "Several constraints". Every queue X <- max(0, X + a_t) with a_t its increment
(satisfaction: alpha - s_t; latency: miss_t - max_miss; budget: cost_t / budget - 1) obeys the queue identity

    (1/T) sum_t a_t <= X_T / T                                   (``queue_identity_<kind>``, deterministic)

computed here on the realised outcomes. For a budget-only policy (``constraints: [budget]``, penalty -V s) two
more bounds hold, and apply under the assumptions they need:

- ``budget_backlog``: B_t <= V / delta + max(0, c_max / b - 1) at every step (deterministic), where delta is the
  smallest gap (ehat_m - ehat_0) / b between the cheapest model's cost estimate and another's. Needs fixed cost
  estimates (``energy_estimate: oracle``), no exploration (c = 0), feedback at once (sequential), and every
  realised cost of the cheapest model within the budget;
- ``budget_optimality``: mean p(chosen) >= OPT_b - C / V - (eps + dev) / (V T), OPT_b the budget-constrained
  optimum (the LP max mean p s.t. mean ehat <= b, on this trace), C = max_t a_t^2 / 2,
  eps = r sqrt(ln(1/delta_conf) sum_t B_t^2 / 2) the Hoeffding-Azuma term of the comparison's zero-mean sum,
  r = (max ehat - min ehat) / b, and dev = max |c - ehat| / b * sum_t B_t (realised against estimated costs).
  Needs, in addition, an oracle predictor (p = p_true) and an i.i.d. trace.
"""

from __future__ import annotations

import math

import numpy as np

from sim import config as cfg
from sim.evaluation.bounds import DEFAULT_CONFIDENCE, _entry
from sim.evaluation.constraints import latency_misses, scenario_constraints
from sim.evaluation.numerics import jsonable
from sim.policies.multi import BUD, queue_kinds


def final_queue(increments: np.ndarray) -> float:
    """X_T of X <- max(0, X + a_t), X_0 = 0."""
    x = 0.0
    for a in increments.tolist():
        x = x + a
        if x < 0.0:
            x = 0.0
    return x


def budget_optimum(p: np.ndarray, cost: np.ndarray, budget: float) -> float:
    """max mean_t p[t, m_t] over fractional routings with mean cost <= budget, ``cost`` per model (M,).

    By LP duality it is min over lambda >= 0 of g(lambda) = mean_t max_m (p[t, m] - lambda cost[m]) + lambda budget,
    a convex piecewise-linear function, minimised here by ternary search (to 1e-9 relative in lambda)."""
    cost = np.asarray(cost, np.float64)

    def g(lam):
        return float((p - lam * cost).max(axis=1).mean() + lam * budget)

    if cost.min() > budget:
        return math.nan  # even the cheapest model is over the budget: infeasible
    gaps = np.diff(np.sort(cost))
    gaps = gaps[gaps > 0]
    lo, hi = 0.0, (2.0 / gaps.min()) if gaps.size else 0.0
    for _ in range(200):
        a, b = lo + (hi - lo) / 3.0, hi - (hi - lo) / 3.0
        if g(a) <= g(b):
            hi = b
        else:
            lo = a
    return min(g(lo), g(0.0))


def multi_guarantees(scenario: cfg.Scenario, policy, trace, router, cols: dict, alpha: float) -> dict:
    constraints = scenario_constraints(scenario, alpha)
    kinds = queue_kinds(policy, constraints)
    by_kind = {c.kind: c for c in constraints}
    n = trace.n
    sat = np.asarray(cols["sat"], np.float64)
    cost = np.asarray(cols["cost"], np.float64)
    sequential = scenario.engine.mode == "sequential"
    entries = []
    for kind in kinds:
        c = by_kind[kind]
        if kind == "satisfaction":
            inc = alpha - sat
        elif kind == "latency":
            inc = latency_misses(cols["arrival_s"], cols["end_s"], c.deadline_s) - c.max_miss
        else:
            inc = cost / c.max_cost_per_request - 1.0
        x_final = final_queue(inc)
        entries.append(_entry(f"queue_identity_{kind}", x_final / n, float(inc.mean()), 1e-9, True,
                              f"mean increment of the {kind} queue <= X_T/T (deterministic)"))
    if kinds == ["budget"]:
        entries += _budget_only(policy, trace, router, cols, by_kind["budget"].max_cost_per_request, sequential,
                                _iid(scenario))
    return jsonable({"scope": "multi-constraint MESS+ bounds (docs/theory.md, 'Several constraints')",
                     "queues": kinds, "bounds": entries})


def _iid(scenario) -> bool:
    synth = scenario.trace.synth
    return synth is not None and synth.mix == "shuffled"


def _budget_only(policy, trace, router, cols, budget: float, sequential: bool, iid: bool) -> list[dict]:
    o = trace.outcomes
    ehat = o.cost.mean(axis=0)  # the oracle estimates (checked below: the bounds apply only with them)
    V = float(policy.V)
    exact = policy.energy_estimate == "oracle"
    no_explore = float(policy.c) == 0.0
    cheapest_within = bool(o.cost[:, 0].max() <= budget)
    gaps = (ehat[1:] - ehat[0]) / budget
    delta = float(gaps.min()) if gaps.size and gaps.min() > 0 else math.nan
    c_max = float(o.cost.max())
    backlog = V / delta + max(0.0, c_max / budget - 1.0)
    queue = router.queue_log[:, BUD]
    ok = exact and no_explore and sequential and cheapest_within and math.isfinite(delta)
    why = ("needs energy_estimate: oracle, c = 0, the sequential engine, every cost of the cheapest model within the "
           "budget and distinct cost estimates")
    entries = [_entry("budget_backlog", backlog, float(queue.max()) if queue.size else 0.0, 1e-9, ok,
                      "B_t <= V/delta + max(0, c_max/b - 1)" if ok else why)]
    oracle = policy.predictor.kind == "oracle" and o.p_true is not None
    applies = ok and oracle and iid
    value, measured, detail = math.nan, math.nan, None
    if o.p_true is not None:
        opt = budget_optimum(o.p_true, ehat, budget)
        inc = np.concatenate([o.cost.min(axis=1), o.cost.max(axis=1)]) / budget - 1.0
        C = float(np.max(inc * inc)) / 2.0
        spread = float(ehat.max() - ehat.min()) / budget  # range of the comparison's per-step cost term
        azuma = spread * math.sqrt(math.log(1.0 / (1.0 - DEFAULT_CONFIDENCE)) * float(np.sum(queue * queue)) / 2.0)
        deviation = float(np.abs(o.cost - ehat).max()) / budget * float(queue.sum())  # realised vs estimated cost
        value = opt - C / V - (azuma + deviation) / (V * trace.n)
        measured = float(o.p_true[np.arange(trace.n), cols["model_index"]].mean())
        detail = {"opt_budget": opt, "C_over_V": C / V, "azuma_over_VT": azuma / (V * trace.n),
                  "cost_deviation_over_VT": deviation / (V * trace.n)}
    # a lower bound: holds when measured >= value, so it is stored with the signs flipped (margin = measured - value)
    e = _entry("budget_optimality", -value, -measured, 1e-9, applies,
               "mean p(chosen) >= OPT_b - C/V - eps/(VT) (stored negated: value = -(bound), measured = -(mean p))"
               if applies else why + ", an oracle predictor and an i.i.d. trace", detail)
    return entries + [e]
