"""The routing decision, the cost estimates and the tracked queue, as three numba kernels.

A router lives through three calls, in the order the world allows:

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

import numba as nb
import numpy as np

from sim.policies.predictors import PredictorState, predict, train

PLAN, MESSPLUS, THRESHOLD = 0, 1, 2
QUANTILE_STEP = 0.002  # step of the threshold router's online quantile tracking (scores lie in [0, 1])
EST_LAST, EST_MEAN = 0, 1
# integer parameters: kind, energy estimate, explore_needs_feedback, weak, strong, learn_from_exploit
# float parameters:   V, alpha, c, threshold, strong share (< 0: fixed threshold), quantile step


@nb.njit(cache=True, inline="always")
def explore_probability(t, c):
    tt = t if t > 1 else 1
    p = c / tt**0.25
    return p if p < 1.0 else 1.0


@nb.njit(cache=True, inline="always")  # inlined into the sequential loop: docs/performance.md
def decide(t, ip, fp, q_tracked, ehat, plan, u_explore, shat, avail,
           kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b, indptr, index, value, groups, fdim):
    """Route request t. Returns (model, explored, p_explore, predicted satisfaction of the chosen model).

    ``avail`` is (T, M) bool (a model out of service, sim/world/events.py) or has 0 rows (every model always available).
    An unavailable model is never chosen; an exploration draw while one is out becomes an exploit decision.
    """
    n_models = shat.shape[0]
    gated = avail.shape[0] > 0
    if ip[0] == PLAN:
        return plan[t], False, 0.0, np.nan
    predict(t, shat, kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b,
            indptr, index, value, groups, fdim)
    if ip[0] == THRESHOLD:
        weak, strong = ip[3], ip[4]
        score = shat[strong] * (1.0 - shat[weak])  # P(strong right and weak wrong), RouteLLM's win rate
        m = strong if score > fp[3] else weak
        if fp[4] >= 0.0:  # track the score's (1 - share) quantile, so that a share fp[4] of requests go strong
            fp[3] += fp[5] * ((1.0 if score > fp[3] else 0.0) - fp[4])
        if gated and not avail[t, m]:
            m = weak if m == strong else strong
            if not avail[t, m]:
                m = 0
                while not avail[t, m]:
                    m += 1
        return m, False, 0.0, shat[m]
    p = explore_probability(t, fp[2])
    if u_explore[t] < p and not (gated and not avail[t].all()):
        return n_models - 1, True, p, shat[n_models - 1]
    V, q = fp[0], q_tracked[0]
    # argmin_m V ehat[m] + q (alpha - shat[m]), compared by differences with the best so far: a small cost gap
    # is not absorbed into a large queue term (V = 1e-8, Q = 1e6). Strict < breaks exact ties towards the
    # earlier, cheaper model (cost order); see docs/invariants.md and tests/test_numerics.py.
    # Tied predictions (an untrained predictor, or one that has only seen equal labels) leave the queue no lever:
    # the tie rule then gives the larger model the largest edge it could have (1), so it is taken once
    # q > V (ehat[m] - ehat[best]) and Q can still raise satisfaction (docs/theory.md, "Tied predictions").
    best_m = 0
    if gated:
        while not avail[t, best_m]:
            best_m += 1
    for m in range(best_m + 1, n_models):
        if gated and not avail[t, m]:
            continue
        gap = V * (ehat[m] - ehat[best_m])
        if shat[m] == shat[best_m]:
            if q > 0.0 and q > gap:
                best_m = m
        elif gap + q * (shat[best_m] - shat[m]) < 0.0:
            best_m = m
    return best_m, False, p, shat[best_m]


@nb.njit(cache=True, inline="always")
def decide_and_record(t, ip, fp, q_tracked, ehat, plan, u_explore, shat, avail,
                      model_out, explored_out, p_out, qt_out, shat_out,
                      kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b, indptr, index, value, groups,
                      fdim):
    """``decide`` for request t, with the decision columns both engines record; returns (model, explored)."""
    qt_out[t] = q_tracked[0]
    m, explored, p, s_hat = decide(t, ip, fp, q_tracked, ehat, plan, u_explore, shat, avail,
                                   kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b,
                                   indptr, index, value, groups, fdim)
    model_out[t] = m
    explored_out[t] = explored
    p_out[t] = p
    shat_out[t] = s_hat
    return m, explored


@nb.njit(cache=True, inline="always")  # inlined into the sequential loop: docs/performance.md
def complete(t, model, explored, energy_row, label_row, ip, ehat, ecount, mask_buf,
             kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b, indptr, index, value, groups, fdim):
    """Service of t ended: update the cost estimates; an exploration without feedback gate trains now."""
    n_models = ehat.shape[0]
    if explored:
        for m in range(n_models):
            ecount[m] += 1.0
            if ip[1] == EST_LAST:
                ehat[m] = energy_row[m]
            else:
                ehat[m] += (energy_row[m] - ehat[m]) / ecount[m]
        if ip[0] == MESSPLUS and ip[2] == 0:
            mask_buf[:] = True
            train(t, label_row, mask_buf, kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b,
                  indptr, index, value, groups, fdim)
    elif ip[1] == EST_MEAN:
        ecount[model] += 1.0
        ehat[model] += (energy_row[model] - ehat[model]) / ecount[model]


@nb.njit(cache=True, inline="always")  # inlined into the sequential loop: docs/performance.md
def feedback(t, model, explored, label_row, ip, fp, q_tracked, mask_buf,
             kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b, indptr, index, value, groups, fdim):
    """The user's verdict on t arrived: update Q_tracked and train where configured."""
    q = q_tracked[0] + fp[1] - label_row[model]
    q_tracked[0] = q if q > 0.0 else 0.0
    if ip[0] == MESSPLUS and explored and ip[2] == 1:
        mask_buf[:] = True
    elif ip[0] == THRESHOLD or (ip[0] == MESSPLUS and not explored and ip[5] == 1):
        mask_buf[:] = False
        mask_buf[model] = True
    else:
        return
    train(t, label_row, mask_buf, kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b,
          indptr, index, value, groups, fdim)


