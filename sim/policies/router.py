"""The routing decision, the cost estimates and the tracked queue, as three numba kernels.

A router lives through three calls, in the order the world allows:

Each kernel takes the router's parameters (:data:`RouterParams`), its state (:data:`RouterState`) and its
predictor's state (:data:`~sim.policies.predictors.Predictor`) as named tuples, ``decide(t, params, state,
pred)``; adding a field is a change in the file that defines the tuple.

- ``decide(t)`` at request t's arrival, reading only t's features and what was delivered before;
- ``complete(t, ...)`` when t's service ends: the provider observes the energy it spent (and, for an
  exploration, the evaluation of every model's answer unless ``explore_needs_feedback``);
- ``feedback(t, ...)`` if and when the user's feedback arrives: Q_tracked and, if configured, training.

Sequential mode calls the three back to back inside one numba loop (``sim/world/sequential.py``); the
discrete-event engine calls them from event callbacks (``sim/world/engine.py``). Both use the same kernels, which is
why their decisions agree exactly when latency and delay are zero (test_invariants.py::test_sequential_des_parity).

:class:`Router` holds no reference to the trace's outcomes: the only outcome data it ever receives are
the rows handed to ``complete``/``feedback`` by the engine, after the fact.
"""

from __future__ import annotations

from collections import namedtuple

import numba as nb
import numpy as np

from sim.policies.ledger import new_ledger, record_decision
from sim.policies.predictors import Predictor, empty_predictor, predict, train
from sim.world.nrt import borrow

PLAN, MESSPLUS, THRESHOLD = 0, 1, 2
QUANTILE_STEP = 0.002  # step of the threshold router's online quantile tracking (scores lie in [0, 1])
EST_LAST, EST_MEAN = 0, 1
# MESS+'s exploration designs (docs/theory.md §4, "Cheaper exploration"): run every model, or one model drawn
# uniformly, or one drawn in proportion to the standard error of its mean-satisfaction estimate
EXPLORE_ALL, EXPLORE_ONE, EXPLORE_UNCERTAIN = 0, 1, 2

#: A router's fixed parameters (numba reads them as a typed tuple: scalars, by name).
RouterParams = namedtuple("RouterParams", [
    "kind",  # PLAN, MESSPLUS or THRESHOLD
    "cost_estimate_rule",  # EST_LAST or EST_MEAN: how the cost estimates follow the observed costs
    "explore_needs_feedback",  # MESS+: exploration labels train only when the user's feedback arrives
    "learn_from_exploit",  # MESS+: also train on the served model's label from exploit feedback
    "weak", "strong",  # threshold: the two models
    "V", "alpha", "c",  # MESS+: the cost weight, the SLA and the exploration constant
    "strong_share",  # threshold: the share of requests to send strong (< 0: a fixed threshold)
    "quantile_step",  # threshold: the step of the online quantile tracking
    "scale_free",  # messplus_auto: costs divided by their mean estimate; explore until every cost is observed
    "v_growth",  # messplus_auto: V_t = V * (t + 1) ** v_growth (0: a fixed V)
    "explore",  # MESS+: EXPLORE_ALL, EXPLORE_ONE or EXPLORE_UNCERTAIN
    "settle_error",  # MESS+: a model whose exploration estimate's standard error is at most this is not explored (0: never)
])

#: A router's state, updated in place by the kernels (every field an array).
RouterState = namedtuple("RouterState", [
    "q_tracked",  # (1,): the queue as delivered feedback tells it
    "threshold",  # (1,): the threshold router's current threshold
    "cost_estimate",  # (M,): the estimated cost of each model (the reference starts every one at 1)
    "cost_count",  # (M,): observations behind each estimate (inf: frozen)
    "plan",  # (T,) int64 or (0,): a plan router's model per request
    "u_explore",  # (T,) or (0,): MESS+'s exploration uniforms
    "predicted",  # (M,): scratch for the predictor's output
    "avail",  # (T, M) bool, or 0 rows: every model always available (sim/world/events.py)
    "mask",  # (M,) bool: scratch for which labels train
    "ledger",  # MESS+: the running sums behind the cost decomposition (sim/policies/ledger.py), or (0,)
    "explore_labels",  # (2, M): each model's exploration labels, their count (row 0) and sum (row 1)
])


