"""The per-policy ``guarantees`` block of summary.json: map a run onto :func:`sim.evaluation.bounds.guarantees_block`.

What each argument of the theory is, for a run of this simulator:

- ``E`` is the trace's objective matrix (``outcomes.cost``); ``P`` is ``p_true`` when the trace has it (synthetic
  traces do), else None (then OPT and the cost bound are not available); ``S`` is the realised ``sat`` matrix
  (hindsight oracle).
- ``cost``, ``sat`` are the evaluator's per-request columns (exploration pays every model).
- ``q_before`` is the router's own ``q_tracked``; it must equal the true Q only when feedback is immediate and
  dense in sequential mode, so it is cross-checked only then (``Q_T`` from the evaluator otherwise).
- Assumptions: ``feedback_rate`` and the mean delay come from the scenario (the delay counts only in
  discrete-event mode; sequential mode delivers feedback at once); ``sequential`` is the engine mode;
  ``predictor`` is the MESS+ predictor kind.
- ``iid``: a synthetic trace with ``mix: shuffled`` is i.i.d. by construction (a uniformly random order of
  i.i.d. draws); ``mix: sequential`` (groups in blocks) is not, and neither, conservatively, is a trace read
  from a file, whose order we cannot vouch for. Non-i.i.d. makes the drift-plus-penalty bounds "not applicable".
- ``exact_costs``: MESS+ decides with its running per-model cost estimates (``cost_estimate``); they equal the theory's
  ``E-bar`` only with ``cost_estimate: oracle`` (fixed at the trace's per-model means). Otherwise the
  bounds that need exact costs are "not applicable" (we do not record the estimates' series).
- ``pred_error`` (eps_t = max_m |s-hat_{t,m} - P_{t,m}|): 0 for the ``oracle`` predictor (s-hat = p_true);
  for ``noisy_oracle`` it is computed from the predictor's full (T, M) matrix, so it is exact, not an
  approximation from the chosen model's s-hat. Learned predictors have no error series (bounds n.a.).

Only ``messplus`` policies get the full bounds; every other policy gets the deterministic queue checks
(queue identity, consistency, drift), which need no assumption. Cost: a few O(T * M * log(1/tol)) LP solves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim import config as cfg
from sim.evaluation.bounds import bounds, guarantees_block

DETERMINISTIC = ("queue_identity", "queue_consistency", "drift_per_step")
#: The per-request columns of :func:`sim.evaluation.metrics.evaluate` that :func:`policy_guarantees` reads.
GUARANTEE_COLUMNS = ("cost", "sat", "explored", "p_explore", "model_index", "q_after", "arrival_s", "end_s")


def trace_is_iid(scenario: cfg.Scenario) -> bool:
    synth = scenario.trace.synth
    return synth is not None and synth.mix == "shuffled"


def feedback_delay(scenario: cfg.Scenario) -> float:
    """Mean feedback delay in seconds (0 in sequential mode, where feedback follows each request at once)."""
    d = scenario.feedback.delay
    if scenario.engine.mode == "sequential" or d.dist == "none":
        return 0.0
    return float(d.mean_s)


def policy_guarantees(scenario: cfg.Scenario, policy, trace, router, decisions: dict, cols: dict,
                      alpha: float, lp_cache: dict | None = None) -> dict[str, Any]:
    """The ``guarantees`` block for one policy's run (see the module docstring)."""
    o = trace.outcomes
    sequential = scenario.engine.mode == "sequential"
    rate = float(scenario.feedback.rate)
    delay = feedback_delay(scenario)
    dense_now = sequential and rate >= 1.0
    cross = {"q_before": decisions["q_tracked"]} if dense_now else {"Q_T": float(cols["q_after"][-1])}
    family = cfg.POLICIES.get(policy.kind).guarantees
    if family == "multi":  # one set per virtual queue (sim/evaluation/multi_bounds.py)
        from sim.evaluation.multi_bounds import multi_guarantees

        return multi_guarantees(scenario, policy, trace, router, cols, alpha)
    if family != "messplus":
        entries = bounds(alpha=alpha, V=1.0, c=0.0, E=o.cost, cost=cols["cost"], sat=cols["sat"], **cross)
        entries = [e for e in entries if e["bound"] in DETERMINISTIC]
        if family == "messplus_auto":
            entries.append(auto_backlog(scenario, policy, o.cost, cols, alpha))
            return {"scope": "queue checks and the growing-V backlog bound (docs/theory.md §13)",
                    "bounds": _clean(entries)}
        return {"scope": "queue checks only (not a MESS+ policy)", "bounds": _clean(entries)}
    kind = policy.predictor.kind
    pred_error = None
    if kind == "oracle":
        pred_error = 0.0
    elif kind == "noisy_oracle" and o.p_true is not None:
        pred_error = np.abs(router.predictor.matrix - o.p_true).max(axis=1)
    block = guarantees_block(
        S=o.sat, cache=lp_cache, alpha=alpha, V=float(policy.V), c=float(policy.c), E=o.cost, P=o.p_true,
        cost=cols["cost"], sat=cols["sat"], explored=cols["explored"], p_explore=cols["p_explore"],
        choice=cols["model_index"], pred_error=pred_error,
        decision_costs=o.cost.mean(axis=0), exact_costs=policy.cost_estimate == "oracle",
        feedback_rate=rate, feedback_delay=delay, sequential=sequential, iid=trace_is_iid(scenario),
        predictor=kind, **cross,
    )
    block["scope"] = "MESS+ bounds (docs/theory.md)"
    return block


