"""Scenarios on real data (skipped without ../shared/data), the recipe trace source, and scenario events."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from sim import config as cfg
from sim.errors import UserError
from sim.world.events import availability, recovery, warp_times
from sim.running.runner import build_trace, simulate_scenario

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SCEN = REPO / "scenarios"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent (../shared/data)")


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(REPO)  # scenario paths are relative to the repository root


def load(name: str, *overrides: str) -> cfg.Scenario:
    return cfg.load_scenario(SCEN / f"{name}.yaml", list(overrides))[0]


# ------------------------------------------------------------------ real-data scenarios

@needs_data
@pytest.mark.parametrize("name,overrides", [
    ("routerbench_usd", []),
    ("routellm_mmlu", []),
    ("bursty_code", ["trace.recipe.rows=1500"]),
])
def test_real_scenario_runs(name, overrides):
    sc = load(name, *overrides)
    res = simulate_scenario(sc)
    s = res.summary
    assert s["trace"]["requests"] > 0
    for p in s["policies"].values():
        assert 0.0 <= p["satisfaction"] <= 1.0 and np.isfinite(p["cost_total"])


@needs_data
def test_bursty_code_queues():
    sc = load("bursty_code", "trace.recipe.rows=3000")
    s = simulate_scenario(sc).summary
    p = s["policies"]["always:Yi-34B-Chat"]
    assert p["wait_s"]["p95"] > 5.0  # bursts exceed the slots: real queueing delay


@needs_data
def test_routerbench_azure_acceptance():
    sc = load("routerbench_azure")
    trace = build_trace(sc)
    o, g = trace.outcomes, trace.features.groups
    yi, ll = trace.models.index("Yi-34B-Chat"), trace.models.index("llama-2-70b-chat")
    for gi, name in enumerate(trace.features.group_names):
        rows = g == gi
        assert o.cost[rows, ll].mean() > o.cost[rows, yi].mean(), name
        assert o.sat[rows, ll].mean() < o.sat[rows, yi].mean(), name
    acc = o.sat.mean(axis=0)
    assert acc.min() < sc.alpha < acc.max()
    s = simulate_scenario(sc).summary
    for label in ("messplus", "messplus_feedback"):
        ratio = s["policies"][label]["call_ratio_exploit"]["llama-2-70b-chat"]
        assert ratio < 0.05, (label, ratio)


@needs_data
def test_recipe_equals_manual_import(tmp_path):
    """The recipe gives the same trace as the CLI's import + compose steps."""
    from sim.trace.importers.arrivals import import_arrivals
    from sim.trace.importers.compose import compose
    from sim.trace.importers.outcomes import import_outcomes
    from sim.trace.format import load_trace

    sc = load("routerbench_azure")
    r = sc.trace.recipe
    import_outcomes(r.outcomes.path, tmp_path / "o.parquet", preset="routerbench", models=r.outcomes.models,
                    log=lambda m: None)
    import_arrivals(r.arrivals.path, tmp_path / "a.parquet", preset="azure", log=lambda m: None)
    compose(tmp_path / "o.parquet", tmp_path / "a.parquet", tmp_path / "t.parquet", assign=r.assign, seed=sc.seed,
            profile=r.profile.path, gpu="H100", mapping=dict((k, (v, None)) for k, v in r.profile.map.items()),
            log=lambda m: None)
    manual = load_trace(tmp_path / "t.parquet")
    auto = build_trace(sc)
    assert auto.models == manual.models
    np.testing.assert_array_equal(auto.arrival_s, manual.arrival_s)
    np.testing.assert_array_equal(auto.outcomes.cost, manual.outcomes.cost)
    np.testing.assert_array_equal(auto.outcomes.sat, manual.outcomes.sat)


def test_recipe_missing_file_is_one_line(tmp_path):
    raw = {"alpha": 0.5, "trace": {"recipe": {"outcomes": {"path": str(tmp_path / "nope.csv"), "preset": "routerbench"}}},
           "policies": [{"kind": "always", "model": "x"}]}
    sc = cfg.validate_scenario(raw)
    with pytest.raises(UserError) as e:
        build_trace(sc)
    msg = str(e.value)
    assert "nope.csv" in msg and "no such file" in msg and "\n" not in msg


def test_recipe_and_path_are_exclusive():
    raw = {"alpha": 0.5, "trace": {"path": "x.parquet", "recipe": {"outcomes": {"path": "y.csv"}}},
           "policies": [{"kind": "always", "model": "x"}]}
    with pytest.raises(UserError, match="exactly one"):
        cfg.validate_scenario(raw)


# ------------------------------------------------------------------ events (synthetic: always run)

def _events_raw(small_raw, events, mode="des"):
    raw = copy.deepcopy(small_raw)
    raw["events"] = events
    raw["engine"]["mode"] = mode
    return raw