@nb.njit(cache=True, inline="always")
def lend_state(state):
    """The state with every array borrowed (sim/world/nrt.py): call once per kernel entry, not per request."""
    return RouterState(borrow(state.q_tracked), borrow(state.threshold), borrow(state.cost_estimate),
                       borrow(state.cost_count), borrow(state.plan), borrow(state.u_explore),
                       borrow(state.predicted), borrow(state.avail), borrow(state.mask),
                       borrow(state.ledger), borrow(state.explore_labels))


# Calling a kernel from Python with named tuples costs ~20 us in numba's dispatcher (a tuple subclass is typed
# in Python): the discrete-event engine passes them inside one structref instead (sim/world/engine.py).


@nb.njit(cache=True, inline="always")
def explore_probability(t, c):
    tt = t if t > 1 else 1
    p = c / tt**0.25
    return p if p < 1.0 else 1.0


@nb.njit(cache=True, inline="always")
def explore_error(labels, m):
    """The standard error of model m's mean satisfaction estimated from its exploration labels, with the
    add-one-each (Agresti-Coull style) mean, so that it is defined (0.35) before any label."""
    n = labels[0, m]
    mean = (labels[1, m] + 1.0) / (n + 2.0)
    return np.sqrt(mean * (1.0 - mean) / (n + 2.0))


@nb.njit(cache=True, inline="always")
def explore_pick(params, state, u):
    """The model an exploration of one model runs (-1: every model is settled), from u uniform on [0, 1).

    Only the exploration labels of earlier requests enter, never request t's features: the choice is
    independent of (x_t, y_t) given the past, which is why unweighted training stays unbiased (docs/theory.md §4).
    """
    labels = state.explore_labels
    n_models = labels.shape[1]
    total = 0.0
    for m in range(n_models):
        err = explore_error(labels, m)
        if err > params.settle_error:
            total += err if params.explore == EXPLORE_UNCERTAIN else 1.0
    if total == 0.0:
        return -1
    target = u * total
    last = -1
    for m in range(n_models):
        err = explore_error(labels, m)
        if err > params.settle_error:
            last = m
            target -= err if params.explore == EXPLORE_UNCERTAIN else 1.0
            if target < 0.0:
                return m
    return last  # rounding: u * total fell on the total


@nb.njit(cache=True, inline="always")  # inlined into the sequential loop: docs/performance.md
def decide(t, params, state, pred):
    """Route request t. Returns (model, explored, p_explore, predicted satisfaction of the chosen model).

    ``state.avail`` is (T, M) bool (a model out of service, sim/world/events.py) or has 0 rows (every model
    always available). An unavailable model is never chosen; an exploration draw while one is out becomes an
    exploit decision.
    """
    shat, avail = state.predicted, state.avail
    n_models = shat.shape[0]
    gated = avail.shape[0] > 0
    if params.kind == PLAN:
        return state.plan[t], False, 0.0, np.nan
    predict(t, shat, pred)
    if params.kind == THRESHOLD:
        weak, strong = params.weak, params.strong
        score = shat[strong] * (1.0 - shat[weak])  # P(strong right and weak wrong), RouteLLM's win rate
        threshold = state.threshold
        m = strong if score > threshold[0] else weak
        if params.strong_share >= 0.0:  # track the score's (1 - share) quantile: that share of requests go strong
            threshold[0] += params.quantile_step * ((1.0 if score > threshold[0] else 0.0) - params.strong_share)
        if gated and not avail[t, m]:
            m = weak if m == strong else strong
            if not avail[t, m]:
                m = 0
                while not avail[t, m]:
                    m += 1
        return m, False, 0.0, shat[m]
    p = explore_probability(t, params.c)
    V, q, cost = params.V, state.q_tracked[0], state.cost_estimate
    if params.scale_free:  # docs/theory.md, "A MESS+ without a scale": no cost is known before it is observed
        if (state.cost_count == 0.0).any():
            p = 1.0
        else:  # V t^g / (mean estimated cost): the cost term in units of the zoo's own mean cost
            V = V * (t + 1.0) ** params.v_growth / cost.mean()
    if params.explore == EXPLORE_ALL:
        if params.settle_error > 0.0 and explore_pick(params, state, 0.0) < 0:
            p = 0.0  # every model is settled: exploration stops
        if state.u_explore[t] < p and not (gated and not avail[t].all()):
            return n_models - 1, True, p, shat[n_models - 1]
    elif p > 0.0:
        # given u < p, u / p is uniform on [0, 1): it draws the explored model, so no other draw is needed
        k = explore_pick(params, state, min(state.u_explore[t] / p, 1.0 - 1e-16))
        if k < 0:
            p = 0.0
        elif state.u_explore[t] < p and not (gated and not avail[t, k]):
            return k, True, p, shat[k]
    # argmin_m V cost[m] + q (alpha - shat[m]), compared by differences with the best so far: a small cost gap
    # is not absorbed into a large queue term (V = 1e-8, Q = 1e6). Strict < breaks exact ties towards the
    # earlier, cheaper model (cost order); see docs/invariants.md and tests/test_numerics.py.
    # Tied predictions (an untrained predictor, or one that has only seen equal labels) leave the queue no lever:
    # the tie rule then gives the larger model the largest edge it could have (1), so it is taken once
    # q > V (cost[m] - cost[best]) and Q can still raise satisfaction (docs/theory.md, "Tied predictions").
    best_m = 0
    if gated:
        while not avail[t, best_m]:
            best_m += 1
    for m in range(best_m + 1, n_models):
        if gated and not avail[t, m]:
            continue
        gap = V * (cost[m] - cost[best_m])
        if shat[m] == shat[best_m]:
            if q > 0.0 and q > gap:
                best_m = m
        elif gap + q * (shat[best_m] - shat[m]) < 0.0:
            best_m = m
    if state.ledger.shape[0] > 0:
        record_decision(shat, cost, best_m, state.ledger)
    return best_m, False, p, shat[best_m]


