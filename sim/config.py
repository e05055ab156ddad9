"""Typed scenario configuration: YAML in, validated pydantic objects out.

Design decisions:
- Every model forbids unknown keys, NaN and infinity, so a typo is an error rather than a silent default.
- Families (policies, predictors, arrival processes) are discriminated by ``kind``/``process``. A policy or
  predictor kind is one class here, declared with its ``@POLICIES.register``/``@PREDICTORS.register`` line
  (sim/base_registry.py); docs/extending.md has the recipes.
- Errors are reduced to one line naming the key path, the problem and, for a typo, the closest valid key.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from sim.base_registry import Registry
from sim.errors import UserError
from sim.running.sweep_spec import SweepSpec, used_twice

PositiveFloat = Annotated[float, Field(gt=0, le=1e12)]
NonNegFloat = Annotated[float, Field(ge=0, le=1e12)]
Probability = Annotated[float, Field(ge=0, le=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data):
        # pydantic reads true as 1 for a number; YAML makes true/false/yes/no/on/off booleans, so `slots: yes`
        # would quietly mean 1 slot
        if isinstance(data, dict):
            for name, value in data.items():
                if name in cls.model_fields and _has_bool(value) and not _admits_bool(cls, name):
                    raise PydanticCustomError(
                        "boolean_for_number", "expected a number or a name, got a boolean (YAML reads "
                        "true/false/yes/no/on/off as booleans)", {"field": name})
        return data


def _has_bool(value) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, dict):
        return any(_has_bool(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_bool(v) for v in value)
    return False


_ADMITS_BOOL: dict[tuple[type, str], bool] = {}


def _admits_bool(model: type[BaseModel], field: str) -> bool:
    """Whether the field's type takes a boolean anywhere (bool, Literal[True], Any, or a nested model, whose
    own fields then decide)."""
    key = (model, field)
    if key not in _ADMITS_BOOL:
        _ADMITS_BOOL[key] = _type_admits_bool(model.model_fields[field].annotation)
    return _ADMITS_BOOL[key]


def _type_admits_bool(annotation) -> bool:
    if annotation is bool or annotation is Any:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel)
    if typing.get_origin(annotation) is Literal:
        return any(isinstance(a, bool) for a in typing.get_args(annotation))
    return any(_type_admits_bool(a) for a in typing.get_args(annotation))


# ---------------------------------------------------------------- arrivals

class PoissonArrivals(Strict):
    process: Literal["poisson"] = "poisson"
    rate: PositiveFloat = Field(description="requests per second")


class GammaArrivals(Strict):
    process: Literal["gamma"]
    rate: PositiveFloat
    cv: PositiveFloat = Field(description="coefficient of variation of inter-arrival times (1 = Poisson)")


class FileArrivals(Strict):
    process: Literal["file"]
    path: str
    column: str = "arrival_s"
    time_scale: PositiveFloat = 1.0


Arrivals = Annotated[Union[PoissonArrivals, GammaArrivals, FileArrivals], Field(discriminator="process")]


# ---------------------------------------------------------------- synthetic traces

class SynthGroup(Strict):
    weight: PositiveFloat = 1.0
    alpha: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        None, description="this group's SLA target when the scenario runs per group (split_by: group)")
    difficulty_mean: Annotated[float, Field(ge=-100, le=100)] = 0.0
    accuracy: dict[str, Annotated[float, Field(gt=0, lt=1)]]
    energy_j: dict[str, NonNegFloat]
    latency_s: dict[str, NonNegFloat] | None = None


class SynthText(Strict):
    tokens: Annotated[int, Field(ge=0, le=1000)] = 24
    informative: Probability = Field(0.4, description="share of tokens that carry group or difficulty information")
    vocabulary: Annotated[int, Field(ge=1, le=1_000_000)] = 2000


class SynthTrace(Strict):
    requests: Annotated[int, Field(ge=1, le=1_000_000_000)]
    arrivals: Arrivals = PoissonArrivals(rate=1.0)
    groups: dict[str, SynthGroup]
    latency_s: dict[str, NonNegFloat] = Field(default_factory=dict, description="mean service time per model")
    output_tokens: dict[str, PositiveFloat] | None = Field(
        None, description="mean tokens each model generates (needed by GPU profiles); drawn like latency")
    difficulty_sigma: PositiveFloat = 1.0
    slope: PositiveFloat = Field(1.7, description="a in sigmoid(a(theta - d)); larger = more deterministic labels")
    energy_cv: NonNegFloat = 0.3
    latency_cv: NonNegFloat = 0.3
    mix: Literal["shuffled", "sequential"] = Field("shuffled", description="'sequential' keeps groups in blocks, in order")
    text: SynthText = SynthText()

    @model_validator(mode="after")
    def _models_agree(self):
        if not self.groups:
            raise ValueError("groups: at least one group is needed")
        models = None
        for g, spec in self.groups.items():
            for what in ("accuracy", "energy_j") + (("latency_s",) if spec.latency_s else ()):
                keys = list(getattr(spec, what))
                if models is None:
                    models = keys
                elif keys != models:
                    raise ValueError(f"groups.{g}.{what}: models {keys} differ from {models} (same models, same order)")
        for what in ("latency_s", "output_tokens"):
            given = getattr(self, what)
            if given and list(given) != models:
                raise ValueError(f"{what}: models {list(given)} differ from {models}")
        return self

    @property
    def models(self) -> list[str]:
        return list(next(iter(self.groups.values())).accuracy)


class RecipeOutcomes(Strict):
    """The options of ``trace import outcomes`` (docs/importers.md), spelled with underscores."""
    path: str
    preset: Literal["routerbench", "routellm", "messplus", "embedllm", "routerbench-martian"] | None = None
    sat: str | None = Field(None, description="glob of the satisfaction columns when there is no preset")
    cost: str | None = None
    energy: str | None = None
    latency: str | None = None
    latency_unit: Literal["s", "ms", "us"] = "s"
    cost_unit: str | None = Field(None, description="label of a money cost other than USD (e.g. CNY)")
    group: str | None = None
    text: str | None = None
    embedding: str | None = None
    id: str | None = Field(None, description="the request id column")
    layout: Literal["wide", "long"] | None = Field(None, description="long: one row per (request, model)")
    model_column: str | None = None
    prompt_tokens: str | None = None
    output_tokens: str | None = None
    models: list[str] | None = Field(None, description="keep these models only (in this order)")
    cost_per_request: dict[str, NonNegFloat] | None = None
    price_per_mtok: dict[str, str | NonNegFloat] | None = Field(
        None, description="model -> price per million prompt tokens (or 'PROMPT:OUTPUT')")
    order: Literal["file", "shuffle"] = "file"
    join: str | None = Field(None, description="a side file (CSV, JSONL or Parquet) whose columns are attached")
    on: str | None = Field(None, description="the key column of join")


class RecipeArrivals(Strict):
    path: str
    preset: Literal["azure"] | None = None
    time: str | None = None
    time_unit: Literal["s", "ms", "us", "ns", "datetime"] | None = None
    prompt_tokens: str | None = None
    output_tokens: str | None = None


class RecipeProfile(Strict):
    path: str | list[str]
    gpu: str
    map: dict[str, str] = Field(default_factory=dict, description="trace model -> profile model_id[*factor]")
    concurrency: PositiveFloat = 1.0


class Recipe(Strict):
    """Build the trace from real files in memory: ``sim.trace.importers.recipe`` (import + compose, no file written)."""
    outcomes: RecipeOutcomes
    arrivals: RecipeArrivals | None = None
    time_scale: PositiveFloat = 1.0
    assign: Literal["cycle", "sample"] = "cycle"
    seed: Annotated[int, Field(ge=0)] | None = Field(None, description="assignment seed; defaults to the scenario's")
    rows: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None
    profile: RecipeProfile | None = None


class TraceSource(Strict):
    path: str | None = None
    synth: SynthTrace | None = None
    recipe: Recipe | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if sum(x is not None for x in (self.path, self.synth, self.recipe)) != 1:
            raise ValueError("give exactly one of 'path' (a Parquet trace), 'synth' (a generator) "
                             "or 'recipe' (real files imported on the fly)")
        return self


# ---------------------------------------------------------------- zoo, feedback, engine

class ScaleFrom(Strict):
    model_id: str
    factor: PositiveFloat = Field(description="J/token (and, unless itl_factor is given, ITL) of the measured model x factor")
    itl_factor: PositiveFloat | None = None


class ProfileRef(Strict):
    """Take this model's service time and energy from a measured GPU profile (sim/world/serving.py)."""
    model_id: str = Field(description="as the profile spells it, e.g. llama-3.1-8b or meta-llama/Llama-3.1-8B-Instruct")
    gpu: str = Field(description="the profiled GPU type: A100, H100, H200, B200")
    source: str | None = Field(None, description="profile file or folder; defaults to the scenario's 'profiles'")
    variant: str | None = Field(None, description="e.g. ctx1024 or ctx4096 for the H200 profile")
    scale_from: ScaleFrom | None = None


