"""The MESS+ arithmetic against hand-computed cases (reference §2)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.policies.predictors import MATRIX, GROUP_BETA, Predictor, make_predictor
from sim.policies.router import EST_LAST, EST_MEAN, MESSPLUS, PLAN, THRESHOLD, Router, explore_probability
from sim.policies.registry import mixture_for_alpha


def matrix_predictor(pred: np.ndarray) -> Predictor:
    n, m = pred.shape
    return make_predictor(MATRIX, m, 1, matrix=np.ascontiguousarray(pred, float), n_requests=n)


def messplus(pred, V=1.0, alpha=0.5, c=0.0, est=EST_MEAN, u=None, needs_feedback=False):
    n, m = pred.shape
    return Router(kind=MESSPLUS, n_models=m, n_requests=n, predictor=matrix_predictor(pred),
                  u_explore=np.ones(n) if u is None else u, V=V, alpha=alpha, c=c, cost_estimate_rule=est,
                  explore_needs_feedback=needs_feedback)


def test_explore_probability_schedule():
    assert explore_probability(0, 0.1) == pytest.approx(0.1)  # t = 0 counts as 1
    assert explore_probability(1, 0.1) == pytest.approx(0.1)
    assert explore_probability(16, 0.1) == pytest.approx(0.05)  # 16^(1/4) = 2
    assert explore_probability(0, 3.0) == 1.0
    # the reference's worked example: c = 0.1, T = 2,376 gives about 45 explorations
    expected = sum(explore_probability(t, 0.1) for t in range(2376))
    assert expected == pytest.approx(4 / 3 * 0.1 * 2376**0.75, rel=0.03)
    assert 44 <= expected <= 46


def test_exploit_decision_hand_computed():
    # scores V*E + Q*(alpha - s): with E = [1, 10], Q = 5, alpha = 0.5, s = [0.2, 0.9]
    # model 0: 1 + 5*0.3 = 2.5; model 1: 10 + 5*(-0.4) = 8  -> model 0
    r = messplus(np.array([[0.2, 0.9]]), V=1.0)
    r.state.cost_estimate[:] = [1.0, 10.0]
    r.q_tracked[0] = 5.0
    assert r.decide(0) == (0, False, 0.0, pytest.approx(0.2))
    # with Q = 20: model 0: 1 + 6 = 7; model 1: 10 - 8 = 2 -> model 1
    r.q_tracked[0] = 20.0
    assert r.decide(0)[0] == 1


def test_ties_go_to_the_cheaper_model():
    r = messplus(np.array([[0.5, 0.5, 0.5]]), V=1.0)
    r.state.cost_estimate[:] = [3.0, 3.0, 3.0]
    assert r.decide(0)[0] == 0


def test_exploration_serves_largest_and_trains_all():
    u = np.array([0.05, 0.99])
    r = messplus(np.array([[0.9, 0.9, 0.9], [0.9, 0.9, 0.9]]), c=0.1, u=u)
    m, explored, p, _ = r.decide(0)
    assert (m, explored, p) == (2, True, pytest.approx(0.1))
    m, explored, p, _ = r.decide(1)
    assert not explored and p == pytest.approx(0.1)


def test_queue_update_on_feedback():
    r = messplus(np.array([[0.5, 0.5]]), alpha=0.7)
    labels = np.array([0.0, 1.0])
    r.feedback(0, 0, False, labels)  # s = 0: Q = 0 + 0.7 - 0
    assert r.q_tracked[0] == pytest.approx(0.7)
    r.feedback(0, 1, False, labels)  # s = 1: Q = 0.7 + 0.7 - 1
    assert r.q_tracked[0] == pytest.approx(0.4)
    r.feedback(0, 1, False, labels)  # max(0, 0.4 - 0.3)
    r.feedback(0, 1, False, labels)
    assert r.q_tracked[0] == 0.0


def test_cost_estimates_last_and_mean():
    pred = np.full((3, 2), 0.5)
    last, mean = messplus(pred, est=EST_LAST), messplus(pred, est=EST_MEAN)
    assert list(last.state.cost_estimate) == [1.0, 1.0]  # the reference starts at 1 J
    for r in (last, mean):
        r.complete(0, 1, True, np.array([10.0, 100.0]), np.zeros(2))
        r.complete(1, 1, True, np.array([20.0, 300.0]), np.zeros(2))
        r.complete(2, 0, False, np.array([60.0, 999.0]), np.zeros(2))
    assert list(last.state.cost_estimate) == [20.0, 300.0]  # overwritten by the latest exploration; exploit ignored
    assert list(mean.state.cost_estimate) == pytest.approx([30.0, 200.0])  # (10 + 20 + 60) / 3, (100 + 300) / 2


def test_group_beta_learns_only_from_explorations_by_default():
    n, m = 4, 2
    pred = make_predictor(GROUP_BETA, m, 1, n_requests=n)
    r = Router(kind=MESSPLUS, n_models=m, n_requests=n, predictor=pred, u_explore=np.ones(n), V=1, alpha=0.5)
    r.complete(0, 1, True, np.ones(m), np.array([1.0, 0.0]))  # exploration: Beta(2,1), Beta(1,2)
    r.feedback(1, 0, False, np.array([0.0, 0.0]))  # exploit feedback: queue only
    assert pred.beta_a[0].tolist() == [2.0, 1.0] and pred.beta_b[0].tolist() == [1.0, 2.0]
    _, _, _, s = r.decide(2)
    assert s == pytest.approx(2 / 3)


def test_threshold_router_score():
    pred = np.array([[0.6, 0.9], [0.8, 0.85]])
    r = Router(kind=THRESHOLD, n_models=2, n_requests=2, predictor=matrix_predictor(pred), threshold=0.3,
               weak=0, strong=1)
    assert r.decide(0)[0] == 1  # 0.9 * 0.4 = 0.36 > 0.3
    assert r.decide(1)[0] == 0  # 0.85 * 0.2 = 0.17


def test_plan_router_replays_its_plan():
    r = Router(kind=PLAN, n_models=3, n_requests=3, predictor=None, plan=np.array([2, 0, 1]))
    assert [r.decide(t)[0] for t in range(3)] == [2, 0, 1]


def test_mixture_for_alpha_hand_computed():
    # accuracies 0.4 / 0.6 / 0.7, costs 1 / 5 / 20, alpha 0.5: half 0 and half 1, cost 3
    w = mixture_for_alpha(np.array([0.4, 0.6, 0.7]), np.array([1.0, 5.0, 20.0]), 0.5)
    assert w == pytest.approx([0.5, 0.5, 0.0])


def test_threshold_router_tracks_a_strong_share():
    rng = np.random.default_rng(0)
    n = 20000
    pred = np.column_stack([rng.random(n), rng.random(n)])
    r = Router(kind=THRESHOLD, n_models=2, n_requests=n, predictor=matrix_predictor(pred), threshold=0.5,
               weak=0, strong=1, strong_share=0.3)
    strong = np.array([r.decide(t)[0] for t in range(n)])
    assert strong[n // 2:].mean() == pytest.approx(0.3, abs=0.02)  # after the threshold has settled
    # the threshold is the score's 70 % quantile: score = s1 (1 - s0) of two uniforms
    scores = pred[:, 1] * (1 - pred[:, 0])
    assert r.state.threshold[0] == pytest.approx(np.quantile(scores, 0.7), abs=0.02)
