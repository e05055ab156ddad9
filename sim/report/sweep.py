"""Sweep views: the cost/satisfaction frontier across V, heatmaps over α × V, and a per-benchmark table.

They read ``DIR/manifest.parquet``. Its format belongs to the sweeps work; until it settles this module reads a
stand-in: one row per (cell, policy) with flattened config columns and the policy's summary metrics (or one row per
cell with metrics in ``policies.<label>.<metric>`` columns, which :func:`normalise` unpivots). **Every column name
this module relies on is in** :data:`COLUMNS` (and the three constants after it): to follow the real manifest,
change them there. :func:`manifest_from_runs` builds the same format from plain ``sim run`` folders.
"""

from __future__ import annotations

import html as _html
import math
import re
from pathlib import Path

import altair as alt
import numpy as np
import polars as pl

from sim.config import POLICIES

#: Canonical name -> manifest columns that may hold it; where several are present, the first non-null value per row
#: wins. Written for ``sim/running/sweep.py``'s manifest (config flattened to dotted keys, the row's own policy config as
#: ``policy.<key>``, its summary metrics flattened, colliding metric names prefixed ``result.``, the benchmark as the
#: sweep ``case`` or the ``split_by`` ``group``, the group's own alpha as ``run_alpha``) and for the stand-in that
#: :func:`manifest_from_runs` builds.
COLUMNS: dict[str, list[str]] = {
    "cell": ["cell_id", "cell", "id"],
    "status": ["status"],
    "benchmark": ["benchmark", "case", "group", "trace.group", "trace.benchmark"],
    "alpha": ["run_alpha", "policy.alpha", "result.alpha", "alpha"],
    "V": ["policy.V", "V", "policies.messplus.V"],
    "c": ["policy.c", "c", "policies.messplus.c"],
    "seed": ["seed"],
    "policy": ["policy", "label"],
    "kind": ["kind", "result.kind", "policy.kind", "policy_kind"],
    "causal": ["causal", "result.causal"],
    "satisfaction": ["satisfaction", "result.satisfaction"],
    "cost": ["cost_total", "result.cost_total", "cost", "result.cost", "energy_j_total", "energy_j"],
    "requests": ["requests", "result.requests"],
    "sla_met": ["sla.met", "result.sla.met"],
    "violation": ["violation", "result.violation"],
    "cost_unit": ["cost_unit", "result.cost_unit"],
    # docs/theory.md §12: the cost decomposition, per request
    **{f"part_{k}": [f"cost_decomposition.{k}", f"result.cost_decomposition.{k}"]
       for k in ("optimum", "information", "routing", "exploration")},
}
#: Canonical dtypes (candidates are cast to these before they are combined).
DTYPES = {"cell": pl.String, "status": pl.String, "benchmark": pl.String, "alpha": pl.Float64, "V": pl.Float64,
          "c": pl.Float64, "seed": pl.Int64, "policy": pl.String, "kind": pl.String, "causal": pl.Boolean,
          "satisfaction": pl.Float64, "cost": pl.Float64, "requests": pl.Float64, "sla_met": pl.Boolean, "violation": pl.Float64, "cost_unit": pl.String,
          **{f"part_{k}": pl.Float64 for k in ("optimum", "information", "routing", "exploration")}}
#: Call ratio columns: ``call_ratio.<model>``.
CALL_RATIO_PREFIX = "call_ratio."
#: Wide form: ``policies.<label>.<metric>`` columns (one row per cell).
WIDE_PREFIX = "policies."
#: Status values of a finished cell (others are failed or unfinished and left out, with a note).
OK_STATUS = {"ok", "done", "success", "succeeded", "completed", "complete"}
#: Policy kinds whose results depend on V (drawn as a line across V on the frontier): from the registry.
V_KINDS = POLICIES.names(has_V=True)
#: Policies that bound the frontier (see the future): from the registry.
BOUND_KINDS = POLICIES.names(causal=False)


def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / "manifest.parquet").exists()


def load_manifest(path: Path) -> pl.DataFrame:
    return normalise(pl.read_parquet(Path(path) / "manifest.parquet"))


def _pick(df: pl.DataFrame, name: str) -> str | None:
    for c in COLUMNS[name]:
        if c in df.columns:
            return c
    return None