class ZooModel(Strict):
    name: str
    replicas: Annotated[int, Field(ge=1, le=100_000)] = 1
    slots: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        None, description="concurrent requests per replica; null = unlimited")
    gpu: str | None = Field(None, description="name of the GPU (in 'gpus') this model's replicas run on")
    profile: ProfileRef | None = None


class GPU(Strict):
    name: str
    type: str = "H100"
    idle_w: NonNegFloat = Field(0.0, description="power drawn while no model on it is busy")
    peak_w: NonNegFloat | None = Field(None, description="informational: the power limit")


class Delay(Strict):
    dist: Literal["none", "fixed", "exponential", "lognormal"] = "none"
    mean_s: NonNegFloat = 0.0
    cv: NonNegFloat = 1.0


class Feedback(Strict):
    rate: Probability = 1.0
    delay: Delay = Delay()


class Engine(Strict):
    mode: Literal["sequential", "des"] = "des"
    progress: bool = True


# ---------------------------------------------------------------- predictors

#: Satisfaction predictors. ``oracle``: reads p_true (labelled as an oracle in every output).
PREDICTORS = Registry("predictor", {"oracle": False})
#: Routing policies. ``sees``: what it reads (copied into summary.json); ``causal``: false for bounds that see
#: the future; ``has_V``: the sweep report's V/c axes apply; ``guarantees``: "messplus" (the MESS+ bounds) or
#: "queue" (queue checks only); ``own_alpha``: the config may set its own alpha.
POLICIES = Registry("policy", {"sees": "", "causal": True, "has_V": False, "guarantees": "queue",
                               "own_alpha": False})


