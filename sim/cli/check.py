"""``python -m sim check SCENARIO... [--strict]``: run scenarios in memory and check the MESS+ guarantees.

For every policy the bounds of ``summary["policies"][label]["guarantees"]`` (see :mod:`sim.evaluation.guarantees` and
``docs/theory.md``) are printed with their limit, measured value, margin and statistical tolerance. An
applicable bound violated beyond its tolerance fails the check (exit 1); a bound whose assumptions the
scenario breaks (feedback delay, sparse feedback, learned predictor, ...) is shown as ``n.a.`` with the reason.
With ``--strict`` the scenario's ``expect:`` list (monotone trade-offs, maxima, cost-gap ratios, time to meet
the SLA) must also pass. Every policy's time to meet the SLA (the first t from which the running violation
Q_t / t stays <= 0.01) is printed too, with the SLA verdict of :mod:`sim.evaluation.sla` (summary.json's
``policies.<name>.sla``). An SLA miss is reported on its own line and is not a bound violation: a policy may
miss alpha while every bound holds (the bounds say how far it may miss, not that it may not).
A ``split_by: group`` scenario is checked group by group, each group as its own run (as ``sim run`` does),
with one row per group in a closing table.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from rich.console import Console
from rich import box
from rich.table import Table

from sim import config as cfg
from sim.text import text
from sim.errors import CheckFailed, UserError
from sim.evaluation.guarantees import sla_met_from
from sim.running.runner import build_trace, group_runs, simulate_scenario
from sim.evaluation.bounds import DEFAULT_CONFIDENCE
from sim.evaluation.optimum import offline_optimum

SLA_THRESHOLD = 0.01


def register(sub) -> None:
    p = sub.add_parser("check", help="run scenarios and check the theoretical guarantees (exit 1 on a violation)",
                       description="Run each SCENARIO in memory (nothing is written) and check every applicable "
                                   "bound of docs/theory.md; --strict also checks the scenarios' expect: lists.")
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="scenario YAML file(s)")
    p.add_argument("--strict", action="store_true", help="also fail when a scenario-level expectation fails")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a value in every scenario, e.g. --set trace.synth.requests=5000")
    p.set_defaults(func=main)


@dataclass
class Outcome:
    """Everything one scenario's check found."""

    scenario: str
    bound_failures: list[str] = field(default_factory=list)
    expect_failures: list[str] = field(default_factory=list)
    bounds: list[dict] = field(default_factory=list)  # rows: policy + bound entry
    expectations: list[dict] = field(default_factory=list)
    sla_times: dict[str, int | None] = field(default_factory=dict)
    sla_misses: list[str] = field(default_factory=list)
    summary: dict | None = None


def metric(p: dict, name: str) -> float:
    if name == "cost_mean":
        return p["cost_per_request"]
    if name == "energy_mean" and p.get("energy_j_per_request") is not None:
        return p["energy_j_per_request"]
    v = p.get(name)
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise UserError(f"expect: metric {name!r} is not a number in the policy summary "
                        f"(try cost_mean, violation, q_final, satisfaction, explorations)")
    return float(v)


def check_scenarios(scenario: cfg.Scenario) -> list[Outcome]:
    """One outcome per run: the scenario, or each of its groups (``split_by: group``) as its own run."""
    if scenario.split_by == "group":
        trace = build_trace(scenario)
        return [check_scenario(sub_scenario, sub) for _, sub_scenario, sub in group_runs(scenario, trace)]
    return [check_scenario(scenario)]


