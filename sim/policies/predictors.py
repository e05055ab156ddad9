"""Satisfaction predictors: given request t's features, estimate P(model m satisfies t) for every m.

All of them run inside numba. They share one state layout (:data:`Predictor`, a named tuple) so that a single
compiled ``predict``/``train`` pair serves every kind; the ``kind`` code selects the branch.

- ``oracle``, ``noisy_oracle`` and ``replay`` read a precomputed (T, M) matrix. For ``oracle`` and
  ``noisy_oracle`` that matrix is built from ``p_true``: they are oracles and labelled as such.
- ``group_beta`` keeps a Beta(a, b) per group x model and predicts its mean.
- ``logistic`` is online multi-label logistic regression on hashed text tokens (or a supplied embedding),
  plus a one-hot of the group; each training call makes ``epochs`` steps on that one request, as the
  paper's MLP head does, with Adagrad (the default) or SGD with momentum (applied lazily to the touched
  coordinates only).
"""

from __future__ import annotations

from collections import namedtuple

import numba as nb
import numpy as np

from sim import config as cfg
from sim.rng import stream
from sim.trace.format import HASH_DIM, Outcomes, RequestFeatures
from sim.world.nrt import borrow

MATRIX, GROUP_BETA, LOGISTIC = 0, 1, 2
ORACLE_KINDS = cfg.PREDICTORS.names(oracle=True)


#: A predictor's hyperparameters and state, as numba reads them: one typed tuple for every kind, by name.
#: Adding state is a change here only: a field, its value in :func:`build_predictor` and in :func:`lend_predictor`.
Predictor = namedtuple("Predictor", [
    "kind",  # MATRIX, GROUP_BETA or LOGISTIC: the kernel branch
    "lr", "epochs", "momentum", "l2", "group_features", "adagrad",  # logistic's hyperparameters
    "matrix",  # (T, M) predictions to read (oracles, replay) or (0, M)
    "beta_a", "beta_b",  # (G, M) group_beta's posterior
    "weights", "bias", "vel_w", "vel_b",  # logistic: (M, D + G), (M,), and their momentum / AdaGrad sums
    "indptr", "index", "value",  # the request features: CSR over hashed tokens (read only)
    "groups",  # (T,) group code per request (read only)
    "feature_dim",  # D
])


@nb.njit(cache=True, inline="always")
def lend_predictor(p):
    """The predictor with every array borrowed (sim/world/nrt.py): once per kernel entry, not per request."""
    return Predictor(p.kind, p.lr, p.epochs, p.momentum, p.l2, p.group_features, p.adagrad, borrow(p.matrix),
                     borrow(p.beta_a), borrow(p.beta_b), borrow(p.weights), borrow(p.bias), borrow(p.vel_w),
                     borrow(p.vel_b), borrow(p.indptr), borrow(p.index), borrow(p.value), borrow(p.groups),
                     p.feature_dim)


def make_predictor(kind: int, n_models: int, n_groups: int, features: RequestFeatures | None = None,
                   matrix: np.ndarray | None = None, weights: np.ndarray | None = None, prior=(1.0, 1.0),
                   lr=0.0, epochs=0, momentum=0.0, l2=0.0, group_features=False, adagrad=False,
                   n_requests: int = 1, bias: np.ndarray | None = None, tokens: tuple | None = None) -> Predictor:
    """A predictor tuple with consistent types (numba compiles one kernel per combination of field types).

    Without ``features`` (tests, plan routers) every one of ``n_requests`` requests is in group 0, with no tokens.
    ``tokens`` (indptr, index, value, width) replaces the features' own token rows (:func:`logistic_inputs`).
    """
    if tokens is None and features is not None:
        tokens = (features.token_indptr, features.token_index, features.token_value, features.feature_dim)
    weights = np.zeros((0, 0)) if weights is None else weights
    return Predictor(
        kind=int(kind), lr=float(lr), epochs=int(epochs), momentum=float(momentum), l2=float(l2),
        group_features=bool(group_features), adagrad=bool(adagrad),
        matrix=np.ascontiguousarray(np.zeros((0, n_models)) if matrix is None else matrix),
        beta_a=np.full((n_groups, n_models), float(prior[0])), beta_b=np.full((n_groups, n_models), float(prior[1])),
        weights=weights, bias=np.zeros(n_models) if bias is None else bias, vel_w=np.zeros_like(weights), vel_b=np.zeros(n_models),
        indptr=tokens[0] if tokens is not None else np.zeros(n_requests + 1, np.int64),
        index=tokens[1] if tokens is not None else np.zeros(0, np.int32),
        value=tokens[2] if tokens is not None else np.zeros(0),
        groups=features.groups if features is not None else np.zeros(n_requests, np.int32),
        feature_dim=int(tokens[3]) if tokens is not None else 0,
    )


