"""Sequential mode: the paper's setting. No clock, no contention, feedback immediately after each request.

One numba loop runs a whole policy: ``decide`` then ``complete`` then (with probability ``rate``)
``feedback`` for t = 0..T-1, with the same kernels the discrete-event engine calls.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sim.world.nrt import borrow
from sim.policies.router import Router, complete, decide_and_record, feedback


@nb.njit(cache=True)
def _run(sat, cost, feedback_mask, ip, fp, q_tracked, ehat, ecount, plan, u_explore, shat, avail, mask_buf,
         model_out, explored_out, p_out, qt_out, shat_out,
         kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b, indptr, index, value, groups, fdim):
    # Every array outlives this call: drop reference counting once here, not at each kernel call (sim/world/nrt.py).
    sat, cost, feedback_mask, ip = borrow(sat), borrow(cost), borrow(feedback_mask), borrow(ip)
    fp, q_tracked, ehat, ecount = borrow(fp), borrow(q_tracked), borrow(ehat), borrow(ecount)
    plan, u_explore, shat, avail = borrow(plan), borrow(u_explore), borrow(shat), borrow(avail)
    mask_buf, model_out, explored_out, p_out = borrow(mask_buf), borrow(model_out), borrow(explored_out), borrow(p_out)
    qt_out, shat_out, hyper, matrix = borrow(qt_out), borrow(shat_out), borrow(hyper), borrow(matrix)
    beta_a, beta_b, weights, bias = borrow(beta_a), borrow(beta_b), borrow(weights), borrow(bias)
    vel_w, vel_b, indptr, index = borrow(vel_w), borrow(vel_b), borrow(indptr), borrow(index)
    value, groups = borrow(value), borrow(groups)
    n = sat.shape[0]
    for t in range(n):
        m, explored = decide_and_record(t, ip, fp, q_tracked, ehat, plan, u_explore, shat, avail,
                                        model_out, explored_out, p_out, qt_out, shat_out,
                                        kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b,
                                        indptr, index, value, groups, fdim)
        complete(t, m, explored, cost[t], sat[t], ip, ehat, ecount, mask_buf,
                 kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b, indptr, index, value, groups, fdim)
        if feedback_mask[t]:
            feedback(t, m, explored, sat[t], ip, fp, q_tracked, mask_buf,
                     kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b, indptr, index, value,
                     groups, fdim)


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
    _run(sat, cost, feedback_mask, router.ip, router.fp, router.q_tracked, router.ehat, router.ecount, router.plan,
         router.u_explore, router.shat, router.avail, router.mask, out["model"], out["explored"], out["p_explore"],
         out["q_tracked"], out["s_hat"], *router.pargs)
    return out
