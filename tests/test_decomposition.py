"""The cost decomposition (docs/theory.md, "Where the cost goes") and messplus_auto's scale freedom."""

from __future__ import annotations

import numpy as np
import pytest

from sim import config as cfg
from sim.evaluation.optimum import offline_optimum
from sim.policies.ledger import N_EXPLOIT, POLICY_COST, informed_lp
from sim.policies.registry import build_router
from sim.rng import stream
from sim.running.runner import build_trace, simulate_scenario

ZOO3 = {"accuracy": {"small": 0.38, "medium": 0.54, "large": 0.61},
        "energy_j": {"small": 80.0, "medium": 394.0, "large": 2003.0}}
ZOO5 = {"accuracy": {"a": 0.30, "b": 0.45, "c": 0.55, "d": 0.62, "e": 0.66},
        "energy_j": {"a": 10.0, "b": 40.0, "c": 150.0, "d": 600.0, "e": 2000.0}}


def scenario(zoo, *, n=4000, mode="sequential", alpha=0.5, scale=1.0, policies=None, seed=3):
    energy = {k: v * scale for k, v in zoo["energy_j"].items()}
    return cfg.Scenario.model_validate({
        "name": "decomp", "seed": seed, "alpha": alpha,
        "trace": {"synth": {"requests": n, "arrivals": {"process": "poisson", "rate": 2.0},
                            "groups": {"g": {"accuracy": zoo["accuracy"], "energy_j": energy}}}},
        "feedback": {"rate": 1.0, "delay": {"dist": "exponential", "mean_s": 3.0}},
        "engine": {"mode": mode},
        "policies": policies or [
            {"kind": "messplus", "V": 1e-2, "c": 0.2, "predictor": {"kind": "logistic"}},
            {"kind": "messplus", "name": "mp_oracle", "V": 1e-2, "c": 0.2, "predictor": {"kind": "oracle"}},
            {"kind": "messplus_auto"},
            {"kind": "best_fixed_mixture"},
            {"kind": "always", "model": list(zoo["accuracy"])[-1]},
            {"kind": "offline_optimum"},
        ]})


@pytest.mark.parametrize("zoo, mode, alpha", [(ZOO3, "sequential", 0.5), (ZOO3, "des", 0.55), (ZOO5, "des", 0.6)])
def test_parts_add_up_and_each_is_recomputed(zoo, mode, alpha):
    sc = scenario(zoo, mode=mode, alpha=alpha)
    trace = build_trace(sc)
    result = simulate_scenario(sc, trace)
    o = trace.outcomes
    opt = offline_optimum(o.p_true, o.cost, alpha).cost
    for label, p in result.summary["policies"].items():
        if not p["causal"]:
            assert "cost_decomposition" not in p
            continue
        d = p["cost_decomposition"]
        parts = d["optimum"] + d["information"] + d["routing"] + d["exploration"]
        assert parts == pytest.approx(p["cost_per_request"], rel=1e-12, abs=0)
        assert d["optimum"] == pytest.approx(opt, rel=1e-12)
        rows = result.frames[label]
        explored = rows["explored"].to_numpy()
        model = rows["model_index"].to_numpy().astype(np.int64)
        served = o.cost[np.arange(trace.n), model]
        # the explorations' cost (every model) beyond the policy's mean cost per exploit request
        extra = (o.cost[explored].sum() - explored.sum() * served[~explored].mean()) / trace.n
        assert d["exploration"] == pytest.approx(extra, rel=1e-9, abs=1e-12)
        # the other three parts split the mean cost per exploit request
        assert d["optimum"] + d["information"] + d["routing"] == pytest.approx(served[~explored].mean(), rel=1e-9)
        assert (d["exploration"] > 0) == bool(explored.any())
        if p["kind"] in ("always", "best_fixed_mixture"):  # no per-request prediction: no routing part
            assert d["routing"] == 0.0
            assert d["information"] == pytest.approx(p["cost_per_request"] - opt, rel=1e-9)
        else:
            assert d["informed_lp_feasible"] is True


