"""Import an arrival-time trace (Azure LLM inference trace, or any CSV/JSONL with a time column).

``python -m sim trace import arrivals FILE -o arrivals.parquet [--preset azure] [--time COL
--time-unit s|ms|us|ns|datetime] [--prompt-tokens COL] [--output-tokens COL]``

The output is a Parquet file with

| column | type | meaning |
|---|---|---|
| ``arrival_s`` | float64 | seconds since the first arrival (starts at 0, non-decreasing) |
| ``prompt_tokens`` | int64 | prompt length, when mapped |
| ``output_tokens`` | int64 | generated tokens, when mapped |

and the schema metadata key ``messplus_sim_arrivals`` holding JSON
``{"format_version": 1, "provenance": {"importer": "arrivals", "source": ..., ...}}``.
Unsorted input is sorted (stably) and the number of out-of-order rows is reported. Rows with a missing
time or token count are dropped and counted; nothing is filled in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from sim.errors import UserError
from sim.trace.format import FORMAT_VERSION, read_parquet, write_parquet
from sim.trace.importers._common import Log, integral, numeric, read_frame, short_list, stderr_log

META_KEY = b"messplus_sim_arrivals"
PRESETS = {"azure": {"time": "TIMESTAMP", "time_unit": "datetime", "prompt_tokens": "ContextTokens",
                     "output_tokens": "GeneratedTokens"}}
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "datetime": None}


def _times_ns(df: pl.DataFrame, name: str, unit: str, where: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (int64 or float64 offsets, missing mask, origin string). Offsets are in ns for datetimes."""
    s = df[name]
    if unit == "datetime":
        if s.dtype == pl.Date:
            s = s.cast(pl.Datetime("ns"))
        if isinstance(s.dtype, pl.Datetime):
            t = s.dt.cast_time_unit("ns")
            if t.dtype.time_zone is not None:
                t = t.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        elif s.dtype == pl.Utf8:
            st = s.str.strip_chars()
            t = None
            for fmt in (None, "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f%z",
                        "%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
                try:
                    t = st.str.to_datetime(format=fmt, time_unit="ns", strict=True)
                    break
                except (pl.exceptions.PolarsError, ValueError):
                    continue
            if t is None:
                parsed = st.str.to_datetime(time_unit="ns", strict=False, format="%Y-%m-%d %H:%M:%S%.f")
                bad = parsed.is_null() & st.is_not_null() & (st != "")
                i = int(bad.arg_true()[0]) if bad.any() else 0
                raise UserError(f"{where}: column {name!r} cannot be read as date-times (row {i} has {s[i]!r}); "
                                f"use --time-unit s|ms|us|ns for numbers")
            if isinstance(t.dtype, pl.Datetime) and t.dtype.time_zone is not None:
                t = t.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        else:
            raise UserError(f"{where}: column {name!r} holds {s.dtype}, not date-times; use --time-unit s|ms|us|ns")
        missing = t.is_null().to_numpy()
        ns = t.dt.epoch("ns").to_numpy()
        valid = ns[~missing]
        origin_i = int(np.flatnonzero(~missing)[np.argmin(valid)]) if valid.size else 0
        return np.where(missing, 0, ns).astype(np.int64), missing, t.dt.to_string("%Y-%m-%d %H:%M:%S%.9f")[origin_i]
    if s.dtype.is_integer():
        v = s.to_numpy().astype(np.int64) if not s.null_count() else s.fill_null(0).to_numpy().astype(np.int64)
        return v, s.is_null().to_numpy(), str(s.min())
    f = numeric(df, name, where)
    missing = (f.is_null() | f.is_nan()).to_numpy()
    v = f.fill_null(0.0).fill_nan(0.0).to_numpy()
    if np.any(~np.isfinite(v)):
        raise UserError(f"{where}: column {name!r} has infinite values")
    return v, missing, str(f.min())


def import_arrivals(path: str | Path, out: str | Path, *, preset: str | None = None, time: str | None = None,
                    time_unit: str | None = None, prompt_tokens: str | None = None, output_tokens: str | None = None,
                    log: Log = stderr_log) -> dict:
    pending: list[str] = []
    say = pending.append  # messages go to ``log`` once the file is written, so a failure prints one line
    path = Path(path)
    where = f"arrivals {path}"
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r} for trace import arrivals (known: {', '.join(PRESETS)})")
        p = PRESETS[preset]
        time = time or p["time"]
        time_unit = time_unit or p["time_unit"]
        prompt_tokens = prompt_tokens or p["prompt_tokens"]
        output_tokens = output_tokens or p["output_tokens"]
    if not time:
        raise UserError("trace import arrivals: --time COL is required (or --preset azure)")
    time_unit = time_unit or "s"
    if time_unit not in TIME_UNITS:
        raise UserError(f"--time-unit {time_unit!r}: expected one of {', '.join(TIME_UNITS)}")
    df = read_frame(path, "arrivals file")
    for flag, name in (("--time", time), ("--prompt-tokens", prompt_tokens), ("--output-tokens", output_tokens)):
        if name and name not in df.columns:
            raise UserError(f"{where}: {flag} column {name!r} not found (columns: {short_list(df.columns)})")

    t, missing, origin = _times_ns(df, time, time_unit, where)
    tokens: dict[str, np.ndarray] = {}
    for out_name, name in (("prompt_tokens", prompt_tokens), ("output_tokens", output_tokens)):
        if name:
            s = numeric(df, name, where)
            m = (s.is_null() | s.is_nan()).to_numpy()
            missing = missing | m
            tokens[out_name] = s.fill_null(0.0).fill_nan(0.0).to_numpy()
    dropped = int(missing.sum())
    if dropped:
        say(f"dropped {dropped} of {df.height} row(s) with a missing time or token count in {path.name}")
    keep = ~missing
    if not keep.any():
        raise UserError(f"{where}: no row has a time (column {time!r})")
    t = t[keep]
    for k in tokens:
        tokens[k] = integral(tokens[k][keep], {"prompt_tokens": prompt_tokens, "output_tokens": output_tokens}[k], where)

    out_of_order = int(np.sum(np.diff(t) < 0)) if t.size > 1 else 0
    order = np.argsort(t, kind="stable")
    t = t[order]
    if out_of_order:
        say(f"sorted the arrivals: {out_of_order} row(s) arrived before the row above them in {path.name}")
    if time_unit == "datetime":
        arrival = (t - t[0]).astype(np.float64) / 1e9
    elif np.issubdtype(t.dtype, np.integer):
        arrival = (t - t[0]).astype(np.float64) * TIME_UNITS[time_unit]
    else:
        arrival = (t - t[0]) * TIME_UNITS[time_unit]
    cols = {"arrival_s": pa.array(arrival, pa.float64())}
    for k, v in tokens.items():
        cols[k] = pa.array(v[order], pa.int64())
    provenance = {
        "importer": "arrivals", "source": str(path), "preset": preset, "time_column": time, "time_unit": time_unit,
        "prompt_tokens_column": prompt_tokens, "output_tokens_column": output_tokens, "origin": origin,
        "rows_in_source": df.height, "dropped_rows": dropped, "out_of_order_rows": out_of_order,
    }
    write_arrivals(pa.table(cols), out, provenance)
    for msg in pending:
        log(msg)
    span = float(arrival[-1] - arrival[0]) if arrival.size else 0.0
    return {"rows": int(arrival.size), "span_s": span, "dropped": dropped, "out_of_order": out_of_order, "out": str(out)}


