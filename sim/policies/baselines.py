"""The two fixed-mixture baselines: each request goes to model m with a fixed probability p_m, i.i.d.

Both know every model's full-data mean accuracy ``a`` (and the LP also its mean cost); neither adapts.

- :func:`paper_mixture` is the MESS+ paper's "random with constraint" ("educated guessing"), the heuristic of
  ``calculate_probabilities`` in the reference's baselines notebook: start from the uniform mixture; up to
  5,000 times, stop once p.a >= alpha - 1e-6, else multiply p_i by 1.01 where a_i > p.a and by 0.99 elsewhere,
  and renormalise. At a low alpha it stops at once on the uniform mixture (a weak baseline).
- :func:`best_fixed_mixture` is the cheapest mixture whose expected accuracy is at least alpha (an LP; at most
  two models). It is the best non-adaptive policy that knows the full-data accuracies and mean costs: the
  baseline an adaptive router has to beat.

When alpha is above every model's accuracy, no mixture reaches it (``feasible`` False). The paper's loop then
runs its 5,000 steps and the reference uses whatever p it ends with (its code has no fallback); after 5,000
steps that is all but one-hot on the most accurate model (the 1.01/0.99 ratio compounds to ~1e43). We keep
that p. The LP returns the max-accuracy mixture (the most accurate model, the cheapest one among ties).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.evaluation.optimum import offline_optimum

PAPER_STEPS = 5000
PAPER_SLACK = 1e-6
PAPER_UP, PAPER_DOWN = 1.01, 0.99


@dataclass(frozen=True)
class Mixture:
    weights: np.ndarray  # (M,) probabilities, summing to 1
    feasible: bool  # whether any mixture (equivalently, the most accurate model) reaches alpha
    reason: str | None  # why not, when infeasible
    steps: int | None = None  # the paper's heuristic: iterations made (PAPER_STEPS when it never stopped)


def infeasibility(accuracy: np.ndarray, alpha: float, models: list[str] | None = None) -> str | None:
    """None when some mixture reaches alpha, else one line saying why not (the best model's accuracy)."""
    best = int(np.argmax(accuracy))
    if accuracy[best] >= alpha:
        return None
    name = models[best] if models is not None else f"model {best}"
    return (f"alpha = {alpha:g} is above every model's full-data accuracy (best: {name} at "
            f"{accuracy[best]:.4f}), so no fixed mixture reaches it")


def paper_mixture(accuracy, alpha: float, models: list[str] | None = None) -> Mixture:
    """The paper's heuristic mixture (module docstring); ``accuracy`` is each model's full-data mean accuracy."""
    a = np.asarray(accuracy, np.float64)
    p = np.full(len(a), 1.0 / len(a))
    steps = PAPER_STEPS
    for i in range(PAPER_STEPS):
        mean = float(p @ a)
        if mean >= alpha - PAPER_SLACK:
            steps = i
            break
        p = p * np.where(a > mean, PAPER_UP, PAPER_DOWN)
        p = p / p.sum()
    reason = infeasibility(a, alpha, models)
    return Mixture(p, reason is None, reason, steps)


def best_fixed_mixture(accuracy, mean_cost, alpha: float, models: list[str] | None = None) -> Mixture:
    """The cheapest fixed mixture whose expected accuracy is at least alpha (at most two models)."""
    a = np.asarray(accuracy, np.float64)
    opt = offline_optimum(a[None, :], np.asarray(mean_cost, np.float64)[None, :], alpha)
    w = np.zeros(len(a))
    w[opt.choice[0]] = 1.0
    if opt.split >= 0:
        w[opt.choice[0]] -= opt.split_weight
        w[opt.split_model] += opt.split_weight
    reason = infeasibility(a, alpha, models) if not opt.feasible else None
    return Mixture(w, bool(opt.feasible), reason)


def sample_plan(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Request t goes to the model whose cumulative-probability interval holds u[t] (i.i.d. categorical)."""
    m = len(weights)
    return np.minimum(np.searchsorted(np.cumsum(weights), u, side="right"), m - 1).astype(np.int64)
