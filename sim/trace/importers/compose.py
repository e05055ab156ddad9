"""Give an outcome table real arrival times (and, optionally, energy and latency from a GPU profile).

``python -m sim trace compose --outcomes O.parquet --arrivals A.parquet -o T.parquet [--time-scale X]
[--assign cycle|sample] [--seed N] [--rows N] [--profile profiles.parquet --gpu H100 --map m=profile_id,...]
[--concurrency C]``

Assignment (the output has ``--rows`` requests, default: one per outcome row):

- ``cycle`` (default): outcome rows in file order, repeated when ``--rows`` exceeds them; arrivals from the
  first one on. When the arrivals run out they repeat, shifted by their span plus one mean gap, so time
  keeps increasing.
- ``sample``: outcome rows in an order shuffled by ``numpy.random.default_rng(SeedSequence(seed))`` (a fresh
  permutation for each pass when ``--rows`` exceeds them); the arrivals are the same process started at a
  seeded random arrival (wrapping around). The same seed gives the same trace.

``--time-scale 0.5`` multiplies every arrival time by 0.5 (twice the load). ``request_id`` is renumbered
0..N-1; the outcome row's own id is kept as ``source_request_id``.

Token counts: the outcome table's own ``prompt_tokens`` / ``output_tokens__<m>`` win; otherwise the arrival's
``prompt_tokens`` and ``output_tokens`` are used (the same output length for every model: an assumption,
recorded in the provenance).

Profiles: when the outcome table has no ``energy_j__<m>`` columns, or its latency is 0 for every model (as the
outcome importer writes when the source has none), ``--profile`` derives them per request from the measured
curve of ``--map``'s profile model on ``--gpu`` at concurrency ``--concurrency`` (default 1; clamped to the
measured range):

    latency_s = prompt_tokens x prefill_s_per_token + output_tokens x ITL(concurrency)
    energy_j  = prompt_tokens x prefill_j_per_token + output_tokens x J/token(concurrency)

(prefill terms only where the profile measured prefill). The models are then re-ordered by mean derived
energy, cheapest first. ``--map m=profile_id*0.39`` scales a measured curve
for an unmeasured model (``ProfileCurve.scale_from``). A model without a ``--map`` entry is looked up by its
own name.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl

from sim.errors import UserError
from sim.trace.format import col, models_in_columns, read_table, validate_frame, write_trace
from sim.trace.importers._common import Log, parse_mapping, stderr_log
from sim.trace.importers.arrivals import read_arrivals
from sim.trace.importers.profiles import ProfileCurve, load_profiles

ASSIGN = ("cycle", "sample")


def _arrival_times(a: np.ndarray, n: int, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Times and arrival-row indices for ``n`` requests from arrival index ``start``, repeating the pattern."""
    m = a.size
    span = float(a[-1] - a[0])
    period = span + (span / (m - 1) if m > 1 and span > 0 else 1.0)
    pos = start + np.arange(n, dtype=np.int64)
    idx = pos % m
    t = a[idx] + (pos // m) * period - a[start]
    return t, idx


def parse_map(text: str | None) -> dict[str, tuple[str, float | None]]:
    out: dict[str, tuple[str, float | None]] = {}
    for k, v in parse_mapping(text, "--map").items():
        factor = None
        if "*" in v:
            v, f = v.rsplit("*", 1)
            try:
                factor = float(f)
            except ValueError:
                raise UserError(f"--map {k}={v}*{f}: the scale factor {f!r} is not a number") from None
            if not math.isfinite(factor) or factor <= 0:
                raise UserError(f"--map {k}: the scale factor must be positive, got {f!r}")
        out[k] = (v.strip(), factor)
    return out


def compose(outcomes: str | Path, arrivals: str | Path, out: str | Path, *, time_scale: float = 1.0,
            assign: str = "cycle", seed: int = 0, rows: int | None = None, profile: str | Path | None = None,
            gpu: str | None = None, mapping: str | dict | None = None, concurrency: float = 1.0,
            log: Log = stderr_log) -> dict:
    if assign not in ASSIGN:
        raise UserError(f"--assign {assign!r}: expected one of {', '.join(ASSIGN)}")
    if not (isinstance(time_scale, (int, float)) and math.isfinite(time_scale) and time_scale > 0):
        raise UserError(f"--time-scale must be a positive number, got {time_scale!r}")
    if rows is not None and rows < 1:
        raise UserError(f"--rows must be at least 1, got {rows}")
    if not (math.isfinite(concurrency) and concurrency > 0):
        raise UserError(f"--concurrency must be positive, got {concurrency!r}")
    if seed is None or seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {seed!r}")
    if (profile is None) != (gpu is None):
        raise UserError("--profile and --gpu go together")

    pending: list[str] = []
    say = pending.append  # messages go to ``log`` once the trace is written, so a failure prints one line
    table = load_profiles(profile) if profile is not None else None
    dfo, meta = read_table(outcomes)
    models = meta.get("models") or models_in_columns(dfo.columns)
    if not models:
        raise UserError(f"outcomes {outcomes}: not a trace (no 'sat__<model>' columns); "
                        f"make one with `python -m sim trace import outcomes`")
    validate_frame(dfo, models, str(outcomes), need_cost=False)  # its cost may come from --profile
    dfa, prov_a = read_arrivals(arrivals)
    n_out, n_arr = dfo.height, dfa.height
    n = rows or n_out

    rng = np.random.default_rng(np.random.SeedSequence(seed))
    if assign == "cycle":
        idx_o = np.arange(n, dtype=np.int64) % n_out
        start = 0
    else:
        passes = -(-n // n_out)
        idx_o = np.concatenate([rng.permutation(n_out) for _ in range(passes)])[:n]
        start = int(rng.integers(n_arr)) if n_arr > 1 else 0
    a = dfa["arrival_s"].cast(pl.Float64).to_numpy()
    t, idx_a = _arrival_times(a, n, start)
    t = t * float(time_scale)
    if n > n_arr:
        say(f"note: {n} requests but {n_arr} arrivals: the arrival pattern repeats {-(-n // n_arr)} time(s)")
    if n > n_out:
        say(f"note: {n} requests but {n_out} outcome rows: outcome rows are reused")

    df = dfo.select(pl.all().gather(idx_o))
    df = df.with_columns(pl.col("request_id").alias("source_request_id"))
    df = df.with_columns(pl.Series("request_id", np.arange(n, dtype=np.int64)),
                         pl.Series("arrival_s", t.astype(np.float64)))
    notes: dict = {}
    if "prompt_tokens" not in df.columns and "prompt_tokens" in dfa.columns:
        df = df.with_columns(pl.Series("prompt_tokens", dfa["prompt_tokens"].to_numpy()[idx_a].astype(np.int64)))
        notes["prompt_tokens"] = "from the arrivals"
    arrival_out = dfa["output_tokens"].to_numpy()[idx_a].astype(np.int64) if "output_tokens" in dfa.columns else None
    if arrival_out is not None:
        filled = [m for m in models if col("output_tokens", m) not in df.columns]
        if filled:
            df = df.with_columns([pl.Series(col("output_tokens", m), arrival_out) for m in filled])
            notes["output_tokens"] = f"from the arrivals, the same for every model: {filled}"

    need_energy = not all(col("energy_j", m) in df.columns for m in models)
    need_latency = all(float(df[col("latency_s", m)].abs().max()) == 0.0 for m in models)
    derived: dict = {}
    cost_unit = meta.get("cost_unit", "J")
    if profile is not None:
        if not (need_energy or need_latency):
            say("note: the outcome table already has energy and latency; --profile is not used")
        else:
            maps = parse_map(mapping) if isinstance(mapping, str) or mapping is None else dict(mapping)
            unknown = [k for k in maps if k not in models]
            if unknown:
                raise UserError(f"--map: unknown model(s) {unknown} (trace models: {models})")
            prompt = df["prompt_tokens"].to_numpy().astype(np.float64) if "prompt_tokens" in df.columns else None
            new_cols = []
            for m in models:
                pid, factor = maps.get(m, (m, None))
                try:
                    curve = ProfileCurve.select(table, pid, gpu)
                except UserError as e:
                    hint = "" if m in maps else f" (map it with --map {m}=PROFILE_MODEL_ID)"
                    raise UserError(f"trace model {m!r}: {e}{hint}") from None
                if factor is not None:
                    curve = curve.scale_from(factor, model_id=f"{m} (= {curve.model_id} x {factor:g})")
                otok_name = col("output_tokens", m)
                if otok_name not in df.columns:
                    raise UserError(f"deriving energy/latency of {m!r} needs output token counts: the arrivals have no "
                                    f"'output_tokens' and the outcome table has no {otok_name!r}")
                otok = df[otok_name].to_numpy().astype(np.float64)
                ptok = prompt if prompt is not None else np.zeros(n)
                info = curve.describe()
                lo, hi = float(curve.concurrency[0]), float(curve.concurrency[-1])
                if concurrency < lo or concurrency > hi:
                    info["clamped"] = f"concurrency {concurrency:g} is outside the measured {lo:g}..{hi:g}; the nearest end is used"
                info["itl_s"] = curve.itl_s(concurrency)
                info["energy_per_token_j"] = curve.energy_per_token_j(concurrency)
                if need_latency:
                    new_cols.append(pl.Series(col("latency_s", m), curve.service_time_s(ptok, otok, concurrency)))
                if need_energy:
                    new_cols.append(pl.Series(col("energy_j", m), curve.request_energy_j(ptok, otok, concurrency)))
                derived[m] = info
            df = df.with_columns(new_cols)
            if prompt is None and any(d["prefill_measured"] for d in derived.values()):
                notes["prefill"] = "no prompt_tokens: prefill cost left out"
            notes["derived"] = {"what": [w for w, f in (("latency_s", need_latency), ("energy_j", need_energy)) if f],
                                "gpu": gpu, "concurrency": concurrency, "profile": str(profile), "models": derived}
            if need_energy:
                cost_unit = "J"
                means = {m: float(df[col("energy_j", m)].mean()) for m in models}
                models = sorted(models, key=lambda m: (means[m], models.index(m)))
                notes["model_order"] = "by mean derived energy_j, cheapest first"
    else:
        if need_latency:
            say("note: latency is 0 for every model; pass --profile/--gpu/--map to derive it from a GPU profile")
    provenance = {
        "importer": "compose", "outcomes": str(outcomes), "arrivals": str(arrivals), "assign": assign, "seed": seed,
        "time_scale": float(time_scale), "rows": n, "arrival_start_index": start,
        "outcomes_provenance": meta.get("provenance", {}), "arrivals_provenance": prov_a, **notes,
    }
    if not any(col(f, m) in df.columns for f in ("energy_j", "cost_usd") for m in models):
        say("warning: the trace still has no cost; `sim run` refuses it until you add one (--profile, or re-import "
            "with --cost, --cost-per-request or --price-per-mtok)")
    write_trace(df, out, models, provenance, cost_unit=cost_unit, money_unit=meta.get("money_unit", "USD"),
                need_cost=False)
    for msg in pending:
        log(msg)
    return {"rows": n, "out": str(out), "span_s": float(t[-1] - t[0]) if n else 0.0, "derived": sorted(derived)}
