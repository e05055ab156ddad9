"""Import a per-request outcome table into the trace format: wide (one row per request, columns per model) or long
(one row per request and model, pivoted here).

``python -m sim trace import outcomes FILE.csv -o out.parquet [--preset routerbench|routellm|messplus|embedllm|
routerbench-martian] [--sat 'correct__*'] [--cost 'cost_usd__*'] [--energy GLOB] [--latency GLOB]
[--latency-unit s|ms|us] [--cost-unit LABEL] [--output-tokens GLOB] [--prompt-tokens COL] [--group COL]
[--text COL] [--embedding COL] [--id COL] [--models a,b,c] [--cost-per-request m=PRICE,...]
[--price-per-mtok m=PRICE[:OUT],...] [--layout wide|long] [--model-column COL] [--order file|shuffle] [--seed S]
[--join FILE --on COL]`` (each option in ``docs/importers.md``).

- Column globs have exactly one ``*``, which is the model name: ``--sat 'correct__*'`` finds the models. In the
  long layout the options name columns instead, and the table is pivoted to ``<column>__<model>``.
- A table without any cost is imported with a warning; ``sim run`` refuses it until a cost is added.
- A satisfaction value in [0, 1] that is not 0 or 1 is kept as a probability.
- Rows with a missing label (or a missing cost, energy, latency or token count) are dropped and counted on
  stderr and in the provenance; nothing is filled in.
- Models are ordered by mean energy (J) when the table has energy, else by mean USD, unless ``--models``.
- Without a latency column, ``latency_s__<m>`` is 0 and the provenance says so: ``trace compose --profile``
  can derive latency (and energy) from a measured GPU profile later.
- ``arrival_s`` is 0, 1, 2, ... (one request per second) until composed with real arrivals.
- ``request_id`` is ``--id`` (an integer column) or the row number in the source file.

Presets:

- ``routerbench``: ``correct__*`` / ``cost_usd__*``, group ``eval_name``, ``source_id`` = ``sample_id``;
  text = ``prompt_final_query`` of the ``*_prompts.csv`` file next to a ``*_labels.csv`` file, joined on
  ``sample_id`` (skipped, and noted, when that file is absent).
- ``routellm``: ``correct__*``; group = ``subject`` (MMLU) or ``gsm8k`` (a file without ``subject``);
  text = ``prompt`` where present. The files carry no cost, so each request is charged a constant USD
  cost: RouteLLM's blended API prices (GPT-4 $24.7, Mixtral-8x7B $0.24 per 1M tokens) for a nominal
  1,000-token request. Override with ``--cost-per-request``.
- ``messplus``: the MESS+ reference CSV ``doc_id, input_text, benchmark_name, label_<cat>, acc_norm_<cat>,
  energy_consumption_<cat>, inference_time_<cat>``. The model names are the categories; satisfaction is
  ``acc_norm_<cat>`` where present (row by row) and ``label_<cat>`` otherwise; energy in J and latency in s.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl

from sim.errors import UserError
from sim.trace.format import check_model_names, col, write_trace
from sim.trace.importers._common import Log, is_missing, match_glob, numeric, parse_list, parse_mapping, read_frame, require_columns, short_list, stderr_log

PRESETS = ("routerbench", "routellm", "messplus", "embedllm", "routerbench-martian")
LAYOUTS = ("wide", "long")
ORDERS = ("file", "shuffle")
# seconds per unit of a latency column
LATENCY_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
COST_UNIT = re.compile(r"^[A-Za-z$€¥£][A-Za-z0-9$€¥£._/-]{0,15}$")
NO_COST = ("no cost yet: add energy with `trace compose --profile P --gpu G --map ...`, or re-import with "
           "--cost GLOB, --energy GLOB, --cost-per-request MODEL=PRICE,... or --price-per-mtok MODEL=PRICE,... "
           "(x prompt and output token counts)")

# RouteLLM (Ong et al. 2024) blended prices, USD per 1M tokens, charged for a nominal 1,000-token request.
ROUTELLM_USD_PER_MTOK = {"gpt-4-1106-preview": 24.7, "Mixtral-8x7B-Instruct-v0.1": 0.24}
ROUTELLM_NOMINAL_TOKENS = 1000

FAMILY_FLAGS = {"cost_usd": "--cost", "energy_j": "--energy", "latency_s": "--latency", "output_tokens": "--output-tokens"}


def safe_model_names(names: list[str]) -> dict[str, str]:
    """Source model name -> a name the trace accepts: each run of other characters (``/``, spaces) becomes ``_``."""
    return {n: re.sub(r"[^A-Za-z0-9._+-]+", "_", n).strip("_") or "model" for n in names}


def _preset_defaults(preset: str | None, df: pl.DataFrame, path: Path, notes: dict, log: Log) -> tuple[pl.DataFrame, dict]:
    """Return the (possibly transformed) frame and default options for a preset."""
    where = f"outcomes {path}"
    if preset is None:
        return df, {}
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r} for trace import outcomes (known: {', '.join(PRESETS)})")
    if preset == "routerbench":
        require_columns(df, ["sample_id", "eval_name"], f"{where} (preset routerbench)")
        opts = {"sat": "correct__*", "cost": "cost_usd__*", "group": "eval_name", "source_id": "sample_id"}
        if df["sample_id"].n_unique() != df.height:
            raise UserError(f"{where}: column 'sample_id' has duplicated values")
        prompts = path.with_name(path.name.replace("_labels", "_prompts")) if "_labels" in path.name else None
        if prompts is not None and prompts.exists():
            p = read_frame(prompts, "RouterBench prompts file")
            require_columns(p, ["sample_id", "prompt_final_query"], f"RouterBench prompts file {prompts}")
            if p["sample_id"].n_unique() != p.height:
                raise UserError(f"RouterBench prompts file {prompts}: column 'sample_id' has duplicated values")
            p = p.select(pl.col("sample_id").cast(pl.Utf8), pl.col("prompt_final_query").cast(pl.Utf8).alias("__text"))
            df = df.with_columns(pl.col("sample_id").cast(pl.Utf8)).join(p, on="sample_id", how="left", maintain_order="left")
            unmatched = int(df["__text"].null_count())
            if unmatched:
                log(f"note: {unmatched} row(s) have no prompt text in {prompts.name}")
            opts["text"] = "__text"
            notes["text_source"] = str(prompts)
            notes["_display"] = {"__text": f"prompt_final_query of {prompts.name}, joined on sample_id"}
        else:
            notes["text_source"] = "none (no *_prompts.csv next to the labels file)"
        return df, opts
    if preset == "routellm":
        opts = {"sat": "correct__*"}
        if "subject" in df.columns:
            opts["group"] = "subject"
        else:
            const = "gsm8k" if "gsm8k" in path.name.lower() else path.stem
            df = df.with_columns(pl.lit(const).alias("__group"))
            opts["group"] = "__group"
            notes["_display"] = {"__group": f"constant {const!r}"}
        if "prompt" in df.columns:
            opts["text"] = "prompt"
        return df, opts
    if preset == "embedllm":
        # EmbedLLM (Zhuang et al., ICLR 2025) train/val/test.csv: one row per (model, question),
        # model_id, prompt_id, label (0/1), prompt; its own loader keeps the max label of repeated pairs.
        require_columns(df, ["model_id", "prompt_id", "label"], f"{where} (preset embedllm)")
        opts = {"layout": "long", "model_column": "model_id", "key": "prompt_id", "sat": "label",
                "on_duplicate": "max", "model_prefix": "m"}
        if "prompt" in df.columns:
            opts["text"] = "prompt"
        if "category" in df.columns:
            opts["group"] = "category"
        return df, opts
    if preset == "routerbench-martian":
        # RouterBench's own release (withmartian/routerbench, routerbench_0shot/5shot): sample_id, prompt,
        # eval_name, then per model '<model>' (score in [0, 1]), '<model>|model_response', '<model>|total_cost' (USD).
        require_columns(df, ["sample_id", "eval_name"], f"{where} (preset routerbench-martian)")
        costs = match_glob(df.columns, "*|total_cost", "--preset routerbench-martian")
        if not costs:
            raise UserError(f"{where} (preset routerbench-martian): no '<model>|total_cost' columns "
                            f"(found: {short_list(df.columns)})")
        missing = [m for m in costs if m not in df.columns]
        if missing:
            raise UserError(f"{where} (preset routerbench-martian): no score column for model(s) {missing}")
        names = safe_model_names(list(costs))
        df = df.with_columns([pl.col(m).alias(f"__sat__{names[m]}") for m in costs]
                             + [pl.col(c).alias(f"__cost__{names[m]}") for m, c in costs.items()])
        if any(k != v for k, v in names.items()):
            notes["model_names"] = {v: k for k, v in names.items() if k != v}
        notes["_display"] = {"__sat__*": "<model>", "__cost__*": "<model>|total_cost"}
        opts = {"sat": "__sat__*", "cost": "__cost__*", "group": "eval_name", "source_id": "sample_id"}
        if "prompt" in df.columns:
            opts["text"] = "prompt"
        return df, opts
    # messplus
    require_columns(df, ["doc_id", "input_text", "benchmark_name"], f"{where} (preset messplus)")
    labels = match_glob(df.columns, "label_*", "--preset messplus")
    accn = match_glob(df.columns, "acc_norm_*", "--preset messplus")
    if not labels and not accn:
        raise UserError(f"{where} (preset messplus): no 'label_<category>' or 'acc_norm_<category>' columns "
                        f"(found: {short_list(df.columns)})")
    cats = list(dict.fromkeys([*labels, *accn]))
    sat_cols = []
    used = {}
    for cat in cats:
        parts = [numeric(df, accn[cat], where)] if cat in accn else []
        parts += [numeric(df, labels[cat], where)] if cat in labels else []
        s = parts[0]
        for other in parts[1:]:
            s = s.fill_nan(None).fill_null(other) if s.dtype.is_float() else s.fill_null(other)
        sat_cols.append(s.alias(f"__sat__{cat}"))
        used[cat] = [c for c in (accn.get(cat), labels.get(cat)) if c]
    df = df.with_columns(sat_cols)
    notes["sat_columns"] = {cat: " else ".join(cs) for cat, cs in used.items()}
    notes["_display"] = {"__sat__*": "acc_norm_<cat> where present, else label_<cat>"}
    return df, {"sat": "__sat__*", "energy": "energy_consumption_*", "latency": "inference_time_*",
                "group": "benchmark_name", "text": "input_text", "source_id": "doc_id"}


def _pivot_long(df: pl.DataFrame, *, model_column: str, key: str, values: list[str], per_request: list[str],
                where: str, on_duplicate: str, model_prefix: str, say: Log) -> tuple[pl.DataFrame, list[str]]:
    """One row per (request, model) -> one row per request with ``<value>__<model>`` columns, in file order.

    ``per_request`` columns (group, text, token counts, ...) must agree across a request's rows; the first is kept.
    Pairs missing from the file become nulls, which the caller reports and drops like any missing label.
    """
    require_columns(df, [model_column, key, *values, *per_request], f"{where} (long layout)")
    for name in (model_column, key):
        if df[name].null_count():
            raise UserError(f"{where}: column {name!r} has {df[name].null_count()} missing value(s)")
    df = df.with_columns((pl.lit(model_prefix) + pl.col(model_column).cast(pl.Utf8)).alias(model_column))
    dup = df.height - int(df.select(pl.struct(key, model_column).n_unique()).item())  # rows beyond the first of a pair
    if dup:
        if on_duplicate != "max":
            first = df.filter(pl.struct(key, model_column).is_duplicated()).row(0, named=True)
            raise UserError(f"{where}: request {first[key]!r} has more than one row for model {first[model_column]!r} "
                            f"({dup} extra row(s) in all); a long table needs one row per (request, model)")
        df = df.group_by([key, model_column], maintain_order=True).agg(
            [pl.col(v).max() for v in values] + [pl.col(c).first() for c in per_request])
        say(f"note: {dup} repeated (request, model) row(s); kept the largest value, as the dataset's own loader does")
    for c in per_request:
        differ = df.group_by(key).agg(pl.col(c).n_unique().alias("n")).filter(pl.col("n") > 1)
        if differ.height:
            raise UserError(f"{where}: column {c!r} differs between the rows of request {differ[key][0]!r}; "
                            f"it must be the same for every model of a request")
    models = df[model_column].unique(maintain_order=True).to_list()
    wide = df.pivot(on=model_column, index=key, values=values, separator="__", column_naming="combine",
                    maintain_order=True)
    if per_request:
        firsts = df.group_by(key, maintain_order=True).agg([pl.col(c).first() for c in per_request])
        wide = wide.join(firsts, on=key, how="left", maintain_order="left")
    return wide, models


def _join_side(df: pl.DataFrame, side_path: str | Path, on: str, where: str, say: Log) -> pl.DataFrame:
    """Attach a side file's columns (text, embedding, group) keyed by ``on``; every outcome row is kept."""
    side = read_frame(side_path, "--join file")
    for frame, what in ((df, where), (side, f"--join file {side_path}")):
        if on not in frame.columns:
            raise UserError(f"{what}: --on column {on!r} not found (columns: {short_list(frame.columns)})")
    if side[on].null_count() or side[on].n_unique() != side.height:
        raise UserError(f"--join file {side_path}: column {on!r} must name each row once (it has duplicated or missing values)")
    clash = [c for c in side.columns if c != on and c in df.columns]
    if clash:
        raise UserError(f"--join file {side_path}: column(s) {clash} are also in the outcomes file; rename them")
    if df.schema[on] != side.schema[on]:
        df = df.with_columns(pl.col(on).cast(pl.Utf8))
        side = side.with_columns(pl.col(on).cast(pl.Utf8))
    joined = df.join(side, on=on, how="left", maintain_order="left")
    matched = int(df[on].is_in(side[on].implode()).sum())
    if matched < df.height:
        say(f"note: {df.height - matched} of {df.height} row(s) have no match in {Path(side_path).name}")
    return joined


