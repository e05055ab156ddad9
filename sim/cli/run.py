"""``python -m sim run SCENARIO.yaml``: simulate every policy of a scenario and print the comparison."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich import box
from rich.table import Table

from sim.text import printable, text

from sim import config as cfg
from sim.running.paths import default_run_folder
from sim.running.runner import run_scenario


def register(sub) -> None:
    p = sub.add_parser("run", help="simulate a scenario's policies on one trace and write results",
                       description="Simulate every policy of SCENARIO on the same trace; write requests.parquet, "
                                   "summary.json and scenario.resolved.yaml to the output folder.")
    p.add_argument("scenario", help="scenario YAML file")
    p.add_argument("--out", "-o", type=Path, help="result folder (default: results/<scenario name>-<short hash of its resolved config>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a scenario value, e.g. --set alpha=0.6 --set policies.messplus.V=1e-3")
    p.add_argument("--overwrite", action="store_true", help="replace results of a different scenario in --out")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no table")
    p.add_argument("--no-report", action="store_true", help="do not write report.html (see `python -m sim report`)")
    p.set_defaults(func=main)


@contextmanager
def progress_bar(enabled: bool):
    if not enabled:
        yield None
        return
    columns = [TextColumn("{task.description:<28}", markup=False), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        tasks: dict[str, int] = {}

        def update(label: str, done: int, total: int):
            if label not in tasks:
                tasks[label] = bar.add_task(printable(label), total=total)
            bar.update(tasks[label], completed=done)

        yield update


def main(args) -> int:
    scenario, _ = cfg.load_scenario(args.scenario, args.overrides)
    # Default: results/<safe name>-<hash of the resolved config> (sim/running/paths.py): never another's folder
    out = args.out or default_run_folder(scenario.name, cfg.resolved_yaml(scenario))
    show = scenario.engine.progress and not args.quiet and sys.stderr.isatty()
    if not args.quiet and not kernels_cached():
        print("compiling kernels (once: about 10 s; later runs load them from the cache)", file=sys.stderr,
              flush=True)
    with progress_bar(show) as update:
        result = run_scenario(scenario, out, overwrite=args.overwrite, progress=update)
    if not args.quiet:
        if result.summary.get("split_by") == "group":
            print_group_table(result.summary)
        else:
            print_summary(result.summary)
            from sim.world.events import format_recovery

            for line in format_recovery(result.summary):
                print(printable(line))
        print(f"results: {printable(out)}/  (requests.parquet, summary.json, scenario.resolved.yaml)")
    if not args.no_report:
        write_run_report(out, quiet=args.quiet)
    return 0


def kernels_cached() -> bool:
    """Whether numba's on-disk cache (its folder is keyed by the kernel sources, see sim/__init__.py) holds compiled
    kernels; if not, the first run spends about 10 s compiling before anything else shows."""
    import os

    folder = os.environ.get("NUMBA_CACHE_DIR")
    return not folder or any(Path(folder).rglob("*.nbi"))


def write_run_report(out: Path, quiet: bool = False) -> None:
    """``out/report.html``; a failure is one warning line on stderr (the results are already written)."""
    try:
        from sim.report import write_report

        path = write_report(out)
    except Exception as e:  # noqa: BLE001 - the report must never cost the user their results
        from sim.cli import signal_received

        if signal_received():  # Ctrl-C/SIGTERM that a library turned into another error: stop, don't warn
            raise KeyboardInterrupt from e
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"warning: report.html not written ({type(e).__name__}: {printable(msg)}); results are intact",
              file=sys.stderr)
        return
    if not quiet:
        print(f"report: {printable(path)}  (open in a browser; works offline)")


def fmt_cost(x: float | None, unit: str) -> str:
    if x is None:
        return "-"
    if unit == "J":
        if abs(x) >= 1e6:
            return f"{x / 1e6:.3f}\u00a0MJ"
        return f"{x / 1e3:.1f}\u00a0kJ" if abs(x) >= 1e3 else f"{x:.4g}\u00a0J"
    return f"{x:.4g}\u00a0{unit}"


def cost_total(p: dict) -> float:
    """A policy's total cost of the run (``cost_total``; result folders written before the rename say ``cost``)."""
    return float(p["cost_total"] if "cost_total" in p else p["cost"])


def sla_verdict(p: dict) -> tuple[str, str]:
    """(text, style) of the policy's SLA verdict, read from its ``sla`` block; ``n.a.`` when the block is absent
    (older result folders). The verdict's rule lives where the block is computed, not here."""
    sla = p.get("sla")
    if not isinstance(sla, dict) or sla.get("met") is None:
        return "n.a.", "dim"
    return ("met", "green") if sla["met"] else ("missed", "bold red")


#: Below this console width the call ratios go to a table of their own instead of a column.
WIDE = 130


def format_shares(shares: dict, models: list[str]) -> str:
    """A policy's call ratio: every share when the zoo is small; for larger zoos the non-zero shares only, each as
    ``#<model number> share`` (the numbers are printed under the table), so that no model is cut off."""
    values = [float(shares.get(m, 0.0)) for m in models]
    if len(models) <= 4:
        return " ".join(f"{v:.2f}" for v in values)
    shown = [f"#{i + 1}\u00a0{v:.2f}" for i, v in enumerate(values) if v >= 0.005]
    return "  ".join(shown) or "-"


