"""Where a causal policy's cost goes: ``policies.<name>.cost_decomposition`` in summary.json.

Per request, in the objective's unit, four parts that add up to the policy's ``cost_per_request``
(docs/theory.md, "Where the cost goes"):

- ``optimum``: the offline optimum's cost at the policy's alpha (the LP that knows p_true, or the realised labels
  when the trace has no p_true, and every cost): no causal policy can do better while meeting alpha in expectation;
- ``exploration``: what explorations cost beyond serving one model (an exploration runs every model);
- ``routing``: what the exploit decisions cost, judged by the policy's own cost estimates at decision time, beyond
  the informed LP: the cheapest routing of the same requests with the same predictions and cost estimates whose
  predicted satisfaction meets alpha (sim/policies/ledger.py). 0 for a policy that makes no per-request
  prediction (a plan, a fixed mixture, a threshold or Python router: the ledger is MESS+'s);
- ``information``: the rest, down to the optimum: what better predictions (and cost estimates) would buy. It is
  negative when the policy spends less than the optimum, which it can only do by missing alpha.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sim.evaluation.optimum import offline_optimum
from sim.policies.ledger import N_EXPLOIT, POLICY_COST, informed_lp


@nb.njit(cache=True)
def exploration_extra(cost, model, explored):
    """Sum over explorations of (every model's cost - the served model's cost)."""
    total = 0.0
    for t in range(cost.shape[0]):
        if explored[t]:
            for k in range(cost.shape[1]):
                if k != model[t]:
                    total += cost[t, k]
    return total


def optimum_cost(trace, alpha: float, cache: dict) -> float:
    """The offline optimum's mean cost at alpha (cached per alpha for one run)."""
    key = ("decomposition_optimum", float(alpha))
    if key not in cache:
        o = trace.outcomes
        probs = o.p_true if o.p_true is not None else o.sat
        cache[key] = float(offline_optimum(probs, o.cost, alpha).cost)
    return cache[key]


def cost_decomposition(trace, cols: dict, alpha: float, ledger: np.ndarray | None, cache: dict) -> dict:
    """The four parts (per request) and what they rest on; ``cols`` are the evaluator's columns."""
    n = trace.n
    cost = float(cols["cost"].sum()) / n
    exploration = exploration_extra(trace.outcomes.cost, cols["model_index"], cols["explored"]) / n
    optimum = optimum_cost(trace, alpha, cache)
    routing, feasible = 0.0, None
    if ledger is not None and ledger.size and ledger[N_EXPLOIT] > 0:
        lp_total, feasible = informed_lp(ledger, alpha)
        routing = (float(ledger[POLICY_COST]) - lp_total) / n
    information = cost - optimum - routing - exploration
    return {"optimum": optimum, "information": information, "routing": routing, "exploration": exploration,
            "informed_lp_feasible": feasible}
