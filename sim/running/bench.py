"""Benchmarks behind ``python -m sim bench``: requests simulated per second on the hot paths.

Each figure is the median over ``repeats`` timed runs after one untimed warm-up run (numba compiles or loads its
cache there). What each one times (docs/performance.md has the figures and the machine):

- ``fast_path``: sequential mode, one MESS+ policy with the ``group_beta`` predictor, 4 models, 2 groups,
  every request's feedback delivered. Timed: the routing kernel loop (:func:`sim.world.sequential.run_sequential`)
  plus the evaluation (:func:`sim.evaluation.metrics.evaluate`: realised satisfaction and cost, the true queue, the
  summary). Not timed: making the trace, building the router, the per-request table and writing files.
- ``fast_path_logistic``: the same with the ``logistic`` predictor on 24 hashed text tokens per request.
- ``plugin_path``: the same workload as ``fast_path`` routed by ``examples/messplus_plugin.py`` (MESS+ with a
  per-group Beta predictor written in Python, ``kind: python``, docs/plugins.md) in sequential mode: the engine
  calls ``decide``, ``on_complete`` and ``on_feedback`` in Python for every request. Timed as ``fast_path``.
  ``fast_path_vs_plugin`` is ``fast_path / plugin_path``: what writing a router in Python costs.
- ``des``: the discrete-event engine (:func:`sim.world.engine.simulate`) with 4 models of 4 slots each, service
  times, 70 % feedback after an exponential delay, MESS+ with ``group_beta``; load about 80 % of capacity so
  requests queue. Timed: the whole engine (routing, slots, completions, feedback, occupancy and per-request
  recording) plus the evaluation.
- ``simpy_mm1``: the reference, written plainly with SimPy: one process per request, one ``Resource``,
  200,000 requests, exponential inter-arrival and service times (load 0.9), drawn inside the processes.
- ``des_vs_simpy_mm1``: ``des / simpy_mm1``.
- ``paper_grid_s``: wall seconds for ``scenarios/paper_grid.yaml`` (1,512 runs) with ``--workers`` (default all
  cores), into a fresh folder, numba cache warm.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from sim import config as cfg

REPO = Path(__file__).resolve().parents[2]  # sim/running/bench.py -> the repository
MODELS4 = ["m1", "m2", "m3", "m4"]


PLUGIN_ENTRY = str(REPO / "examples" / "messplus_plugin.py") + ":MessPlus"


def _four_model_scenario(n: int, predictor: str, mode: str, tokens: int, plugin: bool = False) -> dict:
    acc_a = {"m1": 0.45, "m2": 0.6, "m3": 0.72, "m4": 0.8}
    acc_b = {"m1": 0.3, "m2": 0.5, "m3": 0.65, "m4": 0.75}
    energy = {"m1": 40.0, "m2": 150.0, "m3": 600.0, "m4": 2000.0}
    raw = {
        "name": f"bench_{mode}_{predictor}", "seed": 42, "alpha": 0.65,
        "trace": {"synth": {
            "requests": n,
            "arrivals": {"process": "poisson", "rate": 10.0},
            "groups": {"a": {"accuracy": acc_a, "energy_j": energy}, "b": {"accuracy": acc_b, "energy_j": energy}},
            "latency_s": {"m1": 0.2, "m2": 0.4, "m3": 0.8, "m4": 1.6},
            "text": {"tokens": tokens},
        }},
        "feedback": {"rate": 1.0},
        "engine": {"mode": mode, "progress": False},
        "policies": [{"kind": "messplus", "V": 1e-3, "c": 0.1, "predictor": {"kind": predictor}}],
    }
    if plugin:  # the same MESS+ (V, c) as a Python plugin; it always predicts with a per-group Beta
        raw["policies"] = [{"kind": "python", "name": "plugin", "entry": PLUGIN_ENTRY, "args": {"V": 1e-3, "c": 0.1}}]
    if mode == "des":
        raw["zoo"] = [{"name": m, "slots": 4} for m in MODELS4]
        raw["feedback"] = {"rate": 0.7, "delay": {"dist": "exponential", "mean_s": 5.0}}
    return raw


def workload(n: int, predictor: str = "group_beta", mode: str = "sequential",
             plugin: bool = False) -> Callable[[], tuple[float, int]]:
    """A function that routes and evaluates ``n`` requests once and returns (timed seconds, ``n``); ``plugin``:
    routed by examples/messplus_plugin.py instead of the numba router."""
    from sim.evaluation.metrics import evaluate
    from sim.policies.registry import build_router, policy_alpha
    from sim.rng import stream
    from sim.running.runner import build_trace, capacities, feedback_draws, run_policy

    scenario = cfg.validate_scenario(
        _four_model_scenario(n, predictor, mode, 24 if predictor == "logistic" else 0, plugin))
    trace = build_trace(scenario)
    given, delay = feedback_draws(scenario, trace.n)
    u_explore = stream(scenario.seed, "explore").random(trace.n)
    caps = capacities(trace, scenario)
    policy = scenario.policies[0]

    def once() -> tuple[float, int]:
        router = build_router(policy, trace, scenario.alpha, scenario.seed, u_explore)
        t0 = time.perf_counter()
        decisions = run_policy(scenario, trace, router, caps, given, delay)[0]
        _, summary = evaluate(trace, decisions, policy_alpha(policy, scenario.alpha))
        elapsed = time.perf_counter() - t0
        assert summary["requests"] == n
        return elapsed, n

    return once


def simpy_mm1(n: int = 200_000, load: float = 0.9, seed: int = 1) -> float:
    """The plain SimPy M/M/1 reference; returns its wall seconds for ``n`` requests."""
    import simpy

    rng = random.Random(seed)
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    served = [0]

    def customer():
        with server.request() as req:
            yield req
            yield env.timeout(rng.expovariate(1.0))
        served[0] += 1

    def source():
        for _ in range(n):
            yield env.timeout(rng.expovariate(load))
            env.process(customer())

    t0 = time.perf_counter()
    env.process(source())
    env.run()
    elapsed = time.perf_counter() - t0
    assert served[0] == n
    return elapsed


def _rate(once: Callable[[], tuple[float, int]], repeats: int) -> float:
    once()  # warm-up: numba loads or compiles here
    rates = []
    for _ in range(repeats):
        elapsed, n = once()
        rates.append(n / elapsed)
    return float(statistics.median(rates))


def paper_grid_seconds(workers: int | None = None) -> float:
    from sim.running.sweep import run_sweep, warm_numba

    warm_numba()  # the cache is warm, as after any first run; the sweep itself still warms its workers
    raw = cfg.read_scenario_file(REPO / "scenarios" / "paper_grid.yaml")
    with tempfile.TemporaryDirectory(prefix="sim-bench-grid-") as tmp:
        t0 = time.perf_counter()
        report = run_sweep(raw, Path(tmp) / "grid", workers=workers or os.cpu_count())
        elapsed = time.perf_counter() - t0
    if report.failed or report.ran != 1512:
        raise RuntimeError(f"paper grid: {report.ran} cells ran, {report.failed} failed")
    return elapsed


def run_bench(repeats: int = 5, quick: bool = False, grid: bool = True, workers: int | None = None,
              log: Callable[[str], None] | None = None) -> dict:
    log = log or (lambda s: None)
    scale = 20 if quick else 1
    if quick:
        # A smoke test, under 10 s: a twentieth of the workloads, at most 2 repeats, and no paper grid (30 s alone).
        repeats, grid = min(repeats, 2), False
    out: dict = {}
    log(f"fast_path: {1_000_000 // scale:,} requests x {repeats} ...")
    out["fast_path"] = _rate(workload(1_000_000 // scale, "group_beta"), repeats)
    log(f"fast_path_logistic: {200_000 // scale:,} requests x {repeats} ...")
    out["fast_path_logistic"] = _rate(workload(200_000 // scale, "logistic"), repeats)
    log(f"plugin_path: {50_000 // scale:,} requests x {repeats} ...")
    out["plugin_path"] = _rate(workload(50_000 // scale, plugin=True), repeats)
    out["fast_path_vs_plugin"] = out["fast_path"] / out["plugin_path"]
    log(f"des: {200_000 // scale:,} requests x {repeats} ...")
    out["des"] = _rate(workload(200_000 // scale, "group_beta", "des"), repeats)
    n_mm1 = 200_000 // scale
    log(f"simpy_mm1: {n_mm1:,} requests x {repeats} ...")
    simpy_mm1(n_mm1 // 10)
    out["simpy_mm1"] = float(statistics.median(n_mm1 / simpy_mm1(n_mm1, seed=r + 1) for r in range(repeats)))
    out["des_vs_simpy_mm1"] = out["des"] / out["simpy_mm1"]
    if grid:
        log(f"paper_grid_s: 1,512 runs on {workers or os.cpu_count()} workers ...")
        out["paper_grid_s"] = paper_grid_seconds(workers)
    else:
        out["paper_grid_s"] = None
    return out


# issue 18's targets (docs/performance.md says what each figure times)
TARGETS = {"fast_path": 20_000_000, "fast_path_logistic": 8_000_000, "plugin_path": 100_000,
           "des_vs_simpy_mm1": 2.0, "paper_grid_s": 10.0}


def format_table(results: dict) -> str:
    lines = [f"{'figure':<20} {'measured':>16}  target"]
    for key in ("fast_path", "fast_path_logistic", "plugin_path", "fast_path_vs_plugin", "des", "simpy_mm1", "des_vs_simpy_mm1", "paper_grid_s"):
        v = results.get(key)
        if v is None:
            shown = "-"
        elif key in ("des_vs_simpy_mm1", "fast_path_vs_plugin"):
            shown = f"{v:.2f}x" if v < 100 else f"{v:,.0f}x"
        elif key == "paper_grid_s":
            shown = f"{v:.1f} s"
        else:
            shown = f"{v:,.0f} req/s"
        target = TARGETS.get(key)
        if target is None or v is None:
            mark = ""
        else:
            ok = v < target if key == "paper_grid_s" else v >= target
            bound = f"< {target:.0f} s" if key == "paper_grid_s" else (
                f">= {target:.1f}x" if key == "des_vs_simpy_mm1" else f">= {target:,.0f} req/s")
            mark = f"{bound}  {'met' if ok else 'NOT met'}"
        lines.append(f"{key:<20} {shown:>16}  {mark}")
    return "\n".join(lines)


__all__ = ["run_bench", "format_table", "workload", "simpy_mm1", "paper_grid_seconds", "TARGETS"]