def _embedding(df: pl.DataFrame, name: str, rows: np.ndarray, where: str) -> pl.Series:
    """An embedding column (a list of floats per row, or JSON text such as '[0.1, 0.2]' from a CSV) for the kept rows."""
    s = df[name].gather(rows)
    try:
        if s.dtype == pl.Utf8:
            s = s.str.json_decode(pl.List(pl.Float64))
        s = s.cast(pl.List(pl.Float64))
    except pl.exceptions.PolarsError:
        raise UserError(f"{where}: --embedding column {name!r} must hold a list of numbers per row") from None
    lengths = s.list.len()
    if s.null_count() or lengths.n_unique() != 1 or int(lengths[0]) == 0:
        raise UserError(f"{where}: --embedding column {name!r} must hold a non-empty list of the same length on every row")
    flat = s.explode().to_numpy()
    if not np.all(np.isfinite(flat)):
        raise UserError(f"{where}: --embedding column {name!r} has missing or non-finite values")
    return s.alias("embedding")


def _parse_prices(text: str | dict | None, flag: str) -> dict[str, tuple[float, float]]:
    """``M=P`` or ``M=IN:OUT`` (price per 1M prompt and output tokens) -> {model: (in, out)}."""
    if not text:
        return {}
    raw = {k: str(v) for k, v in text.items()} if isinstance(text, dict) else parse_mapping(text, flag)
    out: dict[str, tuple[float, float]] = {}
    for m, v in raw.items():
        parts = v.split(":")
        try:
            nums = [float(x) for x in parts]
        except ValueError:
            raise UserError(f"{flag}: {m}={v!r} is not a price (PRICE or IN:OUT per 1M tokens)") from None
        if len(nums) not in (1, 2) or not all(np.isfinite(x) and x >= 0 for x in nums):
            raise UserError(f"{flag}: {m}={v!r} must be one non-negative price, or IN:OUT")
        out[m] = (nums[0], nums[-1])
    return out