def _column(df: pl.DataFrame, name: str) -> pl.Expr:
    """The canonical column ``name``: the first non-null of its candidate columns, cast to its dtype."""
    present = [c for c in COLUMNS[name] if c in df.columns]
    dtype = DTYPES[name]
    if not present:
        return pl.lit(None, dtype=dtype).alias(name)
    exprs = [pl.col(c).cast(dtype, strict=False) for c in present]
    return (exprs[0] if len(exprs) == 1 else pl.coalesce(exprs)).alias(name)


def _unwide(df: pl.DataFrame) -> pl.DataFrame:
    """One row per cell with ``policies.<label>.<metric>`` columns -> one row per (cell, policy)."""
    pat = re.compile(re.escape(WIDE_PREFIX) + r"(.+)\.(" + "|".join(COLUMNS["satisfaction"]) + r")$")
    labels = [m.group(1) for c in df.columns if (m := pat.match(c))]
    if not labels:
        raise ValueError("manifest has neither a policy column nor policies.<label>.satisfaction columns")
    wide = [c for c in df.columns if c.startswith(WIDE_PREFIX) and any(c.startswith(f"{WIDE_PREFIX}{lb}.")
                                                                        for lb in labels)]
    keep = [c for c in df.columns if c not in wide]
    parts = []
    for lb in labels:
        pre = f"{WIDE_PREFIX}{lb}."
        mine = {c: c[len(pre):] for c in wide if c.startswith(pre)}
        # Per-policy config (e.g. policies.messplus.V) stays a column of its own as well.
        parts.append(df.select(*keep, *[pl.col(c).alias(n) for c, n in mine.items()])
                     .with_columns(pl.lit(lb).alias("policy")))
    return pl.concat(parts, how="diagonal_relaxed")


def normalise(df: pl.DataFrame) -> pl.DataFrame:
    """The manifest in canonical columns: cell, status, benchmark, alpha, V, c, seed, policy, kind, causal,
    satisfaction, cost, violation, cost_unit and ``call_ratio.<model>``; missing ones are null."""
    if _pick(df, "policy") is None:
        df = _unwide(df)
    ratios = [c for c in df.columns if c.startswith(CALL_RATIO_PREFIX)]
    res = df.select(*[_column(df, name) for name in COLUMNS],
                    *[pl.col(c).cast(pl.Float64, strict=False) for c in ratios])
    kind = pl.col("kind")
    res = res.with_columns(
        pl.col("benchmark").fill_null("all"),
        pl.col("status").fill_null("ok"),
        pl.col("cost_unit").fill_null("J"),
        # Without a kind column, guess it from the label ("messplus_x" -> messplus, "always:m" -> always).
        pl.when(kind.is_not_null()).then(kind)
        .otherwise(pl.col("policy").cast(pl.String).str.extract(r"^([a-z_]+?)(?:[:_].*)?$", 1)
                   .replace({"mp": "messplus"}))
        .alias("kind"),
    )
    res = res.with_columns(
        pl.when(pl.col("causal").is_not_null()).then(pl.col("causal"))
        .otherwise(~pl.col("kind").is_in(list(BOUND_KINDS))).alias("causal"),
        # A policy whose result does not depend on V keeps no V (its cells are averaged on the frontier).
        pl.when(pl.col("kind").is_in(list(V_KINDS))).then(pl.col("V")).otherwise(None).alias("V"),
        pl.when(pl.col("kind").is_in(list(V_KINDS))).then(pl.col("c")).otherwise(None).alias("c"),
    )
    return res


