"""Charts of one run: each function takes a :class:`RunData` and returns an Altair chart with a title, a
one-sentence caption that says how to read it, and a note on how the data were aggregated (subtitle lines in the
chart, so exported PNGs explain themselves, and ``usermeta`` for the HTML page).

Every chart compares all policies of the run; bounds (policies with ``causal: false``) are marked "† bound" in the
legends. Long runs are never plotted request by request: requests are grouped into at most :data:`MAX_POINTS` time
windows per series (running quantities are sampled after the last request of each window, rates are computed over
windows of at least :data:`MIN_PER_WINDOW` requests on average), so a report's size does not grow with the number of
requests. Aggregation runs on polars lazy scans (streaming), one policy at a time where whole columns are needed
(latency quantiles), and over record batches for the occupancy log, so memory stays bounded on 10^7-request runs.
A chart that does not apply to a run (for example slot occupancy in sequential mode) raises :class:`Skip`.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import altair as alt
import numpy as np
import polars as pl

#: At most this many points per plotted series (time windows of equal width over the run's arrivals).
MAX_POINTS = 1000
#: Windows for rates (model mix, exploration and calibration error) hold at least this many requests on average.
MIN_PER_WINDOW = 200
#: Quantile levels of the latency CDF.
CDF_LEVELS = 200
#: Bins of predicted satisfaction in the calibration plot.
CALIBRATION_BINS = 10
#: Half-width of the zoomed band around alpha in the satisfaction chart.
ZOOM_BAND = 0.02
#: The violation chart's y axis shows at least [0, VIOLATION_BAND] (the band in which an SLA is decided).
VIOLATION_BAND = 0.02
#: The cost chart's scale covers the policies whose final cost per request is within this factor of the cheapest.
COST_SPREAD = 2.5
#: Calibration bins with fewer requests than this are left out (a handful of requests is noise, not calibration).
MIN_BIN_REQUESTS = 50
#: Significant digits kept in plotted numbers (keeps the inlined data small).
SIG_FIGS = 5

WIDTH = 640
HEIGHT = 240
BOUND_SUFFIX = " † bound"

# Tableau 10 / 20: distinct, print-friendly; policies keep the same colour in every chart of a run.
PALETTE_10 = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6",
              "#9d755d", "#bab0ac"]
PALETTE_20 = ["#4c78a8", "#9ecae9", "#f58518", "#ffbf79", "#54a24b", "#88d27a", "#b79a20", "#f2cf5b",
              "#439894", "#83bcb6", "#e45756", "#ff9d98", "#79706e", "#bab0ac", "#d67195", "#fcbfd2",
              "#b279a2", "#d6a5c9", "#9e765f", "#d8b5a5"]
# Models, cheapest to largest: light to dark.
MODEL_PALETTE = ["#c6dbef", "#6baed6", "#2171b5", "#08306b", "#fdae6b", "#e6550d", "#a63603", "#74c476",
                 "#238b45", "#00441b"]


class Skip(Exception):
    """The chart does not apply to this run; the message says why."""


# --------------------------------------------------------------------------------------------------
# Loading and aggregation
# --------------------------------------------------------------------------------------------------


def _capacities(resolved: dict, models: list[str]) -> dict[str, int | None]:
    caps: dict[str, int | None] = {m: None for m in models}
    for z in resolved.get("zoo") or []:
        name = z.get("name")
        slots, replicas = z.get("slots"), z.get("replicas", 1)
        if name in caps and slots is not None:
            caps[name] = int(slots) * int(replicas if replicas is not None else 1)
    return caps


def _round(df: pl.DataFrame) -> pl.DataFrame:
    """Round floats to SIG_FIGS significant digits and turn enums into strings (smaller, portable JSON)."""
    exprs = []
    for name, dtype in df.schema.items():
        if dtype.is_float():
            exprs.append(pl.col(name).fill_nan(None).round_sig_figs(SIG_FIGS))
        elif isinstance(dtype, (pl.Enum, pl.Categorical)):
            exprs.append(pl.col(name).cast(pl.String))
    return df.with_columns(exprs) if exprs else df


def data(df: pl.DataFrame) -> alt.Chart:
    """A chart over ``df`` with its data inlined column by column.

    Row-wise JSON repeats every field name in every row; here each column is one array and a ``flatten`` transform
    turns them back into rows in the browser. String columns travel as small integer codes with their dictionary
    (a ``calculate`` transform restores the strings), and floats are rounded to SIG_FIGS significant digits.
    """
    df = _round(df)
    cols: dict[str, list] = {}
    decode = []
    for name, dtype in df.schema.items():
        s = df[name]
        if dtype == pl.String:
            cats = s.unique(maintain_order=True).to_list()
            index = {c: i for i, c in enumerate(cats)}
            cols["_" + name] = [index[v] for v in s.to_list()]
            decode.append((name, cats))
        else:
            cols[name] = s.to_list()
    # A JSON string, parsed by Vega in the browser: Altair then copies one string, not every number.
    text = json.dumps([cols], separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    chart = alt.Chart(alt.Data(values=text, format=alt.DataFormat(type="json")))
    if df.height == 0:
        return chart.transform_filter("false")
    chart = chart.transform_flatten(list(cols))
    for name, cats in decode:
        chart = chart.transform_calculate(**{name: f"{json.dumps(cats, ensure_ascii=False)}[datum._{name}]"})
    return chart


@dataclass
class TimeAxis:
    scale: float  # seconds per unit
    unit: str

    @classmethod
    def for_span(cls, span_s: float) -> "TimeAxis":
        if span_s >= 2 * 86400:
            return cls(86400.0, "d")
        if span_s >= 2 * 3600:
            return cls(3600.0, "h")
        if span_s >= 120:
            return cls(60.0, "min")
        return cls(1.0, "s")

    def fmt(self, seconds: float) -> str:
        x = seconds / self.scale
        return f"{x:.3g} {self.unit}"


@dataclass
class RunData:
    """One result folder, with lazily computed aggregates shared by the charts."""

    path: Path
    summary: dict
    resolved: dict = field(default_factory=dict)
    name: str = ""

    # ---- descriptive ------------------------------------------------------------------------------
    @property
    def policies(self) -> list[str]:
        return list(self.summary["policies"])

    @property
    def models(self) -> list[str]:
        return list(self.summary["models"])

    @property
    def alpha(self) -> float:
        return float(self.summary["alpha"])

    @property
    def engine(self) -> str:
        return self.summary.get("engine", "des")

    @property
    def cost_unit(self) -> str:
        return self.summary.get("cost_unit", "J")

    def causal(self, label: str) -> bool:
        return bool(self.summary["policies"][label].get("causal", True))

    def display(self, label: str) -> str:
        return self.display_map.get(label, label)

    @cached_property
    def display_map(self) -> dict[str, str]:
        return {p: (p if self.causal(p) else p + BOUND_SUFFIX) for p in self.policies}

    @cached_property
    def capacities(self) -> dict[str, int | None]:
        return _capacities(self.resolved, self.models)

    @property
    def requests_file(self) -> Path:
        return self.path / "requests.parquet"

    @property
    def occupancy_file(self) -> Path:
        return self.path / "occupancy.parquet"

    def scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.requests_file)

    def with_display(self, df: pl.DataFrame, col: str = "policy") -> pl.DataFrame:
        return df.with_columns(pl.col(col).replace_strict(self.display_map, default=pl.col(col)))

    # ---- time windows -----------------------------------------------------------------------------
    @cached_property
    def extent(self) -> tuple[float, float, int]:
        """(first arrival, last arrival, most requests of any policy)."""
        df = (self.scan().group_by("policy")
              .agg(pl.col("arrival_s").min().alias("t0"), pl.col("arrival_s").max().alias("t1"), pl.len().alias("n"))
              .collect())
        if df.height == 0:
            raise Skip("requests.parquet is empty")
        return float(df["t0"].min()), float(df["t1"].max()), int(df["n"].max())

    @cached_property
    def n_windows(self) -> int:
        return max(1, min(MAX_POINTS, self.extent[2]))

    @cached_property
    def window_s(self) -> float:
        t0, t1, _ = self.extent
        return (t1 - t0) / self.n_windows if t1 > t0 else 1.0

    @cached_property
    def coarse(self) -> int:
        """How many fine windows make one rate window (at least MIN_PER_WINDOW requests on average)."""
        per_fine = self.extent[2] / self.n_windows
        return max(1, math.ceil(MIN_PER_WINDOW / max(per_fine, 1e-12)))

    @cached_property
    def axis(self) -> TimeAxis:
        t0, t1, _ = self.extent
        return TimeAxis.for_span(t1 - t0)

    def window_expr(self, col: str = "arrival_s") -> pl.Expr:
        t0, _, _ = self.extent
        return (((pl.col(col) - t0) / self.window_s).floor().clip(0, self.n_windows - 1)).cast(pl.Int32).alias("w")

    def window_end(self, w: pl.Expr) -> pl.Expr:
        """Time (in axis units) at the end of window ``w``."""
        t0, _, _ = self.extent
        return ((t0 + (w + 1) * self.window_s) / self.axis.scale).alias("t")

    def describe_windows(self, coarse: bool = False) -> str:
        k = self.coarse if coarse else 1
        n = math.ceil(self.n_windows / k)
        width = fmt_duration(self.window_s * k)
        return f"{n} windows of {width}"

    @cached_property
    def windows(self) -> pl.DataFrame:
        """One row per (policy, fine window): sums and the state after the window's last request."""
        scan = self.scan().with_columns(self.window_expr())
        model_counts = [(pl.col("model_index") == i).sum().cast(pl.Int64).alias(f"m{i}")
                        for i in range(len(self.models))]
        agg = (scan.group_by("policy", "w").agg(
            pl.len().alias("n"),
            pl.col("sat").sum().alias("sat"),
            pl.col("cost").sum().alias("cost"),
            pl.col("cost").filter(~pl.col("explored")).sum().alias("cost_exploit"),
            pl.col("explored").sum().cast(pl.Int64).alias("explored"),
            pl.col("p_explore").sum().alias("p"),
            pl.col("s_hat").count().alias("shat_n"),
            pl.col("s_hat").sum().alias("shat"),
            pl.col("sat").filter(pl.col("s_hat").is_not_null()).sum().alias("shat_sat"),
            pl.col("request_id").max().alias("last_id"),
            *model_counts,
        ).collect(engine="streaming"))
        # The true queue after the window's last request (a join keeps this streaming-friendly).
        last = (self.scan().select("policy", "request_id", "q_after")
                .join(agg.lazy().select("policy", pl.col("last_id").alias("request_id"), "w"),
                      on=["policy", "request_id"], how="inner")
                .collect(engine="streaming"))
        df = agg.join(last.select("policy", "w", "q_after"), on=["policy", "w"], how="left").sort("policy", "w")
        return df.with_columns(
            pl.col("n").cum_sum().over("policy").alias("cum_n"),
            pl.col("sat").cum_sum().over("policy").alias("cum_sat"),
            pl.col("cost").cum_sum().over("policy").alias("cum_cost"),
            pl.col("cost_exploit").cum_sum().over("policy").alias("cum_cost_exploit"),
            pl.col("explored").cum_sum().over("policy").alias("cum_explored"),
            pl.col("p").cum_sum().over("policy").alias("cum_p"),
        )

    @cached_property
    def coarse_windows(self) -> pl.DataFrame:
        k = self.coarse
        sums = ["n", "sat", "explored", "p", "shat_n", "shat", "shat_sat"] + [f"m{i}" for i in range(len(self.models))]
        return (self.windows.with_columns((pl.col("w") // k).alias("cw"))
                .group_by("policy", "cw").agg(*[pl.col(c).sum() for c in sums])
                .with_columns(self.window_end((pl.col("cw") + 1) * k - 1))
                .sort("policy", "cw"))

    def _per_policy(self, lf: pl.LazyFrame, columns: list[str]):
        """Yield (policy, DataFrame of ``columns``) one policy at a time (bounded memory on huge runs)."""
        policies = lf.select(pl.col("policy").unique(maintain_order=True)).collect()["policy"].to_list()
        for p in policies:
            yield p, lf.filter(pl.col("policy") == p).select(columns).collect()

    @cached_property
    def _latency(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        levels = np.linspace(0.0, 1.0, CDF_LEVELS)
        cdf, waits = [], []
        for p, df in self._per_policy(self.scan(), ["arrival_s", "end_s", "wait_s", "model_index"]):
            lat = (df["end_s"] - df["arrival_s"]).drop_nulls().to_numpy()
            if lat.size:
                cdf.append(pl.DataFrame({"policy": p, "latency_s": np.quantile(lat, levels, method="nearest"),
                                         "fraction": levels}))
            mi = df["model_index"].to_numpy()
            wait = df["wait_s"].to_numpy()
            for i, m in enumerate(self.models):
                w = wait[mi == i]
                w = w[~np.isnan(w)]
                if w.size:
                    qs = np.quantile(w, [0.5, 0.95, 0.99], method="nearest")
                    waits.append(pl.DataFrame({"policy": p, "model": m, "n": w.size,
                                               "percentile": ["p50", "p95", "p99"], "wait_s": qs}))
            del df
        empty_cdf = pl.DataFrame(schema={"policy": pl.String, "latency_s": pl.Float64, "fraction": pl.Float64})
        empty_w = pl.DataFrame(schema={"policy": pl.String, "model": pl.String, "n": pl.Int64,
                                       "percentile": pl.String, "wait_s": pl.Float64})
        return (pl.concat(cdf) if cdf else empty_cdf), (pl.concat(waits, how="vertical_relaxed") if waits else empty_w)

    @property
    def latency_quantiles(self) -> pl.DataFrame:
        """Arrival-to-completion latency at CDF_LEVELS quantile levels (nearest rank), per policy."""
        return self._latency[0]

    @property
    def wait_percentiles(self) -> pl.DataFrame:
        """p50 / p95 / p99 of the queue wait per (policy, model)."""
        return self._latency[1]

    @cached_property
    def calibration(self) -> pl.DataFrame:
        nb = CALIBRATION_BINS
        b = (pl.col("s_hat") * nb).floor().clip(0, nb - 1).cast(pl.Int32).alias("bin")
        return (self.scan().filter(pl.col("s_hat").is_not_null() & pl.col("s_hat").is_not_nan())
                .select("policy", "s_hat", "sat", b)
                .group_by("policy", "bin")
                .agg(pl.col("s_hat").mean().alias("predicted"), pl.col("sat").mean().alias("observed"),
                     pl.len().alias("n"))
                .collect(engine="streaming").sort("policy", "bin"))

    @cached_property
    def occupancy(self) -> pl.DataFrame | None:
        """Time-weighted mean busy slots and queue length per (policy, model, window), exact; plus the window max.

        The change log is a step function per (policy, model). With d_i the change at event i, the integral over
        window j = [g_j, g_j+1) is V(g_j) * width + sum over the window's events of d_i * (g_j+1 - t_i), where V(g_j)
        is the value at the window's start (the sum of the earlier changes). The file is read in record batches
        and only per-window sums are kept, so memory does not grow with the length of the run.
        """
        if not self.occupancy_file.exists():
            return None
        import pyarrow.parquet as pq

        t0, t1, _ = self.extent
        W = min(self.n_windows, 500)
        width = (t1 - t0) / W if t1 > t0 else 1.0
        self._occupancy_window_s = width
        edges = t0 + width * np.arange(W + 1)
        acc: dict[tuple[str, str], dict] = {}
        pf = pq.ParquetFile(self.occupancy_file)
        for batch in pf.iter_batches(batch_size=1 << 20, columns=["policy", "time_s", "model", "busy", "queued"]):
            df = pl.from_arrow(batch).with_columns(pl.col("model").cast(pl.String))
            for (p, m), g in df.partition_by(["policy", "model"], as_dict=True, maintain_order=True).items():
                a = acc.get((p, m))
                if a is None:
                    a = acc[(p, m)] = {"last_t": -np.inf, "max": np.full(W, -np.inf),
                                       **{f"{k}_{x}": 0.0 for k in ("busy", "queued") for x in ("last", "pre")},
                                       **{f"{k}_{x}": np.zeros(W) for k in ("busy", "queued") for x in ("D", "E")}}
                t = g["time_s"].to_numpy()
                if t.size == 0:
                    continue
                if t[0] < a["last_t"] or np.any(np.diff(t) < 0):
                    raise Skip("occupancy.parquet is not time-ordered per policy and model")
                a["last_t"] = float(t[-1])
                inside = (t >= t0) & (t < edges[-1])
                ti = t[inside]
                w = np.clip(((ti - t0) / width).astype(np.int64), 0, W - 1)
                for k in ("busy", "queued"):
                    v = g[k].to_numpy().astype(np.float64)
                    d = np.diff(v, prepend=a[f"{k}_last"])
                    a[f"{k}_last"] = float(v[-1])
                    a[f"{k}_pre"] += float(d[t < t0].sum())
                    di = d[inside]
                    a[f"{k}_D"] += np.bincount(w, weights=di, minlength=W)
                    a[f"{k}_E"] += np.bincount(w, weights=di * (edges[w + 1] - ti), minlength=W)
                    if k == "busy" and w.size:
                        first = np.flatnonzero(np.diff(w, prepend=-1))
                        np.maximum.at(a["max"], w[first], np.maximum.reduceat(v[inside], first))
        out = []
        for (p, m), a in acc.items():
            cols = {}
            for k in ("busy", "queued"):
                start = a[f"{k}_pre"] + np.concatenate([[0.0], np.cumsum(a[f"{k}_D"])[:-1]])
                cols[k + "_mean"] = start + a[f"{k}_E"] / width
                if k == "busy":
                    cols["busy_max"] = np.maximum(start, a["max"])
            out.append(pl.DataFrame({"policy": p, "model": m, "w": np.arange(W, dtype=np.int32), **cols,
                                     "t": edges[1:] / self.axis.scale}))
        if not out:
            return None
        return pl.concat(out).sort("policy", "model", "w")

    # ---- guarantees -------------------------------------------------------------------------------
    def backlog_bound(self, label: str) -> dict | None:
        """The backlog bound (Q_T/T <= sqrt(2(B + V dE)/T) ...) of the policy's guarantees block, if any."""
        g = self.summary["policies"][label].get("guarantees")
        if isinstance(g, dict):
            g = g.get("bounds")
        if not isinstance(g, list):
            return None
        for b in g:
            if isinstance(b, dict) and "backlog" in str(b.get("bound", "")):
                v = b.get("value")
                if v is not None and isinstance(v, (int, float)) and math.isfinite(v) and v > 0:
                    return b
        return None


def load_run(path: str | Path, name: str | None = None) -> RunData:
    import yaml

    path = Path(path)
    summary_file = path / "summary.json"
    if not summary_file.exists():
        from sim.errors import UserError

        raise UserError(f"{path}: no summary.json (not a result folder of `python -m sim run`)")
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    resolved_file = path / "scenario.resolved.yaml"
    resolved = yaml.safe_load(resolved_file.read_text(encoding="utf-8")) if resolved_file.exists() else {}
    return RunData(path=path, summary=summary, resolved=resolved or {}, name=name or summary.get("scenario", path.name))


# --------------------------------------------------------------------------------------------------
# Shared encodings
# --------------------------------------------------------------------------------------------------


def titled(text: str, caption: str, how: str | None = None) -> dict:
    """Chart properties: the title, with the caption and the aggregation note as subtitle lines (so that exported
    PNGs explain themselves), and the same texts in ``usermeta`` for the HTML page."""
    lines = textwrap.wrap(caption, 110)
    if how:
        lines += textwrap.wrap("Aggregation: " + how, 110)
    return {"title": alt.TitleParams(text=text, subtitle=lines, anchor="start", fontSize=15, subtitleFontSize=11,
                                     subtitleColor="#555", offset=8),
            "usermeta": {"title": text, "caption": caption, "aggregation": how or ""}}


def caption_of(chart: alt.TopLevelMixin) -> str:
    """The caption of a chart made by this module (its aggregation note included)."""
    meta = getattr(chart, "usermeta", alt.Undefined)
    if isinstance(meta, dict) and meta.get("caption"):
        how = meta.get("aggregation")
        return meta["caption"] + (f" Aggregation: {how}" if how else "")
    t = getattr(chart, "title", alt.Undefined)
    sub = getattr(t, "subtitle", alt.Undefined)
    if sub is alt.Undefined:
        return ""
    return " ".join(sub) if isinstance(sub, list) else str(sub)


def cost_per_request(p: dict) -> float:
    """A policy's mean cost per request from summary.json (folders written before ``cost_per_request`` existed
    have the total as ``cost``)."""
    if p.get("cost_per_request") is not None:
        return float(p["cost_per_request"])
    return float(p.get("cost_total", p.get("cost"))) / max(1, int(p["requests"]))


def fmt_duration(seconds: float) -> str:
    """A duration in its own best unit (3 significant digits)."""
    for div, unit in [(86400.0, "d"), (3600.0, "h"), (60.0, "min"), (1.0, "s"), (1e-3, "ms")]:
        if seconds >= div or unit == "ms":
            return f"{seconds / div:.3g} {unit}"
    return f"{seconds:.3g} s"


def policy_color(run: RunData, domain: list[str] | None = None, legend: bool = True) -> alt.Color:
    domain = domain or [run.display(p) for p in run.policies]
    palette = PALETTE_10 if len(run.policies) <= 10 else PALETTE_20
    full = [run.display(p) for p in run.policies]
    rng = [palette[full.index(d) % len(palette)] for d in domain]
    leg = alt.Legend(title="policy (" + BOUND_SUFFIX.strip() + ": sees the future)", symbolLimit=0, labelLimit=320,
                     orient="right") if legend else None
    return alt.Color("policy:N", scale=alt.Scale(domain=domain, range=rng), legend=leg, sort=domain)


def bound_dash(run: RunData) -> alt.StrokeDash:
    """Dashed lines for bounds (non-causal policies), solid for routers."""
    return alt.StrokeDash("role:N", scale=alt.Scale(domain=["router", "bound (sees the future)"],
                                                    range=[[1, 0], [6, 3]]),
                          legend=alt.Legend(title="line"))


def with_role(run: RunData, df: pl.DataFrame) -> pl.DataFrame:
    """Add the display name and the role (router / bound) of each row's policy."""
    roles = {p: ("router" if run.causal(p) else "bound (sees the future)") for p in run.policies}
    return run.with_display(df.with_columns(pl.col("policy").replace_strict(roles, default="router").alias("role")))


def time_x(run: RunData) -> alt.X:
    return alt.X("t:Q", title=f"time ({run.axis.unit}, by request arrival)", scale=alt.Scale(nice=False))


def cost_scale(run: RunData, total: float) -> tuple[float, str]:
    unit = run.cost_unit
    if unit == "J":
        for div, name in [(1e9, "GJ"), (1e6, "MJ"), (1e3, "kJ")]:
            if total >= div:
                return div, name
        return 1.0, "J"
    return 1.0, unit


# --------------------------------------------------------------------------------------------------
# The charts
# --------------------------------------------------------------------------------------------------


def chart_satisfaction(run: RunData) -> alt.TopLevelMixin:
    """1. Running satisfaction against time, with alpha and the single-model accuracies as rules."""
    w = run.windows
    df = with_role(run, w.select("policy", run.window_end(pl.col("w")), (pl.col("cum_sat") / pl.col("cum_n"))
                                 .alias("satisfaction")))
    acc = run.summary.get("model_accuracy") or {}
    # y range: the accuracies, alpha and the curves once the first 10 % of the run have settled them.
    late = df.filter(pl.col("t") >= df["t"].min() + 0.1 * (df["t"].max() - df["t"].min()))["satisfaction"]
    pts = [run.alpha, *acc.values(), *([late.min(), late.max()] if late.len() else [])]
    lo, hi = max(0.0, min(pts) - 0.03), min(1.0, max(pts) + 0.03)
    y = alt.Y("satisfaction:Q", title="running satisfaction (mean s so far)",
              scale=alt.Scale(domain=[lo, hi], nice=False))
    lines = data(df).mark_line(clip=True, strokeWidth=1.8).encode(
        x=time_x(run), y=y, color=policy_color(run), strokeDash=bound_dash(run),
        tooltip=[alt.Tooltip("policy:N"), alt.Tooltip("t:Q", title=f"time ({run.axis.unit})"),
                 alt.Tooltip("satisfaction:Q", format=".4f")])
    rules = pl.DataFrame({"y": [run.alpha] + list(acc.values()),
                          "label": [f"α = {run.alpha:g}"] + [f"{m} alone: {a:.3f}" for m, a in acc.items()],
                          "kind": ["alpha"] + ["model"] * len(acc)})
    rule_y = alt.Y("y:Q", scale=alt.Scale(domain=[lo, hi], nice=False))
    rule = data(rules).mark_rule(clip=True).encode(
        y=rule_y,
        color=alt.value("#222"),
        opacity=alt.condition(alt.datum.kind == "alpha", alt.value(0.9), alt.value(0.25)),
        strokeDash=alt.condition(alt.datum.kind == "alpha", alt.value([5, 3]), alt.value([1, 0])),
        size=alt.condition(alt.datum.kind == "alpha", alt.value(1.5), alt.value(1)))
    text = data(rules).mark_text(align="right", dx=-4, dy=-5, fontSize=10).encode(
        y=rule_y, x=alt.value(WIDTH), text="label:N",
        opacity=alt.condition(alt.datum.kind == "alpha", alt.value(0.95), alt.value(0.55)))
    overview = alt.layer(rule, text, lines).properties(width=WIDTH, height=HEIGHT, title="All policies")
    # The SLA is decided in a narrow band around alpha where several routers end within a few 1e-4 of each other:
    # one small panel per policy that ends inside the band, so that overlapping lines can be told apart.
    final = df.group_by("policy").agg(pl.col("satisfaction").sort_by("t").last().alias("final"))
    near = set(final.filter((pl.col("final") - run.alpha).abs() <= ZOOM_BAND)["policy"].to_list())
    zoom_domain = [run.display(p) for p in run.policies if run.display(p) in near]
    caption = ("Mean satisfaction of all requests so far for each policy; a router meets the SLA when its curve ends "
               "at or above the dashed α line, and the faint rules show what each model alone achieves.")
    if not zoom_domain:
        return overview.properties(**titled("Satisfaction over time", caption,
                                            f"running mean sampled after the last request of each of "
                                            f"{run.describe_windows()}."))
    zlo, zhi = run.alpha - ZOOM_BAND, run.alpha + ZOOM_BAND
    zdf = df.filter(pl.col("policy").is_in(zoom_domain))
    zy = alt.Y("satisfaction:Q", title=None, scale=alt.Scale(domain=[zlo, zhi], nice=False),
               axis=alt.Axis(tickCount=5, format=".3f"))
    zlines = data(zdf).mark_line(clip=True, strokeWidth=1.6).encode(
        x=alt.X("t:Q", title=f"time ({run.axis.unit})", scale=alt.Scale(nice=False), axis=alt.Axis(tickCount=4)),
        y=zy, color=policy_color(run, zoom_domain, legend=False),
        tooltip=[alt.Tooltip("policy:N"), alt.Tooltip("t:Q", title=f"time ({run.axis.unit})"),
                 alt.Tooltip("satisfaction:Q", format=".4f")])
    zalpha = data(pl.DataFrame({"y": [run.alpha]})).mark_rule(color="#222", strokeDash=[5, 3]).encode(
        y=alt.Y("y:Q", scale=alt.Scale(domain=[zlo, zhi], nice=False)))
    panels = []
    raw = {run.display(p): p for p in run.policies}
    for label in zoom_domain:
        end = float(final.filter(pl.col("policy") == label)["final"][0])
        sla = run.summary["policies"][raw[label]].get("sla")
        # The verdict of summary.json's sla block (issue 13's rule), never one of the report's own.
        mark = "SLA n.a." if not isinstance(sla, dict) or sla.get("met") is None else (
            "SLA met" if sla["met"] else "SLA missed")
        panels.append(alt.layer(zalpha, zlines.transform_filter(alt.FieldEqualPredicate(field="policy", equal=label))).properties(
            width=190, height=80, title=alt.TitleParams(f"{label}: {end:.4f} ({mark})", fontSize=11)))
    rows = [alt.hconcat(*panels[i:i + 3], spacing=12) for i in range(0, len(panels), 3)]
    zoom = alt.vconcat(*rows, spacing=8, title=alt.TitleParams(
        f"Zoom: α ± {ZOOM_BAND:g}, one panel per policy that ends in the band (dashed: α)", fontSize=12,
        anchor="start"))
    return alt.vconcat(overview, zoom, spacing=18).resolve_scale(color="independent").properties(
        **titled("Satisfaction over time", caption + " Below: the band around α, one panel per policy.",
                 f"running mean sampled after the last request of each of {run.describe_windows()}."))


def chart_violation(run: RunData) -> alt.TopLevelMixin:
    """2. SLA violation Q_t / t against time, on a linear axis zoomed to the band where an SLA is decided, with the
    theoretical backlog bound only for the policies where the guarantees say it applies."""
    w = run.windows
    df = with_role(run, w.select("policy", run.window_end(pl.col("w")),
                                 (pl.col("q_after") / (pl.col("last_id") + 1)).alias("violation")))
    # The band that matters: a policy that meets alpha ends near 0; one that misses it ends near alpha minus its
    # satisfaction, far above. The y axis covers the policies that end under 5 * VIOLATION_BAND (at least
    # [0, VIOLATION_BAND]); the first 10 % of the run (a few requests, large ratios) does not set it.
    t_lo = df["t"].min() + 0.1 * (df["t"].max() - df["t"].min())
    final = df.group_by("policy").agg(pl.col("violation").sort_by("t").last().alias("final"))
    inside = final.filter(pl.col("final") <= 5 * VIOLATION_BAND)["policy"].to_list()
    late = df.filter((pl.col("t") >= t_lo) & pl.col("policy").is_in(inside))["violation"]
    top = max(VIOLATION_BAND, float(late.max()) * 1.05 if late.len() else 0.0)
    y = alt.Y("violation:Q", title="Q_t / t (virtual queue per request)",
              scale=alt.Scale(domain=[0, top], nice=False, clamp=False))
    layers = [data(df).mark_line(strokeWidth=1.6, clip=True).encode(
        x=time_x(run), y=y, color=policy_color(run), strokeDash=bound_dash(run),
        tooltip=[alt.Tooltip("policy:N"), alt.Tooltip("t:Q", title=f"time ({run.axis.unit})"),
                 alt.Tooltip("violation:Q", format=".5f")])]
    bounds = []
    for p in run.policies:
        b = run.backlog_bound(p)
        if b is None or not b.get("applicable"):
            continue  # a bound whose assumptions the scenario breaks is not drawn (sim check says why)
        T = run.summary["policies"][p].get("requests") or int(w.filter(pl.col("policy") == p)["cum_n"].max())
        sub = w.filter(pl.col("policy") == p).select(run.window_end(pl.col("w")), (pl.col("last_id") + 1).alias("n"))
        # Q_T/T <= sqrt(2 (B + V dE) / T): the bound at T, scaled to every t as sqrt(T / t).
        sub = sub.with_columns((float(b["value"]) * (T / pl.col("n")).sqrt()).alias("bound"), pl.lit(p).alias("policy"))
        bounds.append(sub)
    if bounds:
        bdf = with_role(run, pl.concat(bounds))
        layers.append(data(bdf).mark_line(strokeDash=[2, 2], strokeWidth=1.2, opacity=0.8, clip=True).encode(
            x=time_x(run), y=alt.Y("bound:Q", scale=alt.Scale(domain=[0, top], nice=False)), color=policy_color(run),
            tooltip=[alt.Tooltip("policy:N"), alt.Tooltip("bound:Q", format=".4f", title="bound")]))
    caption = ("The SLA backlog Q_t divided by the number of requests so far; it tends to 0 for a policy that meets "
               "α in the long run and to α minus the satisfaction for one that does not.")
    above = final.filter(~pl.col("policy").is_in(inside)).sort("final", descending=True)
    if above.height:
        caption += (" Off the top of the axis (final Q_T/T): "
                    + ", ".join(f"{p} {v:.3f}" for p, v in above.iter_rows()) + ".")
    if bounds:
        caption += (" Dotted: the backlog bound sqrt(2(B + V·ΔE)/t) of the guarantees block, for the policies where "
                    "its assumptions hold.")
    else:
        caption += (" No backlog bound is drawn: its assumptions do not hold for any policy of this run "
                    "(`python -m sim check` says why).")
    return alt.layer(*layers).properties(
        width=WIDTH, height=HEIGHT,
        **titled("SLA violation Q_t / t", caption,
                 f"Q after the last request of each of {run.describe_windows()}; linear y axis from 0 to "
                 f"{top:.3g}."))


def chart_cost(run: RunData) -> alt.TopLevelMixin:
    """3. Cost per request over time (running mean, exploration included; dashed: exploit steps only). Single-model
    policies are faint references that do not set the scale."""
    w = run.windows
    unit = run.cost_unit
    what = "energy" if unit == "J" else "cost"
    explorers = set(w.filter(pl.col("explored") > 0)["policy"].unique().to_list())
    single = {p for p in run.policies if run.summary["policies"][p].get("kind") == "always"}
    a = w.select("policy", run.window_end(pl.col("w")), (pl.col("cum_cost") / pl.col("cum_n")).alias("cost"),
                 pl.lit("with exploration").alias("series"))
    b = (w.filter(pl.col("policy").is_in(list(explorers)))
         .select("policy", run.window_end(pl.col("w")),
                 (pl.col("cum_cost_exploit") / pl.col("cum_n")).alias("cost"),
                 pl.lit("exploit steps only").alias("series")))
    df = pl.concat([a, b])
    t_lo = df["t"].min() + 0.1 * (df["t"].max() - df["t"].min())
    # The scale comes from the policies that end within COST_SPREAD times the cheapest one's final cost per
    # request; the others (single models, or a router far more expensive) are listed in the caption.
    finals = {p: cost_per_request(run.summary["policies"][p]) for p in run.policies}
    cheapest = min((v for p, v in finals.items() if p not in single), default=0.0)
    far = {p for p, v in finals.items() if p not in single and cheapest > 0 and v > COST_SPREAD * cheapest}
    scaled = df.filter(~pl.col("policy").is_in(list(single | far)) & (pl.col("t") >= t_lo))["cost"]
    if scaled.len() == 0:
        scaled = df["cost"]
    lo, hi = float(scaled.min()), float(scaled.max())
    pad = 0.08 * (hi - lo) if hi > lo else 0.1 * abs(hi) + 1e-12
    lo, hi = max(0.0, lo - pad), hi + pad
    y_scale = alt.Scale(domain=[lo, hi], nice=False)
    routers = run.with_display(df.filter(~pl.col("policy").is_in(list(single))))
    domain = [run.display(p) for p in run.policies if p not in single]
    lines = data(routers).mark_line(strokeWidth=1.8, clip=True).encode(
        x=time_x(run), y=alt.Y("cost:Q", title=f"{what} per request so far ({unit})", scale=y_scale),
        color=policy_color(run, domain),
        strokeDash=alt.StrokeDash("series:N", scale=alt.Scale(domain=["with exploration", "exploit steps only"],
                                                              range=[[1, 0], [4, 3]]),
                                  legend=alt.Legend(title="line")),
        tooltip=[alt.Tooltip("policy:N"), "series:N", alt.Tooltip("t:Q", title=f"time ({run.axis.unit})"),
                 alt.Tooltip("cost:Q", format=".4g", title=f"{what} per request ({unit})")])
    layers = [lines]
    caption = (f"Mean {what} per request of all requests so far (lower is cheaper); for policies that explore, the "
               f"dashed line leaves out the exploration steps (which call every model), so the gap is the price "
               f"of learning.")
    if far:
        caption += (" Above the axis (final, per request): "
                    + ", ".join(f"{run.display(p)} {finals[p]:.4g} {unit}" for p in run.policies if p in far) + ".")
    if single:
        ref = {p: finals[p] for p in run.policies if p in single}
        shown = {p: v for p, v in ref.items() if lo <= v <= hi}
        if shown:
            rdf = pl.DataFrame({"y": list(shown.values()), "label": [f"{p}: {v:.4g} {unit}" for p, v in shown.items()]})
            layers.append(data(rdf).mark_rule(color="#999", strokeDash=[1, 2]).encode(y=alt.Y("y:Q", scale=y_scale)))
            layers.append(data(rdf).mark_text(align="right", dx=-4, dy=-5, fontSize=10, color="#666").encode(
                y=alt.Y("y:Q", scale=y_scale), x=alt.value(WIDTH), text="label:N"))
        caption += (" Grey rules: single-model policies (references, they do not set the scale)"
                    + (f"; off the axis: {', '.join(f'{p} {v:.4g} {unit}' for p, v in ref.items() if p not in shown)}"
                       if len(shown) < len(ref) else "") + ".")
    return alt.layer(*layers).properties(
        width=WIDTH, height=HEIGHT,
        **titled(f"{what.capitalize()} per request over time", caption,
                 f"running means sampled at the end of each of {run.describe_windows()}; y axis from the routers "
                 f"after the first 10 % of the run."))


def chart_model_mix(run: RunData) -> alt.TopLevelMixin:
    """4. Model mix over time: stacked share of requests served by each model, in windows."""
    single = [p for p in run.policies if run.summary["policies"][p].get("kind") == "always"]
    shown = [p for p in run.policies if p not in single] or run.policies
    cw = run.coarse_windows.filter(pl.col("policy").is_in(shown))
    cols = [f"m{i}" for i in range(len(run.models))]
    long = (cw.select("policy", "t", "n", *cols)
            .unpivot(index=["policy", "t", "n"], on=cols, variable_name="mi", value_name="count")
            .with_columns(pl.col("mi").str.slice(1).cast(pl.Int32).replace_strict(
                {i: m for i, m in enumerate(run.models)}, return_dtype=pl.String).alias("model"),
                (pl.col("count") / pl.col("n")).alias("share"))
            .drop("mi", "count", "n"))
    long = run.with_display(long)
    order = {m: i for i, m in enumerate(run.models)}
    long = long.with_columns(pl.col("model").replace_strict(order, return_dtype=pl.Int32).alias("order"))
    mcolor = alt.Color("model:N", scale=alt.Scale(domain=run.models, range=MODEL_PALETTE[:len(run.models)]),
                       sort=run.models, legend=alt.Legend(title="served model (cheapest first)"))
    base = data(long).mark_area(interpolate="step-after").encode(
        x=alt.X("t:Q", title=f"time ({run.axis.unit})", scale=alt.Scale(nice=False)),
        y=alt.Y("share:Q", stack="normalize", title=None, axis=alt.Axis(format="%", tickCount=2)),
        color=mcolor, order=alt.Order("order:Q", sort="ascending"),
        tooltip=["policy:N", "model:N", alt.Tooltip("t:Q", title=f"window end ({run.axis.unit})"),
                 alt.Tooltip("share:Q", format=".1%")],
        # A facet channel (not .facet()) so that the data transforms run before the split into panels; one
        # panel per row, so that no grid cell is left empty.
        row=alt.Row("policy:N", sort=[run.display(p) for p in shown], title=None,
                    header=alt.Header(labelAngle=0, labelAlign="left", labelFontSize=11, labelLimit=260)),
    )
    caption = ("Share of requests each policy sent to each model (explorations count for the largest model they are "
               "served by); darker means larger, more expensive models.")
    if single and shown is not run.policies:
        caption += f" Not shown (one model by definition): {', '.join(single)}."
    return base.properties(
        width=WIDTH - 100, height=42,
        **titled("Model mix over time", caption,
                 f"shares over {run.describe_windows(coarse=True)} (at least {MIN_PER_WINDOW} requests each "
                 f"on average)."))


def chart_latency(run: RunData) -> alt.TopLevelMixin:
    """5. Latency: arrival-to-completion CDF per policy, and queue-wait percentiles per model."""
    if run.engine == "sequential":
        raise Skip("sequential mode has no service or waiting times (run with engine.mode=des)")
    q = with_role(run, run.latency_quantiles).filter(pl.col("latency_s").is_not_null())
    positive = q.filter(pl.col("latency_s") > 0)
    if positive.height == 0:
        raise Skip("every request completed instantly (no latencies in the trace)")
    lo = float(positive["latency_s"].min())
    q = q.with_columns(pl.col("latency_s").clip(lower_bound=lo))
    cdf = data(q).mark_line(strokeWidth=1.8, interpolate="step-after").encode(
        x=alt.X("latency_s:Q", title="arrival to completion (s, log)", scale=alt.Scale(type="log")),
        y=alt.Y("fraction:Q", title="fraction of requests", axis=alt.Axis(format="%")),
        color=policy_color(run), strokeDash=bound_dash(run),
        tooltip=["policy:N", alt.Tooltip("latency_s:Q", format=".3f"), alt.Tooltip("fraction:Q", format=".1%")]
    ).properties(width=380, height=HEIGHT, title="Latency CDF")
    wp = run.wait_percentiles
    # Only the models where some request waited, and in each only the policies that used it: a panel of zeros
    # answers nothing.
    waited = wp.group_by("model").agg(pl.col("wait_s").max().alias("m")).filter(pl.col("m") > 0)["model"].to_list()
    wp = run.with_display(wp.filter(pl.col("model").is_in(waited)))
    domain = [run.display(p) for p in run.policies]
    caption = "Left: the fraction of requests completed within a given time of arrival (further left is faster)"
    if not waited:
        caption += ". No request waited for a slot: every model always had a free one (no wait panel)."
        return cdf.properties(**titled("Latency", caption, f"CDF from {CDF_LEVELS} quantiles of all requests "
                                                            f"(nearest rank)."))
    quiet = [m for m in run.models if m not in waited]
    caption += ("; right: the 50th, 95th and 99th percentile of the time a request waited for a free slot, for "
                "the models where any request waited")
    caption += (f" (no request waited for {', '.join(quiet)})." if quiet else ".")
    waits = data(wp).mark_point(filled=True, size=45).encode(
        x=alt.X("wait_s:Q", title="queue wait (s)", axis=alt.Axis(tickCount=4, labelOverlap=True)),
        y=alt.Y("policy:N", sort=domain, title=None, axis=alt.Axis(labelLimit=200)),
        color=policy_color(run),
        shape=alt.Shape("percentile:N", scale=alt.Scale(domain=["p50", "p95", "p99"],
                                                        range=["circle", "triangle-up", "square"]),
                        legend=alt.Legend(title="wait percentile")),
        row=alt.Row("model:N", sort=run.models, title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
        tooltip=["policy:N", "model:N", "percentile:N", alt.Tooltip("wait_s:Q", format=".3f"),
                 alt.Tooltip("n:Q", title="requests")],
    ).properties(width=220, height=max(40, 14 * len(run.policies)), title="Queue wait by model"
                  ).resolve_scale(y="independent")
    return alt.hconcat(cdf, waits, spacing=30).resolve_scale(color="shared", y="independent").properties(
        **titled("Latency", caption,
                 f"CDF from {CDF_LEVELS} quantiles of all requests (nearest rank); wait percentiles over all "
                 f"requests of each model."))


def chart_occupancy(run: RunData) -> alt.TopLevelMixin:
    """6. Slot occupancy per model over time (the GPU view), with the slot capacity as a rule."""
    if run.engine == "sequential":
        raise Skip("sequential mode has no slots (occupancy is recorded by the discrete-event engine)")
    occ = run.occupancy
    if occ is None or occ.height == 0:
        raise Skip("no occupancy.parquet in the result folder")
    occ = run.with_display(occ)
    width_s = getattr(run, "_occupancy_window_s", run.window_s)
    n_w = int(occ["w"].max()) + 1
    rows: list = []
    loaded: list[str] = []
    for m in run.models:
        sub = occ.filter(pl.col("model") == m)
        if sub.height == 0:
            continue
        cap = run.capacities.get(m)
        busy = data(sub.select("policy", "t", "busy_mean", "busy_max")).mark_line(strokeWidth=1.5).encode(
            x=alt.X("t:Q", title=f"time ({run.axis.unit})", scale=alt.Scale(nice=False)),
            y=alt.Y("busy_mean:Q", title="busy slots (mean)"),
            color=policy_color(run),
            tooltip=["policy:N", alt.Tooltip("t:Q", title=f"window end ({run.axis.unit})"),
                     alt.Tooltip("busy_mean:Q", format=".2f", title="mean busy"),
                     alt.Tooltip("busy_max:Q", title="max busy")])
        layers = [busy]
        if cap is not None:
            capdf = pl.DataFrame({"cap": [cap], "label": [f"capacity {cap}"]})
            layers.append(data(capdf).mark_rule(color="#c00", strokeDash=[5, 3]).encode(y="cap:Q"))
            layers.append(data(capdf).mark_text(align="left", dx=3, dy=-5, color="#c00", fontSize=10)
                          .encode(y="cap:Q", x=alt.value(2), text="label:N"))
        left = alt.layer(*layers).properties(width=400, height=110, title=f"{m}: busy slots")
        if float(sub["queued_mean"].max() or 0.0) <= 0.0:
            rows.append(left)  # nothing ever queued for this model: no panel of zeros
            continue
        loaded.append(m)
        right = data(sub.select("policy", "t", "queued_mean")).mark_line(strokeWidth=1.5).encode(
            x=alt.X("t:Q", title=f"time ({run.axis.unit})", scale=alt.Scale(nice=False)),
            y=alt.Y("queued_mean:Q", title="queued (mean)"),
            color=policy_color(run),
            tooltip=["policy:N", alt.Tooltip("queued_mean:Q", format=".2f", title="mean queued")],
        ).properties(width=250, height=110, title=f"{m}: queue length")
        rows.append(alt.hconcat(left, right))
    caps = ", ".join(f"{m}: {'unlimited' if c is None else c}" for m, c in run.capacities.items())
    where = (f"Requests queued only for {', '.join(loaded)} (queue panels on the right); no other model ever had a "
             f"queue." if loaded else "No request ever queued: no model was saturated.")
    return alt.vconcat(*rows).resolve_scale(color="shared").properties(
        **titled("Slot occupancy per model (the GPU view)",
                 f"Mean number of busy slots for each model; a line at the red capacity rule means that model's "
                 f"GPUs are saturated (slots per model: {caps}). {where}",
                 f"exact time-weighted means of the occupancy change log over {n_w} windows of "
                 f"{fmt_duration(width_s)}; hover for the window maximum."))


def chart_gpus(run: RunData) -> alt.TopLevelMixin:
    """6b. Each named GPU's busy fraction over time (sim/world/serving.py), with its active and idle energy."""
    rows = []
    for label, p in run.summary["policies"].items():
        for gpu, g in ((p.get("serving") or {}).get("gpus") or {}).items():
            tl = g.get("timeline") or {}
            frac, width = tl.get("busy_fraction") or [], tl.get("window_s") or 0.0
            t = (np.arange(1, len(frac) + 1) * width) / run.axis.scale
            rows.append(pl.DataFrame({
                "policy": label, "gpu": f"{gpu} ({', '.join(g.get('models', []))})", "t": t,
                "busy": np.asarray(frac, dtype=np.float64),
                "active_mj": (g.get("active_energy_j") or 0.0) / 1e6, "idle_mj": (g.get("idle_energy_j") or 0.0) / 1e6,
            }))
    if not rows:
        raise Skip("no GPUs declared in the scenario (gpus: and zoo placement, see sim/world/serving.py)")
    df = run.with_display(pl.concat(rows))
    n_w = df.group_by("policy", "gpu").len()["len"].max()
    chart = data(df).mark_line(strokeWidth=1.5).encode(
        x=alt.X("t:Q", title=f"time ({run.axis.unit})", scale=alt.Scale(nice=False)),
        y=alt.Y("busy:Q", title="busy fraction", scale=alt.Scale(domain=[0, 1])),
        color=policy_color(run),
        tooltip=["policy:N", "gpu:N", alt.Tooltip("busy:Q", format=".2f"),
                 alt.Tooltip("active_mj:Q", format=".3f", title="active energy (MJ, whole run)"),
                 alt.Tooltip("idle_mj:Q", format=".3f", title="idle energy (MJ, whole run)")],
    ).properties(width=560, height=110).facet(row=alt.Row("gpu:N", title=None))
    return chart.resolve_scale(color="shared").properties(
        **titled("GPU busy fraction over time",
                 "Share of each window in which any model placed on the GPU was busy; the GPU draws its idle power "
                 "the rest of the time (hover for the run's active and idle energy).",
                 f"{n_w} equal windows from the busy periods the engine recorded (exact)."))


def _renamed(run: RunData, names: dict[str, str]) -> RunData:
    """A shallow copy of ``run`` whose display names (and colours, by position) follow ``names``."""
    import copy

    other = copy.copy(run)
    display = dict(run.display_map)
    display.update(names)
    other.__dict__["display_map"] = display
    return other


def chart_exploration(run: RunData) -> alt.TopLevelMixin:
    """7. Exploration probability and realised explorations over time."""
    w = run.windows
    tot = w.group_by("policy").agg(pl.col("p").sum(), pl.col("explored").sum())
    explorers = tot.filter((pl.col("p") > 0) | (pl.col("explored") > 0))["policy"].to_list()
    if not explorers:
        raise Skip("no policy of this run explores")
    explorers = [p for p in run.policies if p in explorers]
    # Policies that share the exploration stream (same c, same seed) have identical curves: one line, one legend
    # entry naming them all.
    merged: dict[tuple, list[str]] = {}
    for p in explorers:
        e = w.filter(pl.col("policy") == p)
        merged.setdefault((tuple(e["p"].to_list()), tuple(e["explored"].to_list())), []).append(p)
    names = {ps[0]: (", ".join(run.display(x) for x in ps) + (" (identical)" if len(ps) > 1 else ""))
             for ps in merged.values()}
    explorers = list(names)
    sub = w.filter(pl.col("policy").is_in(explorers))
    domain = [names[p] for p in explorers]
    run = _renamed(run, names)
    prob = run.with_display(sub.select("policy", run.window_end(pl.col("w")), (pl.col("p") / pl.col("n")).alias("p"))
                            .filter(pl.col("p") > 0))
    top = data(prob).mark_line(strokeWidth=1.6).encode(
        x=time_x(run), y=alt.Y("p:Q", title="exploration probability p_t", scale=alt.Scale(type="log")),
        color=policy_color(run, domain),
        tooltip=["policy:N", alt.Tooltip("p:Q", format=".4f")],
    ).properties(width=WIDTH, height=150)
    cum = pl.concat([
        sub.select("policy", run.window_end(pl.col("w")), pl.col("cum_explored").cast(pl.Float64).alias("count"),
                   pl.lit("realised").alias("series")),
        sub.select("policy", run.window_end(pl.col("w")), pl.col("cum_p").alias("count"),
                   pl.lit("expected (sum of p_t)").alias("series")),
    ])
    cum = run.with_display(cum)
    bottom = data(cum).mark_line(strokeWidth=1.6).encode(
        x=time_x(run), y=alt.Y("count:Q", title="explorations so far"),
        color=policy_color(run, domain),
        strokeDash=alt.StrokeDash("series:N", scale=alt.Scale(domain=["realised", "expected (sum of p_t)"],
                                                              range=[[1, 0], [4, 3]]),
                                  legend=alt.Legend(title="line")),
        tooltip=["policy:N", "series:N", alt.Tooltip("count:Q", format=".1f")],
    ).properties(width=WIDTH, height=170)
    return alt.vconcat(top, bottom).resolve_scale(color="shared").properties(
        **titled("Exploration",
                    "Top: the probability of exploring (serving the largest model to get every model's feedback) "
                    "at each time; bottom: explorations so far against the number expected from those "
                    "probabilities, which should stay close.",
                    f"mean p_t and cumulative counts at the end of each of {run.describe_windows()}; log y on top."))


def chart_calibration(run: RunData) -> alt.TopLevelMixin:
    """8. Calibration of the predicted satisfaction (s-hat) against observed satisfaction, and its error over time."""
    with_pred = [p for p in run.policies if run.summary["policies"][p].get("predictor")]
    full = run.calibration.filter(pl.col("policy").is_in(with_pred))
    cal = full.filter(pl.col("n") >= MIN_BIN_REQUESTS)
    dropped = full.height - cal.height
    with_pred = [p for p in with_pred if p in set(cal["policy"].to_list())]
    if not with_pred:
        raise Skip("no policy of this run has a learned predictor (no s-hat recorded)")
    domain = [run.display(p) for p in with_pred]
    cal = run.with_display(cal)
    diag = pl.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]})
    ref = data(diag).mark_line(color="#888", strokeDash=[4, 3]).encode(
        x=alt.X("x:Q", title="predicted satisfaction ŝ (bin mean)", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("y:Q", title="observed satisfaction", scale=alt.Scale(domain=[0, 1])))
    pts = data(cal).mark_line(point=True, strokeWidth=1.4).encode(
        x="predicted:Q", y="observed:Q", color=policy_color(run, domain),
        tooltip=["policy:N", alt.Tooltip("predicted:Q", format=".3f"), alt.Tooltip("observed:Q", format=".3f"),
                 alt.Tooltip("n:Q", title="requests")])
    size = data(cal).mark_circle(opacity=0.35).encode(
        x="predicted:Q", y="observed:Q", color=policy_color(run, domain),
        size=alt.Size("n:Q", title="requests in bin", scale=alt.Scale(range=[10, 400])))
    left = alt.layer(ref, size, pts).properties(width=300, height=HEIGHT, title="Reliability")
    cw = run.coarse_windows.filter(pl.col("policy").is_in(with_pred) & (pl.col("shat_n") > 0))
    err = run.with_display(cw.select("policy", "t", ((pl.col("shat") - pl.col("shat_sat")) / pl.col("shat_n"))
                                     .alias("bias")))
    zero = data(pl.DataFrame({"y": [0.0]})).mark_rule(color="#888").encode(y="y:Q")
    line = data(err).mark_line(strokeWidth=1.4).encode(
        x=alt.X("t:Q", title=f"time ({run.axis.unit})", scale=alt.Scale(nice=False)),
        y=alt.Y("bias:Q", title="mean ŝ − mean s"),
        color=policy_color(run, domain),
        tooltip=["policy:N", alt.Tooltip("bias:Q", format="+.4f")])
    right = alt.layer(zero, line).properties(width=330, height=HEIGHT, title="Calibration error over time")
    return alt.hconcat(left, right, spacing=30).resolve_scale(color="shared").properties(
        **titled("Predictor calibration",
                    "Left: observed satisfaction against the predicted ŝ of the served model, in bins (on the "
                    "diagonal = calibrated, point size = requests); right: the mean prediction minus the mean "
                    "outcome per window (above 0 = over-confident).",
                    f"{CALIBRATION_BINS} equal-width bins of ŝ over the whole run"
                    + (f" ({dropped} bins with fewer than {MIN_BIN_REQUESTS} requests left out)" if dropped else "")
                    + f"; error over {run.describe_windows(coarse=True)}."))


PARTS = ("optimum", "information", "routing", "exploration")
PART_COLORS = ("#9e9e9e", "#4c78a8", "#f58518", "#e45756")


def decomposition_frame(summaries: dict[str, dict], order: list[str]) -> pl.DataFrame:
    """One row per (policy, part) from summary.json's ``cost_decomposition`` blocks (docs/theory.md §12)."""
    rows = [{"policy": p, "part": part, "order": i, "value": float(summaries[p]["cost_decomposition"][part])}
            for p in order if isinstance(summaries[p].get("cost_decomposition"), dict)
            for i, part in enumerate(PARTS)]
    if not rows:
        raise Skip("no policy has a cost decomposition (summary.json written before it existed)")
    return pl.DataFrame(rows)


def decomposition_bars(df: pl.DataFrame, unit: str, y_title: str = "policy") -> alt.Chart:
    """A horizontal stacked bar per row of ``policy``: the four parts (negative parts stack left of 0)."""
    return data(df).mark_bar().encode(
        y=alt.Y("policy:N", title=y_title, sort=None),
        x=alt.X("value:Q", title=f"cost per request ({unit})", stack="zero"),
        color=alt.Color("part:N", scale=alt.Scale(domain=list(PARTS), range=list(PART_COLORS)),
                        legend=alt.Legend(title="part")),
        order=alt.Order("order:Q"),
        tooltip=["policy:N", "part:N", alt.Tooltip("value:Q", format=".4g")])


def chart_cost_decomposition(run: RunData) -> alt.TopLevelMixin:
    """9. Where each causal policy's cost goes: optimum, information, routing, exploration (stacked)."""
    df = decomposition_frame(run.summary["policies"], run.policies)
    return decomposition_bars(df, run.cost_unit).properties(
        width=WIDTH, height=max(60, 26 * df["policy"].n_unique()),
        **titled("Where the cost goes",
                 "Each causal policy's cost per request split into: the offline optimum (no causal policy meeting "
                 "alpha does better), information (what better predictions and cost estimates would buy), routing "
                 "(what the decisions lose to the best use of the policy's own predictions) and exploration (what "
                 "explorations cost beyond serving one model). The parts add up to the cost; a negative part (left "
                 "of 0) means the policy spent less than that reference, which it can only do by missing alpha. "
                 "See docs/theory.md §12.",
                 "summary.json's cost_decomposition, per request over the whole run."))


#: The charts of one run, in report order: (name, function).
CHARTS: list[tuple[str, Callable[[RunData], alt.TopLevelMixin]]] = [
    ("satisfaction", chart_satisfaction),
    ("violation", chart_violation),
    ("cost", chart_cost),
    ("model_mix", chart_model_mix),
    ("latency", chart_latency),
    ("occupancy", chart_occupancy),
    ("gpus", chart_gpus),
    ("exploration", chart_exploration),
    ("calibration", chart_calibration),
    ("cost_decomposition", chart_cost_decomposition),
]


def _constraint_charts() -> None:
    """The charts of runs with ``constraints:`` (sim/report/constraints.py): after the latency chart."""
    from sim.report.constraints import chart_constraints, chart_latency_by_model

    at = [name for name, _ in CHARTS].index("latency") + 1
    CHARTS[at:at] = [("constraints", chart_constraints), ("latency_by_model", chart_latency_by_model)]


_constraint_charts()


def run_charts(run: RunData) -> tuple[list[tuple[str, alt.TopLevelMixin]], dict[str, str]]:
    """Every chart that applies to the run, and the reasons for those skipped."""
    charts, skipped = [], {}
    for name, fn in CHARTS:
        try:
            charts.append((name, fn(run)))
        except Skip as e:
            skipped[name] = str(e)
    return charts, skipped
