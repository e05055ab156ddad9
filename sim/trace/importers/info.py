"""``python -m sim trace info FILE.parquet [--json]``: what is in a trace or an arrivals file.

Definitions (``--json`` keys):

- ``rows``: number of requests.
- ``span_s``: last arrival - first arrival.
- ``rate_per_s``: rows / span_s (null when the span is 0). On the Azure traces this is 2.567 req/s for
  ``code`` and 5.530 req/s for ``conv``; (rows - 1) / span_s differs only in the fourth digit.
- ``interarrival_cv``: standard deviation / mean of the gaps between consecutive arrivals (population
  standard deviation; null with fewer than 2 gaps or a zero mean gap).
- ``peak_rate_1s``: the most arrivals in any window [t, t + 1 s) (sliding, starting at an arrival).
- ``models``: model -> {accuracy: mean of sat__<m>, mean_cost: mean of energy_j__<m> when the trace has it,
  else of cost_usd__<m>}. Empty for an arrivals file.
- ``groups``: group -> {rows, models: {model -> {accuracy, mean_cost}}}.
- ``order``: {groups, group_runs, grouped, source}: ``group_runs`` counts the blocks of consecutive rows with
  one group; ``grouped`` is true when there are several groups and each sits in one block (file order of a
  benchmark dump: not i.i.d., so the drift-plus-penalty bounds do not apply); ``source`` is the import's order.
- ``fractional_sat``: {values, of}: how many ``sat__<m>`` values lie strictly between 0 and 1 (scores, not labels).
- ``provenance``: the file's provenance metadata.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl

from sim.errors import UserError
from sim.trace.format import META_KEY as TRACE_KEY
from sim.trace.format import col, models_in_columns, read_table
from sim.trace.importers.arrivals import META_KEY as ARRIVALS_KEY
from sim.trace.importers.arrivals import arrival_column

KEYS = ("rows", "span_s", "rate_per_s", "interarrival_cv", "peak_rate_1s", "models", "groups", "order", "fractional_sat",
        "provenance")


def _num(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def arrival_stats(arrival_s: np.ndarray) -> dict:
    a = np.sort(np.asarray(arrival_s, dtype=np.float64))
    n = int(a.size)
    span = float(a[-1] - a[0]) if n else 0.0
    gaps = np.diff(a)
    cv = None
    if gaps.size >= 2 and gaps.mean() > 0:
        cv = float(gaps.std() / gaps.mean())
    peak = int((np.searchsorted(a, a + 1.0, side="left") - np.arange(n)).max()) if n else 0
    return {"rows": n, "span_s": span, "rate_per_s": (n / span) if span > 0 else None,
            "interarrival_cv": cv, "peak_rate_1s": peak}


def trace_info(path: str | Path) -> tuple[dict, str | None]:
    """(info dict with exactly the keys in KEYS, cost unit of mean_cost or None for arrivals files)."""
    df, meta = read_table(path)
    import pyarrow.parquet as pq

    md = pq.read_schema(path).metadata or {}
    is_trace = TRACE_KEY in md or any(c.startswith("sat__") for c in df.columns)
    info = arrival_stats(arrival_column(df, f"trace {path}", " (not a trace or arrivals file)"))
    models: dict = {}
    groups: dict = {}
    provenance: dict = {}
    order: dict | None = None
    fractional: dict | None = None
    if is_trace:
        names = meta.get("models") or models_in_columns(df.columns)
        provenance = meta.get("provenance", {})
        family = "energy_j" if all(col("energy_j", m) in df.columns for m in names) else "cost_usd"
        sat_cols = [col("sat", m) for m in names if col("sat", m) in df.columns]
        frac = df.select(pl.sum_horizontal(((pl.col(c) > 0) & (pl.col(c) < 1)).sum() for c in sat_cols)).item()
        fractional = {"values": int(frac or 0), "of": df.height * len(sat_cols)}
        if "group" in df.columns:
            dtype = df["group"].dtype
            if not (dtype in (pl.Utf8, pl.Categorical) or isinstance(dtype, pl.Enum) or dtype.is_integer()):
                raise UserError(f"trace {path}: column 'group' must hold text or integers, found {dtype}")
        if "group" in df.columns:
            g = df["group"].cast(pl.Utf8).fill_null("(none)")
            runs = int((g != g.shift(1)).fill_null(True).sum()) if df.height else 0
            k = g.n_unique()
            order = {"groups": k, "group_runs": runs, "grouped": bool(k > 1 and runs == k),
                     "source": provenance.get("order", provenance.get("assign"))}

        def summary(frame: pl.DataFrame) -> dict:
            out = {}
            for m in names:
                acc = frame[col("sat", m)].mean() if col("sat", m) in frame.columns else None
                cost = frame[col(family, m)].mean() if col(family, m) in frame.columns else None
                out[m] = {"accuracy": _num(acc), "mean_cost": _num(cost)}
            return out

        models = summary(df)
        if "group" in df.columns:
            g = df["group"].cast(pl.Utf8).fill_null("(none)")
            for name in sorted(g.unique().to_list()):
                sub = df.filter(g == name)
                groups[name] = {"rows": sub.height, "models": summary(sub)}
        has_money = all(col("cost_usd", m) in df.columns for m in names)
        info_unit = (meta.get("cost_unit", "J") if family == "energy_j" else
                     meta.get("money_unit", "USD") if has_money else "none (no cost yet)")
    else:
        raw = md.get(ARRIVALS_KEY)
        if raw is not None:
            try:
                provenance = json.loads(raw).get("provenance", {})
            except (ValueError, AttributeError):  # not JSON, or JSON that is not an object
                raise UserError(f"trace {path}: corrupt '{ARRIVALS_KEY.decode()}' metadata") from None
        info_unit = None
    result = {**info, "models": models, "groups": groups, "order": order, "fractional_sat": fractional,
              "provenance": provenance}
    return {k: result[k] for k in KEYS}, info_unit


def format_info(path: str, info: dict, unit: str | None) -> str:
    def f(x, fmt="{:.4g}"):
        return "n/a" if x is None else fmt.format(x)

    lines = [
        f"{path}",
        f"  rows             {info['rows']}",
        f"  span             {f(info['span_s'], '{:.1f}')} s",
        f"  rate             {f(info['rate_per_s'])} requests/s (rows / span)",
        f"  inter-arrival CV {f(info['interarrival_cv'])}",
        f"  peak over 1 s    {info['peak_rate_1s']} requests",
    ]
    if info["models"]:
        width = max(len(m) for m in info["models"])
        lines.append("  models (no cost yet):" if unit and unit.startswith("none") else
                     f"  models (cheapest first; mean cost in {unit}):")
        for m, v in info["models"].items():
            lines.append(f"    {m:<{width}}  accuracy {f(v['accuracy'], '{:.4f}')}  mean cost {f(v['mean_cost'])}")
    if info["groups"]:
        lines.append("  per group (accuracy / mean cost):")
        for g, gv in info["groups"].items():
            lines.append(f"    {g} ({gv['rows']} rows)")
            for m, v in gv["models"].items():
                lines.append(f"      {m:<{width}}  {f(v['accuracy'], '{:.4f}')} / {f(v['mean_cost'])}")
    if info["order"]:
        o = info["order"]
        what = ("grouped: each group in one block, not i.i.d." if o["grouped"] else
                f"{o['group_runs']} runs of {o['groups']} group(s)")
        lines.append(f"  order            {what}" + (f" ({o['source']})" if o["source"] else ""))
    if info["fractional_sat"] and info["fractional_sat"]["values"]:
        fs = info["fractional_sat"]
        lines.append(f"  fractional sat   {fs['values']} of {fs['of']} values in (0, 1): scores, read as probabilities")
    lines.append("  provenance: " + json.dumps(info["provenance"], sort_keys=False))
    return "\n".join(lines)
