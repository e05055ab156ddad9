"""``python -m sim trace synth``: write a synthetic trace (the same generator a scenario can use inline)."""

from __future__ import annotations

from pathlib import Path

from sim import config as cfg
from sim.errors import UserError
from sim.text import printable
from sim.trace.synth import synth_provenance, write_synth_trace

QUICKSTART_ZOO = {
    "requests": 20000,
    "arrivals": {"process": "poisson", "rate": 2.0},
    "groups": {"arc_challenge": {
        "accuracy": {"llama-3.2-1b": 0.3788, "llama-3.1-8b": 0.5444, "llama-3.3-70b": 0.6084},
        "energy_j": {"llama-3.2-1b": 79.87, "llama-3.1-8b": 393.66, "llama-3.3-70b": 2002.59}}},
    "latency_s": {"llama-3.2-1b": 0.4, "llama-3.1-8b": 1.2, "llama-3.3-70b": 4.5},
}


def register(sub) -> None:
    p = sub.add_parser("synth", help="write a synthetic trace (latent-difficulty outcomes)",
                       description="Write a synthetic trace. SPEC is a scenario YAML (its trace.synth block is used) "
                                   "or a bare synth block; without SPEC, the quickstart's Llama ARC-Challenge zoo.")
    p.add_argument("spec", nargs="?", help="scenario or synth-block YAML")
    p.add_argument("-o", "--out", required=True, type=Path, help="output Parquet file")
    p.add_argument("--requests", type=int, help="number of requests")
    p.add_argument("--rate", type=float, help="mean arrival rate (requests/s)")
    p.add_argument("--cv", type=float, help="inter-arrival coefficient of variation (gamma arrivals; 1 = Poisson)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's, else 42)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a value of the synth block, e.g. --set slope=2.5")
    p.set_defaults(func=main)


def main(args) -> int:
    from sim.running.paths import check_regular_target

    check_regular_target(args.out)  # before synthesising: a device or FIFO is never replaced
    # A trace is Parquet (its model order and provenance live in the file's metadata, which CSV cannot carry):
    # refuse another extension before doing any work rather than write Parquet under a misleading name.
    if Path(args.out).suffix.lower() != ".parquet":
        raise UserError(f"-o {printable(args.out)}: a trace is written as Parquet; give a file name ending in "
                        f".parquet")
    seed = 42
    if args.spec:
        raw = cfg.read_scenario_file(args.spec)
        if "trace" in raw:
            seed = raw.get("seed", seed)
            raw = (raw.get("trace") or {}).get("synth")
            if not isinstance(raw, dict):
                raise UserError(f"{args.spec}: the scenario has no trace.synth block")
    else:
        raw = QUICKSTART_ZOO
    raw = cfg.apply_overrides(raw, args.overrides)
    if args.requests is not None:
        raw["requests"] = args.requests
    if args.rate is not None or args.cv is not None:
        arr = dict(raw.get("arrivals") or {"process": "poisson", "rate": 1.0})
        if args.rate is not None:
            arr["rate"] = args.rate
        if args.cv is not None:
            arr = {"process": "gamma", "rate": arr.get("rate", 1.0), "cv": args.cv}
        raw["arrivals"] = arr
    seed = args.seed if args.seed is not None else seed
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise UserError(f"seed {seed!r}: must be a whole number from 0 to 2^63 - 1")
    try:
        spec = cfg.SynthTrace.model_validate(raw)
    except cfg.ValidationError as err:
        raise UserError(cfg.describe_validation_error(err, "synth")) from None
    from sim.memory import check_fits

    # before a MemoryError, not after (the trace is written a row group at a time, but some of its draws, such as
    # the arrival times, are made whole: the same per-request floor as a run's)
    check_fits(spec.requests, len(spec.models), "synth")
    write_synth_trace(spec, seed, args.out, synth_provenance(spec, seed))  # a row group at a time
    print(f"wrote {args.out}: {spec.requests:,} requests, models {spec.models}")
    return 0
