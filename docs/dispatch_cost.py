"""Microseconds per call from Python into the DES kernel: one structref (what the engine passes), and named
tuples (docs/performance.md). The flattened-bundle call measured there was removed with issue 18.

Run from the repository root: ``PYTHONPATH=. python docs/dispatch_cost.py``.
"""

import time

import numba as nb
import numpy as np

from sim.policies.predictors import GROUP_BETA, make_predictor
from sim.policies.router import MESSPLUS, Router
from sim.world.engine import _deliver_and_decide_packed, _kernel_args

n, m = 200_000, 4
r = Router(kind=MESSPLUS, n_models=m, n_requests=n, predictor=make_predictor(GROUP_BETA, m, 1, n_requests=n),
           u_explore=np.ones(n), V=1.0, alpha=0.5)
pending, cost, sat = np.zeros(16, np.int64), np.ones((n, m)), np.ones((n, m))
outs = [np.zeros(n, np.int16), np.zeros(n, np.bool_), np.zeros(n), np.zeros(n), np.zeros(n)]
args = _kernel_args(pending, cost, sat, *outs, r.params, r.state, r.predictor)
_deliver_and_decide_packed(0, 0, args)
t0 = time.perf_counter()
for t in range(n):
    _deliver_and_decide_packed(t, 0, args)
print(f"_deliver_and_decide_packed, one structref: {(time.perf_counter() - t0) / n * 1e6:.1f} us a call")


@nb.njit
def takes_tuples(params, state, pred):
    return 0


takes_tuples(r.params, r.state, r.predictor)
t0 = time.perf_counter()
for t in range(n):
    takes_tuples(r.params, r.state, r.predictor)
print(f"an empty kernel taking the three named tuples: {(time.perf_counter() - t0) / n * 1e6:.1f} us a call")
