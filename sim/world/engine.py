"""The discrete-event engine: arrivals, FIFO slots per model, completions and delayed feedback, on SimPy.

Design decisions (tested in tests/test_invariants.py, tests/test_queueing.py and tests/test_serving.py):

- Speed: plain callbacks for completions and feedback, and arrivals handled by the run loop itself. No SimPy
  process or ``Resource`` per request: a request is an index into preallocated numpy columns. Completions and
  feedback are queued for the router and applied, in delivery order, by the same numba call that makes the
  next decision (the router's state is read only there): one call from Python per request. docs/performance.md
- Slots: model m has ``replicas x slots`` concurrent slots (``None`` = unlimited) and one FIFO queue; a
  request holds a slot for its latency: the trace's service time when run alone, or what sim/world/serving.py
  computes from a GPU profile at the model's current batch.
- Exploration: the request takes a slot on every model (queueing at each); it completes when the slowest
  part does, and the largest model's answer is served.
- Ordering at equal times: completions and feedback are scheduled URGENT, and an arrival is handled after
  every event at or before its time (as a NORMAL event would be). So a slot freed at time tau is free for an
  arrival at tau, and feedback delivered at tau is known to a decision at tau.
  With zero latency and zero delay this reproduces the sequential mode exactly.
- Causality: the router receives request t's outcome rows only for a completion or feedback that has
  happened (queued by its callback, applied before the next decision or at the end).
- Load (issue 15): a router with ``bind_world`` (sim/policies/multi.py, Python plugins) gets, before each
  decision, every model's busy slots and queue length at that instant, and reads the clock columns
  (``start_s``, ``end_s``) only for requests whose completion has been delivered to it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numba as nb
import numpy as np
import simpy
from simpy.core import URGENT
from simpy.events import Event

from sim.world.nrt import borrow
from sim.policies.router import EXPLORE_ALL, Router, complete, decide_and_record, feedback, unflatten

OCC_CHUNK = 1 << 16  # occupancy records are compacted into numpy arrays this many at a time


class _At(Event):
    """An event that fires ``delay`` from now with the given priority and runs one callback (like Timeout).

    It never fails, so it sets no ``_defused``: SimPy reads the attribute's mere presence as "defused"."""

    def __init__(self, env, delay, priority, callback, value):
        self.env = env
        self.callbacks = [callback]
        self._value = value
        self._ok = True
        env.schedule(self, priority, delay)


@dataclass
class Occupancy:
    """Change log of busy slots and queue length per model (time-ordered), for the GPU view in reports."""

    time_s: np.ndarray
    model: np.ndarray
    busy: np.ndarray
    queued: np.ndarray


@nb.njit(cache=True)
def _deliver_and_decide(t, pending, n_pending, cost, sat, model_out, explored_out, p_out, qt_out, shat_out,
                        *bundle):
    """Apply the completions and feedback delivered since the last decision, in delivery order, then decide t.

    ``pending[i] = 2 u + 0`` is "request u's service ended", ``2 u + 1`` "u's feedback arrived". The router's
    state is read only by ``decide``, so applying them here, just before the next decision, is the same as
    applying each in its own event callback; it costs one call from Python per request instead of three.
    ``t < 0`` only delivers (at the end of the run, or when the buffer is full). ``bundle`` is ``Router.flat()``.
    """
    cost, sat, model_out, explored_out = borrow(cost), borrow(sat), borrow(model_out), borrow(explored_out)
    p_out, qt_out, shat_out = borrow(p_out), borrow(qt_out), borrow(shat_out)
    params, state, pred = unflatten(bundle)
    for i in range(n_pending):
        u = pending[i] >> 1
        if pending[i] & 1 == 0:
            complete(u, model_out[u], explored_out[u], cost[u], sat[u], params, state, pred)
        else:
            feedback(u, model_out[u], explored_out[u], sat[u], params, state, pred)
    if t < 0:
        return 0, False
    return decide_and_record(t, params, state, pred, model_out, explored_out, p_out, qt_out, shat_out)


class _OccupancyLog:
    """Occupancy records, kept in compact numpy chunks (18 bytes a record), never in long Python lists.

    ``sink(chunk: Occupancy)``, if given, receives every full chunk as it fills (to stream it to a file);
    the log then keeps nothing.
    """

    def __init__(self, sink=None):
        self.sink = sink
        self.rows: list = []
        self.chunks: list[Occupancy] = []

    def compact(self) -> None:
        if not self.rows:
            return
        a = np.array(self.rows, dtype=np.float64).reshape(-1, 4)
        self.rows.clear()
        chunk = Occupancy(np.ascontiguousarray(a[:, 0]), a[:, 1].astype(np.int16), a[:, 2].astype(np.int32),
                          a[:, 3].astype(np.int32))
        if self.sink is not None:
            self.sink(chunk)
        else:
            self.chunks.append(chunk)

    def result(self) -> Occupancy:
        self.compact()
        if not self.chunks:
            return Occupancy(np.zeros(0), np.zeros(0, np.int16), np.zeros(0, np.int32), np.zeros(0, np.int32))
        parts = self.chunks
        return Occupancy(*(np.concatenate([getattr(c, f) for c in parts]) for f in ("time_s", "model", "busy", "queued")))


