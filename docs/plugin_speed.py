"""Requests/s of the built-in numba MESS+ and examples/messplus_plugin.py, per engine (docs/plugins.md)."""
import time
from pathlib import Path

import yaml
from sim.process import prepare; prepare()
from sim.config import validate_scenario
from sim.running.runner import build_trace, capacities, feedback_draws, run_policy
from sim.policies.registry import build_router
from sim.rng import stream
raw = yaml.safe_load(open("scenarios/quickstart.yaml"))
raw["trace"]["synth"]["requests"] = 20000
raw["policies"] = [
    {"kind": "messplus", "name": "builtin", "V": 1e-2, "c": 0.1, "explore_needs_feedback": True, "predictor": {"kind": "group_beta"}},
    {"kind": "python", "name": "plugin", "entry": str(Path(__file__).resolve().parents[1] / "examples" / "messplus_plugin.py") + ":MessPlus", "args": {"V": 1e-2, "c": 0.1}}]
for mode in ("sequential", "des"):
    raw["engine"] = {"mode": mode, "progress": False}
    sc = validate_scenario(raw); trace = build_trace(sc); caps = capacities(trace, sc)
    for p in sc.policies:
        best = []
        for rep in range(3):
            given, delay = feedback_draws(sc, trace.n)
            r = build_router(p, trace, sc.alpha, sc.seed, stream(sc.seed, "explore").random(trace.n))
            t0 = time.perf_counter(); run_policy(sc, trace, r, caps, given, delay); best.append(time.perf_counter() - t0)
        print(mode, p.label, f"{trace.n / min(best):,.0f} req/s (best of 3)")
