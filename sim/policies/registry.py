"""Turn a policy's config into a router, through the policy registry (``cfg.POLICIES``, sim/config.py).

Each kind is declared once, on its config class: its builder (one of the functions below, or a module of its
own), what it sees, whether it is causal or a bound, which guarantees and sweep axes apply. Causal policies
(``messplus``, ``threshold``, ``always``, ``python``) are built from the request features only.
``random_with_constraint`` (the paper's "educated guessing", its heuristic mixture) and ``best_fixed_mixture``
(the cheapest fixed mixture, an LP) know each model's full-data mean accuracy (and the LP its mean cost); see
:mod:`sim.policies.baselines`. ``oracle_hindsight`` and ``offline_optimum`` see the future; they exist as bounds and every
output labels them so.

A builder is ``build(policy, context: BuildContext) -> router`` (a :class:`~sim.policies.router.Router` or a
plugin router, sim/policies/plugin.py); a ``plan_*`` builder returns the model for every request, fixed before
the run starts, and is wrapped in a plan router here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim import config as cfg
from sim.errors import UserError
from sim.policies.baselines import best_fixed_mixture, paper_mixture, sample_plan
from sim.policies.predictors import build_predictor
from sim.rng import stream
from sim.policies.router import (EST_LAST, EST_MEAN, EXPLORE_ALL, EXPLORE_ONE, EXPLORE_UNCERTAIN, MESSPLUS, PLAN,
                                 THRESHOLD, Router)
from sim.evaluation.optimum import FEAS_TOL, hindsight_oracle, offline_optimum
from sim.trace.format import Trace

#: What each kind sees, and which kinds are non-causal bounds (derived from the registry).
SEES = {k.name: k.sees for k in cfg.POLICIES}
NON_CAUSAL = cfg.POLICIES.names(causal=False)
ORACLE_PREDICTORS = cfg.PREDICTORS.names(oracle=True)


@dataclass(frozen=True)
class BuildContext:
    trace: Trace
    alpha: float  # the scenario's
    seed: int
    u_explore: np.ndarray  # the shared exploration draws, one per request
    scenario: cfg.Scenario | None = None  # the whole scenario (its constraints: sim/policies/multi.py)


def describe(policy) -> dict:
    pred = getattr(policy, "predictor", None)
    oracle_predictor = pred is not None and pred.kind in ORACLE_PREDICTORS
    oracle_costs = getattr(policy, "cost_estimate", None) == "oracle"
    notes = [f"predictor {pred.kind} reads p_true (oracle)"] if oracle_predictor else []
    notes += ["cost estimates are the trace's per-model means (oracle)"] if oracle_costs else []
    notes += ["the two models' full-data mean accuracy"] if getattr(policy, "strong_share", None) == "auto" else []
    causal = cfg.POLICIES.get(policy.kind).causal
    return {
        "kind": policy.kind,
        "causal": causal,
        "oracle": not causal or oracle_predictor or oracle_costs,
        "sees": "; ".join([SEES[policy.kind], *notes]),
        "predictor": pred.kind if pred is not None else None,
    }


def policy_alpha(policy, scenario_alpha: float) -> float:
    """The alpha a policy's run is evaluated at: its own where its kind may set one, else the scenario's."""
    own = getattr(policy, "alpha", None) if cfg.POLICIES.get(policy.kind).own_alpha else None
    return float(own) if own is not None else float(scenario_alpha)


def model_index(trace: Trace, name: str, where: str) -> int:
    if name not in trace.models:
        raise UserError(f"{where}: unknown model {name!r}; the zoo has {trace.models}")
    return trace.models.index(name)


def build_router(policy, trace: Trace, alpha: float, seed: int, u_explore: np.ndarray,
                 scenario: cfg.Scenario | None = None):
    context = BuildContext(trace, alpha, seed, u_explore, scenario)
    kind = cfg.POLICIES.get(policy.kind)
    if kind.builder.partition(":")[2].startswith("plan_"):
        return Router(kind=PLAN, n_models=trace.m, n_requests=trace.n, predictor=None, alpha=alpha,
                      plan=kind.build(policy, context))
    return kind.build(policy, context)


def _predictor(policy, trace: Trace, seed: int):
    oracle = trace.outcomes if policy.predictor.kind in ORACLE_PREDICTORS else None
    return build_predictor(policy.predictor, trace.features, trace.m, oracle, seed, policy.label, trace.models)


def exploration(policy) -> dict:
    """The Router arguments of a MESS+ policy's exploration design (docs/theory.md §4)."""
    return {"explore": {"all": EXPLORE_ALL, "one": EXPLORE_ONE, "uncertain": EXPLORE_UNCERTAIN}[policy.explore],
            "settle_error": policy.settle_error if policy.explore_stop == "settled" else 0.0}