def check_scenario(scenario: cfg.Scenario, trace=None) -> Outcome:
    """Run one scenario in memory and evaluate its bounds and expectations."""
    if scenario.split_by != "none":
        raise UserError(f"{scenario.name}: check_scenario runs one trace; use check_scenarios for split_by")
    trace = trace if trace is not None else build_trace(scenario)
    result = simulate_scenario(scenario, trace)
    pols = result.summary["policies"]
    out = Outcome(scenario.name, summary=result.summary)
    for label, p in pols.items():
        for b in p.get("guarantees", {}).get("bounds", []):
            out.bounds.append({"policy": label, **b})
            if b["applicable"] and b["holds"] is False:
                out.bound_failures.append(
                    f"{scenario.name}/{label}: bound {b['bound']} violated (measured {_f(b['measured'])} > "
                    f"limit {_f(b['value'])} + tolerance {_f(b['tolerance'])})")
        out.sla_times[label] = sla_met_from(result.frames[label]["q_after"].to_numpy(), SLA_THRESHOLD)
        v = p["sla"]
        if not v["met"]:
            out.sla_misses.append(f"{scenario.name}/{label}: satisfaction {v['satisfaction']:.4f} < alpha "
                                  f"{v['alpha']:g} - tolerance {v['tolerance']:.4f}")
    z = NormalDist().inv_cdf(0.5 + DEFAULT_CONFIDENCE / 2.0)
    opt_cost = None
    for e in scenario.expect:
        for name in ([e.policy] if hasattr(e, "policy") else []) + list(getattr(e, "over", [])) + \
                ([e.baseline] if hasattr(e, "baseline") else []):
            if name not in pols:
                raise UserError(f"{scenario.name}: expect {e.check}: no policy named {name!r} (have {list(pols)})")
        if e.check == "monotone":
            vals = [metric(pols[n], e.metric) for n in e.over]
            worst, detail, ok = math.inf, [], True
            for a, b in zip(e.over, e.over[1:]):
                va, vb = metric(pols[a], e.metric), metric(pols[b], e.metric)
                step = (va - vb) if e.direction == "nonincreasing" else (vb - va)  # >= 0 is in the direction
                if e.tolerance == "auto":
                    if e.metric != "cost_mean":
                        raise UserError(f"{scenario.name}: expect monotone: tolerance 'auto' is defined for "
                                        f"cost_mean only; give a number for {e.metric}")
                    ca = result.frames[a]["cost"].to_numpy()
                    cb = result.frames[b]["cost"].to_numpy()
                    tol = z * math.sqrt(ca.var(ddof=1) / ca.size + cb.var(ddof=1) / cb.size)
                else:
                    tol = float(e.tolerance)
                ok &= step >= -tol
                worst = min(worst, step + tol)
                detail.append(f"{a}->{b}: {step:+.4g} (tol {tol:.3g})")
            row = {"check": f"monotone {e.metric} {e.direction}", "measured": ", ".join(_f(v) for v in vals),
                   "limit": "; ".join(detail), "ok": ok}
            if not ok:
                out.expect_failures.append(f"{scenario.name}: {e.metric} is not {e.direction} over {e.over}")
        elif e.check == "max":
            v = metric(pols[e.policy], e.metric)
            ok = v <= e.value
            row = {"check": f"{e.policy}: {e.metric} <= {e.value:g}", "measured": _f(v), "limit": _f(e.value), "ok": ok}
            if not ok:
                out.expect_failures.append(f"{scenario.name}/{e.policy}: {e.metric} = {_f(v)} > {e.value:g}")
        elif e.check == "cost_gap_ratio":
            if opt_cost is None:
                probs = trace.outcomes.p_true if trace.outcomes.p_true is not None else trace.outcomes.sat
                opt_cost = offline_optimum(probs, trace.outcomes.cost, scenario.alpha).cost
            gp = metric(pols[e.policy], "cost_mean") - opt_cost
            gb = metric(pols[e.baseline], "cost_mean") - opt_cost
            ratio = gp / gb if gb > 0 else math.inf
            ok = ratio < e.max_ratio
            row = {"check": f"cost gap to OPT: {e.policy} / {e.baseline} < {e.max_ratio:g}",
                   "measured": f"{ratio:.3f} (gaps {gp:.4g} / {gb:.4g}, OPT {opt_cost:.4g} per request)",
                   "limit": _f(e.max_ratio), "ok": ok}
            if not ok:
                out.expect_failures.append(f"{scenario.name}/{e.policy}: cost gap ratio to {e.baseline} = "
                                           f"{ratio:.3f} >= {e.max_ratio:g}")
        elif e.check == "sla_time":
            t = sla_met_from(result.frames[e.policy]["q_after"].to_numpy(), e.threshold)
            n = trace.n
            ok = t is not None and t <= max(1, math.ceil(e.max_fraction * n))
            row = {"check": f"{e.policy}: Q_t/t <= {e.threshold:g} from t <= {e.max_fraction:g} T",
                   "measured": "never" if t is None else f"t = {t:,} ({t / n:.3f} T)",
                   "limit": f"{math.ceil(e.max_fraction * n):,}", "ok": ok}
            if not ok:
                out.expect_failures.append(f"{scenario.name}/{e.policy}: running violation exceeds {e.threshold:g} "
                                           f"after {e.max_fraction:g} T")
        else:  # pragma: no cover - the config union is closed
            raise TypeError(e)
        out.expectations.append(row)
    return out


