"""``kind: messplus_auto``: MESS+ with no scale-dependent parameter (docs/theory.md, "A MESS+ without a scale").

It runs the MESS+ kernels (sim/policies/router.py) with two switches:

- ``scale_free``: the cost term is V * c-hat[m] / mean(c-hat), so V is in units of the zoo's own mean cost (joules,
  kilojoules or USD per token alike), and a model's cost is never used before it has been observed: the router
  explores (every model, as MESS+ does) while any model's cost estimate has no observation. The reference's
  initial estimate of 1 for every model is below every joule cost and 10^4 times above a USD one.
- ``v_growth``: V_t = V0 * (t + 1) ** v_growth, so that the O(1/V) cost gap shrinks while Q_t / t, O(V_t / t),
  still goes to 0; the default 1/3 makes Q_T / T fall faster than the SLA tolerance (docs/theory.md §13).
"""

from __future__ import annotations

from sim import config as cfg
from sim.policies.router import EST_MEAN, MESSPLUS, Router


def build_messplus_auto(policy: cfg.MessPlusAuto, context) -> Router:
    from sim.policies.registry import _predictor, exploration, policy_alpha

    trace = context.trace
    return Router(kind=MESSPLUS, n_models=trace.m, n_requests=trace.n,
                  predictor=_predictor(policy, trace, context.seed), u_explore=context.u_explore,
                  V=policy.V0, alpha=policy_alpha(policy, context.alpha), c=policy.c, cost_estimate_rule=EST_MEAN,
                  explore_needs_feedback=policy.explore_needs_feedback,
                  learn_from_exploit=policy.learn_from_exploit, scale_free=True, v_growth=policy.v_growth,
                  **exploration(policy))
