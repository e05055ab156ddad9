"""The policy registry: turn a policy's config into a :class:`~sim.policies.router.Router`.

Causal policies (``messplus``, ``threshold``, ``always``) are built from the request features only.
``random_with_constraint`` (the paper's "educated guessing", its heuristic mixture) and ``best_fixed_mixture``
(the cheapest fixed mixture, an LP) know each model's full-data mean accuracy (and the LP its mean cost); see
:mod:`sim.policies.baselines`. ``oracle_hindsight`` and ``offline_optimum`` see the future; they exist as bounds and every
output labels them so. Which of these a policy sees is in :data:`SEES`, and it is copied into summary.json.
"""

from __future__ import annotations

import numpy as np

from sim import config as cfg
from sim.errors import UserError
from sim.policies.predictors import ORACLE_KINDS, build_predictor
from sim.policies.baselines import best_fixed_mixture, paper_mixture, sample_plan
from sim.rng import stream
from sim.policies.router import EST_LAST, EST_MEAN, MESSPLUS, PLAN, THRESHOLD, Router
from sim.evaluation.optimum import FEAS_TOL, hindsight_oracle, offline_optimum
from sim.trace.format import Trace

SEES = {
    "messplus": "request features and delivered feedback",
    "threshold": "request features and delivered feedback",
    "always": "nothing",
    "random_with_constraint": "each model's full-data mean accuracy",
    "best_fixed_mixture": "each model's full-data mean accuracy and cost",
    "oracle_hindsight": "every model's realised outcome on every request (non-causal bound)",
    "offline_optimum": "every request's true satisfaction probability, all at once (non-causal bound)",
}
NON_CAUSAL = {"oracle_hindsight", "offline_optimum"}


def describe(policy) -> dict:
    pred = getattr(policy, "predictor", None)
    oracle_predictor = pred is not None and pred.kind in ORACLE_KINDS
    oracle_costs = getattr(policy, "energy_estimate", None) == "oracle"
    notes = [f"predictor {pred.kind} reads p_true (oracle)"] if oracle_predictor else []
    notes += ["cost estimates are the trace's per-model means (oracle)"] if oracle_costs else []
    notes += ["the two models' full-data mean accuracy"] if getattr(policy, "strong_share", None) == "auto" else []
    return {
        "kind": policy.kind,
        "causal": policy.kind not in NON_CAUSAL,
        "oracle": policy.kind in NON_CAUSAL or oracle_predictor or oracle_costs,
        "sees": "; ".join([SEES[policy.kind], *notes]),
        "predictor": pred.kind if pred is not None else None,
    }


def model_index(trace: Trace, name: str, where: str) -> int:
    if name not in trace.models:
        raise UserError(f"{where}: unknown model {name!r}; the zoo has {trace.models}")
    return trace.models.index(name)


def build_router(policy, trace: Trace, alpha: float, seed: int, u_explore: np.ndarray) -> Router:
    n, m = trace.n, trace.m
    label = policy.label
    where = f"policy {label}"
    if isinstance(policy, cfg.MessPlus):
        oracle = trace.outcomes if policy.predictor.kind in ORACLE_KINDS else None
        pred = build_predictor(policy.predictor, trace.features, m, oracle, seed, label, trace.models)
        router = Router(kind=MESSPLUS, n_models=m, n_requests=n, predictor=pred, u_explore=u_explore,
                        V=policy.V, alpha=policy.alpha if policy.alpha is not None else alpha, c=policy.c,
                        energy_estimate=EST_LAST if policy.energy_estimate == "last" else EST_MEAN,
                        explore_needs_feedback=policy.explore_needs_feedback,
                        learn_from_exploit=policy.learn_from_exploit)
        if policy.energy_estimate == "oracle":  # fixed at the trace's per-model means: infinite counts freeze them
            router.ehat[:] = trace.outcomes.cost.mean(axis=0)
            router.ecount[:] = np.inf
        return router
    if isinstance(policy, cfg.Threshold):
        weak, strong = model_index(trace, policy.weak, where), model_index(trace, policy.strong, where)
        oracle = trace.outcomes if policy.predictor.kind in ORACLE_KINDS else None
        pred = build_predictor(policy.predictor, trace.features, m, oracle, seed, label, trace.models)
        share = policy.strong_share
        if share == "auto":
            acc = trace.outcomes.sat.mean(axis=0)
            gap = acc[strong] - acc[weak]
            share = float(np.clip((alpha - acc[weak]) / gap, 0.0, 1.0)) if gap > 0 else 1.0
        return Router(kind=THRESHOLD, n_models=m, n_requests=n, predictor=pred, alpha=alpha,
                      threshold=policy.threshold, weak=weak, strong=strong, strong_share=share)
    return Router(kind=PLAN, n_models=m, n_requests=n, predictor=None, alpha=alpha,
                  plan=plan(policy, trace, alpha, seed))


