"""messplus_auto (its one default) on the shipped scenarios, next to the scenario's own MESS+ and best_fixed_mixture.

    PYTHONPATH=$PWD python scripts/auto_shipped.py [scenarios/x.yaml ...]

For each scenario: its policies are replaced by its first ``messplus`` policy (as shipped), ``best_fixed_mixture``
and ``messplus_auto`` (defaults), plus ``messplus_auto`` with the oracle predictor when the trace has p_true.
``split_by: group`` scenarios run per group. Prints Markdown (cost per request, satisfaction, SLA verdict,
Q_T/T, cost / best_fixed_mixture and the cost decomposition); writes nothing.
"""

from __future__ import annotations

import sys

from sim import config as cfg
from sim.running.runner import build_trace, group_runs, simulate_scenario

DEFAULT = ["scenarios/quickstart.yaml", "scenarios/routerbench_usd.yaml", "scenarios/routellm_mmlu.yaml",
           "scenarios/nonstationary.yaml", "scenarios/bursty_code.yaml", "scenarios/routerbench_azure.yaml",
           "scenarios/paper_llama.yaml"]


def rows(name: str, scenario: cfg.Scenario, trace) -> list[str]:
    res = simulate_scenario(scenario, trace).summary["policies"]
    bfm = res["best_fixed_mixture"]["cost_per_request"]
    out = []
    for label, p in res.items():
        d = p["cost_decomposition"]
        c = p["cost_per_request"]
        out.append(f"| {name} | {label} | {c:.4g} | {p['satisfaction']:.4f} | {'met' if p['sla']['met'] else 'MISS'} "
                   f"| {p['violation']:.4f} | {c / bfm:.3f} | "
                   + " / ".join(f"{d[k]:.3g}" for k in ("optimum", "information", "routing", "exploration")) + " |")
    return out


def main(paths: list[str]) -> None:
    print("| scenario | policy | cost/request | satisfaction | SLA | Q_T/T | cost/best_fixed "
          "| optimum / information / routing / exploration |")
    print("|---|---|---|---|---|---|---|---|")
    for path in paths:
        scenario, raw = cfg.load_scenario(path)
        shipped = next((p for p in raw["policies"] if p.get("kind") == "messplus"), None)
        policies = ([shipped] if shipped else []) + [{"kind": "best_fixed_mixture"}, {"kind": "messplus_auto"}]
        trace = build_trace(scenario)
        if trace.outcomes.p_true is not None:
            policies.append({"kind": "messplus_auto", "name": "messplus_auto_oracle", "predictor": {"kind": "oracle"}})
        scenario = cfg.validate_scenario({**raw, "policies": policies}, path)
        if scenario.split_by == "group":
            for g, sub_scenario, sub in group_runs(scenario, trace):
                print("\n".join(rows(f"{scenario.name}/{g}", sub_scenario, sub)), flush=True)
        else:
            print("\n".join(rows(scenario.name, scenario, trace)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or DEFAULT)