@PREDICTORS.register("sim.policies.predictors:matrix_from_p_true", oracle=True)
class OraclePredictor(Strict):
    kind: Literal["oracle"] = "oracle"


@PREDICTORS.register("sim.policies.predictors:matrix_from_p_true", oracle=True)
class NoisyOraclePredictor(Strict):
    kind: Literal["noisy_oracle"]
    sigma: NonNegFloat = Field(0.5, description="std of Gaussian noise added to logit(p_true)")


@PREDICTORS.register("sim.policies.predictors:group_beta")
class GroupBetaPredictor(Strict):
    kind: Literal["group_beta"]
    prior_a: PositiveFloat = 1.0
    prior_b: PositiveFloat = 1.0


@PREDICTORS.register("sim.policies.predictors:logistic")
class LogisticPredictor(Strict):
    kind: Literal["logistic"]
    lr: PositiveFloat = 0.2
    epochs: Annotated[int, Field(ge=1, le=1000)] = 1
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    l2: NonNegFloat = 0.0
    group_features: bool = Field(True, description="add a one-hot of the request's group to the text features")
    features: Literal["auto", "text", "group", "text+group", "embedding", "embedding+group"] = Field(
        "auto", description="what the regression reads: 'auto' (the trace's embedding if it has one, else its "
                            "hashed text; plus the group if group_features), or exactly the named inputs "
                            "('group': the group one-hot alone). A named choice sets group_features to match")
    optimizer: Literal["sgd", "adagrad"] = Field(
        "adagrad", description="adagrad: per-coordinate step sizes, stable on sparse hashed features; sgd: the paper's")
    init: Literal["random", "zeros", "prior"] = Field(
        "random", description="starting weights: 'random' (the paper's: uniform in +-1/sqrt(fan-in), as torch's "
                              "nn.Linear, seeded from the run's streams), 'zeros' (every model predicts 0.5 until "
                              "labels differ), 'prior' (zero weights, each model's bias = logit of its prior mean)")
    prior: dict[str, Annotated[float, Field(gt=0, lt=1)]] | None = Field(
        None, description="init: prior: each model's prior mean satisfaction; default: the cost order as the rank "
                          "order, from 0.45 (cheapest) to 0.55 (most expensive)")

    @model_validator(mode="before")
    @classmethod
    def _features_decide_the_group(cls, data):
        # `features` names the group or leaves it out; group_features follows it (so the resolved scenario, which
        # spells both, reads back the same), and a contradicting group_features is an error
        if isinstance(data, dict) and isinstance(data.get("features"), str) and data["features"] != "auto":
            wants_group = data["features"] == "group" or data["features"].endswith("+group")
            if "group_features" in data and data["group_features"] is not wants_group:
                raise ValueError(f"features: {data['features']} {'reads' if wants_group else 'leaves out'} the "
                                 f"group, but group_features is {data['group_features']}; give one of the two")
            data = {**data, "group_features": wants_group}
        return data

    @model_validator(mode="after")
    def _prior_needs_init(self):
        if self.prior is not None and self.init != "prior":
            raise ValueError("prior: is read only with init: prior")
        return self


@PREDICTORS.register("sim.policies.predictors:replay")
class ReplayPredictor(Strict):
    kind: Literal["replay"]


Predictor = Annotated[Union[PREDICTORS.configs()], Field(discriminator="kind")]  # every registered kind


# ---------------------------------------------------------------- policies

class PolicyBase(Strict):
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.kind


# The exploration options of the MESS+ kinds (messplus, messplus_auto), declared once.
ExploreDesign = Annotated[Literal["all", "one", "uncertain"], Field(
    description="an exploration runs every model ('all', the paper's), one model drawn uniformly ('one'), or one "
                "drawn in proportion to the standard error of its satisfaction estimate ('uncertain'); "
                "docs/theory.md §4")]
ExploreStop = Annotated[Literal["never", "settled"], Field(
    description="'settled': a model whose exploration labels estimate its mean satisfaction within settle_error "
                "(one standard error) is no longer explored; docs/theory.md §4")]
SettleError = Annotated[float, Field(gt=0, lt=0.5, description="the standard error below which explore_stop: "
                                                               "settled stops exploring a model")]


@POLICIES.register("sim.policies.registry:build_messplus", sees="request features and delivered feedback",
                   has_V=True, guarantees="messplus", own_alpha=True)
class MessPlus(PolicyBase):
    kind: Literal["messplus"]
    V: Annotated[float, Field(gt=0, le=1e6)] = 1e-4
    c: Annotated[float, Field(ge=0, le=1e6)] = 0.1
    alpha: Annotated[float, Field(gt=0, lt=1)] | None = Field(None, description="defaults to the scenario's alpha")
    # the objective's cost (energy or USD); `energy_estimate`, its name before the objective could be USD, is still
    # accepted so that older scenarios read the same
    cost_estimate: Literal["last", "mean", "oracle"] = Field(
        "mean", validation_alias=AliasChoices("cost_estimate", "energy_estimate"),
        description="'oracle': fixed per-model estimates = the trace's mean cost per model (the theory's "
                    "exact-cost assumption, for guarantee checks)")
    explore_needs_feedback: bool = Field(
        False, description="true: exploration labels train the predictor only if the user's feedback arrives")
    learn_from_exploit: bool = Field(
        False, description="also train on the served model's label from exploit feedback (not in the paper)")
    explore: ExploreDesign = "all"
    explore_stop: ExploreStop = "never"
    settle_error: SettleError = 0.05
    predictor: Predictor = LogisticPredictor(kind="logistic")

    @model_validator(mode="before")
    @classmethod
    def _one_name_for_the_estimates(cls, data):
        # both names at once (e.g. --set ...energy_estimate=last on a resolved scenario, which spells cost_estimate)
        # would silently keep one of them
        if isinstance(data, dict) and "energy_estimate" in data and "cost_estimate" in data:
            raise ValueError("cost_estimate and energy_estimate (its old name) are both given; keep cost_estimate")
        return data