@nb.njit(cache=True, inline="always")
def decide_and_record(t, params, state, pred, model_out, explored_out, p_out, qt_out, shat_out):
    """``decide`` for request t, with the decision columns both engines record; returns (model, explored)."""
    qt_out[t] = state.q_tracked[0]
    m, explored, p, s_hat = decide(t, params, state, pred)
    model_out[t] = m
    explored_out[t] = explored
    p_out[t] = p
    shat_out[t] = s_hat
    return m, explored


@nb.njit(cache=True, inline="always")
def train_exploration(t, label_row, params, state, pred):
    """Train on an exploration's labels (``state.mask``) and count them towards each model's settled rule."""
    labels, mask = state.explore_labels, state.mask
    for m in range(mask.shape[0]):
        if mask[m]:
            labels[0, m] += 1.0
            labels[1, m] += label_row[m]
    train(t, label_row, mask, pred)


@nb.njit(cache=True, inline="always")  # inlined into the sequential loop: docs/performance.md
def complete(t, model, explored, cost_row, label_row, params, state, pred):
    """Service of t ended: update the cost estimates; an exploration without feedback gate trains now."""
    cost, count = state.cost_estimate, state.cost_count
    n_models = cost.shape[0]
    if explored and params.explore != EXPLORE_ALL:  # one model ran: its cost and label, like an exploit's
        count[model] += 1.0
        if params.cost_estimate_rule == EST_LAST:
            cost[model] = cost_row[model]
        else:
            cost[model] += (cost_row[model] - cost[model]) / count[model]
        if not params.explore_needs_feedback:
            state.mask[:] = False
            state.mask[model] = True
            train_exploration(t, label_row, params, state, pred)
    elif explored:
        for m in range(n_models):
            count[m] += 1.0
            if params.cost_estimate_rule == EST_LAST:
                cost[m] = cost_row[m]
            else:
                cost[m] += (cost_row[m] - cost[m]) / count[m]
        if params.kind == MESSPLUS and not params.explore_needs_feedback:
            state.mask[:] = True
            train_exploration(t, label_row, params, state, pred)
    elif params.cost_estimate_rule == EST_MEAN:
        count[model] += 1.0
        cost[model] += (cost_row[model] - cost[model]) / count[model]


