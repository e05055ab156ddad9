"""MESS+ with one virtual queue per constraint: ``{kind: messplus_multi, constraints: all | [kinds]}``.

Drift-plus-penalty with several queues (derivation and bounds: docs/theory.md, "Several constraints"). Next to
the satisfaction queue of MESS+ it keeps

- a latency queue ``Z <- max(0, Z + miss_t - max_miss)``, fed at each completion by whether the request finished
  later than ``deadline_s`` after its arrival (the router learns a latency when the request completes);
- a budget queue ``B <- max(0, B + cost_t / budget - 1)``, fed at each completion by the observed cost, in units
  of the budget (so that B is dimensionless like the other two).

At request t (not an exploration) it serves the available model minimising

    (V [sat] + B / budget) cost_m  -  (Q [sat] + V [no sat]) s_m  +  Z miss_m

where [sat] is 1 when the satisfaction constraint has a queue: with it, cost is the penalty (MESS+); without
it, the satisfaction itself is (maximised under the budget and the deadline). ``cost_m`` is the router's cost
estimate, ``s_m`` its predicted satisfaction, ``miss_m`` its estimate of the probability that a request sent to
m now misses the deadline. That estimate is load-aware and causal: at decision time the engine hands the router
each model's busy slots and queue length (sim/world/engine.py); the expected wait is
``(queued + 1) * mean service / slots`` when every slot is busy, else 0, and ``miss_m`` is the share of the
service times this router has observed on m (at completions, end - start) that exceed ``deadline_s - wait``
(a 64-bin log histogram from 1 ms to 10^4 s). The sequential engine has no clock: it hands zeros (no load,
zero latencies), so there the latency queue never grows.

Explorations (probability c / t^(1/4)) run every model and serve the largest, as MESS+'s do.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numba as nb
import numpy as np

from sim import config as cfg
from sim.errors import UserError
from sim.policies.predictors import predict, train
from sim.policies.router import explore_probability

SAT, LAT, BUD = 0, 1, 2  # the queues' positions in ``state.queues``
N_BINS = 64
BIN_LO, BIN_HI = 1e-3, 1e4  # seconds: the histogram of observed service times
LOG_STEP = math.log(BIN_HI / BIN_LO) / N_BINS
BIN_CENTRES = BIN_LO * np.exp((np.arange(N_BINS) + 0.5) * LOG_STEP)

#: Fixed parameters (``use_*``: which constraints have a queue; a target is 0 where its constraint is absent).
MultiParams = namedtuple("MultiParams", [
    "V", "c", "alpha", "deadline_s", "max_miss", "budget", "use_sat", "use_lat", "use_budget", "learn_from_exploit",
])

#: State, updated in place by the kernels.
MultiState = namedtuple("MultiState", [
    "queues",  # (3,): Q (satisfaction), Z (latency), B (budget, in units of the budget)
    "queue_log",  # (T, 3): the queues at each decision (for sim check and the report)
    "cost_estimate", "cost_count",  # (M,): running mean of observed costs (count inf: frozen oracle estimates)
    "u_explore",  # (T,): the shared exploration uniforms
    "predicted",  # (M,) scratch: predicted satisfaction
    "mask",  # (M,) bool scratch: which labels train
    "service_hist",  # (M, N_BINS): observed service times per model
    "service_sum", "service_count",  # (M,)
    "load",  # (2, M): busy slots and queue length per model at this decision (the engine fills it)
    "capacity",  # (M,): slots per model (inf: unlimited)
])


@nb.njit(cache=True)
def _bin(x):
    if x <= BIN_LO:
        return 0
    k = int(np.log(x / BIN_LO) / LOG_STEP)
    return k if k < N_BINS else N_BINS - 1


@nb.njit(cache=True)
def miss_estimate(m, params, state):
    """Estimated probability that a request sent to model m now finishes later than the deadline."""
    count = state.service_count[m]
    mean_service = state.service_sum[m] / count if count > 0 else 0.0
    busy, queued, cap = state.load[0, m], state.load[1, m], state.capacity[m]
    wait = (queued + 1.0) * mean_service / cap if busy >= cap else 0.0  # every slot busy: wait for ours
    slack = params.deadline_s - wait
    if slack <= 0.0:
        return 1.0
    if count == 0:
        return 0.0  # nothing observed yet: optimistic (explorations fill the histograms early)
    above = 0.0
    for k in range(N_BINS):
        if BIN_CENTRES[k] > slack:
            above += state.service_hist[m, k]
    return above / count


@nb.njit(cache=True)
def decide(t, params, state, pred):
    """Route request t: (model, explored, p_explore, predicted satisfaction of the chosen model)."""
    shat = state.predicted
    n_models = shat.shape[0]
    queues = state.queues
    for k in range(3):
        state.queue_log[t, k] = queues[k]
    predict(t, shat, pred)
    p = explore_probability(t, params.c)
    if state.u_explore[t] < p:
        return n_models - 1, True, p, shat[n_models - 1]
    q, z, b = queues[SAT], queues[LAT], queues[BUD]
    cost_weight = (params.V if params.use_sat else 0.0) + (b / params.budget if params.use_budget else 0.0)
    sat_weight = q if params.use_sat else params.V
    best, best_score = 0, np.inf
    for m in range(n_models):
        score = cost_weight * state.cost_estimate[m] - sat_weight * shat[m]
        if params.use_lat:
            score += z * miss_estimate(m, params, state)
        if score < best_score:  # strict: exact ties go to the cheaper model (cost order)
            best, best_score = m, score
    return best, False, p, shat[best]


@nb.njit(cache=True)
def complete(t, model, explored, cost_row, label_row, latency, service, params, state, pred):
    """t's service ended: the router sees its cost and latency (and an exploration's labels)."""
    est, count = state.cost_estimate, state.cost_count
    n_models = est.shape[0]
    observed = 0.0
    if explored:
        for m in range(n_models):
            observed += cost_row[m]
            count[m] += 1.0
            est[m] += (cost_row[m] - est[m]) / count[m]
        state.mask[:] = True
        train(t, label_row, state.mask, pred)
    else:
        observed = cost_row[model]
        count[model] += 1.0
        est[model] += (cost_row[model] - est[model]) / count[model]
    if params.use_budget:
        b = state.queues[BUD] + observed / params.budget - 1.0
        state.queues[BUD] = b if b > 0.0 else 0.0
    if params.use_lat:
        z = state.queues[LAT] + (1.0 if latency > params.deadline_s else 0.0) - params.max_miss
        state.queues[LAT] = z if z > 0.0 else 0.0
    # the served model's service time (for an exploration an upper bound: the request ends with its slowest part)
    state.service_hist[model, _bin(service)] += 1.0
    state.service_sum[model] += service
    state.service_count[model] += 1.0


@nb.njit(cache=True)
def feedback(t, model, explored, label_row, params, state, pred):
    """The user's verdict on t arrived: the satisfaction queue, and training if configured."""
    if params.use_sat:
        q = state.queues[SAT] + params.alpha - label_row[model]
        state.queues[SAT] = q if q > 0.0 else 0.0
    if params.learn_from_exploit and not explored:
        state.mask[:] = False
        state.mask[model] = True
        train(t, label_row, state.mask, pred)