@POLICIES.register("sim.policies.messplus_auto:build_messplus_auto", sees="request features and delivered feedback",
                   guarantees="messplus_auto", own_alpha=True)
class MessPlusAuto(PolicyBase):
    """MESS+ with no scale-dependent parameter (docs/theory.md, "A MESS+ without a scale"; docs/tuning.md):
    costs in units of their own mean estimate, V_t = V0 * (t + 1) ** v_growth, every cost observed before use."""
    kind: Literal["messplus_auto"]
    V0: Annotated[float, Field(gt=0, le=1e6)] = Field(
        0.3, description="dimensionless: the cost weight in units of the zoo's mean estimated cost (docs/tuning.md)")
    v_growth: Annotated[float, Field(ge=0, lt=1)] = Field(
        1 / 3, description="V_t = V0 * (t + 1) ** v_growth: the cost gap shrinks as 1/V_t, Q_t / t as V_t / t "
                           "(below 1/2, so that Q_T / T falls faster than the SLA tolerance, docs/theory.md §13)")
    c: Annotated[float, Field(ge=0, le=1e6)] = 0.1
    alpha: Annotated[float, Field(gt=0, lt=1)] | None = Field(None, description="defaults to the scenario's alpha")
    explore_needs_feedback: bool = False
    learn_from_exploit: bool = Field(
        True, description="also train on the served model's label from exploit feedback (100x more labels)")
    explore: ExploreDesign = "all"
    explore_stop: ExploreStop = "never"
    settle_error: SettleError = 0.05
    predictor: Predictor = LogisticPredictor(kind="logistic")


@POLICIES.register("sim.policies.registry:plan_always", sees="nothing")
class Always(PolicyBase):
    kind: Literal["always"]
    model: str

    @property
    def label(self) -> str:
        return self.name or f"always:{self.model}"


@POLICIES.register("sim.policies.registry:plan_random_with_constraint",
                   sees="each model's full-data mean accuracy")
class RandomWithConstraint(PolicyBase):
    """The paper's "educated guessing": its heuristic mixture (sim/policies/baselines.py::paper_mixture)."""
    kind: Literal["random_with_constraint"]


@POLICIES.register("sim.policies.registry:plan_best_fixed_mixture",
                   sees="each model's full-data mean accuracy and mean cost")
class BestFixedMixture(PolicyBase):
    """The cheapest fixed mixture that meets alpha in expectation (an LP; sim/policies/baselines.py)."""
    kind: Literal["best_fixed_mixture"]


@POLICIES.register("sim.policies.registry:build_threshold", sees="request features and delivered feedback")
class Threshold(PolicyBase):
    kind: Literal["threshold"]
    weak: str
    strong: str
    threshold: Probability = Field(0.5, description="route to strong when its win-rate score exceeds this")
    strong_share: Probability | Literal["auto"] | None = Field(
        None, description="instead of a fixed threshold, send this share of requests to strong by tracking the "
                          "score's quantile online; 'auto': the share that meets alpha given the two models' "
                          "full-data accuracies (as random_with_constraint knows them)")
    predictor: Predictor = LogisticPredictor(kind="logistic")


@POLICIES.register("sim.policies.registry:plan_oracle_hindsight", causal=False,
                   sees="every model's realised outcome on every request (non-causal bound)")
class OracleHindsight(PolicyBase):
    kind: Literal["oracle_hindsight"]


@POLICIES.register("sim.policies.registry:plan_offline_optimum", causal=False,
                   sees="every request's true satisfaction probability, all at once (non-causal bound)")
class OfflineOptimum(PolicyBase):
    kind: Literal["offline_optimum"]


@POLICIES.register("sim.policies.plugin:build_plugin",
                   sees="what the user's router reads: request features and delivered feedback (the engines hand "
                        "it nothing else)")
class PythonRouter(PolicyBase):
    """A router written in Python by the user (docs/plugins.md): ``entry`` is ``path/file.py:Class`` (relative to
    the scenario file) or ``package.module:Class``; ``args`` are passed to its constructor."""

    kind: Literal["python"]
    name: str = Field(min_length=1)
    entry: str = Field(min_length=3, description="path/to/file.py:Class (relative to the scenario file) or "
                                                 "package.module:Class")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments for the class")


@POLICIES.register("sim.policies.multi:build_messplus_multi",
                   sees="request features, delivered feedback, observed costs and latencies, and each model's queue "
                        "length and busy slots at decision time", has_V=True, guarantees="multi")
