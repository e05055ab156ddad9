"""The discrete-event engine: arrivals, FIFO slots per model, completions and delayed feedback.

It keeps SimPy's event semantics (a heap ordered by time, priority and scheduling order; the engine was built on
SimPy, and its results are byte for byte those of that version) but runs its own loop: SimPy's ``Event``
objects, callback lists and ``step`` were most of the Python time per request (docs/performance.md).

Design decisions (tested in tests/test_invariants.py, tests/test_queueing.py and tests/test_serving.py):

- Speed: no process, ``Resource`` or event object per request: a request is an index into preallocated numpy
  columns, an event a tuple on a heap, and arrivals are handled by the run loop itself. Completions and
  feedback are queued for the router and applied, in delivery order, by the same numba call that makes the
  next decision (the router's state is read only there): one call from Python per request, with three
  arguments (the arrays and the router travel in one structref, :class:`_KernelArgs`). docs/performance.md
- Slots: model m has ``replicas x slots`` concurrent slots (``None`` = unlimited) and one FIFO queue; a
  request holds a slot for its latency: the trace's service time when run alone, or what sim/world/serving.py
  computes from a GPU profile at the model's current batch.
- Exploration: the request takes a slot on every model (queueing at each); it completes when the slowest
  part does, and the largest model's answer is served.
- Ordering at equal times: completions and feedback are scheduled URGENT (SimPy's term), and an arrival is handled after
  every event at or before its time (as a NORMAL event would be). So a slot freed at time tau is free for an
  arrival at tau, and feedback delivered at tau is known to a decision at tau.
  With zero latency and zero delay this reproduces the sequential mode exactly.
- Causality: the router receives request t's outcome rows only for a completion or feedback that has
  happened (queued when its event runs, applied before the next decision or at the end).
- Load (issue 15): a router with ``bind_world`` (sim/policies/multi.py, Python plugins) gets, before each
  decision, every model's busy slots and queue length at that instant, and reads the clock columns
  (``start_s``, ``end_s``) only for requests whose completion has been delivered to it.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass

import numba as nb
import numpy as np
from numba.core import types
from numba.experimental import structref

from sim.world.nrt import borrow
from sim.policies.predictors import lend_predictor
from sim.policies.router import EXPLORE_ALL, Router, complete, decide_and_record, feedback, lend_state

OCC_CHUNK = 1 << 16  # occupancy records are compacted into numpy arrays this many at a time


@dataclass
class Occupancy:
    """Change log of busy slots and queue length per model (time-ordered), for the GPU view in reports."""

    time_s: np.ndarray
    model: np.ndarray
    busy: np.ndarray
    queued: np.ndarray


@nb.njit(cache=True, inline="always")
def _apply_and_decide(t, pending, n_pending, cost, sat, model_out, explored_out, p_out, qt_out, shat_out, params,
                      state, pred):
    """Apply the completions and feedback delivered since the last decision, in delivery order, then decide t.

    ``pending[i] = 2 u + 0`` is "request u's service ended", ``2 u + 1`` "u's feedback arrived". The router's
    state is read only by ``decide``, so applying them here, just before the next decision, is the same as
    applying each in its own event callback; it costs one call from Python per request instead of three.
    ``t < 0`` only delivers (at the end of the run, or when the buffer is full). The arrays must be borrowed.
    """
    for i in range(n_pending):
        u = pending[i] >> 1
        if pending[i] & 1 == 0:
            complete(u, model_out[u], explored_out[u], cost[u], sat[u], params, state, pred)
        else:
            feedback(u, model_out[u], explored_out[u], sat[u], params, state, pred)
    if t < 0:
        return 0, False
    return decide_and_record(t, params, state, pred, model_out, explored_out, p_out, qt_out, shat_out)


# numba's dispatcher types and unboxes every argument of a call from Python: about 50 of them (the outputs and
# the router's arrays, passed flattened before issue 18) were most of the engine's per-request cost. A structref holds them all; a call then
# passes three arguments, the third one pointer (measured in docs/performance.md).
@structref.register
class _KernelArgsType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class _KernelArgs(structref.StructRefProxy):
    """Everything :func:`_deliver_and_decide_packed` reads besides (t, n_pending), in one numba object."""


structref.define_proxy(_KernelArgs, _KernelArgsType, [
    "pending", "cost", "sat", "model_out", "explored_out", "p_out", "qt_out", "shat_out", "params", "state", "pred"])


@nb.njit(cache=True)
def _kernel_args(pending, cost, sat, model_out, explored_out, p_out, qt_out, shat_out, params, state, pred):
    return _KernelArgs(pending, cost, sat, model_out, explored_out, p_out, qt_out, shat_out, params, state, pred)


@nb.njit(cache=True)
def _deliver_and_decide_packed(t, n_pending, args):
    """:func:`_apply_and_decide` on the arrays and router held by ``args`` (a :class:`_KernelArgs`), which
    outlives the call: they are borrowed, not reference counted (sim/world/nrt.py)."""
    return _apply_and_decide(t, borrow(args.pending), n_pending, borrow(args.cost), borrow(args.sat),
                             borrow(args.model_out), borrow(args.explored_out), borrow(args.p_out),
                             borrow(args.qt_out), borrow(args.shat_out), args.params, lend_state(args.state),
                             lend_predictor(args.pred))


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
    # A load-aware router (sim/policies/multi.py, Python plugins) reads, at each decision, every model's busy
    # slots and queue length at that instant (``load``, filled below), and a completed request's clock columns.
    bind = getattr(router, "bind_world", None)
    load = bind(arrival_s, start_out, end_out, cap) if bind is not None else None
    pending = np.zeros(4096, np.int64)
    plugin = getattr(router, "deliver_and_decide", None)  # a Python router (sim/policies/plugin.py)
    if plugin is not None:
        def kernel(t, n_pending, _):
            return plugin(t, pending, n_pending, cost, sat, model_out, explored_out, p_out, qt_out, shat_out)

        args = None
    else:
        kernel = _deliver_and_decide_packed
        args = _kernel_args(pending, cost, sat, model_out, explored_out, p_out, qt_out, shat_out, router.params,
                            router.state, router.predictor)
    n_pending = 0
    step = max(1, n // 200)
    # The event list, as SimPy keeps it: a heap of (time, event id, request, model), time = clock + delay, ids
    # in scheduling order. Every event here is a completion (model >= 0) or a feedback (model = -1), all URGENT
    # in SimPy's terms, so (time, id) is SimPy's (time, priority, id) order. No Event objects, no callbacks
    # list, no generator: docs/performance.md.
    heap: list = []
    push, pop = heapq.heappush, heapq.heappop
    next_id = itertools.count().__next__
    clock = 0.0

    def deliver_and_decide(t):
        nonlocal n_pending
        m, explored = kernel(t, n_pending, args)
        n_pending = 0
        return m, explored

    def log(m):
        rows.extend((clock, m, busy[m], len(queues[m])))
        if len(rows) >= 4 * OCC_CHUNK:
            occ.compact()

    def start(t, m):
        busy[m] += 1
        if t not in parts_left or m == served:
            start_out[t] = clock
        if record_occupancy:
            log(m)
        service = latency_s.item(t, m) if serving is None else serving.start(t, m, busy, clock, latency_s[t, m])
        push(heap, (clock + service, next_id(), t, m))

    def run_until(limit):
        """Run every event at or before ``limit`` in (time, id) order: completions free a slot and start the
        next queued request; feedback is recorded. Both are queued for the router (``pending``)."""
        nonlocal clock, n_pending
        while heap and heap[0][0] <= limit:
            clock, _, t, m = pop(heap)
            if m < 0:  # feedback on t arrived
                fb_out[t] = clock
                if n_pending == len(pending):
                    deliver_and_decide(-1)
                pending[n_pending] = 2 * t + 1
                n_pending += 1
                continue
            busy[m] -= 1  # part (t, m) done
            if serving is not None:
                serving.end(m, clock)
            queue = queues[m]
            if queue:
                start(queue.popleft(), m)
            elif record_occupancy:
                log(m)
            if t in parts_left:
                left = parts_left[t] - 1
                if left:
                    parts_left[t] = left
                    continue
                del parts_left[t]
            end_out[t] = clock
            if n_pending == len(pending):
                deliver_and_decide(-1)
            pending[n_pending] = 2 * t  # the router learns of the completion before its next decision
            n_pending += 1
            if feedback_mask[t]:
                push(heap, (clock + feedback_delay.item(t), next_id(), t, -1))

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
    # arithmetic as numpy's float64.)
    arrival = arrival_s.item
    now = 0.0
    for t in range(n):
        now = now + (arrival(t) - now)
        if heap and heap[0][0] <= now:
            run_until(now)
        clock = now
        if load is not None:
            load[0, :] = busy
            load[1, :] = [len(q) for q in queues]
        m, explored = kernel(t, n_pending, args)
        n_pending = 0
        if explored and explore_all:
            parts_left[t] = n_models
            for k in range(n_models):
                dispatch(t, k)
        elif busy[m] < cap[m]:  # dispatch(t, m), inlined: one call less per request
            start(t, m)
        else:
            queues[m].append(t)
            if record_occupancy:
                log(m)
        if progress is not None and t % step == 0:
            progress(t)
    run_until(math.inf)
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
    deliver_and_decide = log = start = run_until = dispatch = kernel = args = None  # noqa: F811
    return out, result
