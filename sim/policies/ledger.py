"""What a router believed at each decision, kept as O(1) running sums (the ``routing`` part of the cost
decomposition, docs/theory.md "Where the cost goes").

At every exploit decision MESS+ holds a satisfaction prediction s-hat[m] and a cost estimate c-hat[m] for every
model. The *informed LP* is the cheapest routing of those same requests, judged with those same numbers, whose
predicted satisfaction reaches alpha on average:

    min sum_t c-hat_t[x_t]   s.t.   sum_t s-hat_t[x_t] >= alpha * (number of exploit decisions)

Storing the (T, M) predictions is 1.9 GB at T = 10^7, M = 12, so the ledger keeps instead, per request, the
lower convex hull of its (s-hat, c-hat) points: the cheapest model (its cost and prediction go into two running
sums) and each hull edge (its gains in s-hat and c-hat), binned by the edge's slope dc/ds on a log grid of
``BINS_PER_DECADE`` bins per decade over [1e-30, 1e30]. The LP takes edges in increasing slope until the target is
met (the exact LP solution, :func:`sim.evaluation.optimum.offline_optimum`, does the same edge by edge); binning
only blurs the order of edges whose slopes lie in the same bin, 1.2 % wide, so the LP value from the ledger is
within that relative error of the marginal bin's cost (tests/test_decomposition.py checks it against the exact LP).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

BINS_PER_DECADE = 200
LOG10_MIN_SLOPE = -30.0
N_BINS = 60 * BINS_PER_DECADE
# ledger layout: the policy's estimated cost, the cheapest-model cost and prediction, the exploit count,
# the max-prediction sum (feasibility), then (ds, dc) per slope bin
POLICY_COST, BASE_COST, BASE_SAT, N_EXPLOIT, MAX_SAT, HEAD = 0, 1, 2, 3, 4, 5
SIZE = HEAD + 2 * N_BINS


def new_ledger() -> np.ndarray:
    return np.zeros(SIZE)


@nb.njit(cache=True, inline="always")
def slope_bin(slope):
    if not slope > 0.0:
        return 0
    k = int(math.floor((math.log10(slope) - LOG10_MIN_SLOPE) * BINS_PER_DECADE))
    return min(max(k, 0), N_BINS - 1)


@nb.njit(cache=True)
def record_decision(shat, cost_est, chosen, ledger):
    """Add one exploit decision (predictions, cost estimates, the model chosen) to the ledger."""
    n_models = shat.shape[0]
    ledger[POLICY_COST] += cost_est[chosen]
    ledger[N_EXPLOIT] += 1.0
    # the cheapest model (ties: the higher prediction) starts the lower hull
    cur = 0
    for m in range(1, n_models):
        if cost_est[m] < cost_est[cur] or (cost_est[m] == cost_est[cur] and shat[m] > shat[cur]):
            cur = m
    ledger[BASE_COST] += cost_est[cur]
    ledger[BASE_SAT] += shat[cur]
    while True:  # walk the hull: the next point with a higher prediction at the least slope (ties: higher s)
        nxt = -1
        best = 0.0
        for m in range(n_models):
            ds = shat[m] - shat[cur]
            if ds > 0.0:
                r = (cost_est[m] - cost_est[cur]) / ds
                if nxt < 0 or r < best or (r == best and shat[m] > shat[nxt]):
                    nxt, best = m, r
        if nxt < 0:
            break
        k = HEAD + 2 * slope_bin(best)
        ledger[k] += shat[nxt] - shat[cur]
        ledger[k + 1] += cost_est[nxt] - cost_est[cur]
        cur = nxt
    ledger[MAX_SAT] += shat[cur]


def informed_lp(ledger: np.ndarray, alpha: float) -> tuple[float, bool]:
    """(the informed LP's total estimated cost, feasible): edges taken in increasing slope until the predicted
    satisfaction reaches alpha per exploit decision; the last bin taken may be fractional."""
    need = alpha * ledger[N_EXPLOIT] - ledger[BASE_SAT]
    total = ledger[BASE_COST]
    if need <= 0.0:
        return float(total), True
    ds_bins, dc_bins = ledger[HEAD::2], ledger[HEAD + 1::2]
    for ds, dc in zip(ds_bins[ds_bins > 0], dc_bins[ds_bins > 0]):
        if ds >= need:
            return float(total + dc * need / ds), True
        total += dc
        need -= ds
    return float(total), False
