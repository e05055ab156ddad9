"""The measured table of docs/tuning.md, "Cheaper exploration": MESS+'s exploration designs compared.

    PYTHONPATH=$PWD python scripts/explore_grid.py [--scenarios scenarios/quickstart.yaml,scenarios/paper_llama.yaml]
                                                   [--kinds messplus_auto,messplus]

Each scenario runs as shipped (its trace, engine and feedback), with its policies replaced by one MESS+ policy of
each kind (its defaults, logistic predictor; ``messplus`` with the quickstart's V = 1e-2, c = 0.1 and
learn_from_exploit) per design, plus best_fixed_mixture. Columns: cost per request, the exploration part of the
cost decomposition (per request and as a share of the cost), the number of explorations, satisfaction - alpha,
the SLA verdict, and cost / best_fixed_mixture. Prints Markdown; writes nothing.
"""

from __future__ import annotations

import argparse
import time

from sim import config as cfg
from sim.running.runner import build_trace, simulate_scenario

DESIGNS = [  # (label, exploration options)
    ("all (default)", {}),
    ("all, settled", {"explore_stop": "settled"}),
    ("one", {"explore": "one"}),
    ("one, settled", {"explore": "one", "explore_stop": "settled"}),
    ("uncertain", {"explore": "uncertain"}),
    ("uncertain, settled", {"explore": "uncertain", "explore_stop": "settled"}),
]
KINDS = {"messplus_auto": {"kind": "messplus_auto"},
         "messplus": {"kind": "messplus", "V": 1e-2, "c": 0.1, "learn_from_exploit": True}}


def run(path: str, kinds: list[str]) -> list[str]:
    raw = cfg.load_scenario(path)[1]
    policies = [{**KINDS[k], **d, "name": f"{k}_{i}", "predictor": {"kind": "logistic"}}
                for k in kinds for i, (_, d) in enumerate(DESIGNS)]
    raw["policies"] = policies + [{"kind": "best_fixed_mixture"}]
    raw.setdefault("engine", {})["progress"] = False
    sc = cfg.Scenario.model_validate(raw)
    res = simulate_scenario(sc, build_trace(sc)).summary["policies"]
    bfm = res["best_fixed_mixture"]["cost_per_request"]
    rows = []
    for k in kinds:
        for i, (label, _) in enumerate(DESIGNS):
            r = res[f"{k}_{i}"]
            cost, expl = r["cost_per_request"], r["cost_decomposition"]["exploration"]
            rows.append(f"| {sc.name} | {k} | {label} | {cost:.4g} | {expl:.4g} | {100 * expl / cost:.2f} % | "
                        f"{r['explorations']} | {r['satisfaction'] - r['sla']['alpha']:+.4f} | {'met' if r['sla']['met'] else 'MISSED'} | "
                        f"{cost / bfm:.3f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="scenarios/quickstart.yaml,scenarios/paper_llama.yaml")
    ap.add_argument("--kinds", default="messplus_auto,messplus")
    a = ap.parse_args()
    print("| scenario | kind | exploration | cost / request | exploration part | share | explorations | "
          "sat - alpha | SLA | cost / best fixed mixture |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    t0 = time.time()
    for path in a.scenarios.split(","):
        for row in run(path, a.kinds.split(",")):
            print(row, flush=True)
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
