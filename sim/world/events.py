"""Scenario ``events:``: changes in the world over time, and how long MESS+ takes to recover the SLA.

Semantics (times are simulated seconds, i.e. the trace's ``arrival_s`` after any rate change):

- ``scale_rate {at_s, factor, until_s?}``: from ``at_s`` the arrival rate is multiplied by ``factor`` (the gaps
  between arrivals are divided by it). ``diurnal {at_s, period_s, amplitude, until_s?}``: from ``at_s`` the rate
  is multiplied by ``1 + amplitude * sin(2 pi (t - at_s) / period_s)``. Both are a time change of the trace:
  the original times are read as "operational time" at rate multiplier 1, and a request's new time tau solves
  ``integral_0^tau r(s) ds = t`` (r = the product of the active multipliers). Request order is kept.
  Rate changes are applied first; every other event then reads the new times.
- ``degrade {at_s, model, accuracy_factor, until_s?}``: for requests arriving in [at_s, until_s), the model's
  ``p_true`` is multiplied by the factor and its 0/1 label is resampled by thinning: a correct answer stays
  correct with probability ``accuracy_factor`` (a seeded stream per event), so P(sat) = factor x p_true. A
  fractional satisfaction (a probability, no 0/1 label) is multiplied by the factor.
- ``out_of_service {at_s, model, until_s?}``: an availability mask the routers respect (``Router.set_availability``):
  MESS+ and the threshold router never pick an unavailable model. An exploration queries every model, which is
  impossible while one is out: an exploration draw then becomes an exploit decision (and no label is learnt).
  Precomputed plans (always, random_with_constraint, the bounds) move a request planned for an unavailable
  model to the next more expensive available model (else the next cheaper one). Requests already dispatched
  finish (graceful drain). At least one model must stay available.

Recovery (``recovery``): for each event, with Q the true virtual queue of a policy's run (sat judged against
alpha), Q0 = Q just before the first request at or after ``at_s``. The SLA counts as *disturbed* if Q rises
more than ``tolerance`` requests above Q0 afterwards (before the next event), and as *recovered* at the first
arrival after Q's peak where Q <= Q0 + tolerance again: the backlog the change caused has been paid off.
``recovery_s`` is that time minus ``at_s``: 0 when never disturbed, None when not recovered before the next
event or the end.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sim.errors import UserError
from sim.rng import stream
from sim.trace.format import Trace

RATE_ACTIONS = ("scale_rate", "diurnal")


def _model_index(trace: Trace, name: str, i: int) -> int:
    if name not in trace.models:
        raise UserError(f"events.{i}.model: unknown model {name!r}; the zoo has {trace.models}")
    return trace.models.index(name)


def _rate_multiplier(events, tau: np.ndarray) -> np.ndarray:
    r = np.ones_like(tau)
    for ev in events:
        end = np.inf if ev.until_s is None else ev.until_s
        on = (tau >= ev.at_s) & (tau < end)
        if ev.action == "scale_rate":
            r = np.where(on, r * ev.factor, r)
        else:
            r = np.where(on, r * (1.0 + ev.amplitude * np.sin(2 * np.pi * (tau - ev.at_s) / ev.period_s)), r)
    return r


def warp_times(arrival_s: np.ndarray, events) -> np.ndarray:
    """New arrival times under the rate events (see the module doc); the identity without them."""
    rate_events = [e for e in events if e.action in RATE_ACTIONS]
    if not rate_events or len(arrival_s) == 0:
        return arrival_s
    t = np.asarray(arrival_s, dtype=np.float64)  # absolute times: at_s is measured from 0, like arrival_s
    t_max = float(t[-1])
    r_min = 1.0
    for e in rate_events:
        r_min *= e.factor if e.action == "scale_rate" and e.factor < 1 else 1.0
        r_min *= (1.0 - e.amplitude) if e.action == "diurnal" else 1.0
    tau_max = t_max / r_min + 1.0
    n_grid = int(min(4_000_000, max(10_000, 20 * len(t))))
    tau = np.linspace(0.0, tau_max, n_grid)
    r = _rate_multiplier(rate_events, tau)
    lam = np.concatenate([[0.0], np.cumsum((r[1:] + r[:-1]) / 2 * np.diff(tau))])
    out = np.interp(t, lam, tau)
    return np.maximum.accumulate(out)


def apply_trace_events(trace: Trace, scenario) -> Trace:
    """Rate changes and accuracy degradations, as transforms of the trace (run by ``build_trace``)."""
    events = list(scenario.events)
    if not events:
        return trace
    if scenario.split_by == "group":
        raise UserError("events: not supported with split_by: group (each group would restart the clock)")
    for i, ev in enumerate(events):
        if ev.model is not None:
            _model_index(trace, ev.model, i)
    arrival = warp_times(trace.arrival_s, events)
    o = trace.outcomes
    sat, p_true = o.sat, o.p_true
    changed = []
    for i, ev in enumerate(events):
        if ev.action != "degrade":
            continue
        m = _model_index(trace, ev.model, i)
        end = np.inf if ev.until_s is None else ev.until_s
        rows = (arrival >= ev.at_s) & (arrival < end)
        if sat is o.sat:
            sat = sat.copy()
            p_true = None if p_true is None else p_true.copy()
        col = sat[:, m]
        binary = np.all((col == 0) | (col == 1))
        if binary:
            keep = stream(scenario.seed, "events", i, "degrade").random(trace.n) < ev.accuracy_factor
            sat[:, m] = np.where(rows, col * keep, col)
        else:
            sat[:, m] = np.where(rows, col * ev.accuracy_factor, col)
        if p_true is not None:
            p_true[:, m] = np.where(rows, p_true[:, m] * ev.accuracy_factor, p_true[:, m])
        changed.append({"event": i, "model": ev.model, "requests": int(rows.sum())})
    outcomes = replace(o, sat=np.ascontiguousarray(sat), p_true=p_true)
    prov = {**trace.provenance, "events": {
        "applied": [e.model_dump(mode="json", exclude_none=True) for e in events],
        "degraded": changed, "rate_changed": any(e.action in RATE_ACTIONS for e in events)}}
    return replace(trace, arrival_s=np.ascontiguousarray(arrival, dtype=np.float64), outcomes=outcomes,
                   provenance=prov)


def availability(trace: Trace, scenario) -> np.ndarray | None:
    """(T, M) bool: may request t be routed to model m? None when no model is ever out of service."""
    outs = [(i, e) for i, e in enumerate(scenario.events) if e.action == "out_of_service"]
    if not outs:
        return None
    avail = np.ones((trace.n, trace.m), np.bool_)
    for i, ev in outs:
        m = _model_index(trace, ev.model, i)
        end = np.inf if ev.until_s is None else ev.until_s
        avail[(trace.arrival_s >= ev.at_s) & (trace.arrival_s < end), m] = False
    none = ~avail.any(axis=1)
    if none.any():
        t = int(np.flatnonzero(none)[0])
        raise UserError(f"events: every model is out of service at {trace.arrival_s[t]:.1f} s (request {t})")
    return avail


def remap_plan(plan: np.ndarray, avail: np.ndarray) -> np.ndarray:
    """Move planned requests off unavailable models: next more expensive available model, else next cheaper."""
    plan = plan.copy()
    n_models = avail.shape[1]
    for t in np.flatnonzero(~avail[np.arange(len(plan)), plan]):
        m = int(plan[t])
        up = [k for k in range(m + 1, n_models) if avail[t, k]]
        down = [k for k in range(m - 1, -1, -1) if avail[t, k]]
        plan[t] = up[0] if up else down[0]
    return plan


def recovery(arrival_s: np.ndarray, q_before: np.ndarray, q_after: np.ndarray, events,
             tolerance: float = 5.0) -> list[dict]:
    """Per event, how long the SLA's virtual queue takes to return to its pre-event level (module doc)."""
    out = []
    times = sorted({float(e.at_s) for e in events} | {float(e.until_s) for e in events if e.until_s is not None})
    for ev in events:
        for label, at in [("start", float(ev.at_s))] + ([("end", float(ev.until_s))] if ev.until_s is not None else []):
            i0 = int(np.searchsorted(arrival_s, at, side="left"))
            entry = {"action": ev.action, "model": ev.model, "edge": label, "at_s": at}
            if i0 >= len(arrival_s):
                out.append({**entry, "disturbed": False, "recovery_s": None, "note": "after the last request"})
                continue
            nxt = [x for x in times if x > at]
            i1 = int(np.searchsorted(arrival_s, nxt[0], side="left")) if nxt else len(arrival_s)
            q0 = float(q_before[i0])
            seg = q_after[i0:i1]
            peak_i = int(np.argmax(seg)) if len(seg) else 0
            peak = float(seg[peak_i]) if len(seg) else q0
            disturbed = peak > q0 + tolerance
            rec = None
            if not disturbed:
                rec = 0.0
            else:
                back = np.flatnonzero(seg[peak_i:] <= q0 + tolerance)
                if len(back):
                    rec = float(arrival_s[i0 + peak_i + back[0]] - at)
            out.append({**entry, "disturbed": bool(disturbed), "q_before": q0, "q_peak": peak,
                        "q_excess": max(0.0, peak - q0), "recovery_s": rec})
    return out


def format_recovery(summary: dict) -> list[str]:
    """Lines for the CLI: per causal policy and event edge, the SLA recovery time."""
    lines = []
    for label, p in summary.get("policies", {}).items():
        for r in p.get("recovery", []):
            what = r["action"] + (f" {r['model']}" if r.get("model") else "") + ("" if r["edge"] == "start" else " ends")
            rec = r.get("recovery_s")
            if not r.get("disturbed"):
                text = "SLA not disturbed"
            elif rec is None:
                text = f"not recovered (Q rose {r['q_excess']:.1f} above its level)"
            else:
                text = f"recovered after {rec:.0f} s (Q peak +{r['q_excess']:.1f})"
            lines.append(f"{label}: {what} at {r['at_s']:.0f} s: {text}")
    return lines