def manifest_from_runs(runs) -> pl.DataFrame:
    """The stand-in manifest built from ``sim run`` folders (one cell per run), already normalised."""
    rows = []
    for run in runs:
        s = run.summary
        pols = run.resolved.get("policies") or []
        groups = s.get("groups") or []
        # A per-group run of `split_by: group` is named "<scenario>/<group>"; otherwise one group names the benchmark.
        name = str(s.get("scenario", ""))
        benchmark = name.rsplit("/", 1)[1] if "/" in name else (groups[0] if len(groups) == 1 else "all")
        for i, (label, p) in enumerate(s["policies"].items()):
            conf = pols[i] if i < len(pols) and isinstance(pols[i], dict) else {}
            row = {"cell_id": str(run.path), "status": "ok", "benchmark": benchmark,
                   "alpha": float(conf.get("alpha") or s["alpha"]), "V": conf.get("V"), "c": conf.get("c"),
                   "seed": s.get("seed"), "policy": label, "kind": p.get("kind"), "causal": p.get("causal", True),
                   "satisfaction": p.get("satisfaction"), "cost": p.get("cost_total", p.get("cost")),
                   "requests": p.get("requests"), "sla_met": (p.get("sla") or {}).get("met"),
                   "violation": p.get("violation"),
                   "cost_unit": s.get("cost_unit", "J")}
            for k, v in (p.get("cost_decomposition") or {}).items():
                row[f"cost_decomposition.{k}"] = v
            for m, v in (p.get("call_ratio") or {}).items():
                row[CALL_RATIO_PREFIX + m] = v
            rows.append(row)
    return normalise(pl.DataFrame(rows, infer_schema_length=None))


def varies(m: pl.DataFrame) -> bool:
    """Whether the cells differ in α or V (otherwise sweep views say nothing new)."""
    ok = m.filter(pl.col("status").str.to_lowercase().is_in(list(OK_STATUS)))
    return ok.select(pl.col("alpha").n_unique()).item() > 1 or ok.select(pl.col("V").drop_nulls().n_unique()).item() > 1


# --------------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------------


def _variant(df: pl.DataFrame) -> pl.DataFrame:
    """Series name: the policy label, plus c when the sweep varies it."""
    multi_c = df.filter(pl.col("c").is_not_null())["c"].n_unique() > 1
    lab = pl.col("policy")
    if multi_c:
        lab = pl.when(pl.col("c").is_not_null()).then(
            pl.format("{} (c={})", pl.col("policy"),
                      pl.col("c").map_elements(lambda x: f"{x:g}", return_dtype=pl.String))
        ).otherwise(pl.col("policy"))
    shown = pl.when(pl.col("causal")).then(lab).otherwise(pl.format("{} † bound", lab))
    return df.with_columns(shown.alias("series"))


def cell_means(m: pl.DataFrame) -> pl.DataFrame:
    """Mean (and sd) over seeds per (benchmark, α, series, V)."""
    ok = _variant(m.filter(pl.col("status").str.to_lowercase().is_in(list(OK_STATUS))))
    ratios = [c for c in m.columns if c.startswith(CALL_RATIO_PREFIX)]
    return (ok.group_by("benchmark", "alpha", "series", "policy", "kind", "causal", "V", "c", "cost_unit")
            .agg(pl.col("satisfaction").mean(), pl.col("satisfaction").std().alias("sat_sd"),
                 pl.col("cost").mean(), (pl.col("cost") / pl.col("requests")).mean().alias("cost_per_request"),
                 pl.col("violation").mean(), pl.len().alias("runs"),
                 # The SLA verdict of summary.json per run; over seeds: met only if every run met it, null (n.a.)
                 # if any run has no verdict.
                 pl.when(pl.col("sla_met").is_null().any()).then(None).otherwise(pl.col("sla_met").all())
                 .alias("sla_met"), pl.col("sla_met").sum().alias("sla_met_runs"),
                 *[pl.col(c).mean() for c in ratios], *[pl.col(c).mean() for c in PART_COLUMNS])
            .sort("benchmark", "alpha", "series", "V", nulls_last=True))


def _unit(m: pl.DataFrame) -> tuple[float, str]:
    unit = (m["cost_unit"].drop_nulls().to_list() or ["J"])[0]
    if unit != "J":
        return 1.0, unit
    top = float(m["cost"].abs().max() or 0.0)
    for div, name in [(1e9, "GJ"), (1e6, "MJ"), (1e3, "kJ")]:
        if top >= div:
            return div, name
    return 1.0, "J"


