"""Issue 13: the paper's baselines, predictor init and the tie rule, the one SLA verdict, infeasible targets,
and `sim check` on split_by: group scenarios."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sim import config as cfg
from sim.cli.check import check_scenarios
from sim.evaluation.sla import Z, verdict
from sim.policies.baselines import PAPER_STEPS, best_fixed_mixture, paper_mixture
from sim.policies.predictors import build_predictor, predict
from sim.running.runner import build_trace, simulate_scenario

ARC_C = {"accuracy": {"l1b": 0.3788, "l8b": 0.5444, "l70b": 0.6084},
         "energy_j": {"l1b": 79.87, "l8b": 393.66, "l70b": 2002.59}}


def scenario(policies, alpha=0.5, requests=1172, seed=42, **extra) -> cfg.Scenario:
    raw = {"name": "t", "seed": seed, "alpha": alpha, "engine": {"mode": "sequential", "progress": False},
           "trace": {"synth": {"requests": requests, "groups": {"arc_challenge": ARC_C}}}, "policies": policies,
           **extra}
    return cfg.Scenario.model_validate(raw)


def test_paper_mixture_stops_at_once_when_uniform_meets_alpha():
    mix = paper_mixture([0.4, 0.6, 0.7], 0.55)  # uniform: 0.5667 >= 0.55
    assert mix.steps == 0 and mix.feasible
    assert mix.weights == pytest.approx([1 / 3] * 3)


def test_paper_mixture_hand_computed_steps():
    # one step by hand: the uniform mean is 17/30; 0.6 and 0.7 lie above it (x1.01), 0.4 below (x0.99)
    a = np.array([0.4, 0.6, 0.7])
    p = np.array([0.99, 1.01, 1.01]) / 3.01
    assert paper_mixture(a, float(p @ a) - 1e-6).steps == 1
    mix = paper_mixture(a, 0.65)
    assert mix.weights @ a >= 0.65 - 1e-6
    # one step fewer would not have reached alpha: it stops at the first step that does
    assert paper_mixture(a, 0.65).steps > 1
    prev = paper_mixture(a, float(paper_mixture(a, 0.65).weights @ a) - 1e-6)
    assert prev.steps == mix.steps


def test_paper_mixture_infeasible_runs_all_steps_and_says_why():
    mix = paper_mixture([0.4, 0.6, 0.7], 0.8, ["s", "m", "l"])
    assert not mix.feasible and mix.steps == PAPER_STEPS
    assert mix.weights[2] > 0.999 and "best: l at 0.7000" in mix.reason


def test_best_fixed_mixture_is_the_cheaper_baseline():
    a, e = np.array([0.4, 0.6, 0.7]), np.array([1.0, 5.0, 20.0])
    lp, paper = best_fixed_mixture(a, e, 0.5), paper_mixture(a, 0.5)
    assert lp.weights == pytest.approx([0.5, 0.5, 0.0])
    assert lp.weights @ e < paper.weights @ e  # 3 vs 26/3
    assert not best_fixed_mixture(a, e, 0.9).feasible


def test_summary_has_mixture_feasibility_and_sla(capsys):
    s = scenario([{"kind": "random_with_constraint"}, {"kind": "best_fixed_mixture"}, {"kind": "offline_optimum"},
                  {"kind": "always", "model": "l1b"}])
    pols = simulate_scenario(s).summary["policies"]
    assert capsys.readouterr().err == ""  # alpha = 0.5 is reachable: no warning
    assert pols["random_with_constraint"]["mixture"] == pytest.approx({"l1b": 1 / 3, "l8b": 1 / 3, "l70b": 1 / 3})
    w = pols["best_fixed_mixture"]["mixture"]
    assert w["l70b"] == 0.0 and 0 < w["l1b"] < 1 and sum(w.values()) == pytest.approx(1.0)
    assert all(pols[k]["feasible"] for k in ("random_with_constraint", "best_fixed_mixture", "offline_optimum"))
    sla = pols["always:l1b"]["sla"]
    assert sla["met"] is False and sla["alpha"] == 0.5 and set(sla) == {"met", "satisfaction", "alpha", "tolerance",
                                                                        "rule"}
    assert sla["tolerance"] == pytest.approx(Z * math.sqrt(0.25 / 1172))


def test_infeasible_alpha_is_flagged_once_on_stderr(capsys):
    s = scenario([{"kind": "random_with_constraint"}, {"kind": "best_fixed_mixture"}, {"kind": "offline_optimum"}],
                 alpha=0.9)
    pols = simulate_scenario(s).summary["policies"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: t: the SLA target is out of reach")
    for k, p in pols.items():
        assert p["feasible"] is False and "alpha = 0.9" in p["infeasible_reason"], k
    assert pols["random_with_constraint"]["mixture"]["l70b"] > 0.999


def test_sla_verdict_edges():
    tol = Z * math.sqrt(0.5 * 0.5 / 1000)
    assert verdict(0.5 - tol, 0.5, 1000)["met"] and not verdict(0.5 - tol - 1e-9, 0.5, 1000)["met"]
    assert verdict(0.51, 0.5, 1000)["met"]


def test_predictor_init():
    s = scenario([{"kind": "always", "model": "l1b"}], requests=200)
    trace = build_trace(s)
    out = np.zeros(3)

    def first_prediction(init, seed=1, **kw):
        st = build_predictor(cfg.LogisticPredictor(kind="logistic", init=init, **kw), trace.features, 3, None, seed,
                             "p", trace.models)
        predict(0, out, st)
        return out.copy()

    assert (first_prediction("zeros") == 0.5).all()
    r = first_prediction("random")
    assert len(set(r)) == 3 and (first_prediction("random") == r).all()  # seeded: the same run, the same weights
    assert (first_prediction("random", seed=2) != r).any()
    assert first_prediction("prior") == pytest.approx([0.45, 0.5, 0.55])
    assert first_prediction("prior", prior={"l1b": 0.3, "l8b": 0.5, "l70b": 0.6}) == pytest.approx([0.3, 0.5, 0.6])
    with pytest.raises(Exception, match="prior"):
        cfg.LogisticPredictor(kind="logistic", prior={"l1b": 0.3})


@pytest.mark.parametrize("seed", [42, 43, 44])
def test_tied_predictions_do_not_collapse_messplus(seed):
    """The issue's failure: zero-initialised predictions tie, and without the tie rule every exploit goes to the
    cheapest model (27 % against alpha = 55 %). With it, Q raises satisfaction to the SLA."""
    s = scenario([{"kind": "messplus", "V": 1e-4, "c": 0.01, "predictor": {"kind": "logistic", "init": "zeros"}},
                  {"kind": "messplus", "name": "beta", "V": 1e-4, "c": 0.01, "predictor": {"kind": "group_beta"}}],
                 alpha=0.55, seed=seed)
    for label, p in simulate_scenario(s).summary["policies"].items():
        assert p["call_ratio"]["l1b"] < 0.9, label
        assert p["sla"]["met"], (label, p["satisfaction"])


def test_check_runs_split_scenarios_group_by_group(tmp_path):
    groups = {"a": {**ARC_C, "weight": 1, "alpha": 0.5}, "b": {**ARC_C, "weight": 1, "alpha": 0.55}}
    s = cfg.Scenario.model_validate({
        "name": "split", "seed": 3, "alpha": 0.5, "split_by": "group", "engine": {"mode": "sequential"},
        "trace": {"synth": {"requests": 800, "groups": groups}},
        "policies": [{"kind": "always", "model": "l1b"}, {"kind": "best_fixed_mixture"}]})
    outs = check_scenarios(s)
    assert [o.scenario for o in outs] == ["split/a", "split/b"]
    assert [o.summary["alpha"] for o in outs] == [0.5, 0.55]
    assert all(any("always:l1b" in m for m in o.sla_misses) for o in outs)
    assert not any(o.bound_failures for o in outs)


def test_check_cli_prints_one_row_per_group_and_sla_misses_apart(tmp_path, capsys):
    from sim.cli import main as cli_main

    path = tmp_path / "s.yaml"
    groups = {"a": {**ARC_C, "weight": 1, "alpha": 0.5}, "b": {**ARC_C, "weight": 1, "alpha": 0.55}}
    path.write_text(json.dumps({
        "name": "split", "seed": 3, "alpha": 0.5, "split_by": "group", "engine": {"mode": "sequential"},
        "trace": {"synth": {"requests": 800, "groups": groups}},
        "policies": [{"kind": "always", "model": "l1b"}, {"kind": "best_fixed_mixture"}]}))
    assert cli_main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "one row per group" in out and "SLA missed split/a/always:l1b" in out
    assert "all applicable bounds hold; 2 policy run(s) missed the SLA (not a bound violation" in out
