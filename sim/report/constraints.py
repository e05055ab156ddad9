"""Report charts for runs with ``constraints:`` (issue 15): each constraint's running value against its target,
and the latency distribution per model under load. Registered in :data:`sim.report.charts.CHARTS`."""

from __future__ import annotations

import altair as alt
import polars as pl

from sim.report.charts import (HEIGHT, WIDTH, RunData, Skip, data, policy_color, bound_dash, time_x, titled,
                               with_role)

TITLES = {"satisfaction": "satisfaction (share of satisfied requests)",
          "latency": "deadline misses (share later than the deadline)",
          "budget": "cost per request"}


def _constraints(run: RunData) -> list[dict]:
    for p in run.summary["policies"].values():
        if p.get("constraints"):
            return p["constraints"]
    raise Skip("the scenario has no constraints: (sim/evaluation/constraints.py)")


def chart_constraints(run: RunData) -> alt.TopLevelMixin:
    """One panel per constraint: its running value (time average so far) against the target."""
    entries = _constraints(run)
    deadline = next((c["deadline_s"] for c in entries if c["kind"] == "latency"), None)
    scan = run.scan().with_columns(run.window_expr())
    miss = ((pl.col("end_s") - pl.col("arrival_s")) > deadline) if deadline is not None else pl.lit(False)
    late = (scan.group_by("policy", "w").agg(miss.sum().cast(pl.Float64).alias("miss"))
            .collect(engine="streaming"))
    w = run.windows.join(late, on=["policy", "w"], how="left").sort("policy", "w").with_columns(
        pl.col("miss").cum_sum().over("policy").alias("cum_miss"))
    running = {"satisfaction": pl.col("cum_sat") / pl.col("cum_n"),
               "latency": pl.col("cum_miss") / pl.col("cum_n"),
               "budget": pl.col("cum_cost") / pl.col("cum_n")}
    panels = []
    for c in entries:
        if c["kind"] == "latency" and run.engine == "sequential":
            continue  # no clock: nothing to plot
        df = with_role(run, w.select("policy", run.window_end(pl.col("w")), running[c["kind"]].alias("value")))
        # the y axis: the policies near the target set it, far-off ones are clipped (their final value is in the
        # summary table and the constraints table)
        lo, hi = sorted((0.0, 2.0 * c["target"])) if c["kind"] != "satisfaction" else (c["target"] - 0.1,
                                                                                         c["target"] + 0.1)
        y = alt.Y("value:Q", title=TITLES[c["kind"]], scale=alt.Scale(domain=[lo, hi], nice=False, clamp=True))
        line = data(df).mark_line(strokeWidth=1.5, clip=True).encode(
            x=time_x(run), y=y, color=policy_color(run), strokeDash=bound_dash(run),
            tooltip=[alt.Tooltip("policy:N"), alt.Tooltip("value:Q", format=".4g")])
        target = data(pl.DataFrame({"target": [c["target"]]})).mark_rule(color="#c00", strokeDash=[5, 3]).encode(
            y=alt.Y("target:Q", scale=alt.Scale(domain=[lo, hi], nice=False)))
        label = {"satisfaction": f"satisfaction >= {c['target']:g}",
                 "latency": f"misses of the {c.get('deadline_s', 0):g} s deadline <= {c['target']:g}",
                 "budget": f"cost per request <= {c['target']:g} {run.summary.get('cost_unit', '')}"}[c["kind"]]
        panels.append(alt.layer(line, target).properties(width=WIDTH, height=HEIGHT * 0.8, title=label))
    if not panels:
        raise Skip("no constraint can be plotted in sequential mode but satisfaction, which its own chart shows")
    missed = []
    for p, s in run.summary["policies"].items():
        if s.get("gave_way"):
            parts = ", ".join(f"{g['kind']} by {g['excess']:.4g}" for g in s["gave_way"])
            missed.append(f"{run.display(p)}: {parts}")
    caption = ("Each constraint's running value (its time average over the requests so far) against its target "
               "(red dashed). Values beyond the axis are clipped to its edge.")
    if missed:
        caption += " Gave way (final value beyond the target, by): " + "; ".join(missed) + "."
    return alt.vconcat(*panels, spacing=20).resolve_scale(color="shared").properties(
        **titled("Constraints over time", caption, f"running values after each of {run.describe_windows()}."))


def chart_latency_by_model(run: RunData) -> alt.TopLevelMixin:
    """Latency (arrival to completion) per model, per policy: where the time goes under load."""
    if run.engine == "sequential":
        raise Skip("sequential mode has no latencies (run with engine.mode=des)")
    _constraints(run)
    rows = []
    lat = pl.col("end_s") - pl.col("arrival_s")
    for p, df in run._per_policy(run.scan(), ["arrival_s", "end_s", "model_index", "explored"]):
        df = df.filter(~pl.col("explored")).with_columns(lat.alias("latency_s"))
        for i, m in enumerate(run.models):
            x = df.filter(pl.col("model_index") == i)["latency_s"]
            if x.len() == 0:
                continue
            qs = x.quantile(0.5, "nearest"), x.quantile(0.95, "nearest"), x.quantile(0.99, "nearest")
            rows.append(pl.DataFrame({"policy": p, "model": m, "n": x.len(), "percentile": ["p50", "p95", "p99"],
                                      "latency_s": list(qs)}))
    if not rows:
        raise Skip("no exploit request completed")
    df = run.with_display(pl.concat(rows, how="vertical_relaxed"))
    domain = [run.display(p) for p in run.policies]
    chart = data(df).mark_point(filled=True, size=45).encode(
        x=alt.X("latency_s:Q", title="arrival to completion (s, log)", scale=alt.Scale(type="log")),
        y=alt.Y("policy:N", sort=domain, title=None, axis=alt.Axis(labelLimit=200)),
        color=policy_color(run),
        shape=alt.Shape("percentile:N", scale=alt.Scale(domain=["p50", "p95", "p99"],
                                                        range=["circle", "triangle-up", "square"])),
        row=alt.Row("model:N", sort=run.models, title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
        tooltip=["policy:N", "model:N", "percentile:N", alt.Tooltip("latency_s:Q", format=".3f"),
                 alt.Tooltip("n:Q", title="requests")],
    ).properties(width=WIDTH - 200, height=max(40, 14 * len(run.policies)))
    return chart.properties(**titled(
        "Latency per model under load",
        "The 50th, 95th and 99th percentile of the time from arrival to completion (queueing included) of the "
        "requests each policy served on each model (explorations left out: they end with their slowest part).",
        "percentiles (nearest rank) over all exploit requests of each (policy, model)."))
