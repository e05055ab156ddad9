"""``python -m sim sweep SCENARIO.yaml``: run every cell of the scenario's ``sweep:`` block (sim/running/sweep.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from sim import config as cfg
from sim.errors import UserError
from sim.text import printable


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help="run a scenario over the grid in its sweep: block (local process pool or Ray)",
        description="Run every cell of SCENARIO's sweep: block. Each cell writes DIR/cells/<cell-id>/ (what "
                    "`sim run` writes for its config); DIR/manifest.parquet has one row per cell x policy. "
                    "Rerunning the same command skips completed cells.")
    p.add_argument("scenario", help="scenario YAML file with a sweep: block")
    p.add_argument("--out", "-o", type=Path, help="sweep folder (default: results/<scenario name>-sweep)")
    p.add_argument("--workers", "-j", type=int, default=None,
                   help="local worker processes (default: all cores)")
    p.add_argument("--backend", choices=["local", "ray"], default="local", help="where cells run (default: local)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address ('auto' = the running cluster; default: start a local Ray)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a value of the base scenario (before the sweep applies its axes)")
    p.add_argument("--dry-run", action="store_true", help="list the cells and exit")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def main(args) -> int:
    from sim.running.paths import default_sweep_folder
    from sim.running.sweep import describe_cells, expand, run_sweep

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: must be at least 1")
    if args.address is not None and args.backend != "ray":
        raise UserError("--address is for --backend ray")
    raw = cfg.read_scenario_file(args.scenario)
    folder = Path(args.scenario).parent  # the scenario's own paths and plugin files are relative to its folder
    raw = cfg.apply_overrides(cfg.anchor_plugin_entries(cfg.relative_to_scenario(raw, folder), folder), args.overrides)
    if args.dry_run:
        _, cells = expand(raw, str(args.scenario))
        print(printable(describe_cells(cells)))
        return 0
    name = raw.get("name", "scenario") if isinstance(raw.get("name"), str) else "scenario"
    out = args.out or default_sweep_folder(name)  # the name is encoded: it cannot leave results/
    report = run_sweep(raw, out, workers=args.workers, backend=args.backend, address=args.address,
                       where=str(args.scenario), show_progress=not args.quiet and sys.stderr.isatty())
    print(f"{report.cells} cells: {report.ran} ran, {report.skipped} already done, {report.failed} failed"
          f" in {report.wall_s:.1f} s")
    for cell_id, error in list(report.errors.items())[:10]:
        print(f"  failed {cell_id}: {printable(error)}", file=sys.stderr)
    if len(report.errors) > 10:
        print(f"  … and {len(report.errors) - 10} more (see the manifest's 'error' column)", file=sys.stderr)
    print(f"manifest: {printable(out / 'manifest.parquet')}")
    return 1 if report.failed else 0