class MessPlusMulti(PolicyBase):
    """MESS+ with one virtual queue per constraint of the scenario (sim/policies/multi.py, docs/theory.md)."""
    kind: Literal["messplus_multi"]
    constraints: str | list[str] = Field(
        "all", description="which of the scenario's constraints get a virtual queue: 'all' or a list of kinds; "
                           "without 'satisfaction' the objective is the satisfaction itself (maximised)")
    V: Annotated[float, Field(gt=0, le=1e6)] = 1e-4
    c: Annotated[float, Field(ge=0, le=1e6)] = 0.1
    energy_estimate: Literal["mean", "oracle"] = Field(
        "mean", description="'oracle': fixed per-model estimates = the trace's mean cost per model")
    learn_from_exploit: bool = Field(False, description="also train on the served model's label from exploit feedback")
    predictor: Predictor = LogisticPredictor(kind="logistic")

    @field_validator("constraints")
    @classmethod
    def _known_kinds(cls, v):
        kinds = ("satisfaction", "latency", "budget")
        if isinstance(v, str):
            if v != "all":
                raise ValueError(f"expected 'all' or a list of constraint kinds {list(kinds)}, got {v!r}")
            return v
        if not v:
            raise ValueError("give at least one constraint kind, or 'all'")
        bad = [k for k in v if k not in kinds]
        if bad:
            raise ValueError(f"unknown constraint kind(s) {bad}; the kinds are {list(kinds)}")
        return v


@POLICIES.register("sim.policies.multi:build_shortest_queue",
                   sees="each model's full-data mean accuracy, and each model's queue length at decision time")
class ShortestQueue(PolicyBase):
    """The operators' load balancer: among the models whose full-data mean accuracy meets alpha, the one with the
    shortest queue (waiting requests per slot) at the request's arrival; ties go to the cheapest."""
    kind: Literal["shortest_queue"]
    models: Annotated[list[str], Field(min_length=1)] | None = Field(
        None, description="the eligible models, instead of those whose full-data mean accuracy meets alpha")


Policy = Annotated[Union[POLICIES.configs()], Field(discriminator="kind")]  # every registered kind


# ---------------------------------------------------------------- expectations (checked by `sim check --strict`)

class MonotoneExpect(Strict):
    check: Literal["monotone"]
    metric: str = Field(description="a per-policy summary figure, e.g. cost_mean, q_final, violation")
    over: Annotated[list[str], Field(min_length=2)] = Field(description="policy names, in increasing order of V")
    direction: Literal["nonincreasing", "nondecreasing"]
    tolerance: NonNegFloat | Literal["auto"] = Field(
        "auto", description="allowed step against the direction; 'auto': z(0.999) x the standard error of the "
                            "difference (cost_mean only)")


class MaxExpect(Strict):
    check: Literal["max"]
    policy: str
    metric: str
    value: float


class CostGapRatioExpect(Strict):
    check: Literal["cost_gap_ratio"]
    policy: str
    baseline: str
    max_ratio: PositiveFloat = Field(description="(cost(policy) - OPT) / (cost(baseline) - OPT) must be below this")


class SlaTimeExpect(Strict):
    check: Literal["sla_time"]
    policy: str
    threshold: Probability = 0.01
    max_fraction: Probability = Field(1.0, description="the running Q_t / t must stay <= threshold from this "
                                                       "fraction of the trace on")


Expectation = Annotated[Union[MonotoneExpect, MaxExpect, CostGapRatioExpect, SlaTimeExpect],
                        Field(discriminator="check")]


# ---------------------------------------------------------------- constraints (sim/evaluation/constraints.py)

class SatisfactionConstraint(Strict):
    """The share of satisfied requests must be at least alpha (the scenario's top-level alpha)."""
    kind: Literal["satisfaction"]
    alpha: Annotated[float, Field(gt=0, lt=1)]


class LatencyConstraint(Strict):
    """The share of requests that finish later than ``deadline_s`` after arrival must be at most ``max_miss``."""
    kind: Literal["latency"]
    deadline_s: PositiveFloat
    max_miss: Annotated[float, Field(gt=0, lt=1)]


class BudgetConstraint(Strict):
    """The time-averaged cost per request (objective unit, explorations included) must be at most this."""
    kind: Literal["budget"]
    max_cost_per_request: PositiveFloat


Constraint = Annotated[Union[SatisfactionConstraint, LatencyConstraint, BudgetConstraint],
                       Field(discriminator="kind")]


# ---------------------------------------------------------------- scenario

class ScenarioEvent(Strict):
    """A change in the world at ``at_s`` (simulated seconds); see sim/world/events.py for the exact semantics."""
    at_s: NonNegFloat
    action: Literal["out_of_service", "degrade", "scale_rate", "diurnal"]
    model: str | None = None
    until_s: NonNegFloat | None = Field(None, description="end of the change; null = to the end of the trace")
    accuracy_factor: Annotated[float, Field(ge=0, le=1)] | None = None
    factor: PositiveFloat | None = Field(None, description="scale_rate: arrival-rate multiplier")
    period_s: PositiveFloat | None = None
    amplitude: Annotated[float, Field(ge=0, lt=1)] | None = None

    @model_validator(mode="after")
    def _fields_for_action(self):
        need = {"out_of_service": ["model"], "degrade": ["model", "accuracy_factor"], "scale_rate": ["factor"],
                "diurnal": ["period_s", "amplitude"]}[self.action]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"action {self.action!r} needs {missing}")
        if self.until_s is not None and self.until_s <= self.at_s:
            raise ValueError("until_s must be after at_s")
        return self


