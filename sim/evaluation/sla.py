"""The one SLA verdict: does a policy's run meet its target alpha? Defined here and nowhere else.

A run of T requests meets the SLA when its final satisfaction (the mean of the realised s_t) is not
significantly below alpha:

    satisfaction >= alpha - z * sigma_T,    sigma_T = sqrt(alpha * (1 - alpha) / T)

sigma_T is the standard error of the mean of T Bernoulli(alpha) draws: a policy whose expected satisfaction
is exactly alpha lands below alpha half the time, by about sigma_T. z is the one the statistical bounds use
(:data:`sim.evaluation.bounds.DEFAULT_CONFIDENCE`, 0.999: z = 3.29), so a policy that truly meets alpha is
declared a miss with probability about 5e-4. The tolerance shrinks as 1/sqrt(T): at T = 1,000 and alpha = 0.5
it is 0.052, at T = 20,000 it is 0.012. The queue identity (satisfaction >= alpha - Q_T/T, docs/theory.md)
makes Q_T/T <= tolerance sufficient; we state the verdict on satisfaction itself, which is what a user reads. See docs/theory.md, "Meeting the SLA".
"""

from __future__ import annotations

import math
from statistics import NormalDist

from sim.evaluation.bounds import DEFAULT_CONFIDENCE

Z = NormalDist().inv_cdf(0.5 + DEFAULT_CONFIDENCE / 2.0)
RULE = f"satisfaction >= alpha - z*sqrt(alpha*(1-alpha)/T), z = {Z:.4f} (confidence {DEFAULT_CONFIDENCE:g})"


def tolerance(alpha: float, requests: int) -> float:
    """z * sigma_T: how far below alpha a run's satisfaction may fall by chance alone."""
    return Z * math.sqrt(alpha * (1.0 - alpha) / max(1, requests))


def verdict(satisfaction: float, alpha: float, requests: int) -> dict:
    """The ``sla`` block of a policy in summary.json."""
    tol = tolerance(alpha, requests)
    return {"met": bool(satisfaction >= alpha - tol), "satisfaction": float(satisfaction), "alpha": float(alpha),
            "tolerance": float(tol), "rule": RULE}