def empty_predictor(n_models: int) -> Predictor:
    """For routers that predict nothing (plans)."""
    return make_predictor(MATRIX, n_models, 0)


def build_predictor(spec, features: RequestFeatures, n_models: int, outcomes_for_oracle: Outcomes | None,
                    seed: int, name: str, models: list[str] | None = None) -> Predictor:
    """Make the predictor state. Only oracle kinds receive outcomes; everything else sees features only.
    ``models`` (the zoo, cheapest first) names the entries of a logistic ``prior``.

    The kind's builder (registered on its config class in sim/config.py) returns the keyword arguments of
    :func:`make_predictor` that differ from its defaults (``kind``, ``matrix``, ``weights``, ``prior``, ...).
    """
    made = {"kind": MATRIX}
    made.update(cfg.PREDICTORS.get(spec.kind).build(spec, features, n_models, outcomes_for_oracle, seed, name,
                                                     models))
    return make_predictor(n_models=n_models, n_groups=len(features.group_names), features=features, **made)


# ---- builders of the registered kinds (sim/config.py names them on each config class)

def matrix_from_p_true(spec, features, n_models, outcomes_for_oracle, seed, name, models=None) -> dict:
    """``oracle`` and ``noisy_oracle``: p_true, with Gaussian noise on the logit for the noisy one."""
    if outcomes_for_oracle is None or outcomes_for_oracle.p_true is None:
        from sim.errors import UserError

        raise UserError(f"policy {name}: predictor {spec.kind!r} needs 'p_true__<model>' columns in the trace")
    matrix = outcomes_for_oracle.p_true.copy()
    sigma = getattr(spec, "sigma", 0.0)
    if sigma > 0:
        p = np.clip(matrix, 1e-9, 1 - 1e-9)
        noise = stream(seed, "noisy_oracle", name).normal(0.0, sigma, p.shape)
        matrix = 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) + noise)))
    return {"matrix": matrix}


def replay(spec, features, n_models, outcomes_for_oracle, seed, name, models=None) -> dict:
    if features.pred is None:
        from sim.errors import UserError

        raise UserError(f"policy {name}: predictor 'replay' needs 'pred__<model>' columns in the trace")
    return {"matrix": features.pred}


def group_beta(spec, features, n_models, outcomes_for_oracle, seed, name, models=None) -> dict:
    return {"kind": GROUP_BETA, "prior": (spec.prior_a, spec.prior_b)}


def logistic(spec, features, n_models, outcomes_for_oracle, seed, name, models=None) -> dict:
    tokens = logistic_inputs(spec, features, name)
    weights = np.zeros((n_models, tokens[3] + len(features.group_names)))
    bias = initial_weights(spec, features, weights, n_models, seed, name, models, tokens[0])  # as spec.init says
    return {"kind": LOGISTIC, "lr": spec.lr, "epochs": spec.epochs, "momentum": spec.momentum, "l2": spec.l2,
            "group_features": spec.group_features, "adagrad": spec.optimizer == "adagrad", "weights": weights,
            "bias": bias, "tokens": tokens}


