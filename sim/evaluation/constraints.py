"""Every policy measured against every constraint of the scenario: the ``constraints`` list of summary.json.

A scenario's ``constraints:`` (sim/config.py) name a quality floor, a latency deadline and a budget. Each is a
time average over the T requests of a run, and each gets the verdict rule of the SLA verdict
(sim/evaluation/sla.py): the run meets a constraint when its value is not significantly worse than the target,
by z standard errors of the mean (z = 3.29, confidence 0.999):

- ``satisfaction``: value = share of satisfied requests; met when value >= alpha - z sqrt(alpha (1 - alpha) / T)
  (exactly the SLA verdict);
- ``latency``: value = share of requests whose latency (end - arrival, queueing included) exceeds ``deadline_s``;
  met when value <= max_miss + z sqrt(max_miss (1 - max_miss) / T) (the same Bernoulli rule, mirrored);
- ``budget``: value = cost per request (explorations included); met when value <= max_cost_per_request + z s / sqrt(T),
  s the run's sample standard deviation of the per-request cost (a cost is not Bernoulli, so its own spread).

``excess`` says by how much a constraint gave way (value beyond the target, 0 when within it), so that a run
where the budget and the quality floor cannot both be met shows which one gave way and by how much.
The sequential engine has no clock: a latency constraint there is reported with ``met: null`` (not measured).
"""

from __future__ import annotations

import math

import numpy as np

from sim import config as cfg
from sim.evaluation.sla import Z, tolerance

RULES = {
    "satisfaction": "value >= alpha - z*sqrt(alpha*(1-alpha)/T)",
    "latency": "value <= max_miss + z*sqrt(max_miss*(1-max_miss)/T); value = share of requests with "
               "end - arrival > deadline_s",
    "budget": "value <= max_cost_per_request + z*s/sqrt(T); value = cost per request, s its sample std",
}


def scenario_constraints(scenario: cfg.Scenario, alpha: float) -> list:
    """The scenario's constraints, with the satisfaction constraint at ``alpha`` first (always present)."""
    rest = [c for c in scenario.constraints if c.kind != "satisfaction"]
    return [cfg.SatisfactionConstraint(kind="satisfaction", alpha=alpha), *rest]


def latency_misses(arrival_s: np.ndarray, end_s: np.ndarray, deadline_s: float) -> np.ndarray:
    """1.0 where a request finished later than ``deadline_s`` after its arrival."""
    return ((end_s - arrival_s) > deadline_s).astype(np.float64)


def evaluate_constraints(constraints: list, sat: np.ndarray, cost: np.ndarray, arrival_s: np.ndarray,
                         end_s: np.ndarray, sequential: bool) -> list[dict]:
    """One entry per constraint: ``{kind, target, value, met, tolerance, excess, rule, ...}``."""
    n = max(1, int(sat.shape[0]))
    out = []
    for c in constraints:
        if c.kind == "satisfaction":
            value, target = float(sat.mean()), float(c.alpha)
            tol = tolerance(target, n)
            met = value >= target - tol
            excess = max(0.0, target - value)
            entry = {"kind": c.kind, "target": target, "value": value}
        elif c.kind == "latency":
            target = float(c.max_miss)
            value = float(latency_misses(arrival_s, end_s, c.deadline_s).mean())
            tol = tolerance(target, n)
            met = None if sequential else value <= target + tol
            excess = max(0.0, value - target)
            entry = {"kind": c.kind, "target": target, "value": value, "deadline_s": float(c.deadline_s)}
            if sequential:
                entry["note"] = "sequential engine: no clock, latency not measured"
        else:
            target = float(c.max_cost_per_request)
            value = float(cost.sum() / n)
            spread = float(cost.std(ddof=1)) if cost.shape[0] > 1 else 0.0
            tol = Z * spread / math.sqrt(n)
            met = value <= target + tol
            excess = max(0.0, value - target)
            entry = {"kind": c.kind, "target": target, "value": value}
        entry.update(met=None if met is None else bool(met), tolerance=float(tol), excess=float(excess),
                     rule=RULES[c.kind])
        out.append(entry)
    return out


def gave_way(entries: list[dict]) -> list[dict]:
    """The constraints a run missed, with how far beyond its target each went (for the report and the table)."""
    return [{"kind": e["kind"], "excess": e["excess"], "relative_excess": e["excess"] / e["target"]}
            for e in entries if e["met"] is False]


def cost_per_satisfied(cost: np.ndarray, sat: np.ndarray) -> float | None:
    """Total cost over the number of satisfied requests (what operators compare); None when none was satisfied."""
    satisfied = float(sat.sum())
    return float(cost.sum() / satisfied) if satisfied > 0 else None