def build_messplus(policy: cfg.MessPlus, context: BuildContext) -> Router:
    trace = context.trace
    router = Router(kind=MESSPLUS, n_models=trace.m, n_requests=trace.n,
                    predictor=_predictor(policy, trace, context.seed), u_explore=context.u_explore,
                    V=policy.V, alpha=policy_alpha(policy, context.alpha), c=policy.c,
                    cost_estimate_rule=EST_LAST if policy.cost_estimate == "last" else EST_MEAN,
                    explore_needs_feedback=policy.explore_needs_feedback,
                    learn_from_exploit=policy.learn_from_exploit, **exploration(policy))
    if policy.cost_estimate == "oracle":  # fixed at the trace's per-model means: infinite counts freeze them
        router.state.cost_estimate[:] = trace.outcomes.cost.mean(axis=0)
        router.state.cost_count[:] = np.inf
    return router


def build_threshold(policy: cfg.Threshold, context: BuildContext) -> Router:
    trace, alpha = context.trace, context.alpha
    where = f"policy {policy.label}"
    weak, strong = model_index(trace, policy.weak, where), model_index(trace, policy.strong, where)
    pred = _predictor(policy, trace, context.seed)
    share = policy.strong_share
    if share == "auto":
        acc = trace.outcomes.sat.mean(axis=0)
        gap = acc[strong] - acc[weak]
        share = float(np.clip((alpha - acc[weak]) / gap, 0.0, 1.0)) if gap > 0 else 1.0
    return Router(kind=THRESHOLD, n_models=trace.m, n_requests=trace.n, predictor=pred, alpha=alpha,
                  threshold=policy.threshold, weak=weak, strong=strong, strong_share=share)


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


# ---- plans: a routing fixed before the run starts, the model for every request

def plan_always(policy: cfg.Always, context: BuildContext) -> np.ndarray:
    trace = context.trace
    return np.full(trace.n, model_index(trace, policy.model, f"policy {policy.label}"), np.int64)


def plan_random_with_constraint(policy: cfg.RandomWithConstraint, context: BuildContext) -> np.ndarray:
    """The paper's heuristic mixture, sampled i.i.d. per request."""
    mix = mixture(policy, context.trace, context.alpha).weights
    return sample_plan(mix, stream(context.seed, policy.kind, policy.label).random(context.trace.n))


def plan_best_fixed_mixture(policy: cfg.BestFixedMixture, context: BuildContext) -> np.ndarray:
    """The LP mixture, sampled i.i.d. per request."""
    mix = mixture(policy, context.trace, context.alpha).weights
    return sample_plan(mix, stream(context.seed, policy.kind, policy.label).random(context.trace.n))


def plan_oracle_hindsight(policy: cfg.OracleHindsight, context: BuildContext) -> np.ndarray:
    out = context.trace.outcomes
    return np.asarray(hindsight_oracle(out.sat, out.cost), np.int64)


def plan_offline_optimum(policy: cfg.OfflineOptimum, context: BuildContext) -> np.ndarray:
    out = context.trace.outcomes
    probs = out.p_true if out.p_true is not None else out.sat
    opt = offline_optimum(probs, out.cost, context.alpha)
    choice = np.asarray(opt.choice, np.int64).copy()
    if opt.split >= 0 and stream(context.seed, "offline_optimum", policy.label).random() < opt.split_weight:
        choice[opt.split] = opt.split_model
    return choice