def logistic_inputs(spec, features: RequestFeatures, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The per-request feature rows (CSR indptr, index, value, width) that ``spec.features`` names; the group
    one-hot is added by the kernels when ``spec.group_features`` (which ``features`` sets)."""
    own = (features.token_indptr, features.token_index, features.token_value, int(features.feature_dim))
    choice = getattr(spec, "features", "auto")
    if choice == "auto":
        return own
    source = choice.split("+")[0]
    if source == "group":  # no token features: a width-0 block before the group one-hot
        return np.zeros(len(features.groups) + 1, np.int64), np.zeros(0, np.int32), np.zeros(0), 0
    if source == features.token_source:
        return own
    if source == "text" and features.text_tokens is not None:
        return (*features.text_tokens, HASH_DIM)
    from sim.errors import UserError

    column = "a non-empty 'text'" if source == "text" else "an 'embedding'"
    raise UserError(f"policy {name}: predictor features {choice!r} needs {column} column in the trace")


def initial_weights(spec, features: RequestFeatures, weights: np.ndarray, n_models: int, seed: int, name: str,
                    models: list[str] | None, token_indptr: np.ndarray | None = None) -> np.ndarray:
    """Fill ``weights`` as ``spec.init`` says and return the bias (docs/theory.md, "Tied predictions").

    - random: uniform in +-1/sqrt(fan_in), torch's nn.Linear default (the paper's head starts this way); fan_in
      is the mean number of features a request has (its tokens, plus the group one-hot), not the hashing width.
      The initial logit's variance is (|x|^2 + 2) / (3 fan_in): about 0.2 standard deviation for the synthetic
      traces' 24 tokens of unit total norm. Drawn from the run's seed and the policy's name: the same run gives
      the same weights.
    - zeros: every model predicts 0.5 until it has seen labels that differ between models.
    - prior: zero weights; bias = logit(prior mean) per model, so predictions differ from the first request.

    ``token_indptr``: the rows the predictor reads (:func:`logistic_inputs`); default the trace's own.
    """
    if spec.init == "zeros":
        return np.zeros(n_models)
    if spec.init == "prior":
        if spec.prior is not None:
            missing = [m for m in (models or []) if m not in spec.prior]
            extra = [m for m in spec.prior if models is not None and m not in models]
            if missing or extra or models is None:
                from sim.errors import UserError

                raise UserError(f"policy {name}: predictor prior must name every model of the zoo {models} "
                                f"(missing {missing}, unknown {extra})")
            mean = np.array([spec.prior[m] for m in models])
        else:  # the cost order as the rank order
            mean = np.linspace(0.45, 0.55, n_models) if n_models > 1 else np.full(1, 0.5)
        return np.log(mean / (1.0 - mean))
    indptr = features.token_indptr if token_indptr is None else token_indptr
    n = max(1, len(indptr) - 1)
    fan_in = (indptr[-1] / n) + (1.0 if spec.group_features else 0.0)
    k = 1.0 / np.sqrt(max(1.0, fan_in))
    rng = stream(seed, "predictor_init", name)
    weights[:] = rng.uniform(-k, k, weights.shape)
    return rng.uniform(-k, k, n_models)


@nb.njit(cache=True, inline="always")
def _sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@nb.njit(cache=True, inline="always")  # inlined into the sequential loop: docs/performance.md
def predict(t, out, p):
    """Fill ``out[m]`` with the predicted satisfaction probability of request t for each model."""
    kind, matrix, beta_a, beta_b, weights, bias = p.kind, p.matrix, p.beta_a, p.beta_b, p.weights, p.bias
    indptr, index, value, groups = p.indptr, p.index, p.value, p.groups
    n_models = out.shape[0]
    if kind == MATRIX:
        for m in range(n_models):
            out[m] = matrix[t, m]
    elif kind == GROUP_BETA:
        g = groups[t]
        for m in range(n_models):
            out[m] = beta_a[g, m] / (beta_a[g, m] + beta_b[g, m])
    else:
        g_col = p.feature_dim + groups[t]
        use_group = p.group_features
        lo, hi = indptr[t], indptr[t + 1]
        # Four models per pass over the tokens: four independent sums in registers instead of one chain of
        # dependent additions per model (the loop was bound by the add latency). Each model's sum still adds
        # its terms in token order, so every prediction is bit-for-bit the same (docs/performance.md).
        m = 0
        while m + 4 <= n_models:
            z0, z1, z2, z3 = bias[m], bias[m + 1], bias[m + 2], bias[m + 3]
            for k in range(lo, hi):
                j, x = index[k], value[k]
                z0 += weights[m, j] * x
                z1 += weights[m + 1, j] * x
                z2 += weights[m + 2, j] * x
                z3 += weights[m + 3, j] * x
            if use_group:
                z0 += weights[m, g_col]
                z1 += weights[m + 1, g_col]
                z2 += weights[m + 2, g_col]
                z3 += weights[m + 3, g_col]
            out[m], out[m + 1], out[m + 2], out[m + 3] = _sigmoid(z0), _sigmoid(z1), _sigmoid(z2), _sigmoid(z3)
            m += 4
        while m + 2 <= n_models:
            z0, z1 = bias[m], bias[m + 1]
            for k in range(lo, hi):
                j, x = index[k], value[k]
                z0 += weights[m, j] * x
                z1 += weights[m + 1, j] * x
            if use_group:
                z0 += weights[m, g_col]
                z1 += weights[m + 1, g_col]
            out[m], out[m + 1] = _sigmoid(z0), _sigmoid(z1)
            m += 2
        if m < n_models:
            z = bias[m]
            for k in range(lo, hi):
                z += weights[m, index[k]] * value[k]
            if use_group:
                z += weights[m, g_col]
            out[m] = _sigmoid(z)


@nb.njit(cache=True, inline="always")  # inlined into the sequential loop: docs/performance.md
def train(t, labels, mask, p):
    """Learn from request t's delivered labels (``mask[m]`` says which models' labels are known)."""
    kind, beta_a, beta_b, weights, bias, vel_w, vel_b = p.kind, p.beta_a, p.beta_b, p.weights, p.bias, p.vel_w, p.vel_b
    indptr, index, value, groups = p.indptr, p.index, p.value, p.groups
    n_models = labels.shape[0]
    if kind == GROUP_BETA:
        g = groups[t]
        for m in range(n_models):
            if mask[m]:
                beta_a[g, m] += labels[m]
                beta_b[g, m] += 1.0 - labels[m]
    elif kind == LOGISTIC:
        lr, epochs, mom, l2 = p.lr, p.epochs, p.momentum, p.l2
        use_group = p.group_features
        adagrad = p.adagrad
        g_col = p.feature_dim + groups[t]
        for _ in range(epochs):
            for m in range(n_models):
                if not mask[m]:
                    continue
                z = bias[m]
                for k in range(indptr[t], indptr[t + 1]):
                    z += weights[m, index[k]] * value[k]
                if use_group:
                    z += weights[m, g_col]
                err = _sigmoid(z) - labels[m]
                if adagrad:
                    vel_b[m] += err * err
                    bias[m] -= lr * err / np.sqrt(vel_b[m] + 1e-8)
                else:
                    vel_b[m] = mom * vel_b[m] + err
                    bias[m] -= lr * vel_b[m]
                for k in range(indptr[t], indptr[t + 1] + (1 if use_group else 0)):
                    if k < indptr[t + 1]:
                        j, x = index[k], value[k]
                    else:
                        j, x = g_col, 1.0
                    grad = err * x + l2 * weights[m, j]
                    if adagrad:
                        vel_w[m, j] += grad * grad
                        weights[m, j] -= lr * grad / np.sqrt(vel_w[m, j] + 1e-8)
                    else:
                        vel_w[m, j] = mom * vel_w[m, j] + grad
                        weights[m, j] -= lr * vel_w[m, j]
