"""``python -m sim trace import outcomes|arrivals``, ``trace compose`` and ``trace info``.

See ``docs/importers.md`` for the exact commands on the files in ``../shared/data``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sim.errors import UserError


def register(tsub) -> None:
    p = tsub.add_parser("import", help="import real data: per-request outcome tables or arrival traces",
                        description="Import real data into the simulator's formats.")
    isub = p.add_subparsers(dest="import_command", metavar="KIND", parser_class=type(p))
    isub.required = True

    o = isub.add_parser(
        "outcomes", help="an outcome table (wide: columns per model; long: a row per request and model) -> trace",
        description="Import a wide per-request outcome table into a trace. Column globs have one '*', the model "
                    "name. Rows with missing labels are reported and dropped. Models are ordered by mean cost "
                    "(energy, else USD) unless --models is given.")
    o.add_argument("file", help="CSV, JSONL or Parquet file")
    o.add_argument("-o", "--out", required=True, type=Path, help="output trace (Parquet)")
    o.add_argument("--preset", help="routerbench | routellm | messplus | embedllm | routerbench-martian")
    o.add_argument("--layout", help="wide (columns per model) | long (one row per request and model); "
                                    "default: long when --sat has no '*' and there is a model column")
    o.add_argument("--model-column", help="long layout: the column naming the model (default 'model')")
    o.add_argument("--sat", help="glob of the satisfaction columns, e.g. 'correct__*' (0/1 or probabilities)")
    o.add_argument("--cost", help="glob of the USD cost columns, e.g. 'cost_usd__*'")
    o.add_argument("--energy", help="glob of the energy columns (J)")
    o.add_argument("--latency", help="glob of the latency columns (s); without it latency is 0")
    o.add_argument("--latency-unit", default="s", help="unit of the latency columns: s | ms | us (default s)")
    o.add_argument("--cost-unit", help="label of the --cost / --cost-per-request money unit (default USD), e.g. CNY")
    o.add_argument("--prompt-tokens", help="column with the prompt-token count (one per request)")
    o.add_argument("--output-tokens", help="glob of the output-token columns")
    o.add_argument("--group", help="column with the group (benchmark) name; default: one group 'all'")
    o.add_argument("--text", help="column with the prompt text")
    o.add_argument("--id", dest="id_col", help="integer column with the request id; default: the row number")
    o.add_argument("--models", help="comma-separated models to keep, in this order (default: all, cheapest first)")
    o.add_argument("--cost-per-request", metavar="M=USD,...",
                   help="a constant USD cost per request for each model, for tables without cost columns")
    o.add_argument("--price-per-mtok", metavar="M=PRICE[:OUT],...",
                   help="price per 1M tokens (or prompt:output prices) for each model; cost = tokens x price "
                        "(needs --prompt-tokens and --output-tokens)")
    o.add_argument("--order", default="file", help="file (keep the file's order) | shuffle (seeded; see --seed)")
    o.add_argument("--seed", type=int, default=0, help="seed for --order shuffle (default 0)")
    o.add_argument("--join", help="side file (CSV, JSONL or Parquet) whose columns (text, embedding, group) are "
                                  "attached by --on")
    o.add_argument("--on", help="the key column shared by the outcomes file and the --join file")
    o.add_argument("--embedding", help="column with a list of floats per request (JSON text in a CSV)")
    o.set_defaults(func=_outcomes)

    a = isub.add_parser(
        "arrivals", help="an arrival-time trace (Azure LLM inference, or any CSV/JSONL) -> arrivals Parquet",
        description="Import arrival times (and token counts). Output columns: arrival_s (from 0, sorted), "
                    "prompt_tokens, output_tokens.")
    a.add_argument("file", help="CSV, JSONL or Parquet file")
    a.add_argument("-o", "--out", required=True, type=Path, help="output arrivals file (Parquet)")
    a.add_argument("--preset", help="azure (TIMESTAMP, ContextTokens, GeneratedTokens)")
    a.add_argument("--time", help="time column")
    a.add_argument("--time-unit", help="s | ms | us | ns | datetime (default s)")
    a.add_argument("--prompt-tokens", help="prompt-token column")
    a.add_argument("--output-tokens", help="output-token column")
    a.set_defaults(func=_arrivals)

    c = tsub.add_parser(
        "compose", help="outcomes x arrivals (x a GPU profile) -> trace",
        description="Give outcome rows arrival times from an arrivals file; derive missing energy/latency from a "
                    "GPU profile. See sim/trace/importers/compose.py for the exact rules.")
    c.add_argument("--outcomes", required=True, help="trace written by `trace import outcomes`")
    c.add_argument("--arrivals", required=True, help="file written by `trace import arrivals`")
    c.add_argument("-o", "--out", required=True, type=Path, help="output trace (Parquet)")
    c.add_argument("--time-scale", type=float, default=1.0, help="multiply every arrival time (0.5 = twice the load)")
    c.add_argument("--assign", default="cycle", help="cycle (file order) | sample (seeded shuffle and start)")
    c.add_argument("--seed", type=int, default=0, help="seed for --assign sample (default 0)")
    c.add_argument("--rows", type=int, help="number of requests (default: one per outcome row)")
    c.add_argument("--profile", help="profiles.parquet (or a raw ML.ENERGY / H200 profile path)")
    c.add_argument("--gpu", help="GPU of the profile, e.g. H100")
    c.add_argument("--map", dest="mapping", metavar="M=PROFILE_ID[*FACTOR],...",
                   help="trace model -> profile model id (optionally scaled), e.g. mistral-7b-chat=mistralai/Mistral-7B-Instruct-v0.3")
    c.add_argument("--concurrency", type=float, default=1.0, help="concurrency at which the profile is read (default 1)")
    c.set_defaults(func=_compose)

    i = tsub.add_parser("info", help="rows, rates, burstiness, per-model and per-group accuracy/cost, provenance",
                        description="Summarise a trace or an arrivals file. rate_per_s = rows / span_s.")
    i.add_argument("file", help="trace or arrivals Parquet file")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=_info)


def _outcomes(args) -> int:
    from sim.trace.importers.outcomes import import_outcomes

    s = import_outcomes(args.file, args.out, preset=args.preset, sat=args.sat, cost=args.cost, energy=args.energy,
                        latency=args.latency, output_tokens=args.output_tokens, group=args.group, text=args.text,
                        id_col=args.id_col, models=args.models, cost_per_request=args.cost_per_request,
                        layout=args.layout, model_column=args.model_column, latency_unit=args.latency_unit,
                        cost_unit=args.cost_unit, prompt_tokens=args.prompt_tokens, price_per_mtok=args.price_per_mtok,
                        order=args.order, seed=args.seed, join=args.join, on=args.on, embedding=args.embedding)
    unit = "no cost yet" if s["cost_unit"] == "none" else f"cost in {s['cost_unit']}"
    print(f"wrote {s['out']}: {s['rows']} requests x {len(s['models'])} models ({', '.join(s['models'])}), "
          f"{unit}; dropped {s['dropped']} row(s)", file=sys.stderr)
    return 0


def _arrivals(args) -> int:
    from sim.trace.importers.arrivals import import_arrivals

    s = import_arrivals(args.file, args.out, preset=args.preset, time=args.time, time_unit=args.time_unit,
                        prompt_tokens=args.prompt_tokens, output_tokens=args.output_tokens)
    rate = s["rows"] / s["span_s"] if s["span_s"] > 0 else float("nan")
    print(f"wrote {s['out']}: {s['rows']} arrivals over {s['span_s']:.1f} s ({rate:.3f}/s); "
          f"dropped {s['dropped']}, out of order {s['out_of_order']}", file=sys.stderr)
    return 0


def _compose(args) -> int:
    from sim.trace.importers.compose import compose

    if args.rows is not None and not 1 <= args.rows <= 1_000_000_000:  # the scenario's limit for recipe rows
        raise UserError(f"--rows {args.rows}: must be from 1 to 1,000,000,000")
    if args.seed is not None and not 0 <= args.seed < 2**63:
        raise UserError(f"--seed {args.seed}: must be a whole number from 0 to 2^63 - 1")
    s = compose(args.outcomes, args.arrivals, args.out, time_scale=args.time_scale, assign=args.assign,
                seed=args.seed, rows=args.rows, profile=args.profile, gpu=args.gpu, mapping=args.mapping,
                concurrency=args.concurrency)
    extra = f"; energy/latency derived for {', '.join(s['derived'])}" if s["derived"] else ""
    print(f"wrote {s['out']}: {s['rows']} requests over {s['span_s']:.1f} s{extra}", file=sys.stderr)
    return 0


def _info(args) -> int:
    from sim.trace.importers.info import format_info, trace_info

    info, unit = trace_info(args.file)
    if args.json:
        print(json.dumps(info, allow_nan=False))
    else:
        print(format_info(str(args.file), info, unit))
    return 0