def _rows_chart(df: pl.DataFrame) -> alt.Chart:
    """Row-wise inline data (as one JSON string, so facets split the rows as they are)."""
    from sim.report.charts import _round
    import json

    text = json.dumps(_round(df).to_dicts(), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return alt.Chart(alt.Data(values=text, format=alt.DataFormat(type="json")))


# --------------------------------------------------------------------------------------------------
# Views
# --------------------------------------------------------------------------------------------------


FIXED = "fixed mixtures (single models)"


def frontier_metrics(m: pl.DataFrame) -> pl.DataFrame:
    """Per (benchmark, α, series): RouterBench's AIQ and, for two-model panels, RouteLLM's APGR and CPT(50 %) /
    CPT(80 %) (definitions in :mod:`sim.evaluation.frontier`), from the means over seeds. The fixed mixtures of the
    single models get their own row (RouterBench's zero router). Bounds (policies that see the future) and the
    single models themselves get none."""
    from sim.evaluation import frontier as F

    cm = cell_means(m)
    rows = []
    for (bm, alpha), g in cm.group_by("benchmark", "alpha", maintain_order=True):
        single = g.filter((pl.col("kind") == "always") & pl.col("cost_per_request").is_not_null())
        if single.height == 0:
            continue
        sc, sq = single["cost_per_request"].to_numpy(), single["satisfaction"].to_numpy()
        c_min, c_max = float(sc.min()), float(sc.max())
        two = single.height == 2
        if two:
            weak, strong = single.sort("cost_per_request").iter_rows(named=True)
            models = [c[len(CALL_RATIO_PREFIX):] for c in g.columns if c.startswith(CALL_RATIO_PREFIX)
                      and (g[c].fill_null(0.0) > 0).any()]
            strong_col = next((CALL_RATIO_PREFIX + mm for mm in models
                               if (strong[CALL_RATIO_PREFIX + mm] or 0.0) > 0.5), None)
            two = len(models) == 2 and strong_col is not None and strong["satisfaction"] != weak["satisfaction"]
        series = [(FIXED, sc[:0], sq[:0], None)]
        for name, sg in g.filter(pl.col("causal") & (pl.col("kind") != "always")).group_by("series",
                                                                                          maintain_order=True):
            sg = sg.filter(pl.col("cost_per_request").is_not_null())
            if sg.height:
                series.append((name[0], sg["cost_per_request"].to_numpy(), sg["satisfaction"].to_numpy(),
                               sg[strong_col].to_numpy() if two else None))
        for name, c, q, share in series:
            row = {"benchmark": bm, "alpha": alpha, "series": name, "points": int(c.size),
                   "aiq": F.aiq(np.concatenate([sc, c]), np.concatenate([sq, q]), c_min, c_max),
                   "apgr": None, "cpt50": None, "cpt80": None}
            if two and name != FIXED:
                qw, qs = float(weak["satisfaction"]), float(strong["satisfaction"])
                row["apgr"] = F.apgr(share, q, qw, qs)
                row["cpt50"] = F.cpt(share, q, qw, qs, 0.5)
                row["cpt80"] = F.cpt(share, q, qw, qs, 0.8)
            rows.append(row)
    schema = {"benchmark": pl.String, "alpha": pl.Float64, "series": pl.String, "points": pl.Int64,
              "aiq": pl.Float64, "apgr": pl.Float64, "cpt50": pl.Float64, "cpt80": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def with_frontier_columns(raw: pl.DataFrame) -> pl.DataFrame:
    """The manifest ``raw`` with ``frontier.aiq``, ``frontier.apgr``, ``frontier.cpt50`` and ``frontier.cpt80`` on
    every row of a series that has them (the same value on each of its cells: the metric is of the whole series)."""
    names = ["frontier.aiq", "frontier.apgr", "frontier.cpt50", "frontier.cpt80"]
    try:
        norm = _variant(normalise(raw))
        fm = frontier_metrics(norm)
    except (ValueError, pl.exceptions.PolarsError):
        fm = pl.DataFrame()
    if fm.height == 0:
        return raw.with_columns(*[pl.lit(None, pl.Float64).alias(n) for n in names])
    keyed = norm.select("benchmark", "alpha", "series").with_row_index("_row")
    joined = (keyed.join(fm, on=["benchmark", "alpha", "series"], how="left").sort("_row")
              .select(*[pl.col(k).alias(n) for k, n in zip(["aiq", "apgr", "cpt50", "cpt80"], names)]))
    return pl.concat([raw.drop([n for n in names if n in raw.columns]), joined], how="horizontal")


def frontier_table_html(fm: pl.DataFrame) -> str:
    esc = _html.escape

    def f(x, pct=False):
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "–"
        return f"{x:.1%}" if pct else f"{x:.4f}"

    head = ("<tr><th class='l'>benchmark</th><th>α</th><th class='l'>series</th><th>points</th><th>AIQ</th>"
            "<th>APGR</th><th>CPT(50 %)</th><th>CPT(80 %)</th></tr>")
    rows = [head] + [
        f"<tr><td class='l'>{esc(r['benchmark'])}</td><td>{r['alpha']:g}</td><td class='l'>{esc(r['series'])}</td>"
        f"<td>{r['points']}</td><td>{f(r['aiq'])}</td><td>{f(r['apgr'])}</td><td>{f(r['cpt50'], True)}</td>"
        f"<td>{f(r['cpt80'], True)}</td></tr>" for r in fm.iter_rows(named=True)]
    return ('<table class="summary">' + "".join(rows) + "</table>"
            '<p class="legend-note">AIQ (RouterBench): mean satisfaction under the non-decreasing convex hull of '
            "the series' points and the single models' points, over the cost range from the cheapest to the most "
            "expensive single model (the fixed-mixtures row is the baseline every router reaches by mixing). "
            "APGR, CPT (RouteLLM), for two-model panels only: the area under the performance gap recovered against "
            "the share of calls to the strong model, and the share of strong calls needed to recover 50 % / 80 % "
            "of the gap. Definitions: docs/theory.md, section Frontier metrics.</p>")


def chart_frontier(m: pl.DataFrame) -> alt.TopLevelMixin:
    """Cost per request against satisfaction per policy across V, one panel per (benchmark, α), with α as a rule
    and the Pareto hull of the fixed mixtures of single models as the reference a router must beat."""
    from sim.evaluation.frontier import nondecreasing_hull
    from sim.report.charts import titled

    cm = cell_means(m).filter(pl.col("cost_per_request").is_not_null())
    if cm.height == 0:
        raise ValueError("the manifest has no per-request cost (no requests column)")
    unit = (cm["cost_unit"].drop_nulls().to_list() or ["J"])[0]
    panel = pl.format("{} · α = {}", pl.col("benchmark"),
                      pl.col("alpha").map_elements(lambda x: f"{x:g}", return_dtype=pl.String))
    df = cm.with_columns(panel.alias("panel"),
                         pl.when(pl.col("causal")).then(pl.lit("router")).otherwise(pl.lit("bound (sees the future)"))
                         .alias("role"))
    panels = df["panel"].unique(maintain_order=True).to_list()
    series = df["series"].unique(maintain_order=True).to_list()
    hulls = []
    for (pn,), g in df.filter(pl.col("kind") == "always").group_by("panel", maintain_order=True):
        hc, hq = nondecreasing_hull(g["cost_per_request"].to_numpy(), g["satisfaction"].to_numpy())
        hulls.append(pl.DataFrame({"panel": pn, "cost_per_request": hc, "satisfaction": hq,
                                   "order": np.arange(hc.size)}))
    rules = df.group_by("panel").agg(pl.col("alpha").first())
    data = pl.concat([df.with_columns(pl.lit("point").alias("layer")),
                      rules.with_columns(pl.lit("alpha").alias("layer")),
                      *[h.with_columns(pl.lit("hull").alias("layer")) for h in hulls]], how="diagonal_relaxed")
    base = _rows_chart(data)
    scheme = "tableau20" if len(series) > 10 else "tableau10"
    color = alt.Color("series:N", scale=alt.Scale(domain=series, scheme=scheme),
                      legend=alt.Legend(title="policy († bound)", symbolLimit=0, labelLimit=320))
    x = alt.X("cost_per_request:Q", title=f"cost per request ({unit})", scale=alt.Scale(zero=False))
    y = alt.Y("satisfaction:Q", title="satisfaction", scale=alt.Scale(zero=False))
    hull = base.transform_filter("datum.layer == 'hull'").mark_line(color="#888", strokeDash=[3, 3]).encode(
        x=x, y=y, order="order:Q")
    line = base.transform_filter("datum.layer == 'point' && datum.V != null").mark_line(opacity=0.7).encode(
        x=x, y=y, color=color, order=alt.Order("V:Q", sort="descending"), detail="series:N")
    pts = base.transform_filter("datum.layer == 'point'").mark_point(filled=True, size=55).encode(
        x=x, y=y, color=color,
        shape=alt.Shape("role:N", scale=alt.Scale(domain=["router", "bound (sees the future)"],
                                                  range=["circle", "diamond"]), legend=alt.Legend(title="marker")),
        tooltip=["series:N", alt.Tooltip("V:Q", format="g"), alt.Tooltip("satisfaction:Q", format=".4f"),
                 alt.Tooltip("cost_per_request:Q", format=".4g", title=f"cost per request ({unit})"),
                 alt.Tooltip("runs:Q", title="runs averaged")])
    rule = base.transform_filter("datum.layer == 'alpha'").mark_rule(strokeDash=[5, 3], color="#333").encode(
        y="alpha:Q")
    ncol = min(3, len(panels))
    chart = alt.layer(rule, hull, line, pts).properties(width=300 if ncol > 1 else 560, height=220).facet(
        facet=alt.Facet("panel:N", sort=panels, title=None), columns=ncol).resolve_scale(x="independent",
                                                                                         y="independent")
    return chart.properties(**titled(
        "Cost per request against satisfaction across V (the frontier)",
        "Each point is a policy's mean over seeds; lines join the MESS+ settings of V (larger V spends less and "
        "satisfies less), diamonds are bounds such as the offline optimum, the dashed grey line is the Pareto hull "
        "of the fixed mixtures of single models (what mixing models at random achieves), and the dashed black rule "
        "is α: the best routers sit up and to the left of the hull, above the rule.",
        "mean over seeds per (benchmark, α, policy, V); failed cells left out."))


def chart_heatmaps(m: pl.DataFrame) -> alt.TopLevelMixin:
    """Satisfaction (relative to α) and cost (relative to the offline optimum when present) over α × V."""
    from sim.report.charts import titled

    cm = cell_means(m)
    v = cm.filter(pl.col("V").is_not_null())
    if v.height == 0:
        raise ValueError("no policy varies with V")
    opt = (cm.filter(pl.col("kind") == "offline_optimum").group_by("benchmark", "alpha")
           .agg(pl.col("cost").mean().alias("opt_cost")))
    rel = opt.height > 0
    v = v.join(opt, on=["benchmark", "alpha"], how="left") if rel else v.with_columns(pl.lit(None).alias("opt_cost"))
    div, unit = _unit(v)
    v = v.with_columns(
        (pl.col("satisfaction") - pl.col("alpha")).alias("margin"),
        (pl.col("cost") / pl.col("opt_cost")).alias("cost_ratio") if rel else (pl.col("cost") / div).alias(
            "cost_ratio"),
        pl.col("V").map_elements(lambda x: f"{x:g}", return_dtype=pl.String).alias("V_label"),
        pl.col("alpha").map_elements(lambda x: f"{x:g}", return_dtype=pl.String).alias("alpha_label"),
        pl.when(pl.col("sla_met").is_null()).then(pl.lit(" n.a.")).when(~pl.col("sla_met")).then(pl.lit("✗"))
        .otherwise(pl.lit("")).alias("miss"),
    ).with_columns(pl.format("{}{}", pl.col("satisfaction").round(3).cast(pl.String), pl.col("miss")).alias("sat_text"))
    v_order = [f"{x:g}" for x in sorted(v["V"].unique().to_list(), reverse=True)]
    a_order = [f"{x:g}" for x in sorted(v["alpha"].unique().to_list(), reverse=True)]
    base = _rows_chart(v.select("benchmark", "series", "V_label", "alpha_label", "satisfaction", "margin",
                                "cost_ratio", "cost", "sat_text", "runs"))
    n_bm = v["benchmark"].n_unique()
    x = alt.X("V_label:O", sort=v_order, title="V (larger: cheaper)", axis=alt.Axis(labelAngle=0))
    y = alt.Y("alpha_label:O", sort=a_order, title="α")
    facet = {"row": alt.Row("series:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left"))}
    if n_bm > 1:
        facet["column"] = alt.Column("benchmark:N", title=None)
    lim = float(v["margin"].abs().max() or 0.05) or 0.05
    tip = ["series:N", "benchmark:N", alt.Tooltip("V_label:N", title="V"), alt.Tooltip("alpha_label:N", title="α"),
           alt.Tooltip("satisfaction:Q", format=".4f"), alt.Tooltip("cost_ratio:Q", format=".3f"),
           alt.Tooltip("runs:Q", title="runs averaged")]

    def heat(color: alt.Color, text: alt.Text, name: str) -> alt.TopLevelMixin:
        rect = base.mark_rect().encode(x=x, y=y, color=color, tooltip=tip)
        label = base.mark_text(fontSize=10).encode(x=x, y=y, text=text)
        return (alt.layer(rect, label).properties(width=alt.Step(46), height=alt.Step(24))
                .facet(**facet).properties(title=name))

    sat = heat(alt.Color("margin:Q", title="satisfaction − α",
                         scale=alt.Scale(scheme="redblue", domain=[-lim, lim])),
               alt.Text("sat_text:N"), "Satisfaction (✗: misses α)")
    cost = heat(alt.Color("cost_ratio:Q", title="cost / offline optimum" if rel else f"cost ({unit})",
                          scale=alt.Scale(scheme="oranges")),
                alt.Text("cost_ratio:Q", format=".2f"),
                "Cost" + (" relative to the offline optimum" if rel else f" ({unit})"))
    return alt.hconcat(sat, cost, spacing=40).resolve_scale(color="independent").properties(**titled(
        "Heatmaps over α × V",
        "Left: satisfaction of each V-dependent policy, blue above α and red below (✗: the SLA verdict of the runs' "
        "summary.json is 'missed'; n.a.: the runs carry no verdict); "
        "right: its cost" + (", as a multiple of the offline optimum's cost for the same α" if rel else "") + ".",
        "mean over seeds per cell."))


def table_html(m: pl.DataFrame) -> str:
    """Per benchmark and α: satisfaction, cost and call ratio of every policy (and V), like the paper's table."""
    esc = _html.escape
    cm = cell_means(m)
    div, unit = _unit(cm)
    models = [c[len(CALL_RATIO_PREFIX):] for c in cm.columns if c.startswith(CALL_RATIO_PREFIX)]
    head = ("<tr><th class='l'>benchmark</th><th>α</th><th class='l'>policy</th><th>V</th><th>runs</th>"
            f"<th class='l'>SLA</th><th>satisfaction</th><th>cost ({esc(unit)})</th><th class='l'>call ratio ("
            + esc(" / ".join(models)) + ")</th></tr>")
    rows = [head]
    for r in cm.sort("benchmark", "alpha", "causal", "series", "V", descending=[False, False, True, False, True],
                     nulls_last=True).iter_rows(named=True):
        sat = r["satisfaction"]
        verdict = r.get("sla_met")
        miss = verdict is False
        sla = "n.a." if verdict is None else ("met" if verdict else f"missed ({r['runs'] - r['sla_met_runs']} of "
                                                                     f"{r['runs']})")
        sd = r["sat_sd"]
        sat_txt = "–" if sat is None else f"{sat:.4f}" + (f" ± {sd:.4f}" if sd is not None and not math.isnan(sd)
                                                          and r["runs"] > 1 else "")
        ratio = " / ".join("–" if r.get(CALL_RATIO_PREFIX + mm) is None else f"{r[CALL_RATIO_PREFIX + mm]:.2f}"
                           for mm in models)
        cost = "–" if r["cost"] is None else f"{r['cost'] / div:.3f}"
        rows.append(
            f"<tr{'' if r['causal'] else ' class=bound'}><td class='l'>{esc(r['benchmark'])}</td>"
            f"<td>{r['alpha']:g}</td>"
            f"<td class='l'>{esc(r['series'])}</td><td>{'' if r['V'] is None else format(r['V'], 'g')}</td>"
            f"<td>{r['runs']}</td><td class='l {'miss' if miss else 'ok'}'>{esc(sla)}</td>"
            f"<td class='{'miss' if miss else 'ok'}'>{sat_txt}</td>"
            f"<td>{cost}</td><td class='l'>{ratio}</td></tr>")
    return ('<table class="summary">' + "".join(rows) + "</table>"
            '<p class="legend-note">Mean ± standard deviation over the runs of each row (seeds; for policies that '
            "do not depend on V, also the cells of every V). SLA: the verdict in the runs' summary.json (met only if "
            "every run met it; n.a. when the runs carry none). "
            "† sees the future (a bound).</p>")


PART_COLUMNS = [f"part_{k}" for k in ("optimum", "information", "routing", "exploration")]


def chart_decomposition(m: pl.DataFrame) -> alt.TopLevelMixin:
    """Where the cost goes, per series (and V) in each (benchmark, alpha) cell, averaged over seeds."""
    from sim.report.charts import PARTS, decomposition_bars

    cm = cell_means(m).filter(pl.col("part_optimum").is_not_null())
    if cm.height == 0:
        raise ValueError("no cell has a cost decomposition")
    unit = (m["cost_unit"].drop_nulls().to_list() or ["J"])[0]  # per request: no kJ/MJ rescaling
    label = pl.when(pl.col("V").is_not_null()).then(
        pl.format("{} (V={})", pl.col("series"), pl.col("V").map_elements(lambda x: f"{x:g}", return_dtype=pl.String))
    ).otherwise(pl.col("series"))
    cell = pl.format("{} · α={}", pl.col("benchmark"), pl.col("alpha").round(4))
    long = (cm.with_columns(label.alias("policy"), cell.alias("cell"))
            .unpivot(index=["policy", "cell"], on=PART_COLUMNS, variable_name="part", value_name="value")
            .with_columns(pl.col("part").str.strip_prefix("part_")))
    long = long.with_columns(pl.col("part").replace_strict({p: i for i, p in enumerate(PARTS)},
                                                           return_dtype=pl.Int64).alias("order"))
    bars = decomposition_bars(long, unit).properties(width=520, height=alt.Step(16))
    return bars.facet(row=alt.Row("cell:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left"))
                      ).resolve_scale(y="independent").properties(
        title=alt.TitleParams("Where the cost goes", subtitle=[
            "Per request, averaged over seeds: optimum, information, routing, exploration (docs/theory.md §12)."],
            anchor="start"))


