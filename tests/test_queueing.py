"""Queueing validation: the discrete-event engine as an M/M/c queue against Erlang C.

Poisson arrivals (rate lambda), exponential service (rate mu = 1), c slots, FIFO, one model served by an
``always`` policy (the trace carries a second, never-used model because a zoo needs two). The mean waiting time in queue is W_q = C(c, a) / (c mu - lambda), a = lambda / mu,
with Erlang C probability of waiting C(c, a). We estimate W_q by batch means (the first batch dropped as
warm-up, the rest as approximately i.i.d. batch averages) and require Erlang C to lie inside the two-sided
99 % Student-t confidence interval, at utilisation rho = 0.5, 0.8, 0.95. Fixed seeds: deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from sim import config as cfg
from sim.world.engine import simulate
from sim.policies.registry import build_router
from sim.trace.format import from_frame

SLOTS = 2
MU = 1.0


def erlang_c_wait(c: int, lam: float, mu: float) -> float:
    a = lam / mu
    rho = a / c
    assert rho < 1
    terms = sum(a**k / math.factorial(k) for k in range(c))
    last = a**c / math.factorial(c) / (1.0 - rho)
    p_wait = last / (terms + last)
    return p_wait / (c * mu - lam)


def mmc_trace(n: int, lam: float, seed: int):
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / lam, n))
    df = pl.DataFrame({
        "request_id": np.arange(n, dtype=np.int64),
        "arrival_s": arrival,
        "group": ["g"] * n,
        "sat__m": np.ones(n),
        "energy_j__m": np.ones(n),
        "latency_s__m": rng.exponential(1.0 / MU, n),
        # a second model, never routed to: the trace format needs a zoo of at least two
        "sat__unused": np.zeros(n), "energy_j__unused": np.ones(n), "latency_s__unused": np.ones(n),
    })
    return from_frame(df, ["m", "unused"])


def waits(trace) -> np.ndarray:
    policy = cfg.Always(kind="always", model="m")
    router = build_router(policy, trace, 0.5, 0, np.ones(trace.n))
    o = trace.outcomes
    n = trace.n
    dec, _ = simulate(router, trace.arrival_s, o.latency_s, o.cost, o.sat, [float(SLOTS), 1.0], np.zeros(n, bool),
                      np.zeros(n), record_occupancy=False)
    return dec["start_s"] - trace.arrival_s


@pytest.mark.parametrize("rho,n,seed", [(0.5, 100_000, 1), (0.8, 200_000, 2), (0.95, 800_000, 3)])
def test_mmc_mean_wait_matches_erlang_c(rho, n, seed):
    lam = rho * SLOTS * MU
    w = waits(mmc_trace(n, lam, seed))
    assert np.all(w >= -1e-12)
    batches = 21
    means = w[: (n // batches) * batches].reshape(batches, -1).mean(axis=1)[1:]  # drop the warm-up batch
    k = means.size
    centre = means.mean()
    half = stats.t.ppf(0.995, k - 1) * means.std(ddof=1) / math.sqrt(k)
    expected = erlang_c_wait(SLOTS, lam, MU)
    print(f"rho={rho}: W_q = {centre:.4f} +- {half:.4f} (99 %), Erlang C {expected:.4f}")
    assert abs(centre - expected) <= half, (rho, centre, half, expected)