def write_arrivals(table: pa.Table, out: str | Path, provenance: dict) -> None:
    write_parquet(table, out, META_KEY, {"format_version": FORMAT_VERSION, "provenance": provenance})


def arrival_column(df: pl.DataFrame, where: str, missing_hint: str = "") -> np.ndarray:
    """The ``arrival_s`` column as float64, or a one-line error: missing, empty, non-numeric, gaps, NaN."""
    if "arrival_s" not in df.columns:
        raise UserError(f"{where}: missing column 'arrival_s'{missing_hint}")
    if df.height == 0:
        raise UserError(f"{where}: zero rows")
    a = df["arrival_s"]
    if not a.dtype.is_numeric() or a.null_count() or not a.cast(pl.Float64).is_finite().all():
        raise UserError(f"{where}: column 'arrival_s' must be finite numbers without gaps")
    return a.cast(pl.Float64).to_numpy()


def read_arrivals(path: str | Path) -> tuple[pl.DataFrame, dict]:
    """Read an arrivals Parquet file (or any Parquet with ``arrival_s``, such as a trace): (frame, provenance)."""
    table, meta = read_parquet(path, "arrivals", META_KEY,
                               hint="; import CSV/JSONL with `python -m sim trace import arrivals`")
    prov = meta.get("provenance", {})
    df = pl.from_arrow(table)
    arr = arrival_column(df, f"arrivals {path}")
    if np.any(np.diff(arr) < 0):
        raise UserError(f"arrivals {path}: column 'arrival_s' is not sorted")
    return df, prov
