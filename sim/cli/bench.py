"""``python -m sim bench [--json]``: requests simulated per second on the hot paths (sim/running/bench.py)."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure simulation speed (requests/s) and the paper grid's wall time",
                       description="Measure, in this process, requests simulated per second for the sequential "
                                   "fast path (group_beta and logistic predictors, and a Python router plugin), the discrete-event engine and "
                                   "a plain SimPy M/M/1 reference; and the paper grid's wall time on all cores. "
                                   "Each figure is the median of several repeats. See docs/performance.md.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--repeats", type=int, default=5, help="repeats per figure (default 5; the median is reported)")
    p.add_argument("--quick", action="store_true", help="a smoke test under 10 s: a twentieth of the workloads, at most 2 repeats, no paper "
                                                        "grid (figures are noisier)")
    p.add_argument("--skip-grid", action="store_true", help="do not run the paper grid (paper_grid_s = null)")
    p.add_argument("--workers", type=int, default=None, help="workers for the paper grid (default: all cores)")
    p.set_defaults(func=main)


def main(args) -> int:
    from sim.running.bench import format_table, run_bench
    from sim.errors import UserError

    if args.repeats < 1:
        raise UserError(f"--repeats {args.repeats}: must be at least 1")
    results = run_bench(repeats=args.repeats, quick=args.quick, grid=not args.skip_grid, workers=args.workers,
                        log=None if args.json else print)
    if args.json:
        print(json.dumps(results))
    else:
        print(format_table(results))
    return 0