@nb.njit(cache=True)
def _record(t, params, state, pred, model_out, explored_out, p_out, qt_out, shat_out):
    qt_out[t] = state.queues[SAT]
    m, explored, p, s = decide(t, params, state, pred)
    model_out[t] = m
    explored_out[t] = explored
    p_out[t] = p
    shat_out[t] = s
    return m, explored


@nb.njit(cache=True)
def deliver_and_decide(t, pending, n_pending, cost, sat, model_out, explored_out, p_out, qt_out, shat_out,
                       arrival_s, start_s, end_s, params, state, pred):
    """The engine's call (sim/world/engine.py): completions and feedback delivered since the last decision, in
    order, then decide t. A completion's latency and service time are read only for requests that have ended."""
    for i in range(n_pending):
        u = pending[i] >> 1
        if pending[i] & 1 == 0:
            complete(u, model_out[u], explored_out[u], cost[u], sat[u], end_s[u] - arrival_s[u],
                     end_s[u] - start_s[u], params, state, pred)
        else:
            feedback(u, model_out[u], explored_out[u], sat[u], params, state, pred)
    if t < 0:
        return 0, False
    return _record(t, params, state, pred, model_out, explored_out, p_out, qt_out, shat_out)


@nb.njit(cache=True)
def run_sequential_kernel(sat, cost, feedback_mask, params, state, pred, model_out, explored_out, p_out, qt_out,
                          shat_out):
    """Sequential mode: no clock, so zero load and zero latencies (the latency queue never grows)."""
    for t in range(sat.shape[0]):
        m, explored = _record(t, params, state, pred, model_out, explored_out, p_out, qt_out, shat_out)
        complete(t, m, explored, cost[t], sat[t], 0.0, 0.0, params, state, pred)
        if feedback_mask[t]:
            feedback(t, m, explored, sat[t], params, state, pred)