class Scenario(Strict):
    name: str = "scenario"
    description: str = ""
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 42
    alpha: Annotated[float, Field(gt=0, lt=1)]
    objective: Literal["energy_j", "cost_usd"] = "energy_j"
    trace: TraceSource
    zoo: list[ZooModel] | None = Field(None, description="defaults to the trace's models with unlimited slots")
    gpus: list[GPU] = Field(default_factory=list, description="named GPUs that zoo models are placed on")
    sharing: Literal["none", "time_slice"] = Field(
        "time_slice", description="how models on one GPU slow each other (sim/world/serving.py); an assumption")
    profiles: str | None = Field(None, description="default GPU profile source for zoo entries with 'profile'")
    feedback: Feedback = Feedback()
    engine: Engine = Engine()
    split_by: Literal["none", "group"] = Field(
        "none", description="'group': run every group as its own trace (with its own alpha), as the paper does")
    constraints: list[Constraint] = Field(
        default_factory=list, description="every policy is measured against each (summary.json 'constraints'); "
                                          "the satisfaction constraint is always there, at the top-level alpha")
    policies: Annotated[list[Policy], Field(min_length=1)]
    expect: list[Expectation] = Field(default_factory=list, description="scenario-level checks for `sim check`")
    events: list[ScenarioEvent] = Field(default_factory=list, description="changes over time (sim/world/events.py)")
    sweep: SweepSpec | None = Field(None, exclude=True, description="cells for `sim sweep` (sim/running/sweep_spec.py); "
                                    "not part of any one run's resolved config")

    @model_validator(mode="before")
    @classmethod
    def _alpha_from_constraints(cls, data):
        """``alpha:`` may be given at the top level, as a satisfaction constraint, or both (then they agree)."""
        if not isinstance(data, dict) or not isinstance(data.get("constraints"), list):
            return data
        given = [c.get("alpha") for c in data["constraints"] if isinstance(c, dict) and c.get("kind") == "satisfaction"]
        if len(given) == 1 and given[0] is not None:
            if "alpha" not in data:
                return {**data, "alpha": given[0]}
            if data["alpha"] != given[0]:
                raise ValueError(f"alpha = {data['alpha']!r} and the satisfaction constraint's alpha = "
                                 f"{given[0]!r} disagree; give one")
        return data

    @field_validator("constraints")
    @classmethod
    def _one_per_kind(cls, v):
        dup = used_twice([c.kind for c in v])
        if dup:
            raise ValueError(f"constraint kinds {dup} are given twice; give each at most once")
        return v

    @field_validator("policies")
    @classmethod
    def _unique_labels(cls, v):
        dup = used_twice([p.label for p in v])
        if dup:
            raise ValueError(f"policy names {dup} are used twice; give each a distinct 'name'")
        return v

    @model_validator(mode="after")
    def _placement(self):
        names = [g.name for g in self.gpus]
        if used_twice(names):
            raise ValueError(f"gpus: a GPU name is used twice in {names}")
        for i, z in enumerate(self.zoo or []):
            if z.gpu is not None and z.gpu not in names:
                raise ValueError(f"zoo.{i}.gpu: no GPU named {z.gpu!r} in 'gpus' ({names})")
            if z.profile is not None and z.profile.source is None and self.profiles is None:
                raise ValueError(f"zoo.{i}.profile: give 'source' or a scenario-level 'profiles'")
        if any(z.profile is not None for z in self.zoo or []) and self.engine.mode != "des":
            raise ValueError("zoo profiles set service times by concurrency, which needs engine.mode: des")
        return self

    @property
    def profiled(self) -> bool:
        """Whether service times and energy come from GPU profiles (sim/world/serving.py), which read token counts."""
        return self.engine.mode == "des" and (bool(self.gpus) or any(z.profile for z in self.zoo or []))


# ---------------------------------------------------------------- loading

class UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *anchor' merges; own keys may override merged ones
            continue
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (list, dict, set)):  # unhashable: a complex key ('? [a, b]'), never a valid scenario key
            raise yaml.constructor.ConstructorError(None, None, f"a key must be a plain value, not a {type(key).__name__}",
                                                    key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


#: Bounds on a YAML document once its aliases are expanded: a scenario is a few hundred values, so these only
#: stop an alias bomb (9 levels of 9 aliases: 9^9 values from 800 bytes) or a nesting that exhausts the stack.
MAX_YAML_VALUES = 100_000
MAX_YAML_DEPTH = 64


def check_yaml_size(data: Any, where: str) -> None:
    """Refuse a document that refers to itself, nests deeper than :data:`MAX_YAML_DEPTH` or expands to more than
    :data:`MAX_YAML_VALUES` values. One pass over the *shared* nodes (sizes memoised per object), so the check
    costs what the document's text costs, not what its expansion would."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(data, 0, False)]
    while stack:
        node, depth, finished = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        children = list(node.values()) if isinstance(node, dict) else node
        if finished:
            open_nodes.discard(id(node))
            size = 1 + sum(sizes.get(id(c), 1) for c in children)
            if size > MAX_YAML_VALUES:
                raise UserError(f"{where}: the YAML expands to more than {MAX_YAML_VALUES:,} values "
                                "(aliases of aliases?); write the scenario out")
            sizes[id(node)] = size
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            raise UserError(f"{where}: the YAML refers to itself (an alias inside its own anchor)")
        if depth > MAX_YAML_DEPTH:
            raise UserError(f"{where}: the YAML nests deeper than {MAX_YAML_DEPTH} levels")
        open_nodes.add(id(node))
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if isinstance(c, (dict, list)) and id(c) not in sizes)


def load_yaml(text: str, where: str) -> Any:
    """Any YAML value, safely: no tags, no duplicate keys, bounded size and nesting; every problem a UserError."""
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        pos = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{where}: invalid YAML{pos}: {problem}") from None
    except RecursionError:
        raise UserError(f"{where}: the YAML nests deeper than {MAX_YAML_DEPTH} levels") from None
    except ValueError as e:  # e.g. an integer literal of more than 4,300 digits (Python's conversion limit)
        raise UserError(f"{where}: invalid YAML: {str(e).splitlines()[0]}") from None
    check_yaml_size(data, where)
    return data


def parse_yaml(text: str, where: str) -> dict:
    data = load_yaml(text, where)
    if data is None:
        raise UserError(f"{where}: the scenario is empty")
    if not isinstance(data, dict):
        raise UserError(f"{where}: a scenario must be a mapping of keys to values, got {type(data).__name__}")
    return data


def read_scenario_file(path: str | Path) -> dict:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: no such file")
    if p.is_dir():
        raise UserError(f"{path}: is a directory, expected a YAML scenario file")
    from sim.running.paths import check_regular_input

    check_regular_input(p, "scenario")  # a FIFO or /dev/zero would block or never end
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e.__class__.__name__})") from None
    return parse_yaml(text, str(path))


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` overrides; list items are addressed by index or by policy name."""
    import copy

    data = copy.deepcopy(data)
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected key.path=value")
        path, raw = item.split("=", 1)
        # The same loader as the file: duplicate keys, tags, bombs and deep nesting are refused here too
        value = load_yaml(raw, f"--set {item[:60]!r}") if raw.strip() else None
        try:
            assign(data, path.strip(), value)
        except UserError as e:
            raise UserError(f"--set {e}") from None
    return data


def assign(data: dict, path: str, value: Any) -> None:
    """Set ``value`` at the dotted ``path`` in ``data`` (in place): list items by index or by policy name, a
    name that itself contains dots (``mp_0.5``) matched whole. The one parser of ``--set`` and sweep keys; errors
    are ``UserError("<path>: <problem>")`` for the caller to prefix."""
    import copy

    keys = path.split(".")
    node: Any = data
    i = 0
    while i < len(keys):
        key = keys[i]
        if isinstance(node, list):
            # a policy name may itself contain dots (threshold_0.25): take the longest name that matches
            for j in range(len(keys), i, -1):
                if _named(node, ".".join(keys[i:j])):
                    key, i = ".".join(keys[i:j]), j - 1
                    break
        last = i == len(keys) - 1
        if isinstance(node, list):
            idx = _list_index(node, key, path)
            if last:
                node[idx] = copy.deepcopy(value)
            else:
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[key] = copy.deepcopy(value)
            else:
                if node.get(key) is None:
                    node[key] = {}
                node = node[key]
        else:
            raise UserError(f"{path}: {'.'.join(keys[:i]) or '(top level)'} is not a mapping or a list")
        i += 1


def _named(node: list, key: str) -> bool:
    return any(isinstance(item, dict) and key in (item.get("name"), item.get("kind")) for item in node)


def _list_index(node: list, key: str, path: str) -> int:
    if key.lstrip("-").isdigit():
        idx = int(key)
        if not -len(node) <= idx < len(node):
            raise UserError(f"{path}: index {idx} is out of range (the list has {len(node)} items)")
        return idx
    for idx, item in enumerate(node):
        if isinstance(item, dict) and key in (item.get("name"), item.get("kind")):
            return idx
    raise UserError(f"{path}: no list item named {key!r}")


def _fields_at(loc: tuple) -> list[str]:
    """The valid keys of the config class that the error location ``loc`` points into (for typo hints)."""
    tp: Any = Scenario
    for part in loc:
        tp = _unwrap(tp, part)
        if tp is None:
            return []
    tp = _unwrap(tp, None)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _unwrap(tp: Any, part: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0], part)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if part is None:
            return options[0] if len(options) == 1 else None
        for a in options:  # discriminated union: the tag names the member
            a = _unwrap(a, None) or a
            if isinstance(a, type) and issubclass(a, BaseModel):
                tag = a.model_fields.get("kind") or a.model_fields.get("process")
                if tag is not None and typing.get_args(tag.annotation) == (part,):
                    return a
                if part in a.model_fields:
                    return a.model_fields[part].annotation
        return None
    if part is None:
        return tp
    if origin in (list, tuple):
        return typing.get_args(tp)[0] if isinstance(part, int) else None
    if origin is dict:
        return typing.get_args(tp)[1]
    if isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
        return tp.model_fields[part].annotation
    return None


def _display_loc(loc: tuple) -> tuple:
    """Drop the discriminator tags pydantic inserts (``policies.0.messplus.V`` -> ``policies.0.V``)."""
    out, tp = [], Scenario
    for part in loc:
        nxt = _unwrap(tp, part)
        is_tag = isinstance(part, str) and nxt is not None and isinstance(nxt, type) and issubclass(nxt, BaseModel) \
            and typing.get_origin(tp) is not dict and not (isinstance(tp, type) and issubclass(tp, BaseModel))
        if not is_tag:
            out.append(part)
        tp = nxt
    return tuple(out)