def mixture_for_alpha(accuracy: np.ndarray, mean_cost: np.ndarray, alpha: float) -> np.ndarray:
    """The cheapest fixed mixture over models whose expected accuracy is at least alpha (at most two models)."""
    return best_fixed_mixture(accuracy, mean_cost, alpha).weights


def mixture(policy, trace: Trace, alpha: float):
    """The fixed mixture of ``random_with_constraint`` (the paper's heuristic) or ``best_fixed_mixture`` (the LP)."""
    acc = np.array([trace.outcomes.sat[:, i].mean() for i in range(trace.m)])  # per column: pairwise summation
    if isinstance(policy, cfg.RandomWithConstraint):
        return paper_mixture(acc, alpha, trace.models)
    return best_fixed_mixture(acc, trace.outcomes.cost.mean(axis=0), alpha, trace.models)


def facts(policy, trace: Trace, alpha: float) -> dict:
    """What summary.json says about a policy beyond its results: the mixture of a fixed-mixture baseline, and
    ``feasible`` (with ``infeasible_reason``) for the policies that know whether alpha is reachable."""
    if isinstance(policy, (cfg.RandomWithConstraint, cfg.BestFixedMixture)):
        mix = mixture(policy, trace, alpha)
        out = {"mixture": {name: float(w) for name, w in zip(trace.models, mix.weights)}, "feasible": mix.feasible,
               "infeasible_reason": mix.reason}
        if mix.steps is not None:
            out["mixture_steps"] = mix.steps
        return out
    if isinstance(policy, cfg.OfflineOptimum):
        o = trace.outcomes
        probs = o.p_true if o.p_true is not None else o.sat
        best = float(probs.max(axis=1).mean())
        ok = best >= alpha - FEAS_TOL
        reason = None if ok else (f"alpha = {alpha:g} is above the best reachable mean satisfaction {best:.4f} "
                                  "(every request on its most likely model)")
        return {"feasible": ok, "infeasible_reason": reason}
    return {}


def plan(policy, trace: Trace, alpha: float, seed: int) -> np.ndarray:
    """A routing fixed before the run starts: the model for every request."""
    n = trace.n
    out = trace.outcomes
    if isinstance(policy, cfg.Always):
        return np.full(n, model_index(trace, policy.model, f"policy {policy.label}"), np.int64)
    if isinstance(policy, (cfg.RandomWithConstraint, cfg.BestFixedMixture)):
        return sample_plan(mixture(policy, trace, alpha).weights, stream(seed, policy.kind, policy.label).random(n))
    if isinstance(policy, cfg.OracleHindsight):
        return np.asarray(hindsight_oracle(out.sat, out.cost), np.int64)
    if isinstance(policy, cfg.OfflineOptimum):
        probs = out.p_true if out.p_true is not None else out.sat
        opt = offline_optimum(probs, out.cost, alpha)
        choice = np.asarray(opt.choice, np.int64).copy()
        if opt.split >= 0 and stream(seed, "offline_optimum", policy.label).random() < opt.split_weight:
            choice[opt.split] = opt.split_model
        return choice
    raise TypeError(policy)
