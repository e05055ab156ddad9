"""The simulator's core invariants, one named test each (docs/invariants.md lists them)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from sim.config import validate_scenario
from sim.running.runner import build_trace, run_scenario, simulate_scenario
from sim.trace.format import from_frame, load_trace, write_trace
from sim.trace.synth import synth_frame
from tests.conftest import REPO

EXAMPLES = REPO / "examples"

CAUSAL = ["messplus", "mp_beta", "threshold", "always:m"]


@pytest.fixture(params=["des", "sequential"])
def mode_result(request, small_raw):
    small_raw["engine"]["mode"] = request.param
    scenario = validate_scenario(small_raw)
    trace = build_trace(scenario)
    return scenario, trace, simulate_scenario(scenario, trace)


def test_every_request_served_once(mode_result):
    scenario, trace, result = mode_result
    for label, df in result.frames.items():
        assert df.height == trace.n, label
        assert df["request_id"].n_unique() == trace.n
        assert set(df["request_id"].to_list()) == set(trace.request_id.tolist())
        assert df["model"].null_count() == 0
        ratio = sum(result.summary["policies"][label]["call_ratio"].values())
        assert ratio == pytest.approx(1.0, abs=1e-12)


def test_causality_order(mode_result):
    scenario, trace, result = mode_result
    for label, df in result.frames.items():
        assert (df["start_s"] >= df["arrival_s"]).all(), label
        assert (df["end_s"] >= df["start_s"]).all(), label
        fb = df.filter(pl.col("feedback_s").is_not_null())
        assert (fb["feedback_s"] >= fb["end_s"]).all(), label
        assert (df["wait_s"] >= 0).all()
    if scenario.engine.mode == "des":  # slots are scarce in this scenario: someone must have waited
        assert result.frames["always:m"]["wait_s"].max() > 0


def test_queue_identity(mode_result):
    scenario, trace, result = mode_result
    for label, df in result.frames.items():
        s = df["sat"].to_numpy()
        q = df["q_after"].to_numpy()
        alpha = scenario.alpha
        assert (q >= 0).all() and (df["q_before"].to_numpy() >= 0).all()
        assert s.mean() >= alpha - q[-1] / len(s) - 1e-12, label
        # Q is exactly the recursion on realised satisfaction, in request order
        expect, acc = np.empty_like(s), 0.0
        for t, st in enumerate(s):
            acc = max(0.0, acc + alpha - st)
            expect[t] = acc
        np.testing.assert_allclose(q, expect, rtol=0, atol=1e-9)
        assert result.summary["policies"][label]["violation"] == pytest.approx(q[-1] / len(s))


def _decision_columns(df: pl.DataFrame) -> pl.DataFrame:
    return df.select("request_id", "model_index", "explored", "p_explore", "q_tracked", "s_hat")


@pytest.mark.parametrize("mode", ["des", "sequential"])
def test_no_outcome_reads(small_raw, mode):
    """Changing what a router cannot know yet (its own and later requests' outcomes, and earlier requests whose
    service has not ended) must not change any decision up to that request."""
    small_raw["engine"]["mode"] = mode
    small_raw["policies"] = [p for p in small_raw["policies"] if p["kind"] in ("messplus", "threshold", "always")]
    small_raw["policies"].append({"kind": "python", "name": "plugin", "entry": f"{EXAMPLES}/messplus_plugin.py:MessPlus",
                                  "args": {"V": 0.01, "c": 0.5}})  # a user's router gets the same causality
    # load-aware routers (issue 15): queue lengths and busy slots at decision time, latencies at completion
    small_raw["constraints"] = [{"kind": "latency", "deadline_s": 2.0, "max_miss": 0.05},
                                {"kind": "budget", "max_cost_per_request": 80.0}]
    small_raw["policies"] += [{"kind": "messplus_multi", "V": 0.01, "c": 0.5}, {"kind": "shortest_queue", "models": ["m", "l"]}]
    # the cheaper exploration designs (docs/theory.md §4): the explored model and the settled rule read only the past
    small_raw["policies"] += [
        {"kind": "messplus", "name": "explore_one", "V": 0.01, "c": 0.5, "explore": "one", "explore_stop": "settled",
         "settle_error": 0.1},
        {"kind": "messplus_auto", "name": "explore_uncertain", "explore": "uncertain", "explore_stop": "settled",
         "settle_error": 0.1, "explore_needs_feedback": True}]
    scenario = validate_scenario(small_raw)
    trace = build_trace(scenario)
    base = simulate_scenario(scenario, trace)
    for label in ("explore_one", "explore_uncertain"):  # the designs explored, and settled, within the run
        assert base.summary["policies"][label]["explorations"] > 0
    rng = np.random.default_rng(0)
    for k in (0, 1, 37, 400, 1100):
        a_k = trace.arrival_s[k]
        for label, df in base.frames.items():
            end = df["end_s"].to_numpy()
            unknown = (np.arange(trace.n) >= k) | (end > a_k)
            o = trace.outcomes
            sat = o.sat.copy()
            sat[unknown] = 1.0 - sat[unknown]
            cost = o.cost.copy()
            cost[unknown] *= rng.uniform(0.01, 100.0, size=cost[unknown].shape)
            p_true = o.p_true.copy()
            p_true[unknown] = rng.random(p_true[unknown].shape)
            # a latency not yet known: only longer (a shorter one could end before a_k and change the world seen)
            latency = o.latency_s.copy()
            late = (np.arange(trace.n) >= k)[:, None] | ((end > a_k) & ~df["explored"].to_numpy())[:, None]
            late = np.broadcast_to(late, latency.shape)
            latency[late] *= rng.uniform(1.0, 100.0, size=int(late.sum()))
            poisoned = replace(trace, outcomes=replace(o, sat=sat, cost=cost, energy_j=cost, p_true=p_true,
                                                       latency_s=latency))
            policy_only = scenario.model_copy(update={"policies": [p for p in scenario.policies if p.label == label]})
            after = simulate_scenario(policy_only, poisoned).frames[label]
            before = _decision_columns(df)[: k + 1]
            assert _decision_columns(after)[: k + 1].equals(before), f"{label} read an outcome it could not know at t={k}"


def test_determinism_byte_identical(small_raw, tmp_path):
    scenario = validate_scenario(small_raw)
    run_scenario(scenario, tmp_path / "a")
    run_scenario(scenario, tmp_path / "b")
    for name in ("requests.parquet", "occupancy.parquet", "summary.json", "scenario.resolved.yaml"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.parametrize("ties", [False, True])
def test_sequential_des_parity(small_raw, ties):
    """With unlimited slots, zero latency and zero delay the event engine makes the sequential decisions."""
    small_raw["trace"]["synth"]["latency_s"] = {"s": 0.0, "m": 0.0, "l": 0.0}
    small_raw["zoo"] = [{"name": m} for m in ("s", "m", "l")]
    small_raw["feedback"]["delay"] = {"dist": "none"}
    des = validate_scenario(small_raw)
    seq = des.model_copy(update={"engine": des.engine.model_copy(update={"mode": "sequential"})})
    df, models = synth_frame(des.trace.synth, des.seed)
    if ties:  # many requests arriving at the same instant must still see each other's feedback in order
        df = df.with_columns(pl.col("arrival_s").floor())
    trace = from_frame(df, models)
    a, b = simulate_scenario(des, trace), simulate_scenario(seq, trace)
    for label in a.frames:
        assert _decision_columns(a.frames[label]).equals(_decision_columns(b.frames[label])), label
        assert a.summary["policies"][label]["cost_total"] == b.summary["policies"][label]["cost_total"]


@pytest.mark.parametrize("mode", ["des", "sequential"])
def test_storage_does_not_change_results(small_raw, tmp_path, mode):
    """I9: the same trace, whether synthesised in memory, read back from Parquet, or held with float64 instead of
    one-byte labels, gives identical results: compact storage is exact."""
    small_raw["engine"]["mode"] = mode
    scenario = validate_scenario(small_raw)
    synth = build_trace(scenario)
    assert synth.outcomes.sat.dtype == np.uint8  # every synthetic label is 0 or 1
    df, models = synth_frame(scenario.trace.synth, scenario.seed)
    write_trace(df, tmp_path / "t.parquet", models, {})
    from_file = load_trace(tmp_path / "t.parquet")
    wide = replace(synth, outcomes=replace(synth.outcomes, sat=synth.outcomes.sat.astype(np.float64)))
    runs = [simulate_scenario(scenario, t) for t in (synth, from_file, wide)]
    for other in runs[1:]:
        for label, frame in runs[0].frames.items():
            assert frame.equals(other.frames[label]), label
        assert runs[0].summary["policies"] == other.summary["policies"]
