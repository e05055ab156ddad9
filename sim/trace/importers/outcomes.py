"""Import a wide per-request outcome table (one row per request, columns per model) into the trace format.

``python -m sim trace import outcomes FILE.csv -o out.parquet [--preset routerbench|routellm|messplus]
[--sat 'correct__*'] [--cost 'cost_usd__*'] [--energy GLOB] [--latency GLOB] [--output-tokens GLOB]
[--group COL] [--text COL] [--id COL] [--models a,b,c] [--cost-per-request m=USD,...]``

- Column globs have exactly one ``*``, which is the model name: ``--sat 'correct__*'`` finds the models.
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

from pathlib import Path

import numpy as np
import polars as pl

from sim.errors import UserError
from sim.trace.format import check_model_names, col, write_trace
from sim.trace.importers._common import Log, is_missing, match_glob, numeric, parse_list, parse_mapping, read_frame, require_columns, short_list, stderr_log

PRESETS = ("routerbench", "routellm", "messplus")

# RouteLLM (Ong et al. 2024) blended prices, USD per 1M tokens, charged for a nominal 1,000-token request.
ROUTELLM_USD_PER_MTOK = {"gpt-4-1106-preview": 24.7, "Mixtral-8x7B-Instruct-v0.1": 0.24}
ROUTELLM_NOMINAL_TOKENS = 1000

FAMILY_FLAGS = {"cost_usd": "--cost", "energy_j": "--energy", "latency_s": "--latency", "output_tokens": "--output-tokens"}


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


def import_outcomes(path: str | Path, out: str | Path, *, preset: str | None = None, sat: str | None = None,
                    cost: str | None = None, energy: str | None = None, latency: str | None = None,
                    output_tokens: str | None = None, group: str | None = None, text: str | None = None,
                    id_col: str | None = None, models: str | list[str] | None = None,
                    cost_per_request: str | dict | None = None, log: Log = stderr_log) -> dict:
    """Import ``path`` and write a trace to ``out``. Returns a summary dict (rows, dropped, models, ...).

    Messages for stderr are passed to ``log`` only once the trace is written, so a failure prints one line.
    """
    pending: list[str] = []
    say = pending.append
    path = Path(path)
    if preset is not None and preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r} for trace import outcomes (known: {', '.join(PRESETS)})")
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
    if preset == "routellm" and not cost and not energy and not const_cost:
        const_cost = {m: ROUTELLM_USD_PER_MTOK[m] * ROUTELLM_NOMINAL_TOKENS / 1e6
                      for m in model_list if m in ROUTELLM_USD_PER_MTOK}
        missing = [m for m in model_list if m not in const_cost]
        if missing:
            raise UserError(f"{where}: no known price for model(s) {missing}; pass --cost-per-request MODEL=USD,... or --cost GLOB")
        notes["cost_usd"] = (f"assumed constant per request: RouteLLM blended USD per 1M tokens "
                             f"{ {m: ROUTELLM_USD_PER_MTOK[m] for m in model_list} } x {ROUTELLM_NOMINAL_TOKENS} tokens")
    if const_cost:
        if cost:
            raise UserError("give either --cost GLOB or --cost-per-request, not both")
        unknown = [m for m in const_cost if m not in sat_map]
        if unknown:
            raise UserError(f"--cost-per-request: unknown model(s) {unknown} (models: {short_list(sat_map)})")
        const_cost = {m: v for m, v in const_cost.items() if m in model_list}
        missing = [m for m in model_list if m not in const_cost]
        if missing:
            raise UserError(f"--cost-per-request: no cost for model(s) {missing}")
        bad = [m for m, v in const_cost.items() if not np.isfinite(v) or v < 0]
        if bad:
            raise UserError(f"--cost-per-request: cost of {bad} must be a non-negative number")
        notes.setdefault("cost_usd", f"constant per request from --cost-per-request: {const_cost}")
    if not cost and not energy and not const_cost:
        raise UserError("trace import outcomes: a trace needs a cost: give --cost GLOB (USD), --energy GLOB (J) "
                        "or --cost-per-request MODEL=USD,...")

    family_maps: dict[str, dict[str, str]] = {}
    for family, pattern in (("cost_usd", cost), ("energy_j", energy), ("latency_s", latency), ("output_tokens", output_tokens)):
        if not pattern:
            continue
        found = match_glob(df.columns, pattern, FAMILY_FLAGS[family])
        missing = [m for m in model_list if m not in found]
        if missing:
            raise UserError(f"{where}: {FAMILY_FLAGS[family]} {pattern!r} has no column for model(s) {missing}")
        family_maps[family] = {m: found[m] for m in model_list}

    for flag, name in (("--group", group), ("--text", text), ("--id", id_col)):
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

    # --- missing values: report and drop, never fill
    n0 = df.height
    miss_label = np.zeros(n0, bool)
    for m in model_list:
        miss_label |= is_missing(data[col("sat", m)]).to_numpy()
    miss_other = np.zeros(n0, bool)
    other_cols = []
    for family, cmap in family_maps.items():
        for m in cmap:
            mm = is_missing(data[col(family, m)]).to_numpy()
            if mm.any():
                other_cols.append(cmap[m])
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
    for family, cmap in family_maps.items():
        for m, c in cmap.items():
            v = data[col(family, m)].to_numpy()[keep]
            if not np.all(np.isfinite(v)) or np.any(v < 0):
                i = int(np.flatnonzero(~np.isfinite(v) | (v < 0))[0])
                raise UserError(f"{where}: column {c!r} must be finite and non-negative, found {v[i]!r}")
            if family == "output_tokens" and np.any(v != np.round(v)):
                raise UserError(f"{where}: column {c!r} must hold whole token counts")

    rows = np.flatnonzero(keep)
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
    if source_id:
        cols["source_id"] = df[source_id].cast(pl.Utf8).gather(rows).alias("source_id")
    for m in model_list:
        cols[col("sat", m)] = pl.Series(col("sat", m), data[col("sat", m)].to_numpy()[rows].astype(np.float64))
    for family in ("energy_j", "cost_usd", "latency_s", "output_tokens"):
        for m in model_list:
            name = col(family, m)
            if family in family_maps:
                v = data[name].to_numpy()[rows]
                cols[name] = pl.Series(name, v.astype(np.int64) if family == "output_tokens" else v.astype(np.float64))
            elif family == "cost_usd" and const_cost:
                cols[name] = pl.Series(name, np.full(n, const_cost[m], dtype=np.float64))
            elif family == "latency_s":
                cols[name] = pl.Series(name, np.zeros(n, dtype=np.float64))
    out_df = pl.DataFrame(cols)

    # --- model order by mean cost, cheapest first
    order_family = "energy_j" if "energy_j" in family_maps else "cost_usd"
    means = {m: float(out_df[col(order_family, m)].mean()) for m in model_list}
    if not wanted:
        model_list = sorted(model_list, key=lambda m: (means[m], model_list.index(m)))
    display = notes.pop("_display", {})
    sat_values = np.concatenate([out_df[col("sat", m)].to_numpy() for m in model_list])
    binary = bool(np.all((sat_values == 0) | (sat_values == 1)))

    provenance = {
        "importer": "outcomes", "source": str(path), "preset": preset, "dropped_rows": dropped_labels + dropped_other,
        "dropped_missing_label": dropped_labels, "dropped_missing_value": dropped_other,
        "rows_in_source": n0,
        "columns": {k: display.get(v, v) for k, v in (
            ("sat", sat), ("cost_usd", cost), ("energy_j", energy), ("latency_s", latency),
            ("output_tokens", output_tokens), ("group", group), ("text", text), ("id", id_col)) if v},
        "sat_kind": "binary" if binary else "probability",
        "model_order": "given by --models" if wanted else f"by mean {order_family}",
        "latency": "from " + display.get(latency, latency) if latency else "absent in the source: latency_s__<m> = 0 (derive it with trace compose --profile)",
        "arrival_s": "0, 1, 2, ... (one per second); compose with arrivals for real times",
        **notes,
    }
    cost_unit = "J" if "energy_j" in family_maps else "USD"
    write_trace(out_df, out, model_list, provenance, cost_unit=cost_unit)
    for msg in pending:
        log(msg)
    return {"rows": n, "dropped": dropped_labels + dropped_other, "models": model_list, "out": str(out),
            "cost_unit": cost_unit, "means": {m: means[m] for m in model_list}}