def describe_validation_error(err: ValidationError, where: str) -> str:
    errors = sorted(err.errors(), key=lambda x: x.get("type") != "extra_forbidden")  # a typo explains the rest
    e = errors[0]
    loc = tuple(e.get("loc", ()))
    if e.get("type") == "boolean_for_number":  # raised by the model, about one of its fields
        loc = loc + (e["ctx"]["field"],)
    key = ".".join(str(p) for p in _display_loc(loc)) or "(top level)"
    kind = e.get("type", "")
    if kind == "extra_forbidden":
        valid = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else (f"; valid keys: {', '.join(valid)}" if valid else "")
        return f"{where}: unknown key {key!r}{hint}"
    if kind == "union_tag_invalid":
        return f"{where}: {key}: {e['msg']}"
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    value = e.get("input")
    shown = "" if isinstance(value, (dict, list)) or kind == "missing" else f" (got {value!r})"
    more = f" [and {len(errors) - 1} more problem(s)]" if len(errors) > 1 else ""
    return f"{where}: {key}: {msg}{shown}{more}"


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> tuple[Scenario, dict]:
    """Read, override and validate a scenario; returns the typed scenario and the raw (overridden) mapping.

    File paths written in the scenario resolve against the scenario file's folder (``cd scenarios && sim run x.yaml``
    reads the same files as ``sim run scenarios/x.yaml``); paths given with ``--set`` stay relative to the current
    directory, like any command-line argument. See :func:`relative_to_scenario`."""
    folder = Path(path).parent
    raw = anchor_plugin_entries(relative_to_scenario(read_scenario_file(path), folder), folder)
    raw = apply_overrides(raw, overrides or [])
    return validate_scenario(raw, str(path)), raw


def relative_to_scenario(raw: dict, folder: Path) -> dict:
    """``raw`` with every relative file path of the scenario (trace.path, trace.synth.arrivals.path,
    trace.recipe.{outcomes,arrivals,profile}.path, profiles, zoo[*].profile.source) joined to ``folder`` (the scenario
    file's folder, as given: the result is relative to the current directory when that is, so a run from the
    repository root records the same paths as before)."""
    import os

    def fix(node, key):
        if isinstance(node, dict):
            v = node.get(key)
            if isinstance(v, str) and v and not os.path.isabs(v):
                node[key] = os.path.normpath(os.path.join(str(folder), v))
            elif isinstance(v, list):
                node[key] = [os.path.normpath(os.path.join(str(folder), x))
                             if isinstance(x, str) and x and not os.path.isabs(x) else x for x in v]

    if not isinstance(raw, dict) or str(folder) in ("", "."):
        return raw
    trace = raw.get("trace")
    if isinstance(trace, dict):
        fix(trace, "path")
        synth = trace.get("synth")
        if isinstance(synth, dict) and isinstance(synth.get("arrivals"), dict):
            fix(synth["arrivals"], "path")
        recipe = trace.get("recipe")
        if isinstance(recipe, dict):
            for part in ("outcomes", "arrivals", "profile"):
                fix(recipe.get(part), "path")
            fix(recipe.get("outcomes"), "join")
    fix(raw, "profiles")
    for z in raw.get("zoo") or []:
        if isinstance(z, dict):
            fix(z.get("profile"), "source")
    return raw


def anchor_plugin_entries(raw: dict, base: Path) -> dict:
    """A ``python`` policy's ``entry: file.py:Class`` is relative to the scenario file: make it absolute."""
    policies = raw.get("policies") if isinstance(raw, dict) else None
    if not isinstance(policies, list):
        return raw
    anchored = []
    for p in policies:
        entry = p.get("entry") if isinstance(p, dict) and p.get("kind") == "python" else None
        if isinstance(entry, str) and ":" in entry and entry.rpartition(":")[0].endswith(".py"):
            file, _, cls = entry.rpartition(":")
            p = {**p, "entry": f"{(base / file).resolve()}:{cls}"} if not Path(file).is_absolute() else p
        anchored.append(p)
    return {**raw, "policies": anchored}


def validate_scenario(raw: dict, where: str = "scenario") -> Scenario:
    _reject_non_finite(raw, where, ())
    try:
        return Scenario.model_validate(raw)
    except ValidationError as err:
        raise UserError(describe_validation_error(err, where)) from None


def _reject_non_finite(node: Any, where: str, loc: tuple) -> None:
    if isinstance(node, float) and not math.isfinite(node):
        raise UserError(f"{where}: {'.'.join(map(str, loc))}: NaN and infinity are not allowed (got {node})")
    if isinstance(node, dict):
        for k, v in node.items():
            _reject_non_finite(v, where, loc + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _reject_non_finite(v, where, loc + (i,))


_RESOLVED: dict[int, tuple[Scenario, str]] = {}  # id -> (the scenario, kept alive so the id stays its own, text)


def resolved_yaml(scenario: Scenario) -> str:
    """The scenario as YAML. Memoised per scenario object (scenarios are frozen): a run asks for it four or five
    times (stamp, Parquet metadata, provenance), and pure-Python YAML dumping was the largest cost of a paper-grid
    cell (docs/performance.md)."""
    hit = _RESOLVED.get(id(scenario))
    if hit is not None and hit[0] is scenario:
        return hit[1]
    data = scenario.model_dump(mode="json")
    if not data.get("constraints"):  # scenarios without constraints keep the resolved text they had before
        data.pop("constraints", None)
    text = yaml.safe_dump(data, sort_keys=False)
    if len(_RESOLVED) >= 16:
        _RESOLVED.clear()
    _RESOLVED[id(scenario)] = (scenario, text)
    return text
