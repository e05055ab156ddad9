"""The measured table of docs/tuning.md, "A MESS+ without a scale": messplus_auto against fixed-V MESS+.

    PYTHONPATH=$PWD python scripts/auto_grid.py [--requests 20000[,200000]] [--zoos llama3,zoo7,zoo12] [--scales 1e-6,1,1e3] [--rules 0,4]

Synthetic zoos (one group, sequential engine, dense immediate feedback, seed 42), costs rescaled by each scale.
Every rule runs with the oracle predictor (s-hat = p_true: isolates the rule) and with the logistic predictor
learning from exploit feedback too. Columns: cost / OPT (the offline optimum with per-request costs),
cost / OPT-mean (the LP optimum when only each model's mean cost is known, the information MESS+'s estimates
converge to), satisfaction - alpha, the SLA verdict, Q_T / T, and cost / best_fixed_mixture. Prints Markdown;
writes nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sim import config as cfg
from sim.evaluation.optimum import offline_optimum
from sim.running.runner import build_trace, simulate_scenario

ZOOS = {  # accuracy, mean cost (J) per model, cheapest first; alpha between the cheapest and the best model
    "llama3": ((0.3788, 0.5444, 0.6084), (79.87, 393.66, 2002.59), 0.5),
    "zoo7": ((0.40, 0.47, 0.52, 0.57, 0.61, 0.64, 0.67), (20, 60, 150, 400, 900, 1800, 3000), 0.58),
    "zoo12": (tuple(np.round(np.linspace(0.30, 0.70, 12), 3)), tuple(np.round(np.geomspace(5, 5000, 12), 2)), 0.6),
}
RULES = [  # (label, policy) -- the oracle rows isolate the rule; the logistic rows add learning
    ("messplus V=1e-2", {"kind": "messplus", "V": 1e-2, "c": 0.1, "learn_from_exploit": True}),
    ("auto const V0=10", {"kind": "messplus_auto", "V0": 10.0, "v_growth": 0.0}),
    ("auto sqrt V0=0.03", {"kind": "messplus_auto", "V0": 0.03, "v_growth": 0.5}),
    ("auto sqrt V0=0.1", {"kind": "messplus_auto", "V0": 0.1, "v_growth": 0.5}),
    ("auto t^1/3 V0=0.3 (default)", {"kind": "messplus_auto"}),
    ("auto t^1/3 V0=1", {"kind": "messplus_auto", "V0": 1.0, "v_growth": 1 / 3}),
    ("auto t^1/3 V0=0.3 c=0.01", {"kind": "messplus_auto", "c": 0.01}),
    # the cheaper exploration designs (docs/theory.md §4, docs/tuning.md "Cheaper exploration")
    ("auto default, explore one", {"kind": "messplus_auto", "explore": "one"}),
    ("auto default, explore uncertain, settled", {"kind": "messplus_auto", "explore": "uncertain",
                                                  "explore_stop": "settled"}),
]
PREDICTORS = ("oracle", "logistic")


def run(zoo: str, scale: float, n: int) -> list[str]:
    acc, cost, alpha = ZOOS[zoo]
    names = [f"m{i}" for i in range(len(acc))]
    policies = [{**p, "name": f"r{i}_{pred}", "predictor": {"kind": pred}}
                for i, (_, p) in enumerate(RULES) for pred in PREDICTORS]
    policies.append({"kind": "best_fixed_mixture"})
    sc = cfg.Scenario.model_validate({
        "name": f"{zoo}_x{scale:g}", "seed": 42, "alpha": alpha,
        "trace": {"synth": {"requests": n, "groups": {"g": {
            "accuracy": dict(zip(names, acc)), "energy_j": {k: c * scale for k, c in zip(names, cost)}}}}},
        "feedback": {"rate": 1.0}, "engine": {"mode": "sequential", "progress": False}, "policies": policies})
    trace = build_trace(sc)
    o = trace.outcomes
    opt = offline_optimum(o.p_true, o.cost, alpha).cost
    mean_cost = np.broadcast_to(o.cost.mean(axis=0), o.cost.shape)
    opt_mean = offline_optimum(o.p_true, np.ascontiguousarray(mean_cost), alpha).cost
    res = simulate_scenario(sc, trace).summary["policies"]
    bfm = res["best_fixed_mixture"]["cost_per_request"]
    rows = []
    for i, (label, _) in enumerate(RULES):
        for pred in PREDICTORS:
            p = res[f"r{i}_{pred}"]
            d = p["cost_decomposition"]
            c = p["cost_per_request"]
            rows.append(
                f"| {zoo} | {scale:g} | {n} | {label} | {pred} | {c / opt:.3f} | {c / opt_mean:.3f} | "
                f"{p['satisfaction'] - alpha:+.4f} | {'met' if p['sla']['met'] else 'MISS'} | {p['violation']:.4f} | {c / bfm:.3f} | "
                f"{d['information'] / c:.1%} / {d['routing'] / c:.1%} / {d['exploration'] / c:.1%} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", default="20000")
    ap.add_argument("--zoos", default="llama3,zoo7,zoo12")
    ap.add_argument("--scales", default="1e-6,1,1e3")
    ap.add_argument("--rules", default=None, help="comma-separated indices into RULES (default: all)")
    a = ap.parse_args()
    if a.rules is not None:
        RULES[:] = [RULES[int(i)] for i in a.rules.split(",")]
    print("| zoo | cost scale | T | rule | predictor | cost/OPT | cost/OPT-mean | sat - alpha | SLA | Q_T/T "
          "| cost/best_fixed | information / routing / exploration (share of cost) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    t0 = time.time()
    for n in (int(x) for x in a.requests.split(",")):
        for zoo in a.zoos.split(","):
            for scale in (float(s) for s in a.scales.split(",")):
                print("\n".join(run(zoo, scale, n)), flush=True)
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