def step_router(policy: dict, sc, trace):
    """Run a MESS+ router request by request from Python, recording what it predicted at each exploit decision."""
    pol = cfg.Scenario.model_validate({**sc.model_dump(), "policies": [policy]}).policies[0]
    u = stream(sc.seed, "explore").random(trace.n)
    router = build_router(pol, trace, sc.alpha, sc.seed, u)
    o = trace.outcomes
    shats, costs, chosen = [], [], []
    for t in range(trace.n):
        m, explored, _, _ = router.decide(t)
        if not explored:
            shats.append(router.state.predicted.copy())
            costs.append(router.state.cost_estimate.copy())
            chosen.append(m)
        router.complete(t, m, explored, o.cost[t], o.sat[t])
        router.feedback(t, m, explored, o.sat[t])
    return router, np.array(shats), np.array(costs), np.array(chosen)


@pytest.mark.parametrize("policy", [
    {"kind": "messplus", "V": 1e-2, "c": 0.2, "predictor": {"kind": "logistic"}},
    {"kind": "messplus", "V": 1e-3, "c": 0.2, "predictor": {"kind": "noisy_oracle", "sigma": 0.5}},
    {"kind": "messplus_auto"},
])
@pytest.mark.parametrize("zoo", [ZOO3, ZOO5])
def test_ledger_matches_the_exact_informed_lp(policy, zoo):
    sc = scenario(zoo, n=3000, alpha=0.55)
    trace = build_trace(sc)
    router, shat, cost, chosen = step_router(policy, sc, trace)
    ledger = router.state.ledger
    assert ledger[N_EXPLOIT] == len(chosen)
    assert ledger[POLICY_COST] == pytest.approx(cost[np.arange(len(chosen)), chosen].sum(), rel=1e-12)
    exact = offline_optimum(shat, cost, sc.alpha)
    assert exact.feasible
    lp, feasible = informed_lp(ledger, sc.alpha)
    assert feasible
    # the slope bins are 1.2 % wide: the ledger's LP is within that of the exact one
    assert lp == pytest.approx(exact.cost * len(chosen), rel=2e-3)



def test_messplus_auto_is_scale_free():
    """Costs rescaled by 1e-6 and 1e3: the same decisions (the initial estimates and V follow the scale)."""
    pols = [{"kind": "messplus_auto", "predictor": {"kind": "oracle"}}]
    runs = []
    for scale in (1e-6, 1.0, 1e3):
        sc = scenario(ZOO3, n=3000, scale=scale, policies=pols)
        runs.append(simulate_scenario(sc).frames["messplus_auto"]["model_index"].to_numpy())
    # division by the mean estimate is exact only up to rounding: allow a handful of near-tie flips
    assert (runs[0] != runs[1]).mean() < 0.002 and (runs[2] != runs[1]).mean() < 0.002


def test_fixed_v_messplus_is_not_scale_free():
    """The contrast that makes the test above able to fail: plain MESS+ routes differently when costs rescale."""
    pols = [{"kind": "messplus", "V": 1e-2, "c": 0.1, "predictor": {"kind": "oracle"}}]
    a = simulate_scenario(scenario(ZOO3, n=3000, policies=pols)).frames["messplus"]["model_index"].to_numpy()
    b = simulate_scenario(scenario(ZOO3, n=3000, scale=1e-6, policies=pols)).frames["messplus"]["model_index"]
    assert (a != b.to_numpy()).mean() > 0.1


def test_messplus_auto_backlog_check():
    """sim check's growing-V backlog bound: applicable with the oracle predictor (and holds), n.a. otherwise."""
    pols = [{"kind": "messplus_auto", "predictor": {"kind": "oracle"}}, {"kind": "messplus_auto", "name": "learned"}]
    sc = scenario(ZOO3, n=3000, policies=pols)
    res = simulate_scenario(sc).summary["policies"]
    entry = {label: next(b for b in p["guarantees"]["bounds"] if b["bound"] == "backlog_Q_T_over_T_auto")
             for label, p in res.items()}
    oracle, learned = entry["messplus_auto"], entry["learned"]
    assert oracle["applicable"] and oracle["holds"]
    assert oracle["measured"] == pytest.approx(res["messplus_auto"]["violation"], rel=1e-12)
    assert oracle["detail"]["V_T"] == pytest.approx(0.3 * 3000 ** (1 / 3))
    assert not learned["applicable"] and learned["holds"] is None
