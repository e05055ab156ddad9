"""``python -m sim profile ...``: measured GPU profiles (energy per token and inter-token latency by concurrency)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("profile", help="import and inspect measured GPU profiles (ML.ENERGY, H200 Llama)")
    psub = p.add_subparsers(dest="profile_command", metavar="PROFILE_COMMAND", parser_class=type(p))
    psub.required = True

    imp = psub.add_parser("import", help="import profile measurements")
    isub = imp.add_subparsers(dest="profile_import_kind", metavar="KIND", parser_class=type(p))
    isub.required = True
    m = isub.add_parser(
        "mlenergy", help="ML.ENERGY v2 CSV, v3 task JSONs (file or directory), or the h200_llama_profile directory",
        description="Write one row per model x GPU x GPUs x concurrency: energy_per_token_j, itl_s, prefill "
                    "per-token columns where measured, and the source/task/variant it came from. Several PATHs "
                    "are concatenated.")
    m.add_argument("paths", nargs="+", metavar="PATH")
    m.add_argument("-o", "--out", required=True, type=Path, help="output Parquet file")
    m.set_defaults(func=_import)

    s = psub.add_parser("show", help="list the configurations in a profile file, or one model's curve")
    s.add_argument("path", help="profiles.parquet or a raw profile source")
    s.add_argument("--model", help="model id (full, or the part after '/')")
    s.add_argument("--gpu", help="GPU, e.g. H100")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_show)


def _import(args) -> int:
    from sim.trace.importers.profiles import import_profiles, write_profiles

    df = import_profiles(args.paths)
    write_profiles(df, args.out, [str(p) for p in args.paths])
    n_models = df.select("model_id", "gpu").unique().height
    print(f"wrote {args.out}: {df.height} rows, {n_models} model x GPU pairs", file=sys.stderr)
    return 0


def _show(args) -> int:
    import polars as pl

    from sim.errors import UserError
    from sim.trace.importers.profiles import KEY, ProfileCurve, load_profiles

    df = load_profiles(args.path)
    if args.model or args.gpu:
        if not (args.model and args.gpu):
            raise UserError("profile show: --model and --gpu go together")
        c = ProfileCurve.select(df, args.model, args.gpu)
        d = c.describe()
        d["itl_s"] = [float(x) for x in c.itl]
        d["energy_per_token_j"] = [float(x) for x in c.energy_j]
        d["prefill_s_per_token"] = c.prefill_s_per_token
        d["prefill_j_per_token"] = c.prefill_j_per_token
        if args.json:
            print(json.dumps(d))
        else:
            print(f"{d['model_id']} on {d['num_gpus']} x {d['gpu']} ({d['source']}, {d['task']}, {d['variant']})")
            print("  concurrency  itl_s      J/token")
            for cc, i, e in zip(d["concurrency"], d["itl_s"], d["energy_per_token_j"]):
                print(f"  {cc:>11}  {i:<9.5f}  {e:.4f}")
            if c.prefill_s_per_token is not None:
                print(f"  prefill: {c.prefill_s_per_token * 1e6:.2f} us and {c.prefill_j_per_token:.5f} J per prompt token")
        return 0
    g = (df.group_by(KEY, maintain_order=True)
           .agg(pl.col("concurrency").min().alias("min_c"), pl.col("concurrency").max().alias("max_c"), pl.len().alias("points"))
           .sort(["gpu", "model_id", "num_gpus"]))
    if args.json:
        print(json.dumps(g.to_dicts()))
    else:
        for r in g.iter_rows(named=True):
            print(f"{r['gpu']:<5} x{r['num_gpus']:<2} {r['model_id']:<50} {r['points']:>3} points "
                  f"(batch {r['min_c']}..{r['max_c']})  {r['source']} {r['task']} {r['variant']}")
    return 0
