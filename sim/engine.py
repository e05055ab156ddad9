"""The discrete-event engine: arrivals, FIFO slots per model, completions and delayed feedback, on SimPy.

Design decisions (each one is tested in tests/test_engine.py or tests/test_invariants.py):

- Speed: one long-lived arrival process, and plain callbacks for completions and feedback. No SimPy
  process or ``Resource`` per request: a request is an index into preallocated numpy columns.
- Slots: model m has ``replicas x slots`` concurrent slots (``None`` = unlimited) and one FIFO queue; a
  request holds a slot for its latency (its service time when run alone).
- Exploration: the request takes a slot on every model (queueing at each); it completes when the slowest
  part does, and the largest model's answer is served.
- Ordering at equal times: completions and feedback are scheduled URGENT, arrivals NORMAL. So a slot freed
  at time tau is free for an arrival at tau, and feedback delivered at tau is known to a decision at tau.
  With zero latency and zero delay this reproduces the sequential mode exactly.
- Causality: the router is called with request t's outcome rows only from t's completion or feedback
  callbacks, i.e. after they happened.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import simpy
from simpy.core import NORMAL, URGENT
from simpy.events import Event

from .router import Router


class _At(Event):
    """An event that fires ``delay`` from now with the given priority and runs one callback (like Timeout)."""

    __slots__ = ()

    def __init__(self, env, delay, priority, callback, value):
        self.env = env
        self.callbacks = [callback]
        self._value = value
        self._ok = True
        self._defused = False
        env.schedule(self, priority, delay)


@dataclass
class Occupancy:
    """Change log of busy slots and queue length per model (time-ordered), for the GPU view in reports."""

    time_s: np.ndarray
    model: np.ndarray
    busy: np.ndarray
    queued: np.ndarray


def simulate(router: Router, arrival_s: np.ndarray, latency_s: np.ndarray, cost: np.ndarray, sat: np.ndarray,
             capacity: list[float], feedback_mask: np.ndarray, feedback_delay: np.ndarray,
             progress=None, record_occupancy: bool = True, serving=None) -> tuple[dict, Occupancy | None]:
    """Replay the trace through the slots under ``router``; returns the per-request columns and occupancy.

    ``serving`` (sim/serving.py), if given, sets each part's service time and energy when it starts (from
    GPU profiles at the model's current batch, and GPU sharing) and writes the energy into ``cost``.
    """
    n, n_models = sat.shape
    env = simpy.Environment()
    model_out = np.zeros(n, np.int64)
    explored_out = np.zeros(n, np.bool_)
    p_out = np.zeros(n)
    qt_out = np.zeros(n)
    shat_out = np.zeros(n)
    start_out = np.full(n, np.nan)
    end_out = np.full(n, np.nan)
    fb_out = np.full(n, np.nan)
    parts_left = np.zeros(n, np.int64)
    busy = [0] * n_models
    queues = [deque() for _ in range(n_models)]
    cap = list(capacity)
    occ_t: list[float] = []
    occ_m: list[int] = []
    occ_b: list[int] = []
    occ_q: list[int] = []
    served = n_models - 1  # an exploration serves the largest model's answer
    decide, complete, feedback = router.decide, router.complete, router.feedback
    schedule = _At

    def log(m):
        if record_occupancy:
            occ_t.append(env.now)
            occ_m.append(m)
            occ_b.append(busy[m])
            occ_q.append(len(queues[m]))

    def start(t, m):
        busy[m] += 1
        if not explored_out[t] or m == served:
            start_out[t] = env.now
        log(m)
        service = latency_s[t, m] if serving is None else serving.start(t, m, busy, env.now, latency_s[t, m])
        schedule(env, service, URGENT, on_part_done, (t, m))

    def on_part_done(ev):
        t, m = ev._value
        busy[m] -= 1
        if serving is not None:
            serving.end(m, env.now)
        if queues[m]:
            start(queues[m].popleft(), m)
        else:
            log(m)
        parts_left[t] -= 1
        if parts_left[t] == 0:
            now = env.now
            end_out[t] = now
            explored = explored_out[t]
            complete(t, model_out[t], explored, cost[t], sat[t])
            if feedback_mask[t]:
                schedule(env, feedback_delay[t], URGENT, on_feedback, t)

    def on_feedback(ev):
        t = ev._value
        fb_out[t] = env.now
        feedback(t, model_out[t], explored_out[t], sat[t])

    def dispatch(t, m):
        if busy[m] < cap[m]:
            start(t, m)
        else:
            queues[m].append(t)
            log(m)

    def arrivals():
        step = max(1, n // 200)
        for t in range(n):
            yield env.timeout(arrival_s[t] - env.now)
            qt_out[t] = router.q_tracked[0]
            m, explored, p, s_hat = decide(t)
            model_out[t] = m
            explored_out[t] = explored
            p_out[t] = p
            shat_out[t] = s_hat
            if explored:
                parts_left[t] = n_models
                for k in range(n_models):
                    dispatch(t, k)
            else:
                parts_left[t] = 1
                dispatch(t, m)
            if progress is not None and t % step == 0:
                progress(t)

    env.process(arrivals())
    env.run()
    if progress is not None:
        progress(n)
    out = {"model": model_out, "explored": explored_out, "p_explore": p_out, "q_tracked": qt_out,
           "s_hat": shat_out, "start_s": start_out, "end_s": end_out, "feedback_s": fb_out}
    occ = None
    if record_occupancy:
        occ = Occupancy(np.asarray(occ_t, float), np.asarray(occ_m, np.int16), np.asarray(occ_b, np.int32),
                        np.asarray(occ_q, np.int32))
    return out, occ