def import_outcomes(path: str | Path, out: str | Path, *, preset: str | None = None, sat: str | None = None,
                    cost: str | None = None, energy: str | None = None, latency: str | None = None,
                    output_tokens: str | None = None, group: str | None = None, text: str | None = None,
                    id_col: str | None = None, models: str | list[str] | None = None,
                    cost_per_request: str | dict | None = None, layout: str | None = None,
                    model_column: str | None = None, latency_unit: str = "s", cost_unit: str | None = None,
                    prompt_tokens: str | None = None, price_per_mtok: str | dict | None = None,
                    order: str = "file", seed: int = 0, join: str | Path | None = None, on: str | None = None,
                    embedding: str | None = None, log: Log = stderr_log) -> dict:
    """Import ``path`` and write a trace to ``out``. Returns a summary dict (rows, dropped, models, ...).

    Messages for stderr are passed to ``log`` only once the trace is written, so a failure prints one line.
    """
    pending: list[str] = []
    say = pending.append
    path = Path(path)
    if preset is not None and preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r} for trace import outcomes (known: {', '.join(PRESETS)})")
    if layout is not None and layout not in LAYOUTS:
        raise UserError(f"--layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if latency_unit not in LATENCY_UNITS:
        raise UserError(f"--latency-unit {latency_unit!r}: expected one of {', '.join(LATENCY_UNITS)}")
    if order not in ORDERS:
        raise UserError(f"--order {order!r}: expected one of {', '.join(ORDERS)}")
    if cost_unit is not None and not COST_UNIT.match(cost_unit):
        raise UserError(f"--cost-unit {cost_unit!r}: expected a short label such as USD, CNY or EUR")
    if (join is None) != (on is None):
        raise UserError("--join FILE and --on COLUMN go together")
    where = f"outcomes {path}"
    df = read_frame(path, "outcomes file")
    notes: dict = {}
    df, defaults = _preset_defaults(preset, df, path, notes, say)
    sat = sat or defaults.get("sat")
    cost = cost or defaults.get("cost")
    energy = energy or defaults.get("energy")
    latency = latency or defaults.get("latency")
    group = group or defaults.get("group")
    text = text or defaults.get("text")
    source_id = defaults.get("source_id")
    if not sat:
        raise UserError("trace import outcomes: --sat GLOB is required (e.g. --sat 'correct__*'), or a --preset")

    # --- long layout: one row per (request, model); pivot to the wide layout, reading the file once
    layout = layout or defaults.get("layout")
    model_column = model_column or defaults.get("model_column")
    if layout is None and "*" not in sat and (model_column or "model" in df.columns):
        model_column = model_column or "model"
        layout = "long"
        say(f"note: --sat {sat!r} has no '*': reading a long table (one row per request and model; models in "
            f"column {model_column!r}); pass --layout wide to refuse this")
    layout = layout or "wide"
    if layout == "wide" and "*" not in sat:
        raise UserError(f"--sat {sat!r}: the pattern needs exactly one '*', which stands for the model name (e.g. "
                        f"'correct__*'); for a long table (a row per request and model) add --layout long --model-column COL")
    if layout == "long":
        if not model_column:
            raise UserError("--layout long needs --model-column COL, the column that names the model")
        key = defaults.get("key") or id_col
        if not key:
            raise UserError("--layout long needs --id COL, the column that names the request")
        flags = {"--sat": sat, "--cost": cost, "--energy": energy, "--latency": latency, "--output-tokens": output_tokens}
        starred = [f for f, v in flags.items() if v and "*" in v]
        if starred:
            raise UserError(f"{starred[0]} {flags[starred[0]]!r}: in the long layout give a column name, not a pattern")
        values = list(dict.fromkeys(v for v in flags.values() if v))
        per_request = list(dict.fromkeys(c for c in (group, text, prompt_tokens, embedding, source_id)
                                         if c and c in df.columns and c != key))
        df, _ = _pivot_long(df, model_column=model_column, key=key, values=values, per_request=per_request,
                            where=where, on_duplicate=defaults.get("on_duplicate", "error"),
                            model_prefix=defaults.get("model_prefix", ""), say=say)
        sat, cost, energy, latency, output_tokens = (f"{v}__*" if v else None
                                                     for v in (sat, cost, energy, latency, output_tokens))
        if df[key].dtype.is_integer() and id_col:
            id_col = key
        else:
            id_col, source_id = None, key
        notes["layout"] = f"long: pivoted on {model_column!r}, one request per {key!r} in order of first appearance"
        notes.setdefault("_display", {}).update({f"{v}__*": v for v in values})
    if join is not None:
        df = _join_side(df, join, on, where, say)
        notes["join"] = {"file": str(join), "on": on}

    sat_map = match_glob(df.columns, sat, "--sat")
    if not sat_map:
        raise UserError(f"{where}: no column matches --sat {sat!r} (columns: {short_list(df.columns)})")
    wanted = parse_list(models, "--models") if isinstance(models, str) or models is None else list(models)
    if wanted:
        unknown = [m for m in wanted if m not in sat_map]
        if unknown:
            raise UserError(f"--models: {unknown} not found by --sat {sat!r} (models: {short_list(sat_map)})")
        model_list = wanted
    else:
        model_list = list(sat_map)
    check_model_names(model_list, where)

    # constant per-request costs (routellm preset default, or --cost-per-request)
    const_cost: dict[str, float] = {}
    if isinstance(cost_per_request, dict):
        const_cost = {k: float(v) for k, v in cost_per_request.items()}
    elif cost_per_request:
        for k, v in parse_mapping(cost_per_request, "--cost-per-request").items():
            try:
                const_cost[k] = float(v)
            except ValueError:
                raise UserError(f"--cost-per-request: {k}={v!r} is not a number") from None
    prices = _parse_prices(price_per_mtok, "--price-per-mtok")
    if preset == "routellm" and not cost and not energy and not const_cost and not prices:
        const_cost = {m: ROUTELLM_USD_PER_MTOK[m] * ROUTELLM_NOMINAL_TOKENS / 1e6
                      for m in model_list if m in ROUTELLM_USD_PER_MTOK}
        missing = [m for m in model_list if m not in const_cost]
        if missing:
            raise UserError(f"{where}: no known price for model(s) {missing}; pass --cost-per-request MODEL=USD,... or --cost GLOB")
        notes["cost_usd"] = (f"assumed constant per request: RouteLLM blended USD per 1M tokens "
                             f"{ {m: ROUTELLM_USD_PER_MTOK[m] for m in model_list} } x {ROUTELLM_NOMINAL_TOKENS} tokens")
    for flag, given in (("--cost-per-request", const_cost), ("--price-per-mtok", prices)):
        if not given:
            continue
        if cost or (const_cost and prices):
            raise UserError("give one of --cost GLOB, --cost-per-request and --price-per-mtok, not several")
        unknown = [m for m in given if m not in sat_map]
        if unknown:
            raise UserError(f"{flag}: unknown model(s) {unknown} (models: {short_list(sat_map)})")
        missing = [m for m in model_list if m not in given]
        if missing:
            raise UserError(f"{flag}: no price for model(s) {missing}")
    if const_cost:
        const_cost = {m: v for m, v in const_cost.items() if m in model_list}
        bad = [m for m, v in const_cost.items() if not np.isfinite(v) or v < 0]
        if bad:
            raise UserError(f"--cost-per-request: cost of {bad} must be a non-negative number")
        notes.setdefault("cost_usd", f"constant per request from --cost-per-request: {const_cost}")
    if prices:
        if not prompt_tokens or not output_tokens:
            raise UserError("--price-per-mtok needs token counts: give --prompt-tokens COL and --output-tokens GLOB")
        notes["cost_usd"] = f"--price-per-mtok (per 1M prompt:output tokens) x token counts: {prices}"
    has_cost = bool(cost or energy or const_cost or prices)

    family_maps: dict[str, dict[str, str]] = {}
    for family, pattern in (("cost_usd", cost), ("energy_j", energy), ("latency_s", latency), ("output_tokens", output_tokens)):
        if not pattern:
            continue
        found = match_glob(df.columns, pattern, FAMILY_FLAGS[family])
        missing = [m for m in model_list if m not in found]
        if missing:
            raise UserError(f"{where}: {FAMILY_FLAGS[family]} {pattern!r} has no column for model(s) {missing}")
        family_maps[family] = {m: found[m] for m in model_list}

    for flag, name in (("--group", group), ("--text", text), ("--id", id_col), ("--prompt-tokens", prompt_tokens),
                       ("--embedding", embedding)):
        if name and name not in df.columns:
            raise UserError(f"{where}: {flag} column {name!r} not found (columns: {short_list(df.columns)})")

    # --- numeric checks on the whole file (text in a numeric column is an error, not a missing value)
    data: dict[str, pl.Series] = {}
    for m in model_list:
        s = numeric(df, sat_map[m], where)
        data[col("sat", m)] = s
    for family, cmap in family_maps.items():
        for m, c in cmap.items():
            data[col(family, m)] = numeric(df, c, where)
    if prompt_tokens:
        data["prompt_tokens"] = numeric(df, prompt_tokens, where)

    # --- missing values: report and drop, never fill
    n0 = df.height
    miss_label = np.zeros(n0, bool)
    for m in model_list:
        miss_label |= is_missing(data[col("sat", m)]).to_numpy()
    miss_other = np.zeros(n0, bool)
    other_cols = []
    checked = [(cmap[m], data[col(family, m)]) for family, cmap in family_maps.items() for m in cmap]
    if prompt_tokens:
        checked.append((prompt_tokens, data["prompt_tokens"]))
    for name, series in checked:
        mm = is_missing(series).to_numpy()
        if mm.any():
            other_cols.append(name)
        miss_other |= mm
    miss_other &= ~miss_label
    keep = ~(miss_label | miss_other)
    dropped_labels, dropped_other = int(miss_label.sum()), int(miss_other.sum())
    if dropped_labels:
        say(f"dropped {dropped_labels} of {n0} row(s) with a missing label in {path.name}")
    if dropped_other:
        say(f"dropped {dropped_other} more row(s) with a missing value in {short_list(other_cols, 4)}")
    if not keep.any():
        raise UserError(f"{where}: every row has a missing label or value; nothing to import")

    # --- value checks on the kept rows
    for m in model_list:
        v = data[col("sat", m)].to_numpy()[keep]
        if not np.all(np.isfinite(v)) or np.any((v < 0) | (v > 1)):
            i = int(np.flatnonzero(~np.isfinite(v) | (v < 0) | (v > 1))[0])
            raise UserError(f"{where}: column {sat_map[m]!r} must hold labels or probabilities in [0, 1], found {v[i]!r}")
    for name, series in [(cmap[m], data[col(family, m)]) for family, cmap in family_maps.items() for m in cmap] + (
            [(prompt_tokens, data["prompt_tokens"])] if prompt_tokens else []):
        v = series.to_numpy()[keep]
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            i = int(np.flatnonzero(~np.isfinite(v) | (v < 0))[0])
            raise UserError(f"{where}: column {name!r} must be finite and non-negative, found {v[i]!r}")
    for name, series in [(c, data[col("output_tokens", m)]) for m, c in family_maps.get("output_tokens", {}).items()] + (
            [(prompt_tokens, data["prompt_tokens"])] if prompt_tokens else []):
        v = series.to_numpy()[keep]
        if np.any(v != np.round(v)):
            raise UserError(f"{where}: column {name!r} must hold whole token counts")

    rows = np.flatnonzero(keep)
    if order == "shuffle":
        rows = rows[np.random.default_rng(np.random.SeedSequence(seed)).permutation(len(rows))]
    n = len(rows)
    if id_col:
        ids_raw = df[id_col]
        if not ids_raw.dtype.is_integer():
            conv = numeric(df, id_col, where).to_numpy()
            if np.any(~np.isfinite(conv)) or np.any(conv != np.round(conv)):
                raise UserError(f"{where}: --id column {id_col!r} must hold whole numbers (found {ids_raw.dtype})")
            ids_raw = pl.Series(id_col, conv.astype(np.int64))
        if ids_raw.null_count():
            raise UserError(f"{where}: --id column {id_col!r} has {ids_raw.null_count()} missing value(s)")
        ids = ids_raw.to_numpy().astype(np.int64)[rows]
        if len(np.unique(ids)) != n:
            raise UserError(f"{where}: --id column {id_col!r} has duplicated values")
        if np.any(ids < 0):
            raise UserError(f"{where}: --id column {id_col!r} has negative values")
    else:
        ids = rows.astype(np.int64)

    cols: dict[str, object] = {
        "request_id": pl.Series("request_id", ids, dtype=pl.Int64),
        "arrival_s": pl.Series("arrival_s", np.arange(n, dtype=np.float64)),
    }
    if group:
        g = df[group].cast(pl.Utf8).gather(rows)
        if g.null_count():
            say(f"note: {g.null_count()} row(s) have no {group!r}; their group is '(none)'")
        cols["group"] = g.fill_null("(none)").alias("group")
    else:
        cols["group"] = pl.Series("group", ["all"] * n, dtype=pl.Utf8)
    if text:
        cols["text"] = df[text].cast(pl.Utf8).gather(rows).alias("text")
    if embedding:
        cols["embedding"] = _embedding(df, embedding, rows, where)
    if source_id:
        cols["source_id"] = df[source_id].cast(pl.Utf8).gather(rows).alias("source_id")
    if prompt_tokens:
        cols["prompt_tokens"] = pl.Series("prompt_tokens", data["prompt_tokens"].to_numpy()[rows].astype(np.int64))
    seconds = LATENCY_UNITS[latency_unit]
    for m in model_list:
        cols[col("sat", m)] = pl.Series(col("sat", m), data[col("sat", m)].to_numpy()[rows].astype(np.float64))
    for family in ("energy_j", "cost_usd", "latency_s", "output_tokens"):
        for m in model_list:
            name = col(family, m)
            if family in family_maps:
                v = data[name].to_numpy()[rows]
                v = v.astype(np.int64) if family == "output_tokens" else v.astype(np.float64) * (seconds if family == "latency_s" else 1.0)
                cols[name] = pl.Series(name, v)
            elif family == "cost_usd" and const_cost:
                cols[name] = pl.Series(name, np.full(n, const_cost[m], dtype=np.float64))
            elif family == "latency_s":
                cols[name] = pl.Series(name, np.zeros(n, dtype=np.float64))
    if prices:  # token counts are whole numbers, so the product is exact up to the price's own rounding
        for m in model_list:
            p_in, p_out = prices[m]
            cost_m = (cols["prompt_tokens"].to_numpy() * p_in + cols[col("output_tokens", m)].to_numpy() * p_out) / 1e6
            cols[col("cost_usd", m)] = pl.Series(col("cost_usd", m), cost_m.astype(np.float64))
    out_df = pl.DataFrame(cols)

    # --- model order by mean cost, cheapest first (file order when there is no cost yet)
    order_family = "energy_j" if "energy_j" in family_maps else "cost_usd" if has_cost else None
    means = {m: float(out_df[col(order_family, m)].mean()) if order_family else None for m in model_list}
    if not wanted and order_family:
        model_list = sorted(model_list, key=lambda m: (means[m], model_list.index(m)))
    display = notes.pop("_display", {})
    sat_values = np.concatenate([out_df[col("sat", m)].to_numpy() for m in model_list])
    fractional = int(np.count_nonzero((sat_values > 0) & (sat_values < 1)))
    if fractional:
        say(f"note: {fractional} of {sat_values.size} satisfaction values are fractional scores in (0, 1): the queue "
            f"counts the fraction, the offline optimum reads them as probabilities (docs/importers.md)")
    money = cost_unit or "USD"
    unit = "J" if "energy_j" in family_maps else money if has_cost else "none"
    if not has_cost:
        say(f"warning: the trace has {NO_COST}; `sim run` refuses it until then")
    if latency and latency_unit != "s":
        notes["latency_unit_in_source"] = f"{latency_unit} (converted to s)"

    provenance = {
        "importer": "outcomes", "source": str(path), "preset": preset, "dropped_rows": dropped_labels + dropped_other,
        "dropped_missing_label": dropped_labels, "dropped_missing_value": dropped_other,
        "rows_in_source": n0,
        "columns": {k: display.get(v, v) for k, v in (
            ("sat", sat), ("cost_usd", cost), ("energy_j", energy), ("latency_s", latency),
            ("output_tokens", output_tokens), ("prompt_tokens", prompt_tokens), ("group", group), ("text", text),
            ("embedding", embedding), ("id", id_col)) if v},
        "sat_kind": "probability" if fractional else "binary",
        "fractional_sat": fractional,
        "model_order": "given by --models" if wanted else f"by mean {order_family}" if order_family else "file order (no cost yet)",
        "order": f"shuffled (seed {seed})" if order == "shuffle" else "file order",
        "latency": "from " + display.get(latency, latency) if latency else "absent in the source: latency_s__<m> = 0 (derive it with trace compose --profile)",
        "arrival_s": "0, 1, 2, ... (one per second); compose with arrivals for real times",
        **notes,
    }
    if not has_cost:
        provenance["cost"] = NO_COST
    if "cost_usd" in family_maps or const_cost or prices:
        provenance["cost_unit"] = money
    write_trace(out_df, out, model_list, provenance, cost_unit=unit, money_unit=money, need_cost=False)
    for msg in pending:
        log(msg)
    return {"rows": n, "dropped": dropped_labels + dropped_other, "models": model_list, "out": str(out),
            "cost_unit": unit, "means": {m: means[m] for m in model_list}, "fractional_sat": fractional}