def auto_backlog(scenario: cfg.Scenario, policy, E, cols: dict, alpha: float) -> dict:
    """``backlog_Q_T_over_T_auto``: Q_T / T <= sqrt(2 (B + V_T dE / E-bar) / T) for messplus_auto (docs/theory.md
    §13), V_T = V0 T^g in units of the mean cost. An expectation bound; applicable under §3's assumptions
    (i.i.d. requests, exact predictions, immediate dense feedback in sequential mode)."""
    from sim.evaluation.bounds import _entry

    T = len(cols["sat"])
    B = 0.5 * max(alpha, 1.0 - alpha) ** 2
    mean_cost = E.mean(axis=0)
    spread = float((mean_cost.max() - mean_cost.min()) / mean_cost.mean()) if mean_cost.mean() > 0 else 0.0
    V_T = float(policy.V0) * T ** float(policy.v_growth)
    value = float(np.sqrt(2.0 * (B + V_T * spread) / T))
    why = []
    if not trace_is_iid(scenario):
        why.append("requests not i.i.d.")
    if policy.predictor.kind != "oracle":
        why.append(f"predictor {policy.predictor.kind} is not exact (A2)")
    if scenario.engine.mode != "sequential" or scenario.feedback.rate < 1.0:
        why.append("feedback not immediate and dense (A4)")
    return _entry("backlog_Q_T_over_T_auto", value, float(cols["q_after"][-1]) / T, 0.0, not why,
                  "; ".join(why) or "i.i.d. requests, exact predictions, immediate dense feedback",
                  {"B": B, "V_T": V_T, "delta_E_over_mean": spread})


def _clean(entries):
    from sim.evaluation.numerics import jsonable

    return jsonable(entries)


def running_violation(q_after: np.ndarray) -> np.ndarray:
    """Q_t / t after each of the first t requests, t = 1..T."""
    q = np.asarray(q_after, dtype=np.float64)
    return q / np.arange(1, q.size + 1)


def sla_met_from(q_after: np.ndarray, threshold: float = 0.01) -> int | None:
    """The first t (number of requests served, 1..T) from which Q_t / t stays <= threshold; None if never."""
    v = running_violation(q_after)
    bad = np.flatnonzero(v > threshold)
    if bad.size == 0:
        return 1
    t = int(bad[-1]) + 2  # the request after the last violation, 1-based count
    return t if t <= v.size else None
