"""Property-based tests: the run invariants hold on random zoos, arrival processes, slots, feedback and alpha.

Two generators:

- ``scenarios()`` draws a whole scenario mapping (2-12 models, Poisson or gamma arrivals, slots, feedback rate
  and delay, alpha in [0.05, 0.99], both engine modes, every policy kind) and runs it through
  :func:`sim.config.validate_scenario` and :func:`sim.running.runner.simulate_scenario`, as a user's YAML would be;
- ``raw_traces()`` draws a trace table directly (probability-valued labels, costs over six orders of magnitude,
  zero latencies, simultaneous arrivals) to reach corners the synthetic generator does not.

For every draw and every policy, :func:`check_invariants` recomputes from the trace: conservation, causality,
the queue identity and Q >= 0, call ratios summing to 1, the cost of each request (served model, or every
model on an exploration) and the totals, and determinism (a second run gives identical frames and summary).

The default budget keeps this file well under two minutes; ``--run-slow`` runs ten times more examples.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.config import validate_scenario
from sim.running.runner import build_trace, simulate_scenario
from sim.trace.format import col, from_frame

FAST = settings(max_examples=150, deadline=None, derandomize=True, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=2000, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ----------------------------------------------------------------------------------------------- strategies

unit = st.floats(0.05, 0.95, allow_nan=False)


@st.composite
def zoo_models(draw, lo=2, hi=12):
    m = draw(st.integers(lo, hi))
    names = [f"m{i}" for i in range(m)]
    # energies spanning up to six orders of magnitude, cheapest first (the zoo's cost order)
    energy = sorted(10.0 ** draw(st.floats(-3, 3)) for _ in range(m))
    return names, energy


@st.composite
def policies_for(draw, names):
    pol = [{"kind": "messplus", "V": 10.0 ** draw(st.floats(-4, 0)), "c": draw(st.floats(0.0, 1.0)),
            "cost_estimate": draw(st.sampled_from(["mean", "last"])),
            "explore_needs_feedback": draw(st.booleans()), "learn_from_exploit": draw(st.booleans()),
            "predictor": {"kind": draw(st.sampled_from(["group_beta", "logistic", "oracle", "noisy_oracle"]))}}]
    weak, strong = sorted(draw(st.lists(st.sampled_from(names), min_size=2, max_size=2, unique=True)),
                          key=names.index)
    pol += [
        {"kind": "always", "model": draw(st.sampled_from(names))},
        {"kind": "random_with_constraint"},
        {"kind": "threshold", "weak": weak, "strong": strong, "threshold": draw(st.floats(0, 1)),
         "predictor": {"kind": "group_beta"}},
        {"kind": "oracle_hindsight"},
        {"kind": "offline_optimum"},
    ]
    return pol


@st.composite
def scenarios(draw):
    names, energy = draw(zoo_models())
    n_groups = draw(st.integers(1, 3))
    groups = {}
    for g in range(n_groups):
        groups[f"g{g}"] = {
            "weight": draw(st.floats(0.1, 5)),
            "difficulty_mean": draw(st.floats(-2, 2)),
            "accuracy": {m: draw(unit) for m in names},
            "energy_j": {m: e * draw(st.floats(0.5, 2)) for m, e in zip(names, energy)},
        }
    rate = draw(st.floats(0.2, 50))
    arrivals = draw(st.one_of(
        st.just({"process": "poisson", "rate": rate}),
        st.builds(lambda cv: {"process": "gamma", "rate": rate, "cv": cv}, st.floats(0.2, 4)),
    ))
    slots = draw(st.one_of(st.none(), st.integers(1, 4)))
    zoo = [{"name": m, "replicas": draw(st.integers(1, 2)), "slots": slots if draw(st.booleans()) else None}
           for m in names]
    delay = draw(st.one_of(
        st.just({"dist": "none"}),
        st.builds(lambda d, mu: {"dist": d, "mean_s": mu, "cv": 1.0},
                  st.sampled_from(["fixed", "exponential", "lognormal"]), st.floats(0, 10)),
    ))
    return {
        "name": "prop",
        "seed": draw(st.integers(0, 2**32)),
        "alpha": draw(st.floats(0.05, 0.99)),
        "trace": {"synth": {
            "requests": draw(st.integers(1, 250)),
            "arrivals": arrivals,
            "groups": groups,
            "latency_s": {m: draw(st.floats(0, 3)) for m in names},
            "mix": draw(st.sampled_from(["shuffled", "sequential"])),
            "text": {"tokens": draw(st.integers(0, 8))},
        }},
        "zoo": zoo,
        "feedback": {"rate": draw(st.sampled_from([0.0, 0.3, 1.0]) | st.floats(0, 1)), "delay": delay},
        "engine": {"mode": draw(st.sampled_from(["des", "sequential"])), "progress": False},
        "policies": draw(policies_for(names)),
    }


@st.composite
def raw_traces(draw):
    """A trace table drawn directly: fractional labels, wide cost ranges, zero latencies, arrival ties."""
    names, energy = draw(zoo_models())
    n = draw(st.integers(1, 120))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    gaps = rng.exponential(1.0 / draw(st.floats(0.5, 50)), n)
    gaps[rng.random(n) < draw(st.floats(0, 0.8))] = 0.0  # simultaneous arrivals
    frame = {"request_id": rng.permutation(10 * n)[:n].astype(np.int64), "arrival_s": np.cumsum(gaps),
             "group": rng.choice(["a", "b"], n)}
    fractional = draw(st.booleans())
    zero_latency = draw(st.booleans())
    for m, e in zip(names, energy):
        p = rng.random(n)
        frame[col("sat", m)] = p if fractional else (rng.random(n) < p).astype(float)
        frame[col("p_true", m)] = p
        frame[col("energy_j", m)] = e * 10.0 ** rng.uniform(-1, 1, n)
        frame[col("latency_s", m)] = np.zeros(n) if zero_latency else rng.exponential(0.5, n)
    return pl.DataFrame(frame), names


# ----------------------------------------------------------------------------------------------- the check


def exact_queue(s: np.ndarray, alpha: float) -> list[Fraction]:
    """Q after each request, in exact rational arithmetic on the float inputs."""
    a, q, out = Fraction(alpha), Fraction(0), []
    for x in s.tolist():
        q = max(Fraction(0), q + a - Fraction(x))
        out.append(q)
    return out


def check_invariants(scenario, trace, result) -> None:
    o = trace.outcomes
    n, m = trace.n, trace.m
    sequential = scenario.engine.mode == "sequential"
    assert set(result.frames) == {p.label for p in scenario.policies}
    for label, df in result.frames.items():
        entry = result.summary["policies"][label]
        # conservation: every request served exactly once, in request order
        assert df.height == n, label
        assert np.array_equal(df["request_id"].to_numpy(), trace.request_id), label
        assert df["model"].null_count() == 0 and df["start_s"].null_count() == 0 and df["end_s"].null_count() == 0
        model = df["model_index"].to_numpy().astype(np.int64)
        explored = df["explored"].to_numpy()
        assert ((model >= 0) & (model < m)).all()
        assert (model[explored] == m - 1).all(), "an exploration serves the largest model's answer"
        # causality: arrival <= start <= end <= feedback
        arrival, start, end = df["arrival_s"].to_numpy(), df["start_s"].to_numpy(), df["end_s"].to_numpy()
        assert np.array_equal(arrival, trace.arrival_s)
        assert (start >= arrival).all() and (end >= start).all(), label
        fb = df["feedback_s"].to_numpy().astype(float)
        given = np.isfinite(fb)
        assert (fb[given] >= end[given]).all(), label
        if sequential:
            assert np.array_equal(start, arrival) and np.array_equal(end, arrival)
        if scenario.feedback.rate == 0.0:
            assert not given.any()
        assert entry["feedback_delivered"] == int(given.sum())
        # outcomes: the served model's label; cost of the served model, or of every model on an exploration
        rows = np.arange(n)
        s = df["sat"].to_numpy()
        assert np.array_equal(s, o.sat[rows, model])
        expect_cost = np.where(explored, o.cost.sum(axis=1), o.cost[rows, model])
        np.testing.assert_allclose(df["cost"].to_numpy(), expect_cost, rtol=1e-13, atol=0)
        total = math.fsum(expect_cost.tolist())
        assert entry["cost_total"] == pytest.approx(total, rel=1e-12, abs=1e-300), label
        assert entry["cost_total_exploit_only"] == pytest.approx(math.fsum(expect_cost[~explored].tolist()), rel=1e-12)
        if o.energy_j is not None:
            e = np.where(explored, o.energy_j.sum(axis=1), o.energy_j[rows, model])
            assert entry["energy_j_total"] == pytest.approx(math.fsum(e.tolist()), rel=1e-12)
        assert entry["explorations"] == int(explored.sum())
        # call ratios: the share of requests per model, summing to 1
        ratios = np.array(list(entry["call_ratio"].values()))
        assert list(entry["call_ratio"]) == trace.models
        assert math.fsum(ratios) == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(ratios, np.bincount(model, minlength=m) / n, rtol=0, atol=1e-15)
        # the queue: non-negative, equal to the exact recursion, and the identity mean(s) >= alpha - Q_T/T
        policy = next(p for p in scenario.policies if p.label == label)
        alpha = getattr(policy, "alpha", None) or scenario.alpha
        q_before, q_after = df["q_before"].to_numpy(), df["q_after"].to_numpy()
        assert (q_before >= 0).all() and (q_after >= 0).all() and (df["q_tracked"].to_numpy() >= 0).all()
        assert q_before[0] == 0.0 and np.array_equal(q_before[1:], q_after[:-1])
        exact = exact_queue(s, alpha)
        worst = max(abs(float(Fraction(x) - e)) for x, e in zip(q_after.tolist(), exact))
        assert worst <= 4 * np.finfo(float).eps * max(1.0, n * alpha), (label, worst)
        assert sum(map(Fraction, s.tolist())) / n >= Fraction(alpha) - exact[-1] / n  # the identity, exactly
        assert float(s.mean()) >= alpha - q_after[-1] / n - 1e-12
        assert entry["violation"] == pytest.approx(q_after[-1] / n, rel=1e-15, abs=0)
        assert entry["satisfaction"] == pytest.approx(math.fsum(s.tolist()) / n, rel=1e-14, abs=1e-300)


def assert_same(a, b) -> None:
    assert a.summary == b.summary
    assert list(a.frames) == list(b.frames)
    for label in a.frames:
        assert a.frames[label].equals(b.frames[label], null_equal=True), label
    if a.occupancy is not None or b.occupancy is not None:
        assert a.occupancy.equals(b.occupancy)


def run_scenario_property(raw: dict) -> None:
    scenario = validate_scenario(raw)
    trace = build_trace(scenario)
    first = simulate_scenario(scenario, trace)
    check_invariants(scenario, trace, first)
    assert_same(first, simulate_scenario(scenario, build_trace(scenario)))  # determinism, trace rebuilt too


def run_trace_property(df, names, alpha, mode, rate, slots) -> None:
    trace = from_frame(df, names)
    raw = {"name": "prop_trace", "seed": 3, "alpha": alpha,
           "trace": {"path": "unused.parquet"},
           "zoo": [{"name": m, "slots": slots} for m in names],
           "feedback": {"rate": rate, "delay": {"dist": "exponential", "mean_s": 0.5}},
           "engine": {"mode": mode, "progress": False},
           "policies": [{"kind": "messplus", "V": 1e-3, "c": 0.3, "predictor": {"kind": "group_beta"}},
                        {"kind": "messplus", "name": "mp_oracle", "V": 1e-8, "c": 0.0, "predictor": {"kind": "oracle"}},
                        {"kind": "always", "model": names[0]},
                        {"kind": "random_with_constraint"}, {"kind": "offline_optimum"}]}
    scenario = validate_scenario(raw)
    first = simulate_scenario(scenario, trace)
    check_invariants(scenario, trace, first)
    assert_same(first, simulate_scenario(scenario, from_frame(df, names)))


# ----------------------------------------------------------------------------------------------- tests

trace_args = dict(table=raw_traces(), alpha=st.floats(0.05, 0.99), mode=st.sampled_from(["des", "sequential"]),
                  rate=st.floats(0, 1), slots=st.one_of(st.none(), st.integers(1, 3)))


@FAST
@given(raw=scenarios())
def test_random_scenarios_keep_invariants(raw):
    run_scenario_property(raw)


@FAST
@given(**trace_args)
def test_random_traces_keep_invariants(table, alpha, mode, rate, slots):
    run_trace_property(table[0], table[1], alpha, mode, rate, slots)


@pytest.mark.slow
@SLOW
@given(raw=scenarios())
def test_random_scenarios_keep_invariants_long(raw):
    run_scenario_property(raw)


@pytest.mark.slow
@SLOW
@given(**trace_args)
def test_random_traces_keep_invariants_long(table, alpha, mode, rate, slots):
    run_trace_property(table[0], table[1], alpha, mode, rate, slots)
