"""Summary metrics of a router's cost/quality frontier, as routing papers report them.

A router evaluated at several settings (MESS+ across V, a threshold router across its threshold) gives points
(cost per request c, quality q); here quality is the satisfaction rate.

**AIQ** (RouterBench, Hu et al. 2024, arXiv:2403.12031, section 3): the router's points are closed under random
mixing (serve a request with setting a with probability w, else with setting b: the expected cost and quality are
the w-mix of both), so the achievable set is their convex hull; a router may also spend more without gaining, so the
curve is made non-decreasing. AIQ is the area under this non-decreasing convex hull q~(c) over a cost range
[c_min, c_max], divided by its width: AIQ = 1/(c_max - c_min) * integral of q~(c) dc. Here the range is the panel's
cheapest and most expensive single model, and the single-model points are part of every hull (any router can be
mixed with always-the-cheapest and always-the-largest), so the fixed mixtures alone ("zero router" in RouterBench)
score the baseline AIQ, and a router scores at least that.

**APGR, CPT(x %)** (RouteLLM, Ong et al. 2024, arXiv:2406.18665, section 5.1), for routers between two models: with
q_weak and q_strong the quality of always-weak and always-strong, a router's performance gap recovered is
PGR = (q - q_weak) / (q_strong - q_weak), plotted against the share of calls to the strong model (0 to 1). APGR is the
area under PGR over call shares 0 to 1 (RouteLLM approximates it with 10 evenly spaced shares; here the piecewise
linear curve through the measured points and the end points (0, 0) and (1, 1) is integrated exactly). CPT(x %) is
the smallest share of strong calls at which the curve reaches PGR = x % (null if it never does).
"""

from __future__ import annotations

import numpy as np


def upper_hull(cost, quality) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the upper convex hull of the points, by increasing cost (Andrew's monotone chain); among points
    with equal cost only the best quality counts."""
    c = np.asarray(cost, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    keep = np.isfinite(c) & np.isfinite(q)
    c, q = c[keep], q[keep]
    if c.size == 0:
        raise ValueError("no finite (cost, quality) point")
    order = np.lexsort((-q, c))
    c, q = c[order], q[order]
    first = np.concatenate([[True], np.diff(c) > 0])
    c, q = c[first], q[first]
    hull: list[int] = []
    for i in range(c.size):
        # Drop the last vertex while it lies on or under the segment from the one before it to point i.
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (c[b] - c[a]) * (q[i] - q[a]) - (q[b] - q[a]) * (c[i] - c[a])
            if cross >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    return c[hull], q[hull]


def nondecreasing_hull(cost, quality) -> tuple[np.ndarray, np.ndarray]:
    """The upper convex hull cut at its best point: beyond it the curve stays flat (spending more is never worse
    than the best point, which one can always choose)."""
    hc, hq = upper_hull(cost, quality)
    top = int(np.argmax(hq))
    return hc[:top + 1], hq[:top + 1]


def hull_value(hc: np.ndarray, hq: np.ndarray, c: np.ndarray) -> np.ndarray:
    """q~(c): linear between hull vertices, flat after the last one, and (below the cheapest vertex) undefined: NaN."""
    c = np.asarray(c, dtype=np.float64)
    out = np.interp(c, hc, hq)
    out[c < hc[0]] = np.nan
    return out


def aiq(cost, quality, c_min: float, c_max: float) -> float:
    """Average quality of the non-decreasing convex hull over [c_min, c_max] (RouterBench's AIQ). The hull must
    reach down to c_min (include the cheapest model's point); NaN if it does not or the range is empty."""
    hc, hq = nondecreasing_hull(cost, quality)
    if not c_max > c_min or hc[0] > c_min + 1e-12 * max(1.0, abs(c_min)):
        return float("nan")
    # Exact integral of the piecewise-linear curve: breakpoints are the hull vertices inside the range.
    xs = np.concatenate([[c_min], hc[(hc > c_min) & (hc < c_max)], [c_max]])
    ys = np.interp(xs, hc, hq)
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0 / (c_max - c_min))


def pgr_curve(strong_share, quality, q_weak: float, q_strong: float) -> tuple[np.ndarray, np.ndarray]:
    """(share of strong calls, PGR) by increasing share, with the end points (0, 0) and (1, 1) of always-weak and
    always-strong; points with the same share are averaged."""
    if not q_strong != q_weak:
        raise ValueError("q_strong equals q_weak: the performance gap is zero")
    s = np.asarray(strong_share, dtype=np.float64)
    g = (np.asarray(quality, dtype=np.float64) - q_weak) / (q_strong - q_weak)
    keep = np.isfinite(s) & np.isfinite(g)
    s = np.concatenate([[0.0], np.clip(s[keep], 0.0, 1.0), [1.0]])
    g = np.concatenate([[0.0], g[keep], [1.0]])
    u, inv = np.unique(s, return_inverse=True)
    return u, np.bincount(inv, weights=g) / np.bincount(inv)


def apgr(strong_share, quality, q_weak: float, q_strong: float) -> float:
    """Area under the PGR curve over strong-call shares 0..1 (RouteLLM's APGR)."""
    s, g = pgr_curve(strong_share, quality, q_weak, q_strong)
    return float(np.sum((g[1:] + g[:-1]) * np.diff(s)) / 2.0)


def cpt(strong_share, quality, q_weak: float, q_strong: float, target: float) -> float | None:
    """Smallest share of strong calls at which the PGR curve reaches ``target`` (0.5 for CPT(50 %)); None if never."""
    s, g = pgr_curve(strong_share, quality, q_weak, q_strong)
    for i in range(s.size):
        if g[i] >= target:
            if i == 0:
                return float(s[0])
            # Linear between the last point under the target and this one.
            return float(s[i - 1] + (target - g[i - 1]) * (s[i] - s[i - 1]) / (g[i] - g[i - 1]))
    return None