def simulate(router: Router, arrival_s: np.ndarray, latency_s: np.ndarray, cost: np.ndarray, sat: np.ndarray,
             capacity: list[float], feedback_mask: np.ndarray, feedback_delay: np.ndarray,
             progress=None, record_occupancy: bool = True, serving=None,
             occupancy_sink=None) -> tuple[dict, Occupancy | None]:
    """Replay the trace through the slots under ``router``; returns the per-request columns and occupancy.

    ``serving`` (sim/world/serving.py), if given, sets each part's service time and energy when it starts (from
    GPU profiles at the model's current batch, and GPU sharing) and writes the energy into ``cost``.
    ``occupancy_sink``, if given, receives the occupancy log in chunks as it grows (and None is returned).
    """
    n, n_models = sat.shape
    env = simpy.Environment()
    model_out = np.zeros(n, np.int16)  # 2 bytes a request: docs/performance.md
    explored_out = np.zeros(n, np.bool_)
    p_out = np.zeros(n)
    qt_out = np.zeros(n)
    shat_out = np.zeros(n)
    start_out = np.full(n, np.nan)
    end_out = np.full(n, np.nan)
    fb_out = np.full(n, np.nan)
    parts_left: dict[int, int] = {}  # explorations still running on some model
    busy = [0] * n_models
    queues = [deque() for _ in range(n_models)]
    cap = list(capacity)
    occ = _OccupancyLog(occupancy_sink)
    rows = occ.rows
    served = n_models - 1  # an exploration serves the largest model's answer
    # an exploration runs every model, unless the router explores one model at a time (docs/theory.md §4)
    explore_all = getattr(getattr(router, "params", None), "explore", EXPLORE_ALL) == EXPLORE_ALL
    kernel = getattr(router, "deliver_and_decide", None)  # a Python router (sim/policies/plugin.py)
    if kernel is not None:
        state = ()
    else:
        kernel = _deliver_and_decide
        state = router.flat()
    # A load-aware router (sim/policies/multi.py, Python plugins) reads, at each decision, every model's busy
    # slots and queue length at that instant (``load``, filled below), and a completed request's clock columns.
    bind = getattr(router, "bind_world", None)
    load = bind(arrival_s, start_out, end_out, cap) if bind is not None else None
    pending = np.zeros(4096, np.int64)
    n_pending = 0
    schedule = _At
    step = max(1, n // 200)

    def deliver_and_decide(t):
        nonlocal n_pending
        m, explored = kernel(t, pending, n_pending, cost, sat, model_out, explored_out, p_out, qt_out,
                                          shat_out, *state)
        n_pending = 0
        return m, explored

    def log(m):
        rows.extend((env._now, m, busy[m], len(queues[m])))
        if len(rows) >= 4 * OCC_CHUNK:
            occ.compact()

    def start(t, m):
        busy[m] += 1
        now = env._now
        if t not in parts_left or m == served:
            start_out[t] = now
        if record_occupancy:
            log(m)
        service = latency_s.item(t, m) if serving is None else serving.start(t, m, busy, now, latency_s[t, m])
        schedule(env, service, URGENT, on_part_done, (t, m))

    def on_part_done(ev):
        nonlocal n_pending
        t, m = ev._value
        busy[m] -= 1
        if serving is not None:
            serving.end(m, env._now)
        if queues[m]:
            start(queues[m].popleft(), m)
        elif record_occupancy:
            log(m)
        if t in parts_left:
            left = parts_left[t] - 1
            if left:
                parts_left[t] = left
                return
            del parts_left[t]
        end_out[t] = env._now
        if n_pending == len(pending):
            deliver_and_decide(-1)
        pending[n_pending] = 2 * t  # the router learns of the completion before its next decision
        n_pending += 1
        if feedback_mask[t]:
            schedule(env, feedback_delay.item(t), URGENT, on_feedback, t)

    def on_feedback(ev):
        nonlocal n_pending
        t = ev._value
        fb_out[t] = env._now
        if n_pending == len(pending):
            deliver_and_decide(-1)
        pending[n_pending] = 2 * t + 1
        n_pending += 1

    def dispatch(t, m):
        if busy[m] < cap[m]:
            start(t, m)
        else:
            queues[m].append(t)
            if record_occupancy:
                log(m)

    # Arrivals are not events: the loop below advances the clock to each arrival after every (URGENT) event at
    # or before it has run, which is the order SimPy gives a NORMAL arrival event. Arrival t's time is computed
    # as SimPy would have, from the previous arrival: T + (arrival_s[t] - T). (Python floats: the same IEEE
    # arithmetic as numpy's float64, and faster in SimPy's heap.)
    peek, run_next, arrival = env.peek, env.step, arrival_s.item
    now = 0.0
    for t in range(n):
        now = now + (arrival(t) - now)
        while peek() <= now:
            run_next()
        env._now = now
        if load is not None:
            load[0, :] = busy
            load[1, :] = [len(q) for q in queues]
        m, explored = kernel(t, pending, n_pending, cost, sat, model_out, explored_out, p_out, qt_out, shat_out,
                             *state)
        n_pending = 0
        if explored and explore_all:
            parts_left[t] = n_models
            for k in range(n_models):
                dispatch(t, k)
        else:
            dispatch(t, m)
        if progress is not None and t % step == 0:
            progress(t)
    env.run()
    deliver_and_decide(-1)  # the last completions and feedback: the router ends in its final state
    if progress is not None:
        progress(n)
    out = {"model": model_out, "explored": explored_out, "p_explore": p_out, "q_tracked": qt_out,
           "s_hat": shat_out, "start_s": start_out, "end_s": end_out, "feedback_s": fb_out}
    result = None
    if record_occupancy:
        result = occ.result() if occupancy_sink is None else (occ.compact() or None)
    # The callbacks above call each other, so their closures form reference cycles that would keep every
    # column alive until the garbage collector's next pass; break them, so that a column goes as soon as the
    # caller drops it (10^7-request runs, docs/performance.md).
    deliver_and_decide = log = start = on_part_done = on_feedback = dispatch = None  # noqa: F811
    return out, result
