"""Where a causal policy's cost goes: ``policies.<name>.cost_decomposition`` in summary.json.

Per request, in the objective's unit, four parts that add up to the policy's ``cost_per_request``
(docs/theory.md, "Where the cost goes"):

- ``optimum``: the offline optimum's cost at the policy's alpha (the LP that knows p_true, or the realised labels
  when the trace has no p_true, and every cost): no causal policy can do better while meeting alpha in expectation;
- ``exploration``: what explorations cost beyond serving those requests as the policy serves its exploit requests
  (an exploration runs every model; the reference is the policy's mean cost per exploit request), so that
  ``cost_per_request - exploration`` is the mean cost per exploit request, which the other three parts split;
- ``routing``: per exploit request, what the exploit decisions cost, judged by the policy's own cost estimates at
  decision time, beyond the informed LP: the cheapest routing of the same requests with the same predictions and
  cost estimates whose predicted satisfaction meets alpha (sim/policies/ledger.py). 0 for a policy that makes no
  per-request prediction (a plan, a fixed mixture, a threshold or Python router: the ledger is MESS+'s);
- ``information``: the rest, down to the optimum: what better predictions (and cost estimates) would buy. It is
  negative when the policy spends less than the optimum, which it can only do by missing alpha.
"""

from __future__ import annotations

import numpy as np

from sim.evaluation.optimum import offline_optimum
from sim.policies.ledger import N_EXPLOIT, POLICY_COST, informed_lp


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
    cost, explored = cols["cost"], cols["explored"]  # an exploration's cost is every model's
    n_explore = int(explored.sum())
    exploit_total = float(np.sum(cost, where=~explored))
    exploit_mean = exploit_total / (n - n_explore) if n_explore < n else 0.0
    exploration = (float(np.sum(cost, where=explored)) - n_explore * exploit_mean) / n
    optimum = optimum_cost(trace, alpha, cache)
    routing, feasible = 0.0, None
    if ledger is not None and ledger.size and ledger[N_EXPLOIT] > 0:
        lp_total, feasible = informed_lp(ledger, alpha)
        routing = (float(ledger[POLICY_COST]) - lp_total) / ledger[N_EXPLOIT]
    information = float(cost.sum()) / n - optimum - routing - exploration
    return {"optimum": optimum, "information": information, "routing": float(routing), "exploration": exploration,
            "informed_lp_feasible": feasible}
