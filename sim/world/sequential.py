"""Sequential mode: the paper's setting. No clock, no contention, feedback immediately after each request.

One numba loop runs a whole policy: ``decide`` then ``complete`` then (with probability ``rate``)
``feedback`` for t = 0..T-1, with the same kernels the discrete-event engine calls.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sim.world.nrt import borrow
from sim.policies.predictors import lend_predictor
from sim.policies.router import Router, complete, decide_and_record, feedback, lend_state


@nb.njit(cache=True)
def _run(sat, cost, feedback_mask, params, state, pred, model_out, explored_out, p_out, qt_out, shat_out):
    # Every array outlives this call: drop reference counting once here, not at each kernel call (sim/world/nrt.py).
    sat, cost, feedback_mask = borrow(sat), borrow(cost), borrow(feedback_mask)
    model_out, explored_out, p_out = borrow(model_out), borrow(explored_out), borrow(p_out)
    qt_out, shat_out = borrow(qt_out), borrow(shat_out)
    state, pred = lend_state(state), lend_predictor(pred)
    n = sat.shape[0]
    for t in range(n):
        m, explored = decide_and_record(t, params, state, pred, model_out, explored_out, p_out, qt_out, shat_out)
        complete(t, m, explored, cost[t], sat[t], params, state, pred)
        if feedback_mask[t]:
            feedback(t, m, explored, sat[t], params, state, pred)


def run_sequential(router: Router, sat: np.ndarray, cost: np.ndarray, feedback_mask: np.ndarray) -> dict:
    """Route every request of the trace; returns the decision columns (outcomes are joined by the caller)."""
    n = sat.shape[0]
    out = {
        "model": np.zeros(n, np.int16), "explored": np.zeros(n, np.bool_), "p_explore": np.zeros(n),
        "q_tracked": np.zeros(n), "s_hat": np.zeros(n),
    }
    if getattr(router, "run_sequential", None) is not None:  # a Python router (sim/policies/plugin.py)
        router.run_sequential(sat, cost, feedback_mask, out)
        return out
    _run(sat, cost, feedback_mask, router.params, router.state, router.predictor, out["model"], out["explored"],
         out["p_explore"], out["q_tracked"], out["s_hat"])
    return out