class MultiRouter:
    """The engines' entry points (the same as a Python plugin's: ``deliver_and_decide``, ``run_sequential``)."""

    kind = None  # not a kind of sim/policies/router.py

    def __init__(self, params: MultiParams, state: MultiState, predictor, where: str):
        self.params, self.state, self.predictor, self.where = params, state, predictor, where
        self._clock = None

    @property
    def u_explore(self):
        return self.state.u_explore

    @u_explore.setter
    def u_explore(self, value) -> None:  # the runner drops the draws after the run
        self.state = self.state._replace(u_explore=np.ones(0) if value is None else value)

    @property
    def queue_log(self) -> np.ndarray:
        return self.state.queue_log

    def set_availability(self, avail) -> None:
        if avail is not None:
            raise UserError(f"{self.where}: messplus_multi does not support model outages (events: down) yet")

    def bind_world(self, arrival_s, start_s, end_s, capacity) -> np.ndarray:
        """Called by the discrete-event engine before the run: the clock columns it fills (read here only for
        requests whose completion has been delivered), the slots per model; returns the load array it fills at
        every decision."""
        self._clock = (np.ascontiguousarray(arrival_s, np.float64), start_s, end_s)
        self.state.capacity[:] = np.asarray(capacity, np.float64)
        return self.state.load

    def deliver_and_decide(self, t, pending, n_pending, cost, sat, model_out, explored_out, p_out, qt_out,
                           shat_out):
        arrival_s, start_s, end_s = self._clock
        return deliver_and_decide(t, pending, n_pending, cost, sat, model_out, explored_out, p_out, qt_out,
                                  shat_out, arrival_s, start_s, end_s, self.params, self.state, self.predictor)

    def run_sequential(self, sat, cost, feedback_mask, out: dict) -> None:
        run_sequential_kernel(sat, cost, feedback_mask, self.params, self.state, self.predictor, out["model"],
                              out["explored"], out["p_explore"], out["q_tracked"], out["s_hat"])


def queue_kinds(policy: cfg.MessPlusMulti, scenario_constraints: list) -> list[str]:
    """The constraint kinds this policy keeps a queue for; each must be a constraint of the scenario."""
    have = [c.kind for c in scenario_constraints]
    if policy.constraints == "all":
        return have
    missing = [k for k in policy.constraints if k not in have]
    if missing:
        raise UserError(f"policy {policy.label}: constraints {missing} are not in the scenario's constraints "
                        f"({have}); add them under 'constraints:'")
    return list(dict.fromkeys(policy.constraints))