@pytest.mark.parametrize("mode", ["des", "sequential"])
def test_out_of_service_is_respected(small_raw, mode):
    ev = [{"at_s": 100, "until_s": 250, "model": "m", "action": "out_of_service"}]
    sc = cfg.validate_scenario(_events_raw(small_raw, ev, mode))
    trace = build_trace(sc)
    res = simulate_scenario(sc, trace)
    out = (trace.arrival_s >= 100) & (trace.arrival_s < 250)
    assert out.sum() > 100
    for label, df in res.frames.items():
        models = df["model"].cast(str).to_numpy()
        explored = df["explored"].to_numpy()
        assert not np.any((models == "m")[out]), label
        assert not explored[out].any(), label  # an exploration would query the unavailable model
    # outside the outage the 'always:m' policy serves m again
    always = res.frames["always:m"]["model"].cast(str).to_numpy()
    assert np.all(always[~out] == "m") and np.all(always[out] == "l")
    assert "recovery" in res.summary["policies"]["messplus"]


def test_out_of_service_all_models_is_an_error(small_raw):
    ev = [{"at_s": 10, "model": m, "action": "out_of_service"} for m in ("s", "m", "l")]
    sc = cfg.validate_scenario(_events_raw(small_raw, ev))
    with pytest.raises(UserError, match="every model is out of service"):
        availability(build_trace(sc), sc)


def test_degrade_lowers_accuracy_after_at_s(small_raw):
    base = build_trace(cfg.validate_scenario(small_raw))
    ev = [{"at_s": 150, "model": "l", "action": "degrade", "accuracy_factor": 0.5}]
    sc = cfg.validate_scenario(_events_raw(small_raw, ev))
    tr = build_trace(sc)
    after = tr.arrival_s >= 150
    li = tr.models.index("l")
    np.testing.assert_array_equal(tr.outcomes.sat[~after], base.outcomes.sat[~after])
    np.testing.assert_array_equal(tr.outcomes.sat[:, :li], base.outcomes.sat[:, :li])
    assert np.all(tr.outcomes.sat[after, li] <= base.outcomes.sat[after, li])  # thinning: never flips 0 -> 1
    ratio = tr.outcomes.sat[after, li].mean() / base.outcomes.sat[after, li].mean()
    assert 0.4 < ratio < 0.6
    np.testing.assert_allclose(tr.outcomes.p_true[after, li], 0.5 * base.outcomes.p_true[after, li])
    again = build_trace(sc)  # seeded
    np.testing.assert_array_equal(again.outcomes.sat, tr.outcomes.sat)


def test_scale_rate_doubles_the_rate(small_raw):
    base = build_trace(cfg.validate_scenario(small_raw))
    sc = cfg.validate_scenario(_events_raw(small_raw, [{"at_s": 100, "action": "scale_rate", "factor": 2.0}]))
    tr = build_trace(sc)
    before = base.arrival_s < 100
    np.testing.assert_allclose(tr.arrival_s[before], base.arrival_s[before], atol=1e-3)
    np.testing.assert_allclose(tr.arrival_s[~before] - 100, (base.arrival_s[~before] - 100) / 2, atol=1e-2)
    assert np.all(np.diff(tr.arrival_s) >= 0)


def test_diurnal_keeps_order_and_mean_rate():
    t = np.cumsum(np.full(20000, 0.5))
    ev = [cfg.ScenarioEvent(at_s=0, action="diurnal", period_s=1000, amplitude=0.5)]
    w = warp_times(t, ev)
    assert np.all(np.diff(w) >= 0)
    assert abs(w[-1] - t[-1]) / t[-1] < 0.02  # over whole periods the mean rate is unchanged
    gaps = np.diff(w)
    assert gaps[:400].mean() < gaps[1000:1400].mean()  # faster in the first half-period than the second


def test_recovery_definition():
    arrival = np.arange(10.0)
    s_alpha = 0.5
    sat = np.array([1, 1, 0, 0, 0, 0, 0, 0, 1, 1], float)
    from sim.evaluation.metrics import q_before, queue_series

    qa = queue_series(sat, s_alpha)
    qb = q_before(qa)
    ev = [cfg.ScenarioEvent(at_s=2, action="scale_rate", factor=1.0)]
    r = recovery(arrival, qb, qa, ev, tolerance=1.0)[0]
    assert r["disturbed"] and r["q_peak"] == pytest.approx(3.0) and r["recovery_s"] is None
    sat2 = np.array([1, 1, 0, 0, 0, 1, 1, 1, 1, 1], float)
    qa = queue_series(sat2, s_alpha)
    qb = q_before(qa)
    r = recovery(arrival, qb, qa, ev, tolerance=1.0)[0]
    assert r["disturbed"] and r["recovery_s"] == pytest.approx(3.0)  # peak 1.5 at t = 4, back to 1.0 at t = 5


def test_nonstationary_scenario_runs():
    sc = load("nonstationary", "trace.synth.requests=1500")
    trace = build_trace(sc)
    g = trace.features.group_names
    order = [g[i] for i in trace.features.groups]
    blocks = [order[0]] + [b for a, b in zip(order, order[1:]) if a != b]
    assert blocks == ["arc_challenge", "piqa", "winogrande"]
    s = simulate_scenario(sc, trace).summary
    rec = s["policies"]["messplus"]["recovery"]
    assert [r["action"] for r in rec] == ["out_of_service", "out_of_service", "degrade", "scale_rate"]
