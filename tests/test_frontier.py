"""Frontier metrics on hand cases (docs/theory.md, section 9): AIQ (RouterBench), APGR and CPT (RouteLLM)."""

from __future__ import annotations

import math

import polars as pl
import pytest

from sim.evaluation import frontier as F


def test_aiq_hand_cases():
    # The diagonal from (0, 0) to (1, 1): mean quality 0.5.
    assert F.aiq([0, 1], [0, 1], 0, 1) == pytest.approx(0.5)
    # A point above the diagonal lifts the hull: 0.5 * (0 + 0.9) / 2 + 0.5 * (0.9 + 1) / 2 = 0.7.
    assert F.aiq([0, 0.5, 1], [0, 0.9, 1], 0, 1) == pytest.approx(0.7)
    # A point under the diagonal is inside the hull (mixing the ends does better): still 0.5.
    assert F.aiq([0, 0.5, 1], [0, 0.2, 1], 0, 1) == pytest.approx(0.5)
    # Quality that drops with more cost: the non-decreasing hull stays flat at the best point: 0.25 + 0.5.
    assert F.aiq([0, 0.5, 1], [0, 1, 0.5], 0, 1) == pytest.approx(0.75)
    # Range wider than the points on the right: flat at the best; a hull that does not reach c_min: undefined.
    assert F.aiq([0, 1], [0, 1], 0, 2) == pytest.approx((0.5 + 1) / 2)
    assert math.isnan(F.aiq([0.5, 1], [0, 1], 0, 1))
    # Scale: costs in J, quality in [0, 1], range from the cheapest to the largest model.
    assert F.aiq([80, 400, 2000], [0.38, 0.54, 0.61], 80, 2000) == pytest.approx(
        ((0.38 + 0.54) / 2 * 320 + (0.54 + 0.61) / 2 * 1600) / 1920)


def test_upper_hull_orders_and_deduplicates():
    c, q = F.upper_hull([1, 0, 1, 0.5], [1, 0, 0.2, 0.1])
    assert c.tolist() == [0, 1] and q.tolist() == [0, 1]


def test_apgr_and_cpt_hand_cases():
    # A router that only mixes at random lies on the diagonal of PGR against strong share.
    assert F.apgr([0.25, 0.5, 0.75], [0.25, 0.5, 0.75], 0, 1) == pytest.approx(0.5)
    assert F.cpt([0.25, 0.5, 0.75], [0.25, 0.5, 0.75], 0, 1, 0.5) == pytest.approx(0.5)
    # One point at share 0.5 recovering 75 % of the gap: area 0.5 * 0.75 / 2 + 0.5 * 1.75 / 2 = 0.625;
    # PGR 50 % at share 1/3, 80 % at 0.5 + 0.05 / 0.25 * 0.5 = 0.6.
    assert F.apgr([0.5], [0.75], 0, 1) == pytest.approx(0.625)
    assert F.cpt([0.5], [0.75], 0, 1, 0.5) == pytest.approx(1 / 3)
    assert F.cpt([0.5], [0.75], 0, 1, 0.8) == pytest.approx(0.6)
    # Qualities on another scale: PGR normalises by the weak and strong qualities.
    assert F.apgr([0.5], [0.3 + 0.75 * 0.4], 0.3, 0.7) == pytest.approx(0.625)
    # A router above the strong model everywhere reaches 80 % at once.
    assert F.cpt([0.1], [1.2], 0, 1, 0.8) == pytest.approx(0.1 * 0.8 / 1.2)
    with pytest.raises(ValueError):
        F.apgr([0.5], [0.5], 0.4, 0.4)


def test_frontier_metrics_from_a_manifest():
    """A two-model panel: always-weak (cost 1, q 0.4), always-strong (cost 11, q 0.8), and a MESS+ series across V.
    The fixed mixtures score the diagonal; MESS+ points above it score more, and its APGR/CPT follow its strong
    shares."""
    from sim.report.sweep import FIXED, frontier_metrics, normalise, with_frontier_columns

    rows = []
    for cell, (v, share, q) in enumerate([(1.0, 0.2, 0.6), (0.01, 0.5, 0.75)]):
        cost = 1 + 10 * share
        for policy, kind, V, c, s, r in [("messplus", "messplus", v, cost, q, share),
                                         ("always:w", "always", None, 1.0, 0.4, 0.0),
                                         ("always:s", "always", None, 11.0, 0.8, 1.0)]:
            rows.append({"cell_id": str(cell), "status": "ok", "case": "b", "run_alpha": 0.5, "policy": policy,
                         "kind": kind, "policy.V": V, "satisfaction": s, "cost_total": c * 100, "requests": 100,
                         "call_ratio.w": 1 - r, "call_ratio.s": r})
    raw = pl.DataFrame(rows)
    fm = frontier_metrics(normalise(raw))
    fixed = fm.filter(pl.col("series") == FIXED).row(0, named=True)
    assert fixed["aiq"] == pytest.approx(0.6) and fixed["apgr"] is None
    mp = fm.filter(pl.col("series") == "messplus").row(0, named=True)
    # Hull through (1, .4), (3, .6), (6, .75), (11, .8): trapezoids / 10.
    want = ((0.4 + 0.6) / 2 * 2 + (0.6 + 0.75) / 2 * 3 + (0.75 + 0.8) / 2 * 5) / 10
    assert mp["aiq"] == pytest.approx(want)
    # PGR points: (0.2, 0.5), (0.5, 0.875).
    assert mp["apgr"] == pytest.approx(0.2 * 0.5 / 2 + 0.3 * (0.5 + 0.875) / 2 + 0.5 * (0.875 + 1) / 2)
    assert mp["cpt50"] == pytest.approx(0.2)
    assert mp["cpt80"] == pytest.approx(0.2 + (0.8 - 0.5) / (0.875 - 0.5) * 0.3)
    out = with_frontier_columns(raw)
    assert out.height == raw.height and out.filter(pl.col("policy") == "messplus")["frontier.aiq"].to_list() == \
        pytest.approx([want, want])
    assert out.filter(pl.col("kind") == "always")["frontier.aiq"].null_count() == 4