def _f(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    return f"{x:.4g}"


def print_outcome(o: Outcome, console: Console) -> None:
    s = o.summary
    t = Table(title=text(f"{o.scenario}: alpha = {s['alpha']}, {s['trace']['requests']:,} requests, "
                         f"{s['engine']} engine"), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    # Names are never cut ("queue_ident…" told nobody which bound it was): the bound column is as wide as its
    # longest name, and the reasons of n.a. rows are listed under the table (numbered), not squeezed into a column.
    # Each policy heads its own group of rows (a policy column would take the width the bound names need).
    longest = max((len(str(b["bound"])) for b in o.bounds), default=5)
    for name, just in [("policy / bound", "left"), ("measured", "right"), ("limit", "right"), ("margin", "right"),
                       ("tolerance", "right"), ("status", "left")]:
        t.add_column(name, justify=just, overflow="fold", no_wrap=just == "right",
                     min_width=longest + 2 if just == "left" and name != "status" else len(name))
    reasons: dict[str, int] = {}
    previous = None
    for b in o.bounds:
        if b["policy"] != previous:
            t.add_row(text(b["policy"], "bold"), end_section=False)
            previous = b["policy"]
        if not b["applicable"]:
            k = reasons.setdefault(str(b["reason"]), len(reasons) + 1)
            status = text(f"n.a. [{k}]", "yellow")
        elif b["holds"]:
            status = text("PASS", "green")
        else:
            status = text("FAIL", "bold red")
        t.add_row(text("  " + str(b["bound"])), _f(b["measured"]), _f(b["value"]), _f(b["margin"]),
                  _f(b["tolerance"]), status)
    console.print(t)
    for reason, k in reasons.items():
        console.print(text(f"[{k}] n.a.: {reason}"))
    n = s["trace"]["requests"]
    u = Table(title=text(f"{o.scenario}: SLA"), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, just in [("policy", "left"), ("Q_T/T", "right"), ("satisfaction", "right"), ("cost/request", "right"),
                       ("explorations", "right"), (f"SLA met from (Q_t/t <= {SLA_THRESHOLD:g})", "right"),
                       ("SLA (alpha - tolerance)", "left")]:
        u.add_column(name, justify=just, overflow="fold")
    for label, p in s["policies"].items():
        tt = o.sla_times[label]
        v = p["sla"]
        verdict = (text("met", "green") if v["met"] else text("missed", "bold red")) + text(
            f" ({v['alpha']:g} - {v['tolerance']:.4f})")
        if p.get("feasible") is False:
            verdict += text(" alpha out of reach", "yellow")
        u.add_row(text(label), f"{p['violation']:.5f}", f"{p['satisfaction']:.4f}", _f(metric(p, "cost_mean")),
                  f"{p['explorations']:,}", "never" if tt is None else f"t = {tt:,} ({tt / n:.3f} T)", verdict)
    console.print(u)
    if o.expectations:
        x = Table(title=text(f"{o.scenario}: expectations (enforced with --strict)"), title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
        for name in ("check", "measured", "limit", "status"):
            x.add_column(name, overflow="fold")
        for r in o.expectations:
            x.add_row(text(r["check"]), text(r["measured"]), text(r["limit"]), "[green]PASS[/]" if r["ok"] else "[bold red]FAIL[/]")
        console.print(x)


def print_groups(name: str, outcomes: list[Outcome], console: Console) -> None:
    """The closing table of a split_by: group scenario: one row per group."""
    t = Table(title=text(f"{name}: one row per group (each group is its own run)"), title_justify="left")
    for col, just in [("group", "left"), ("alpha", "right"), ("requests", "right"), ("bounds checked", "right"),
                      ("bound violations", "right"), ("SLA missed by", "left")]:
        t.add_column(col, justify=just)
    for o in outcomes:
        s = o.summary
        checked = sum(1 for b in o.bounds if b["applicable"])
        missed = [label for label, p in s["policies"].items() if not p["sla"]["met"]]
        t.add_row(text(o.scenario.split("/", 1)[-1]), f"{s['alpha']:g}", f"{s['trace']['requests']:,}", str(checked),
                  text(str(len(o.bound_failures)), "bold red") if o.bound_failures else "0",
                  text(", ".join(missed) or "-"))
    console.print(t)


def main(args) -> int:
    console = Console(width=None if sys.stdout.isatty() else 160)
    failures: list[str] = []
    sla_misses: list[str] = []
    for path in args.scenarios:
        scenario, _ = cfg.load_scenario(path, args.overrides)
        outcomes = check_scenarios(scenario)
        for o in outcomes:
            print_outcome(o, console)
            failures += o.bound_failures
            sla_misses += o.sla_misses
            if args.strict:
                failures += o.expect_failures
            elif o.expect_failures:
                console.print(f"[yellow]note[/]: {len(o.expect_failures)} expectation(s) failed (not enforced "
                              "without --strict)")
        if scenario.split_by == "group":
            print_groups(scenario.name, outcomes, console)
    for m in sla_misses:  # not a bound violation: stated apart so that neither is read as the other
        console.print(text("SLA missed ", "yellow") + text(m))
    sla_note = (f"; {len(sla_misses)} policy run(s) missed the SLA (not a bound violation; see above)"
                if sla_misses else "; every policy meets the SLA")
    if failures:
        more = f" [and {len(failures) - 1} more]" if len(failures) > 1 else ""
        for f in failures:
            console.print(text("FAIL ", "bold red") + text(f))
        console.print(f"bound violations: {len(failures)}{sla_note}")
        raise CheckFailed(failures[0] + more)
    console.print(f"all applicable bounds hold{' and every expectation passes' if args.strict else ''}{sla_note}")
    return 0