@nb.njit(cache=True, inline="always")  # inlined into the sequential loop: docs/performance.md
def feedback(t, model, explored, label_row, params, state, pred):
    """The user's verdict on t arrived: update Q_tracked and train where configured."""
    q_tracked, mask = state.q_tracked, state.mask
    q = q_tracked[0] + params.alpha - label_row[model]
    q_tracked[0] = q if q > 0.0 else 0.0
    if params.kind == MESSPLUS and explored and params.explore_needs_feedback:
        if params.explore == EXPLORE_ALL:
            mask[:] = True
        else:
            mask[:] = False
            mask[model] = True
        train_exploration(t, label_row, params, state, pred)
        return
    elif params.kind == THRESHOLD or (params.kind == MESSPLUS and not explored and params.learn_from_exploit):
        mask[:] = False
        mask[model] = True
    else:
        return
    train(t, label_row, mask, pred)


class Router:
    """One policy's router: its parameters, its state and its predictor, and Python entry points to the kernels."""

    def __init__(self, *, kind: int, n_models: int, n_requests: int, predictor: Predictor | None,
                 u_explore: np.ndarray | None = None, plan: np.ndarray | None = None, V: float = 0.0,
                 alpha: float = 0.0, c: float = 0.0, threshold: float = 0.0, cost_estimate_rule: int = EST_MEAN,
                 explore_needs_feedback: bool = False, weak: int = 0, strong: int = 0,
                 learn_from_exploit: bool = False, strong_share: float | None = None, scale_free: bool = False,
                 v_growth: float = 0.0, explore: int = EXPLORE_ALL, settle_error: float = 0.0):
        self.params = RouterParams(
            kind=int(kind), cost_estimate_rule=int(cost_estimate_rule), explore_needs_feedback=bool(explore_needs_feedback),
            learn_from_exploit=bool(learn_from_exploit), weak=int(weak), strong=int(strong), V=float(V),
            alpha=float(alpha), c=float(c), strong_share=-1.0 if strong_share is None else float(strong_share),
            quantile_step=QUANTILE_STEP, scale_free=bool(scale_free), v_growth=float(v_growth),
            explore=int(explore), settle_error=float(settle_error))
        self.state = RouterState(
            q_tracked=np.zeros(1), threshold=np.array([float(threshold)]),
            cost_estimate=np.ones(n_models),  # the reference implementation starts every estimate at 1 J
            cost_count=np.zeros(n_models),
            plan=np.asarray(plan, np.int64) if plan is not None else np.zeros(0, np.int64),
            # read by MESS+ only (a plan or a threshold never explores)
            u_explore=u_explore if u_explore is not None else np.ones(n_requests if kind == MESSPLUS else 0),
            predicted=np.full(n_models, np.nan), avail=np.ones((0, n_models), np.bool_),
            mask=np.zeros(n_models, np.bool_),
            ledger=new_ledger() if kind == MESSPLUS else np.zeros(0),
            explore_labels=np.zeros((2, n_models)))
        self.predictor = predictor if predictor is not None else empty_predictor(n_models)

    @property
    def kind(self) -> int:
        return self.params.kind

    @property
    def q_tracked(self) -> np.ndarray:
        return self.state.q_tracked

    @property
    def u_explore(self) -> np.ndarray:
        return self.state.u_explore

    @u_explore.setter
    def u_explore(self, value) -> None:  # the runner drops the draws after the run (10^7-request runs)
        self.state = self.state._replace(u_explore=np.ones(0) if value is None else value)

    def decide(self, t: int):
        return decide(t, self.params, self.state, self.predictor)

    def complete(self, t: int, model: int, explored: bool, cost_row: np.ndarray, label_row: np.ndarray):
        complete(t, model, explored, cost_row, label_row, self.params, self.state, self.predictor)

    def feedback(self, t: int, model: int, explored: bool, label_row: np.ndarray):
        feedback(t, model, explored, label_row, self.params, self.state, self.predictor)

    def set_availability(self, avail: np.ndarray | None) -> None:
        """Models out of service (sim/world/events.py): (T, M) bool; a plan is moved off unavailable models."""
        if avail is None:
            return
        self.state = self.state._replace(avail=np.ascontiguousarray(avail, dtype=np.bool_))
        if self.kind == PLAN and len(self.state.plan):
            from sim.world.events import remap_plan

            self.state = self.state._replace(plan=remap_plan(self.state.plan, self.state.avail))
