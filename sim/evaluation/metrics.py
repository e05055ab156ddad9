"""From decisions to results: one tidy row per request, and the per-policy summary.

The evaluator is the only place that combines a policy's decisions with the trace's outcomes. It also
recomputes the true virtual queue Q (fed with every request's realised satisfaction, in request order),
which is what the SLA is judged by; the router only ever saw Q_tracked.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import polars as pl

from sim.evaluation.numerics import neumaier_add
from sim.trace.format import Trace


@nb.njit(cache=True)
def queue_series(s, alpha):
    """Q_{t+1} = max(0, Q_t + alpha - s_t): Q after each request (:func:`q_before` gives Q before each).

    Evaluated without accumulating rounding: since Q last hit 0, Q = k * alpha - (s summed over those k
    requests), the sum compensated (Neumaier). With 0/1 labels the sum is an exact integer, so Q is within
    one rounding of exact at any horizon, where the literal recursion drifts by up to one ulp per request.
    """
    n = s.shape[0]
    after = np.empty(n)
    q = 0.0
    k = 0  # requests since Q was last 0
    total = 0.0  # their satisfaction, summed with compensation
    comp = 0.0
    for t in range(n):
        total, comp = neumaier_add(total, comp, s[t])
        k += 1
        q = k * alpha - (total + comp)
        if q <= 0.0:
            q = 0.0
            k = 0
            total = 0.0
            comp = 0.0
        after[t] = q
    return after


@nb.njit(cache=True)
def _queue_series_counts(s, alpha):
    """:func:`queue_series` for integer (0/1, uint8) labels, bit for bit: their sum is an exact integer, so the
    compensation of Neumaier's sum stays 0.0 and the float total equals an integer count. Counting in an int64
    drops the compensated-sum chain from the loop (the evaluation's longest kernel on the fast path)."""
    n = s.shape[0]
    after = np.empty(n)
    k = 0  # requests since Q was last 0
    total = 0  # their satisfaction, counted
    for t in range(n):
        total += s[t]
        k += 1
        q = k * alpha - float(total)
        # Selects, not a branch: Q touches 0 at no predictable request when satisfaction hovers around alpha.
        positive = q > 0.0
        q = q if positive else 0.0
        k = k if positive else 0
        total = total if positive else 0
        after[t] = q
    return after


@nb.njit(cache=True)
def model_counts(model, explored, n_models):
    """Requests per model, all and exploit-only, in one pass (two np.bincount calls copied the int16 column)."""
    counts = np.zeros(n_models, np.int64)
    counts_exploit = np.zeros(n_models, np.int64)
    for t in range(model.shape[0]):
        m = model[t]
        counts[m] += 1
        if not explored[t]:
            counts_exploit[m] += 1
    return counts, counts_exploit


def served_queue(s: np.ndarray, alpha: float) -> np.ndarray:
    """:func:`queue_series` of the served satisfaction, by the integer kernel where the labels are integers."""
    if s.dtype.kind in "ub":
        return _queue_series_counts(s, alpha)
    return queue_series(s, alpha)


@nb.njit(cache=True)
def served_outcomes(model, explored, sat, cost, explore_all=True):
    """Realised satisfaction (in the labels' dtype: uint8 for 0/1 labels) and cost per request; an exploration
    pays for every model (``explore_all``), or for the one model it ran."""
    n, m = sat.shape
    s = np.empty(n, sat.dtype)
    c = np.empty(n)
    for t in range(n):
        s[t] = sat[t, model[t]]
        if explored[t] and explore_all:
            total = 0.0
            for k in range(m):
                total += cost[t, k]
            c[t] = total
        else:
            c[t] = cost[t, model[t]]
    return s, c


@nb.njit(cache=True)
def paper_convention_cost(c, explored):
    """Total cost as the reference code logs it: on an exploration step, the previous exploit step's cost (0
    before any)."""
    total = comp = last = 0.0
    for t in range(c.shape[0]):
        if not explored[t]:
            last = c[t]
        total, comp = neumaier_add(total, comp, last)
    return total + comp


@nb.njit(cache=True)
def mean_running_satisfaction(s):
    """The mean over t of the running mean of s up to t (no length-T temporaries)."""
    running = total = comp = 0.0
    for t in range(s.shape[0]):
        running += s[t]  # as numpy's cumsum: left to right
        total, comp = neumaier_add(total, comp, running / (t + 1))
    return (total + comp) / s.shape[0]


def percentiles(scratch: np.ndarray) -> dict:
    """p50, p95, p99 of the finite values of ``scratch``, which is reordered (pass a temporary)."""
    finite = np.isfinite(scratch)
    x = scratch if finite.all() else scratch[finite]
    if len(x) == 0:
        return {"p50": None, "p95": None, "p99": None}
    lo = x.min()
    if lo == x.max():  # every value the same (sequential mode: no waits): each percentile is that value exactly
        return {"p50": float(lo), "p95": float(lo), "p99": float(lo)}
    p = np.percentile(x, [50, 95, 99], overwrite_input=True)
    return {"p50": float(p[0]), "p95": float(p[1]), "p99": float(p[2])}


def evaluate(trace: Trace, decisions: dict, alpha: float) -> tuple[dict, dict]:
    """Returns (per-request columns, summary entry) for one policy's decisions.

    The columns hold what :func:`request_frame` cannot derive: ``q_before`` (``q_after`` shifted by one),
    ``wait_s`` (start - arrival) and absent energies are made there, a chunk at a time (10^7-request runs).
    """
    out = trace.outcomes
    model = decisions["model"]
    explored = decisions["explored"]
    explore_all = bool(decisions.get("explore_all", True))  # False: each exploration ran one model
    s, c = served_outcomes(model, explored, out.sat, out.cost, explore_all)
    if out.energy_j is out.cost:  # energy is the objective: the served energy is the served cost
        e = c
    else:
        e = served_outcomes(model, explored, out.sat, out.energy_j, explore_all)[1] if out.energy_j is not None else None
    q_after = served_queue(s, alpha)
    n = trace.n
    arrival = trace.arrival_s
    start, end, fb = decisions["start_s"], decisions["end_s"], decisions["feedback_s"]  # filled by both engines
    cols = {
        "request_id": trace.request_id, "arrival_s": arrival, "model_index": model.astype(np.int16, copy=False),
        "explored": explored, "p_explore": decisions["p_explore"], "q_after": q_after,
        "q_tracked": decisions["q_tracked"], "s_hat": decisions["s_hat"], "sat": s, "cost": c,
        "energy_j": e, "start_s": start, "end_s": end, "feedback_s": fb,
    }
    counts, counts_exploit = model_counts(model, explored, trace.m)
    exploit = ~explored
    # Each sum once (energy is often the cost itself): the same numpy reductions, so the same bits as before.
    c_total, c_exploit = c.sum(), np.sum(c, where=exploit)
    e_total, e_exploit = (c_total, c_exploit) if e is c else (
        (e.sum(), np.sum(e, where=exploit)) if e is not None else (None, None))
    satisfied = s.sum()
    summary = {
        "requests": int(n),
        "satisfaction": float(s.mean()),
        "satisfaction_running_mean": float(mean_running_satisfaction(s)),
        "violation": float(q_after[-1] / n),
        "q_final": float(q_after[-1]),
        # Totals over the run say so in their names (``_total``); per-request means say ``_per_request``.
        "cost_total": float(c_total),
        "cost_per_request": float(c_total / n),
        # what operators compare: cost over the requests whose answer was good (None: none was)
        "cost_per_satisfied": float(c_total / satisfied) if satisfied > 0 else None,
        "cost_total_exploit_only": float(c_exploit),
        "cost_total_paper_convention": float(paper_convention_cost(c, explored)),
        "energy_j_total": float(e_total) if e is not None else None,
        "energy_j_per_request": float(e_total / n) if e is not None else None,
        "energy_j_total_exploit_only": float(e_exploit) if e is not None else None,
        "explorations": int(explored.sum()),
        "expected_explorations": float(decisions["p_explore"].sum()),
        "call_ratio": {name: float(counts[i] / n) for i, name in enumerate(trace.models)},
        "call_ratio_exploit": {name: float(counts_exploit[i] / max(1, exploit.sum())) for i, name in enumerate(trace.models)},
        "feedback_delivered": int(np.isfinite(fb).sum()),
        "latency_s": percentiles(end - arrival),
        "wait_s": percentiles(start - arrival),
    }
    return cols, summary


def q_before(q_after: np.ndarray, rows: slice | None = None) -> np.ndarray:
    """Q before each request: Q after the previous one (0 before the first)."""
    lo, hi, _ = (rows or slice(None)).indices(len(q_after))
    out = np.empty(max(0, hi - lo))
    if out.size:
        out[0] = q_after[lo - 1] if lo > 0 else 0.0
        out[1:] = q_after[lo:hi - 1]
    return out


def request_frame(policy: str, trace: Trace, cols: dict, rows: slice | None = None) -> pl.DataFrame:
    """The per-request table of one policy; ``rows`` (a slice) makes only those rows (for streaming writes)."""
    names = pl.Enum(trace.models)
    groups = pl.Enum(trace.features.group_names)
    group_codes = trace.features.groups
    qb = q_before(cols["q_after"], rows)
    if rows is not None:
        # copies, not views: polars keeps a reference to the arrays of the last frame it exported to Arrow, and a
        # view would keep the whole column alive (10^7-request runs)
        cols = {k: None if v is None else v[rows].copy() for k, v in cols.items()}
        group_codes = group_codes[rows]
    n = len(cols["request_id"])
    energy = cols["energy_j"] if cols["energy_j"] is not None else np.full(n, np.nan)
    df = pl.DataFrame({"policy": pl.repeat(policy, n, dtype=pl.Utf8, eager=True),
                       **cols, "energy_j": energy, "q_before": qb, "wait_s": cols["start_s"] - cols["arrival_s"],
                       "sat": cols["sat"].astype(np.float64, copy=False)})
    return df.with_columns(
        pl.Series("model", np.asarray(trace.models)[cols["model_index"]], dtype=names),
        pl.Series("group", np.asarray(trace.features.group_names)[group_codes], dtype=groups),
        pl.col("energy_j").fill_nan(None),
        pl.col("feedback_s").fill_nan(None),
        pl.col("s_hat").fill_nan(None),
    ).select(["policy", "request_id", "arrival_s", "group", "model", "model_index", "explored", "p_explore",
              "q_before", "q_after", "q_tracked", "s_hat", "sat", "cost", "energy_j", "wait_s", "start_s",
              "end_s", "feedback_s"])