def build_messplus_multi(policy: cfg.MessPlusMulti, context) -> MultiRouter:
    """The registry's builder (sim/config.py)."""
    from sim.evaluation.constraints import scenario_constraints
    from sim.policies.registry import _predictor

    trace = context.trace
    constraints = scenario_constraints(context.scenario, context.alpha)
    kinds = queue_kinds(policy, constraints)
    by_kind = {c.kind: c for c in constraints}
    lat, bud = by_kind.get("latency"), by_kind.get("budget")
    params = MultiParams(
        V=float(policy.V), c=float(policy.c), alpha=float(context.alpha),
        deadline_s=float(lat.deadline_s) if lat else 0.0, max_miss=float(lat.max_miss) if lat else 0.0,
        budget=float(bud.max_cost_per_request) if bud else 1.0, use_sat="satisfaction" in kinds,
        use_lat="latency" in kinds, use_budget="budget" in kinds, learn_from_exploit=bool(policy.learn_from_exploit))
    m = trace.m
    state = MultiState(
        queues=np.zeros(3), queue_log=np.zeros((trace.n, 3)), cost_estimate=np.ones(m), cost_count=np.zeros(m),
        u_explore=context.u_explore, predicted=np.full(m, np.nan), mask=np.zeros(m, np.bool_),
        service_hist=np.zeros((m, N_BINS)), service_sum=np.zeros(m), service_count=np.zeros(m),
        load=np.zeros((2, m)), capacity=np.full(m, np.inf))
    if policy.energy_estimate == "oracle":  # fixed at the trace's per-model means: infinite counts freeze them
        state.cost_estimate[:] = trace.outcomes.cost.mean(axis=0)
        state.cost_count[:] = np.inf
    return MultiRouter(params, state, _predictor(policy, trace, context.seed), f"policy {policy.label}")


class ShortestQueueRouter:
    """``shortest_queue``: join the shortest queue among the models that meet alpha on average.

    It learns nothing from completions or feedback; its decision reads only the load the engine hands it at
    the request's arrival (sequential mode: zeros, so it always takes the cheapest eligible model).
    """

    kind = None

    def __init__(self, eligible: np.ndarray, n_models: int, where: str):
        self.eligible = eligible  # model indices, cheapest first
        self.where = where
        self.load = np.zeros((2, n_models))
        self.capacity = np.full(n_models, np.inf)
        self.u_explore = None

    def set_availability(self, avail) -> None:
        if avail is not None:
            raise UserError(f"{self.where}: shortest_queue does not support model outages (events: down) yet")

    def bind_world(self, arrival_s, start_s, end_s, capacity) -> np.ndarray:
        self.capacity[:] = np.asarray(capacity, np.float64)
        return self.load

    def _choose(self) -> int:
        best, best_len = int(self.eligible[0]), np.inf
        for m in self.eligible:
            cap = self.capacity[m]
            length = 0.0 if not np.isfinite(cap) else (self.load[0, m] + self.load[1, m]) / cap
            if length < best_len:  # strict: ties go to the cheaper model
                best, best_len = int(m), length
        return best

    def deliver_and_decide(self, t, pending, n_pending, cost, sat, model_out, explored_out, p_out, qt_out,
                           shat_out):
        if t < 0:
            return 0, False
        m = self._choose()
        model_out[t], explored_out[t], p_out[t], qt_out[t], shat_out[t] = m, False, 0.0, 0.0, np.nan
        return m, False

    def run_sequential(self, sat, cost, feedback_mask, out: dict) -> None:
        out["model"][:] = self._choose()
        out["s_hat"][:] = np.nan


def build_shortest_queue(policy: cfg.ShortestQueue, context) -> ShortestQueueRouter:
    """Eligible: the models whose full-data mean accuracy is at least alpha (as random_with_constraint knows it);
    if none is, the most accurate one alone."""
    trace = context.trace
    if policy.models is not None:  # named by the operator: reads no outcome at all
        from sim.policies.registry import model_index

        chosen = sorted({model_index(trace, name, f"policy {policy.label}") for name in policy.models})
        return ShortestQueueRouter(np.array(chosen), trace.m, f"policy {policy.label}")
    acc = np.array([trace.outcomes.sat[:, i].mean() for i in range(trace.m)])
    eligible = np.flatnonzero(acc >= context.alpha)
    if eligible.size == 0:
        eligible = np.array([int(np.argmax(acc))])
    return ShortestQueueRouter(eligible, trace.m, f"policy {policy.label}")
