"""What the logistic predictor should read on a real 7-model table: text, group, or both (docs/importers.md).

RouterBench (../shared/data/routerbench_subset: ARC-Challenge, MBPP, WinoGrande, 3,150 requests with the question
text) restricted to 7 models, shuffled on import (file order is grouped by benchmark). For each ``features``
choice of the logistic predictor it measures

1. prediction quality alone: every request is predicted, then trained on with every model's label (full
   feedback, prequential: each prediction is made before its labels are seen); the Brier score and the log loss
   over all 7 models, on all requests and on the second half (after some learning);
2. MESS+ with that predictor (V = 300 /USD, c = 0.5, alpha = 0.75, sequential): satisfaction, cost per request
   and the SLA verdict, trained the paper's way (explorations only) and with exploit feedback too.

Each figure is the mean over the import shuffles ``SEEDS``. Run from the repository root:
``PYTHONPATH=. python docs/feature_choice.py`` (needs ../shared/data; writes only to a temporary folder).
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import sim
from sim.config import LogisticPredictor
from sim.policies.predictors import build_predictor, predict, train
from sim.trace.format import load_trace

LABELS = Path("../shared/data/routerbench_subset/routerbench_arc_mbpp_winogrande_labels.csv")
MODELS = ["mistral-7b-chat", "WizardLM-13B-V1.2", "mixtral-8x7b-chat", "Yi-34B-Chat", "claude-instant-v1",
          "gpt-3.5-turbo-1106", "gpt-4-1106-preview"]  # cheapest first (mean USD per request)
CHOICES = ["text", "group", "text+group"]
SEEDS = [1, 2, 3]


def prequential(trace, choice: str) -> tuple[float, float, float]:
    """(Brier on all, Brier on the second half, log loss on all), predicting each request before learning it."""
    spec = LogisticPredictor(kind="logistic", features=choice)
    pred = build_predictor(spec, trace.features, trace.m, None, 0, "p", trace.models)
    labels = trace.outcomes.sat.astype(np.float64)
    mask, out = np.ones(trace.m, np.bool_), np.zeros(trace.m)
    p = np.zeros_like(labels)
    for t in range(trace.n):
        predict(t, out, pred)
        p[t] = out
        train(t, labels[t], mask, pred)
    brier = ((p - labels) ** 2).mean(axis=1)
    q = np.clip(p, 1e-12, 1 - 1e-12)
    logloss = -(labels * np.log(q) + (1 - labels) * np.log(1 - q)).mean()
    return float(brier.mean()), float(brier[trace.n // 2:].mean()), float(logloss)


def running_mean(trace) -> tuple[float, float, float]:
    """The same scores for a reference that reads no features: each model's running mean label (from 0.5)."""
    labels = trace.outcomes.sat.astype(np.float64)
    seen = np.vstack([np.zeros(trace.m), np.cumsum(labels, axis=0)[:-1]])
    p = (seen + 0.5) / (np.arange(trace.n)[:, None] + 1.0)
    brier = ((p - labels) ** 2).mean(axis=1)
    logloss = -(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean()
    return float(brier.mean()), float(brier[trace.n // 2:].mean()), float(logloss)


def messplus(path: Path) -> dict:
    policies = [{"kind": "messplus", "name": f"{c} {how}", "V": 300.0, "c": 0.5, "learn_from_exploit": exploit,
                 "predictor": {"kind": "logistic", "features": c}}
                for how, exploit in (("explorations", False), ("+exploit", True)) for c in CHOICES]
    policies.append({"kind": "best_fixed_mixture"})
    scenario = {"name": "feature_choice", "seed": 3, "alpha": 0.75, "objective": "cost_usd",
                "trace": {"path": str(path)}, "engine": {"mode": "sequential"}, "policies": policies}
    return sim.run(scenario, out=None).summary["policies"]


def main() -> None:
    quality = {c: [] for c in CHOICES + ["(none: running mean per model)"]}
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in SEEDS:
            path = Path(tmp) / f"rb7_{seed}.parquet"
            subprocess.run([sys.executable, "-m", "sim", "trace", "import", "outcomes", str(LABELS), "--preset",
                            "routerbench", "--models", ",".join(MODELS), "--order", "shuffle", "--seed", str(seed),
                            "-o", str(path)], check=True, capture_output=True)
            trace = load_trace(path, "cost_usd")
            for c in CHOICES:
                quality[c].append(prequential(trace, c))
            quality["(none: running mean per model)"].append(running_mean(trace))
            runs.append(messplus(path))
    print(f"prediction quality, mean of shuffles {SEEDS} (lower is better)")
    print("| features | Brier, all | Brier, 2nd half | log loss |")
    print("|---|---:|---:|---:|")
    for c in quality:
        b, b2, ll = np.mean(quality[c], axis=0)
        print(f"| {c} | {b:.4f} | {b2:.4f} | {ll:.4f} |")
    print("\nMESS+ (V = 300, c = 0.5, alpha = 0.75), mean of the same shuffles")
    print("| policy | satisfaction | cost/request (USD) | SLA met |")
    print("|---|---:|---:|---:|")
    for name in runs[0]:
        sat = np.mean([r[name]["satisfaction"] for r in runs])
        cost = np.mean([r[name]["cost_per_request"] for r in runs])
        met = sum(bool(r[name]["sla"]["met"]) for r in runs)
        print(f"| {name} | {sat:.4f} | {cost:.6f} | {met}/{len(runs)} |")


if __name__ == "__main__":
    main()
