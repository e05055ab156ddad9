"""CI regression on the guarantees: the scenarios/guarantees suite must pass ``sim check --strict``, and a
MESS+ whose queue term has the wrong sign must make ``sim check`` fail and name the violated bound."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import sim.running.runner
from sim import config as cfg
from sim.cli import main
from sim.cli.check import check_scenario
from sim.errors import CheckFailed
from sim.evaluation.guarantees import sla_met_from
from sim.running.runner import simulate_scenario

REPO = Path(__file__).resolve().parents[1]
SUITE = sorted(str(p) for p in (REPO / "scenarios" / "guarantees").glob("*.yaml"))
ORACLE = str(REPO / "scenarios" / "guarantees" / "v_sweep_oracle.yaml")


def test_suite_passes_strict(capsys):
    assert len(SUITE) >= 5
    rc = main(["check", *SUITE, "--strict"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "all applicable bounds hold and every expectation passes" in out
    for bound in ("cost_opt_B_over_V", "backlog_Q_T_over_T", "exploration_count", "queue_identity"):
        assert bound in out
    assert "n.a." in out  # the sparse/delayed/learned runs show the bounds they do not satisfy as not applicable


def python_sequential(router, sat, cost, given, flip=False):
    """The loop of sim.world.sequential._run in Python, with the same kernels; ``flip`` negates the queue term.

    The exploit score is V * ehat[m] + q * (alpha - s_hat[m]); handing ``decide`` -q instead of q gives
    V * ehat[m] - q * (alpha - s_hat[m]): the queue now pushes towards the *least* accurate model.
    """
    n = sat.shape[0]
    out = {"model": np.zeros(n, np.int64), "explored": np.zeros(n, np.bool_), "p_explore": np.zeros(n),
           "q_tracked": np.zeros(n), "s_hat": np.zeros(n)}
    for t in range(n):
        q = router.q_tracked[0]
        out["q_tracked"][t] = q
        if flip:
            router.q_tracked[0] = -q
        m, explored, p, s_hat = router.decide(t)
        router.q_tracked[0] = q
        out["model"][t], out["explored"][t], out["p_explore"][t], out["s_hat"][t] = m, explored, p, s_hat
        router.complete(t, m, explored, cost[t], sat[t])
        if given[t]:
            router.feedback(t, m, explored, sat[t])
    return out


def small_oracle_scenario(requests=4000):
    raw = cfg.read_scenario_file(ORACLE)
    raw["trace"]["synth"]["requests"] = requests
    raw["expect"] = []
    return cfg.validate_scenario(raw)


def test_python_loop_reproduces_the_numba_loop(monkeypatch):
    """The harness used to break the policy is faithful: unflipped, it gives the same run bit for bit."""
    sc = small_oracle_scenario()
    ref = simulate_scenario(sc).summary["policies"]
    monkeypatch.setattr(sim.running.runner, "run_sequential", lambda r, s, c, g: python_sequential(r, s, c, g))
    got = simulate_scenario(sc).summary["policies"]
    assert json.dumps(ref, sort_keys=True) == json.dumps(got, sort_keys=True)


def test_flipped_queue_sign_fails_check_and_names_the_bound(monkeypatch, capsys):
    def broken(router, sat, cost, given):
        return python_sequential(router, sat, cost, given, flip=router.kind == 1)

    monkeypatch.setattr(sim.running.runner, "run_sequential", broken)
    with pytest.raises(CheckFailed, match="backlog_Q_T_over_T"):
        check_scenario_and_raise(small_oracle_scenario())
    rc = main(["check", ORACLE, "--set", "trace.synth.requests=4000", "--set", "expect=[]"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "check failed:" in err and "backlog_Q_T_over_T" in err and "V=1e" in err


def check_scenario_and_raise(scenario):
    o = check_scenario(scenario)
    if o.bound_failures:
        raise CheckFailed("; ".join(o.bound_failures))


def test_summary_has_guarantees_block():
    sc = small_oracle_scenario(2000)
    pols = simulate_scenario(sc).summary["policies"]
    g = pols["V=1e-2"]["guarantees"]
    names = {b["bound"] for b in g["bounds"]}
    assert {"queue_identity", "cost_opt_B_over_V", "backlog_Q_T_over_T", "exploration_count"} <= names
    assert g["opt_cost"] is not None and g["hindsight_cost"] is not None
    assert all(b["applicable"] and b["holds"] for b in g["bounds"])
    other = pols["offline_optimum"]["guarantees"]
    assert {b["bound"] for b in other["bounds"]} == {"queue_identity", "queue_consistency", "drift_per_step"}
    json.dumps(pols)


def test_sla_met_from():
    q = np.array([0.5, 1.0, 0.5, 0.0, 0.0])  # Q_t / t = 0.5, 0.5, 0.167, 0, 0
    assert sla_met_from(q, 0.01) == 4
    assert sla_met_from(np.zeros(3), 0.01) == 1
    assert sla_met_from(np.array([0.0, 0.0, 1.0]), 0.01) is None