def sweep_section(m: pl.DataFrame, sid: str, heading: str, source: Path | None = None):
    """The page section for a sweep manifest (already normalised)."""
    from sim.report.html import Figure, Section

    esc = _html.escape
    status = m["status"].str.to_lowercase()
    ok = m.filter(status.is_in(list(OK_STATUS)))
    n_cells = m["cell"].n_unique() if m["cell"].null_count() < m.height else m.height
    bad = m.filter(~status.is_in(list(OK_STATUS)))
    n_bad = bad["cell"].n_unique() if bad.height and bad["cell"].null_count() < bad.height else bad.height
    facts = [f"{n_cells} cells", f"{ok['policy'].n_unique()} policies",
             f"α ∈ {{{', '.join(f'{x:g}' for x in sorted(ok['alpha'].drop_nulls().unique()))}}}"]
    vs = sorted(ok["V"].drop_nulls().unique())
    if vs:
        facts.append(f"V ∈ {{{', '.join(f'{x:g}' for x in vs)}}}")
    if source is not None:
        facts.append(f"manifest: {source / 'manifest.parquet'}")
    sec = Section(id=sid, heading=heading, intro=f'<p class="meta">{esc(" · ".join(facts))}</p>')
    if n_bad:
        sec.notes.append(f"{n_bad} cell(s) did not finish (status other than ok) and are left out.")
    if ok.height == 0:
        sec.notes.append("No finished cells.")
        return sec
    try:
        sec.blocks.append(Figure("frontier", chart_frontier(ok)))
    except ValueError as e:
        sec.notes.append(f"Not shown: frontier — {e}.")
    try:
        sec.blocks.append(Figure("heatmaps", chart_heatmaps(ok)))
    except ValueError as e:
        sec.notes.append(f"Not shown: heatmaps — {e}.")
    try:
        sec.blocks.append(Figure("cost_decomposition", chart_decomposition(ok)))
    except ValueError as e:
        sec.notes.append(f"Not shown: cost decomposition — {e}.")
    fm = frontier_metrics(ok)
    if fm.height:
        sec.blocks.append("<h3>Frontier metrics</h3>" + frontier_table_html(fm))
    sec.blocks.append("<h3>Per benchmark</h3>" + table_html(ok))
    return sec
