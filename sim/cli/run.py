"""``python -m sim run SCENARIO.yaml``: simulate every policy of a scenario and print the comparison."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

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
    columns = [TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        tasks: dict[str, int] = {}

        def update(label: str, done: int, total: int):
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done)

        yield update


def main(args) -> int:
    scenario, _ = cfg.load_scenario(args.scenario, args.overrides)
    # Default: results/<safe name>-<hash of the resolved config> (sim/running/paths.py): never another's folder
    out = args.out or default_run_folder(scenario.name, cfg.resolved_yaml(scenario))
    show = scenario.engine.progress and not args.quiet and sys.stderr.isatty()
    with progress_bar(show) as update:
        result = run_scenario(scenario, out, overwrite=args.overwrite, progress=update)
    if not args.quiet:
        if result.summary.get("split_by") == "group":
            print_group_table(result.summary)
        else:
            print_summary(result.summary)
            from sim.world.events import format_recovery

            for line in format_recovery(result.summary):
                print(line)
        print(f"results: {out}/  (requests.parquet, summary.json, scenario.resolved.yaml)")
    if not args.no_report:
        write_run_report(out, quiet=args.quiet)
    return 0


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
        print(f"warning: report.html not written ({type(e).__name__}: {msg}); results are intact", file=sys.stderr)
        return
    if not quiet:
        print(f"report: {path}  (open in a browser; works offline)")


def fmt_cost(x: float | None, unit: str) -> str:
    if x is None:
        return "-"
    if unit == "J":
        return f"{x / 1e6:.3f} MJ" if abs(x) >= 1e6 else f"{x / 1e3:.1f} kJ"
    return f"{x:.4g} {unit}"


def print_summary(summary: dict, console: Console | None = None) -> None:
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    unit = summary["cost_unit"]
    t = Table(title=f"{summary['scenario']}: alpha = {summary['alpha']}, {summary['trace']['requests']:,} requests, "
                    f"{summary['engine']} engine", title_justify="left")
    for name, just in [("policy", "left"), ("satisfaction", "right"), ("Q_T/T", "right"), ("cost", "right"),
                       ("cost/request", "right"), ("explore", "right"), ("call ratio", "left"), ("p95 latency", "right")]:
        t.add_column(name, justify=just)
    alpha = summary["alpha"]
    for label, p in summary["policies"].items():
        mark = " †" if not p["causal"] else (" *" if p["oracle"] else "")
        sat = p["satisfaction"]
        sat_s = f"{sat:.4f}" if sat >= alpha - 1e-12 else f"[red]{sat:.4f}[/red]"
        ratio = "/".join(f"{v:.2f}" for v in p["call_ratio"].values())
        lat = p["latency_s"]["p95"]
        t.add_row(label + mark, sat_s, f"{p['violation']:.4f}", fmt_cost(p["cost"], unit),
                  f"{p['cost'] / p['requests']:.4g} {unit}", str(p["explorations"]), ratio,
                  "-" if lat is None or summary["engine"] == "sequential" else f"{lat:.2f} s")
    console.print(t)
    console.print(f"call ratio columns: {', '.join(summary['models'])}.  "
                  "† sees the future (a bound, not a router).  * uses an oracle predictor.  "
                  "Costs include exploration.")


def print_group_table(summary: dict, console: Console | None = None) -> None:
    """The paper's per-benchmark table: each group is its own run with its own alpha."""
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    t = Table(title=f"{summary['scenario']}: one run per group", title_justify="left")
    for name, just in [("group", "left"), ("alpha", "right"), ("policy", "left"), ("satisfaction", "right"),
                       ("cost", "right"), ("call ratio", "left"), ("explore", "right")]:
        t.add_column(name, justify=just)
    for g, s in summary["groups"].items():
        unit = s["cost_unit"]
        for i, (label, p) in enumerate(s["policies"].items()):
            sat = p["satisfaction"]
            sat_s = f"{sat:.4f}" if sat >= s["alpha"] - 1e-12 else f"[red]{sat:.4f}[/red]"
            mark = " †" if not p["causal"] else ""
            t.add_row(g if i == 0 else "", f"{s['alpha']:.2f}" if i == 0 else "", label + mark, sat_s,
                      fmt_cost(p["cost"], unit), "/".join(f"{v:.2f}" for v in p["call_ratio"].values()),
                      str(p["explorations"]), end_section=i == len(s["policies"]) - 1)
    console.print(t)
    console.print("satisfaction in red misses the group's alpha.  † sees the future (a bound).  "
                  "Costs include exploration; call ratio columns follow the zoo's cost order.")