class Router:
    """The mutable state of one policy's router, and cheap Python entry points to the kernels."""

    def __init__(self, *, kind: int, n_models: int, n_requests: int, predictor: PredictorState | None,
                 u_explore: np.ndarray | None = None, plan: np.ndarray | None = None, V: float = 0.0,
                 alpha: float = 0.0, c: float = 0.0, threshold: float = 0.0, energy_estimate: int = EST_MEAN,
                 explore_needs_feedback: bool = False, weak: int = 0, strong: int = 0,
                 learn_from_exploit: bool = False, strong_share: float | None = None):
        self.ip = np.array([kind, energy_estimate, int(explore_needs_feedback), weak, strong,
                            int(learn_from_exploit)], np.int64)
        self.fp = np.array([V, alpha, c, threshold, -1.0 if strong_share is None else strong_share, QUANTILE_STEP],
                           np.float64)
        self.q_tracked = np.zeros(1)
        self.ehat = np.ones(n_models)  # the reference implementation starts every estimate at 1 J
        self.ecount = np.zeros(n_models)
        self.plan = plan if plan is not None else np.zeros(0, np.int64)
        self.avail = np.ones((0, n_models), np.bool_)  # no rows: every model always available
        # read by MESS+ only (a plan or a threshold never explores)
        self.u_explore = u_explore if u_explore is not None else np.ones(n_requests if kind == MESSPLUS else 0)
        self.shat = np.full(n_models, np.nan)
        self.mask = np.zeros(n_models, np.bool_)
        if predictor is None:
            from sim.policies.predictors import MATRIX

            z = np.zeros((0, n_models))
            predictor = PredictorState(MATRIX, np.zeros(6), z, z, z, np.zeros((0, 0)), np.zeros(n_models),
                                       np.zeros((0, 0)), np.zeros(n_models), np.zeros(1, np.int64),
                                       np.zeros(0, np.int32), np.zeros(0), np.zeros(1, np.int32), 0)
        self.predictor = predictor
        self.pargs = predictor.arrays()

    @property
    def kind(self) -> int:
        return int(self.ip[0])

    def decide(self, t: int):
        return decide(t, self.ip, self.fp, self.q_tracked, self.ehat, self.plan, self.u_explore, self.shat, self.avail,
                      *self.pargs)

    def complete(self, t: int, model: int, explored: bool, energy_row: np.ndarray, label_row: np.ndarray):
        complete(t, model, explored, energy_row, label_row, self.ip, self.ehat, self.ecount, self.mask,
                 *self.pargs)

    def feedback(self, t: int, model: int, explored: bool, label_row: np.ndarray):
        feedback(t, model, explored, label_row, self.ip, self.fp, self.q_tracked, self.mask, *self.pargs)

    def set_availability(self, avail: np.ndarray | None) -> None:
        """Models out of service (sim/world/events.py): (T, M) bool; a plan is moved off unavailable models."""
        if avail is None:
            return
        self.avail = np.ascontiguousarray(avail, dtype=np.bool_)
        if self.kind == PLAN and len(self.plan):
            from sim.world.events import remap_plan

            self.plan = remap_plan(self.plan, self.avail)
