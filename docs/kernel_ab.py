"""CPU-time figures of `sim bench`'s workloads, to compare two versions of the code on a shared machine.

``PYTHONPATH=. python docs/kernel_ab.py LABEL`` times the workloads of sim/running/bench.py by the process's CPU
time (median of 5 after a warm-up), which neighbours' load changes far less than wall time, and prints one
line. Run it on another tree (``git archive COMMIT | tar -x -C DIR``) with that tree on PYTHONPATH to compare;
the plugin and grid workloads are built here, so it also runs on trees whose bench.py lacks them
(docs/performance.md).
"""
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sim.process import prepare; prepare()
from sim.running import bench
from sim import config as cfg
from sim.config import validate_scenario
from sim.evaluation.metrics import evaluate
from sim.policies.registry import build_router, policy_alpha
from sim.rng import stream
from sim.running.runner import build_trace, capacities, feedback_draws, run_policy

pt = time.process_time
tag = sys.argv[1] if len(sys.argv) > 1 else "this"
PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "messplus_plugin.py"
def rate(once, n, reps=5):
    once()
    best = []
    for _ in range(reps):
        t0 = pt(); once(); best.append(pt() - t0)
    return n / statistics.median(best)
res = {}
res["fast_path"] = rate(bench.workload(1_000_000, "group_beta"), 1_000_000)
res["fast_path_logistic"] = rate(bench.workload(200_000, "logistic"), 200_000)
res["des"] = rate(bench.workload(200_000, "group_beta", "des"), 200_000)
bench.simpy_mm1(20_000)
mm = []
for r in range(5):
    t0 = pt(); bench.simpy_mm1(200_000, seed=r + 1); mm.append(pt() - t0)
res["simpy_mm1"] = 200_000 / statistics.median(mm)
res["des_vs_simpy_mm1"] = res["des"] / res["simpy_mm1"]
# the fast path again, routing (run_policy) and evaluation (evaluate) timed apart
sc = cfg.validate_scenario(bench._four_model_scenario(1_000_000, "group_beta", "sequential", 0))
trace = build_trace(sc)
given, delay = feedback_draws(sc, trace.n)
u = stream(sc.seed, "explore").random(trace.n)
caps, pol = capacities(trace, sc), sc.policies[0]
route, ev = [], []
for _ in range(6):
    r = build_router(pol, trace, sc.alpha, sc.seed, u)
    t0 = pt(); d = run_policy(sc, trace, r, caps, given, delay)[0]; t1 = pt()
    evaluate(trace, d, policy_alpha(pol, sc.alpha)); t2 = pt()
    route.append(t1 - t0); ev.append(t2 - t1)
res["fast_path_route_ms"] = 1e3 * statistics.median(route[1:])
res["fast_path_evaluate_ms"] = 1e3 * statistics.median(ev[1:])
# the plugin path through the bench's four-model scenario (old trees lack workload(plugin=True))
raw = bench._four_model_scenario(100_000, "group_beta", "sequential", 0)
raw["policies"] = [{"kind": "python", "name": "plugin", "entry": f"{PLUGIN}:MessPlus", "args": {"V": 1e-3, "c": 0.1}}]
sc = validate_scenario(raw); trace = build_trace(sc); caps = capacities(trace, sc); p = sc.policies[0]
given, delay = feedback_draws(sc, trace.n)
def once():
    r = build_router(p, trace, sc.alpha, sc.seed, None)
    d = run_policy(sc, trace, r, caps, given, delay)[0]; evaluate(trace, d, policy_alpha(p, sc.alpha))
res["plugin_sequential"] = rate(once, 100_000, 3)
from sim.running.sweep import run_sweep, warm_numba
warm_numba()
raw = cfg.read_scenario_file(bench.REPO / "scenarios" / "paper_grid.yaml")
raw["sweep"]["cases"] = raw["sweep"]["cases"][:2]
with tempfile.TemporaryDirectory() as tmp:
    t0 = pt(); rep = run_sweep(raw, Path(tmp) / "g", workers=1); res["grid_378_cells_cpu_s"] = pt() - t0
    assert rep.ran == 378, rep.ran
print(tag, " ".join(f"{k} {v:,.2f}" if v < 100 else f"{k} {v:,.0f}" for k, v in res.items()), flush=True)
