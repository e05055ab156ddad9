"""Tests for sim.evaluation.bounds: the offline optimum against linprog, hand cases, the queue identity, the drift
inequality, and the bound checker on correct and deliberately broken policies."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sim.evaluation.bounds import IDENTITY_TOL, bounds, exploration_probabilities, guarantees_block, lyapunov_B, queue_identity, queue_recursion
from sim.evaluation.optimum import hindsight_oracle, lp_value_linprog, offline_optimum

# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------


def routing_totals(o, P, E):
    """Mean cost and satisfaction of the randomized routing, recomputed independently of the module."""
    T = P.shape[0]
    x = np.zeros_like(P)
    x[np.arange(T), o.choice] = 1.0
    if o.split >= 0:
        x[o.split, o.choice[o.split]] -= o.split_weight
        x[o.split, o.split_model] += o.split_weight
    assert np.all(x >= -1e-15) and np.allclose(x.sum(axis=1), 1.0)
    return float((x * E).sum() / T), float((x * P).sum() / T)


def random_instance(rng, kind):
    T = int(rng.integers(1, 61))
    M = int(rng.integers(2, 7))
    if kind == "generic":
        P, E = rng.random((T, M)), rng.random((T, M))
    elif kind == "group":  # group-level probabilities and costs: many exact ties at lambda*
        G = int(rng.integers(1, 4))
        g = rng.integers(0, G, T)
        P = np.sort(rng.random((G, M)), axis=1)[g]
        E = np.sort(rng.random((G, M)) * 10.0, axis=1)[g]
    elif kind == "rounded":  # coarse grids: ties in P, in E, and dominated models
        P = np.round(rng.random((T, M)), 1)
        E = np.round(rng.random((T, M)) * 4.0)
    else:  # cost-ordered zoo with per-request noise
        E = np.sort(rng.random(M)) * 100.0 * (0.5 + rng.random((T, M)))
        P = np.sort(rng.random((T, M)), axis=1)
    return P, E


def alpha_for(rng, regime, P, E):
    T = P.shape[0]
    smax = float(P.max(axis=1).mean())
    s0 = float(P[np.arange(T), E.argmin(axis=1)].mean())
    if regime == "infeasible":
        return smax + 0.01 + 0.1 * rng.random()
    if regime == "cheapest":
        return s0 * rng.random()
    if regime == "boundary":
        return smax
    return s0 + (smax - s0) * rng.random()


def messplus(P, E, alpha, V, c, seed, flip=False):
    """A minimal sequential MESS+ with the oracle predictor and exact per-model costs (column means)."""
    rng = np.random.default_rng(seed)
    T, M = P.shape
    Ebar = E.mean(axis=0)
    S = (rng.random((T, M)) < P).astype(float)
    U = rng.random(T)
    p = exploration_probabilities(c, T)
    q = 0.0
    cost, sat = np.empty(T), np.empty(T)
    explored = np.zeros(T, dtype=bool)
    choice = np.empty(T, dtype=np.int64)
    sign = -1.0 if flip else 1.0
    for t in range(T):
        if U[t] < p[t]:
            explored[t] = True
            m = M - 1
            cost[t] = E[t].sum()
        else:
            m = int(np.argmin(V * Ebar + sign * q * (alpha - P[t])))
            cost[t] = E[t, m]
        choice[t] = m
        sat[t] = S[t, m]
        q = max(0.0, q + alpha - sat[t])
    return dict(cost=cost, sat=sat, explored=explored, choice=choice, Q_T=q, S=S)


def synthetic(T, seed):
    rng = np.random.default_rng(seed)
    theta = np.array([-0.5, 0.6, 1.0])
    d = rng.normal(0.0, 1.5, T)
    P = 1.0 / (1.0 + np.exp(-(theta[None, :] - d[:, None])))
    E = np.array([80.0, 390.0, 2000.0]) * (0.7 + 0.6 * rng.random((T, 3)))
    return P, E


def by_name(entries):
    return {e["bound"]: e for e in entries}


# ---------------------------------------------------------------------------------------------------
# offline optimum
# ---------------------------------------------------------------------------------------------------

KINDS = ["generic", "group", "rounded", "zoo"]
REGIMES = ["interior", "interior", "cheapest", "infeasible", "boundary"]


def test_offline_optimum_matches_linprog():
    rng = np.random.default_rng(20250519)
    counts = {"feasible": 0, "infeasible": 0, "lam0": 0, "group": 0, "split": 0}
    for i in range(160):
        kind = KINDS[i % len(KINDS)]
        regime = REGIMES[(i // len(KINDS)) % len(REGIMES)]
        P, E = random_instance(rng, kind)
        alpha = alpha_for(rng, regime, P, E)
        o = offline_optimum(P, E, alpha)
        ref = lp_value_linprog(P, E, alpha)
        assert o.choice.dtype == np.int16 and o.choice.shape == (P.shape[0],)
        cost, sat = routing_totals(o, P, E)
        assert abs(cost - o.cost) <= 1e-12 * max(1.0, abs(cost))
        assert abs(sat - o.satisfaction) <= 1e-12
        if not o.feasible:
            counts["infeasible"] += 1
            assert math.isnan(ref), (i, kind, regime, ref)
            assert o.lam == math.inf and o.split == -1
            # the max-satisfaction routing, cheapest among the max-P models
            assert np.allclose(P[np.arange(P.shape[0]), o.choice], P.max(axis=1))
            continue
        counts["feasible"] += 1
        counts["lam0"] += o.lam == 0.0
        counts["group"] += kind == "group"
        counts["split"] += o.split >= 0
        assert not math.isnan(ref), (i, kind, regime)
        assert abs(o.cost - ref) <= 1e-9, (i, kind, regime, o.cost, ref)
        assert sat >= alpha - 1e-12
        assert 0.0 <= o.split_weight < 1.0
        if o.split >= 0:
            assert o.split_model != o.choice[o.split] and o.split_weight > 0.0
    assert counts["feasible"] >= 100 and counts["infeasible"] >= 20
    assert counts["lam0"] >= 20 and counts["group"] >= 20 and counts["split"] >= 20


def test_offline_optimum_hand_cases():
    # One request, two models: mix half-half; lambda = (3 - 1) / (1 - 0.5) = 4.
    o = offline_optimum([[0.5, 1.0]], [[1.0, 3.0]], 0.75)
    assert o.feasible and o.lam == pytest.approx(4.0)
    assert (o.split, o.split_model, o.choice[0]) == (0, 1, 0)
    assert o.split_weight == pytest.approx(0.5) and o.cost == pytest.approx(2.0)
    assert o.satisfaction == pytest.approx(0.75)

    # The cheapest routing already meets alpha: lambda = 0.
    o = offline_optimum([[0.9, 1.0], [0.7, 1.0]], [[1.0, 2.0], [1.0, 2.0]], 0.8)
    assert o.lam == 0.0 and o.split == -1 and o.cost == 1.0 and list(o.choice) == [0, 0]

    # Infeasible: the max-satisfaction routing, cheapest among ties, feasible=False.
    o = offline_optimum([[0.3, 0.5, 0.5]], [[1.0, 2.0, 5.0]], 0.6)
    assert not o.feasible and o.lam == math.inf and list(o.choice) == [1] and o.cost == 2.0

    # Four tied requests: two switch fully in request order, the third is split with weight 0.4.
    P = np.tile([0.5, 1.0], (4, 1))
    E = np.tile([1.0, 3.0], (4, 1))
    o = offline_optimum(P, E, 0.8)
    assert list(o.choice) == [1, 1, 0, 0]
    assert (o.split, o.split_model) == (2, 1) and o.split_weight == pytest.approx(0.4)
    assert o.cost == pytest.approx(2.2) and o.lam == pytest.approx(4.0)

    # Three models on a convex hull: slopes 10/3 then 20; alpha = 0.55 lands on the second segment.
    o = offline_optimum([[0.2, 0.5, 0.6]], [[0.0, 1.0, 3.0]], 0.55)
    assert list(o.choice) == [1] and o.split_model == 2
    assert o.split_weight == pytest.approx(0.5) and o.cost == pytest.approx(2.0) and o.lam == pytest.approx(20.0)

    # A dominated model (higher cost, lower P than model 2) is never used.
    o = offline_optimum([[0.2, 0.4, 0.6]], [[0.0, 3.0, 2.0]], 0.4)
    assert o.choice[0] == 0 and o.split_model == 2 and o.cost == pytest.approx(1.0) and o.lam == pytest.approx(5.0)

    # Equal costs: the LP takes the more accurate model at no extra cost; lambda = 0.
    o = offline_optimum([[0.3, 0.8]], [[1.0, 1.0]], 0.5)
    assert o.cost == 1.0 and o.lam == 0.0 and o.satisfaction >= 0.5 - 1e-12

    # alpha exactly the maximal satisfaction: all requests on their max-P model.
    o = offline_optimum([[0.2, 0.9], [0.4, 0.6]], [[1.0, 2.0], [1.0, 2.0]], 0.75)
    assert o.feasible and list(o.choice) == [1, 1] and o.split == -1 and o.cost == 2.0

    with pytest.raises(ValueError):
        offline_optimum(np.zeros((0, 2)), np.zeros((0, 2)), 0.5)
    with pytest.raises(ValueError):
        offline_optimum([[0.1, np.nan]], [[1.0, 2.0]], 0.5)


def test_offline_optimum_large_group_trace_is_exact_and_fast():
    rng = np.random.default_rng(3)
    T, M = 50_000, 3
    g = rng.integers(0, 8, T)
    P = np.sort(rng.random((8, M)), axis=1)[g]
    E = np.broadcast_to([80.0, 390.0, 2000.0], (T, M)).copy()
    alpha = 0.5 * (P[:, 0].mean() + P.max(axis=1).mean())
    o = offline_optimum(P, E, alpha)
    cost, sat = routing_totals(o, P, E)
    assert o.feasible and abs(sat - alpha) <= 1e-12 and abs(cost - o.cost) <= 1e-9
    # Lagrangian optimality at lambda: each request sits on a minimiser of E - lambda P.
    lag = E - o.lam * P
    taken = lag[np.arange(T), o.choice]
    assert np.all(taken <= lag.min(axis=1) + 1e-9 * np.abs(lag).max())


# ---------------------------------------------------------------------------------------------------
# hindsight oracle, queue identity, drift
# ---------------------------------------------------------------------------------------------------


def test_hindsight_oracle():
    S = np.array([[0, 1, 1], [0, 0, 0], [1, 1, 0], [0.2, 0.7, 0.7]], dtype=float)
    E = np.array([[1, 2, 3], [1, 2, 3], [5, 1, 0], [1, 4, 4]], dtype=float)
    assert list(hindsight_oracle(S, E)) == [1, 0, 1, 1]


def test_queue_identity_random_sequences():
    rng = np.random.default_rng(11)
    for i in range(200):
        T = int(rng.integers(1, 400))
        alpha = float(rng.random())
        s = (rng.random(T) < rng.random()).astype(float) if i % 2 else rng.random(T)
        QT = queue_identity(s, alpha)
        ref = 0.0
        for x in s:
            ref = max(0.0, ref + alpha - x)
        assert QT == ref
        assert s.mean() >= alpha - QT / T - IDENTITY_TOL
        assert QT >= np.sum(alpha - s) - IDENTITY_TOL * T
    # Never empties: the identity is an equality.
    assert queue_identity(np.zeros(10), 0.25) == pytest.approx(2.5)


def test_drift_inequality_per_step():
    rng = np.random.default_rng(12)
    for i in range(200):
        T = int(rng.integers(1, 300))
        alpha = float(rng.random())
        s = (rng.random(T) < rng.random()).astype(float) if i % 2 else rng.random(T)
        Q = queue_recursion(s, alpha)
        B = lyapunov_B(alpha)
        lhs = Q[1:] ** 2 / 2 - Q[:-1] ** 2 / 2
        rhs = B + Q[:-1] * (alpha - s)
        assert np.all(lhs <= rhs + 1e-12 * (1 + Q.max()) ** 2)
        e = by_name(bounds(alpha=alpha, V=0.1, c=0.0, E=np.ones((T, 2)), cost=np.ones(T), sat=s))
        assert e["drift_per_step"]["holds"] and e["queue_identity"]["holds"]


def test_exploration_probabilities():
    p = exploration_probabilities(0.1, 2376)
    assert p[0] == p[1] == 0.1 and p[16] == pytest.approx(0.05)
    assert p.sum() == pytest.approx(4 / 3 * 0.1 * 2376**0.75, rel=0.02)
    assert np.all(exploration_probabilities(5.0, 10) <= 1.0)


# ---------------------------------------------------------------------------------------------------
# bounds on MESS+ runs
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("V", [1e-4, 1e-3, 1e-2, 1e-1])
@pytest.mark.parametrize("c", [0.0, 0.1])
def test_messplus_oracle_satisfies_all_bounds(V, c):
    P, E = synthetic(3000, seed=7)
    alpha = 0.6
    r = messplus(P, E, alpha, V, c, seed=int(V * 1e4) + int(c * 10))
    entries = bounds(
        alpha=alpha, V=V, c=c, E=E, P=P, cost=r["cost"], sat=r["sat"], explored=r["explored"],
        Q_T=r["Q_T"], choice=r["choice"],
    )
    for e in entries:
        assert e["applicable"], e
        assert e["holds"], e
    names = {e["bound"] for e in entries}
    assert names == {"queue_identity", "queue_consistency", "drift_per_step", "cost_opt_B_over_V",
                     "backlog_Q_T_over_T", "exploration_count"}


def test_flipped_queue_sign_is_reported_as_violated():
    P, E = synthetic(3000, seed=8)
    alpha, V = 0.6, 1e-2
    r = messplus(P, E, alpha, V, 0.0, seed=1, flip=True)
    e = by_name(bounds(alpha=alpha, V=V, c=0.0, E=E, P=P, cost=r["cost"], sat=r["sat"],
                       explored=r["explored"], Q_T=r["Q_T"]))
    assert r["sat"].mean() < alpha
    assert e["backlog_Q_T_over_T"]["applicable"] and e["backlog_Q_T_over_T"]["holds"] is False
    assert e["queue_identity"]["holds"]  # the identity itself is never violated


def test_violations_are_reported():
    P, E = synthetic(2000, seed=9)
    T, alpha, V = P.shape[0], 0.6, 1e-2
    r = messplus(P, E, alpha, V, 0.0, seed=2)
    # A run that misreports a small backlog while its satisfaction is below target.
    s_bad = r["sat"].copy()
    s_bad[: T // 2] = 0.0
    e = by_name(bounds(alpha=alpha, V=V, c=0.0, E=E, P=P, cost=r["cost"], sat=s_bad, Q_T=0.0))
    assert e["queue_consistency"]["holds"] is False
    # A policy that always pays for the largest model with a large V: cost far above OPT + B/V.
    cost = E[:, 2].copy()
    sat = (np.random.default_rng(0).random(T) < P[:, 2]).astype(float)
    e = by_name(bounds(alpha=alpha, V=10.0, c=0.0, E=E, P=P, cost=cost, sat=sat, explored=np.zeros(T)))
    assert e["cost_opt_B_over_V"]["holds"] is False
    # Exploring on every request with c = 0.1: the count is far outside the band.
    e = by_name(bounds(alpha=alpha, V=V, c=0.1, E=E, P=P, cost=r["cost"], sat=r["sat"], explored=np.ones(T)))
    assert e["exploration_count"]["holds"] is False
    # Drift check on a corrupted satisfaction (outside [0, 1]) fails.
    s_out = r["sat"].copy()
    s_out[100] = -3.0
    e = by_name(bounds(alpha=alpha, V=V, c=0.0, E=E, cost=r["cost"], sat=s_out))
    assert e["drift_per_step"]["holds"] is False


def test_assumptions_make_bounds_not_applicable():
    P, E = synthetic(1000, seed=10)
    alpha, V = 0.6, 1e-2
    r = messplus(P, E, alpha, V, 0.1, seed=3)
    common = dict(alpha=alpha, V=V, c=0.1, E=E, P=P, cost=r["cost"], sat=r["sat"], explored=r["explored"])
    cases = [
        (dict(feedback_rate=0.2), "sparse feedback"),
        (dict(feedback_delay=50.0), "delayed feedback"),
        (dict(sequential=False), "discrete-event"),
        (dict(iid=False), "not i.i.d."),
        (dict(predictor="logistic"), "learned predictor"),
        (dict(predictor="noisy_oracle"), "without a prediction-error"),
        (dict(exact_costs=False), "cost estimates"),
    ]
    for kw, word in cases:
        e = by_name(bounds(**common, **kw))
        for name in ("cost_opt_B_over_V", "backlog_Q_T_over_T"):
            assert not e[name]["applicable"] and e[name]["holds"] is None and word in e[name]["reason"]
        assert e["queue_identity"]["applicable"] and e["drift_per_step"]["applicable"]
    # A noisy oracle with its error series is covered, with the 2 Q_t eps_t term in the limit.
    eps = np.full(P.shape[0], 0.05)
    e0 = by_name(bounds(**common))
    e1 = by_name(bounds(**common, predictor="noisy_oracle", pred_error=eps))
    assert e1["cost_opt_B_over_V"]["applicable"]
    assert e1["cost_opt_B_over_V"]["value"] > e0["cost_opt_B_over_V"]["value"]
    assert e1["backlog_Q_T_over_T"]["value"] > e0["backlog_Q_T_over_T"]["value"]
    # Without P there is no OPT.
    e = by_name(bounds(alpha=alpha, V=V, c=0.0, E=E, cost=r["cost"], sat=r["sat"]))
    assert not e["cost_opt_B_over_V"]["applicable"]


def test_guarantees_block_is_json():
    P, E = synthetic(800, seed=4)
    r = messplus(P, E, 0.6, 1e-2, 0.1, seed=5)
    block = guarantees_block(S=r["S"], alpha=0.6, V=1e-2, c=0.1, E=E, P=P, cost=r["cost"], sat=r["sat"],
                             explored=r["explored"], Q_T=r["Q_T"])
    text = json.dumps(block, allow_nan=False)
    back = json.loads(text)
    assert set(back) >= {"opt_cost", "opt_lambda", "hindsight_cost", "bounds"}
    assert back["opt_cost"] == pytest.approx(offline_optimum(P, E, 0.6).cost)
    assert isinstance(back["hindsight_lp_cost"], float) and isinstance(back["hindsight_cost"], float)
    for e in back["bounds"]:
        assert set(e) >= {"bound", "value", "measured", "margin", "holds", "applicable", "reason", "tolerance"}