def print_summary(summary: dict, console: Console | None = None) -> None:
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    unit = summary["cost_unit"]
    models = summary["models"]
    wide = console.width >= WIDE
    t = Table(title=text(f"{summary['scenario']}: alpha = {summary['alpha']}, {summary['trace']['requests']:,} "
                         f"requests, {summary['engine']} engine"),
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("policy", overflow="fold", ratio=None)
    # Narrow terminals: the names stay whole (they tell the rows apart); the totals and the call ratios move to a
    # second table.
    names = (["SLA", "satisfaction", "Q_T/T", "cost/request", "cost/satisfied", "cost total", "explore", "p95 latency",
              "call ratio"]
             if wide else ["SLA", "satisf.", "Q_T/T", "per req.", "expl.", "p95"])
    for name in names:
        t.add_column(name, justify="left" if name in ("SLA", "call ratio") else "right",
                     no_wrap=name != "call ratio", overflow="fold")
    for label, p in summary["policies"].items():
        mark = " †" if not p["causal"] else (" *" if p["oracle"] else "")
        verdict, style = sla_verdict(p)
        lat = p["latency_s"]["p95"]
        per_request = cost_total(p) / p["requests"]
        row = [text(label + mark), text(verdict, style), f"{p['satisfaction']:.4f}", f"{p['violation']:.4f}",
               f"{per_request:.4g}\u00a0{unit}", str(p["explorations"]),
               "-" if lat is None or summary["engine"] == "sequential" else f"{lat:.2f}\u00a0s"]
        if wide:
            per_sat = p.get("cost_per_satisfied")
            row[5:5] = ["-" if per_sat is None else f"{per_sat:.4g}\u00a0{unit}", fmt_cost(cost_total(p), unit)]
            row.append(format_shares(p["call_ratio"], models))
        t.add_row(*row)
    console.print(t)
    if not wide:
        r = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        r.add_column("policy", overflow="fold")
        r.add_column("cost total", justify="right", no_wrap=True)
        r.add_column("call ratio (share of requests per model)", overflow="fold")
        for label, p in summary["policies"].items():
            r.add_row(text(label), fmt_cost(cost_total(p), unit), format_shares(p["call_ratio"], models))
        console.print(r)
    if len(models) <= 4:
        cols = "call ratio: " + ", ".join(models) + "."
    else:
        cols = "call ratio: " + ", ".join(f"#{i + 1} {m}" for i, m in enumerate(models)) + " (shares under 0.005 left out)."
    console.print(text(cols))
    console.print("SLA: the verdict of summary.json (n.a. when the run has none).  † sees the future (a bound, not a "
                  "router).  * uses an oracle predictor.  Costs include exploration.", markup=False)
    print_constraints(summary, console)


def print_constraints(summary: dict, console: Console) -> None:
    """One row per policy and constraint when the scenario has ``constraints:`` (sim/evaluation/constraints.py)."""
    rows = [(label, p) for label, p in summary["policies"].items() if p.get("constraints")]
    if not rows:
        return
    t = Table(title="constraints: value (target), verdict", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("policy", overflow="fold")
    kinds = [c["kind"] for c in rows[0][1]["constraints"]]
    for k in kinds:
        t.add_column(k, no_wrap=True)
    for label, p in rows:
        cells = []
        for c in p["constraints"]:
            verdict = "n.a." if c["met"] is None else ("met" if c["met"] else "missed")
            cells.append(text(f"{c['value']:.4g} ({c['target']:.4g}) {verdict}", "green" if c["met"] else
                              ("dim" if c["met"] is None else "bold red")))
        t.add_row(text(label), *cells)
    console.print(t)


def print_group_table(summary: dict, console: Console | None = None) -> None:
    """The paper's per-benchmark table: each group is its own run with its own alpha."""
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    wide = console.width >= WIDE
    t = Table(title=text(f"{summary['scenario']}: one run per group"), title_justify="left", box=box.SIMPLE_HEAD,
              pad_edge=False)
    t.add_column("group", overflow="fold")
    t.add_column("alpha", justify="right", no_wrap=True)
    t.add_column("policy", overflow="fold")
    for name in ("SLA", "satisfaction" if wide else "satisf.", "cost total" if wide else "total",
                 "explore" if wide else "expl."):
        t.add_column(name, justify="left" if name == "SLA" else "right", no_wrap=True)
    if wide:
        t.add_column("call ratio", overflow="fold")
    for g, s in summary["groups"].items():
        unit = s["cost_unit"]
        for i, (label, p) in enumerate(s["policies"].items()):
            verdict, style = sla_verdict(p)
            mark = " †" if not p["causal"] else ""
            row = [text(g if i == 0 else ""), f"{s['alpha']:.2f}" if i == 0 else "", text(label + mark),
                   text(verdict, style), f"{p['satisfaction']:.4f}", fmt_cost(cost_total(p), unit),
                   str(p["explorations"])]
            if wide:
                row.append(format_shares(p["call_ratio"], s.get("models") or list(p["call_ratio"])))
            t.add_row(*row, end_section=i == len(s["policies"]) - 1)
    console.print(t)
    console.print("SLA: the verdict of summary.json (n.a. when the run has none).  † sees the future (a bound).  "
                  "Costs include exploration" + ("; call ratio columns follow the zoo's cost order." if wide else
                                                 " (call ratios: run with a wider terminal, or read summary.json)."),
                  markup=False)
