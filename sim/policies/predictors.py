"""Satisfaction predictors: given request t's features, estimate P(model m satisfies t) for every m.

All of them run inside numba. They share one state layout (:class:`PredictorState`) so that a single
compiled ``predict``/``train`` pair serves every kind; the ``kind`` code selects the branch.

- ``oracle``, ``noisy_oracle`` and ``replay`` read a precomputed (T, M) matrix. For ``oracle`` and
  ``noisy_oracle`` that matrix is built from ``p_true``: they are oracles and labelled as such.
- ``group_beta`` keeps a Beta(a, b) per group x model and predicts its mean.
- ``logistic`` is online multi-label logistic regression on hashed text tokens (or a supplied embedding),
  plus a one-hot of the group; each training call makes ``epochs`` SGD steps on that one request, as the
  paper's MLP head does. Momentum is applied lazily to the touched coordinates only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from sim import config as cfg
from sim.rng import stream
from sim.trace.format import Outcomes, RequestFeatures

MATRIX, GROUP_BETA, LOGISTIC = 0, 1, 2
ORACLE_KINDS = {"oracle", "noisy_oracle"}


@dataclass
class PredictorState:
    kind: int
    hyper: np.ndarray  # lr, epochs, momentum, l2, group_features, adagrad
    matrix: np.ndarray  # (T, M) or (0, M)
    beta_a: np.ndarray  # (G, M)
    beta_b: np.ndarray
    weights: np.ndarray  # (M, D + G)
    bias: np.ndarray  # (M,)
    vel_w: np.ndarray
    vel_b: np.ndarray
    indptr: np.ndarray
    index: np.ndarray
    value: np.ndarray
    groups: np.ndarray
    feature_dim: int

    def arrays(self) -> tuple:
        return (self.kind, self.hyper, self.matrix, self.beta_a, self.beta_b, self.weights, self.bias,
                self.vel_w, self.vel_b, self.indptr, self.index, self.value, self.groups, self.feature_dim)


def build_predictor(spec, features: RequestFeatures, n_models: int, outcomes_for_oracle: Outcomes | None,
                    seed: int, name: str, models: list[str] | None = None) -> PredictorState:
    """Make the predictor state. Only oracle kinds receive outcomes; everything else sees features only.
    ``models`` (the zoo, cheapest first) names the entries of a logistic ``prior``."""
    g = len(features.group_names)
    empty_matrix = np.zeros((0, n_models))
    hyper = np.zeros(6)
    dim = features.feature_dim
    weights = np.zeros((0, 0))
    kind = MATRIX
    matrix = empty_matrix
    if isinstance(spec, (cfg.OraclePredictor, cfg.NoisyOraclePredictor)):
        if outcomes_for_oracle is None or outcomes_for_oracle.p_true is None:
            from sim.errors import UserError

            raise UserError(f"policy {name}: predictor {spec.kind!r} needs 'p_true__<model>' columns in the trace")
        matrix = outcomes_for_oracle.p_true.copy()
        if isinstance(spec, cfg.NoisyOraclePredictor) and spec.sigma > 0:
            p = np.clip(matrix, 1e-9, 1 - 1e-9)
            noise = stream(seed, "noisy_oracle", name).normal(0.0, spec.sigma, p.shape)
            matrix = 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) + noise)))
    elif isinstance(spec, cfg.ReplayPredictor):
        if features.pred is None:
            from sim.errors import UserError

            raise UserError(f"policy {name}: predictor 'replay' needs 'pred__<model>' columns in the trace")
        matrix = features.pred
    elif isinstance(spec, cfg.GroupBetaPredictor):
        kind = GROUP_BETA
    elif isinstance(spec, cfg.LogisticPredictor):
        kind = LOGISTIC
        hyper[:] = (spec.lr, spec.epochs, spec.momentum, spec.l2, 1.0 if spec.group_features else 0.0,
                    1.0 if spec.optimizer == "adagrad" else 0.0)
        weights = np.zeros((n_models, dim + g))
    else:
        raise TypeError(spec)
    bias = np.zeros(n_models)
    if kind == LOGISTIC:
        bias = initial_weights(spec, features, weights, n_models, seed, name, models)
    a0 = spec.prior_a if isinstance(spec, cfg.GroupBetaPredictor) else 1.0
    b0 = spec.prior_b if isinstance(spec, cfg.GroupBetaPredictor) else 1.0
    return PredictorState(
        kind=kind, hyper=hyper, matrix=np.ascontiguousarray(matrix),
        beta_a=np.full((g, n_models), a0), beta_b=np.full((g, n_models), b0),
        weights=weights, bias=bias, vel_w=np.zeros_like(weights), vel_b=np.zeros(n_models),
        indptr=features.token_indptr, index=features.token_index, value=features.token_value,
        groups=features.groups, feature_dim=dim,
    )


def initial_weights(spec, features: RequestFeatures, weights: np.ndarray, n_models: int, seed: int, name: str,
                    models: list[str] | None) -> np.ndarray:
    """Fill ``weights`` as ``spec.init`` says and return the bias (docs/theory.md, "Tied predictions").

    - random: uniform in +-1/sqrt(fan_in), torch's nn.Linear default (the paper's head starts this way); fan_in
      is the mean number of features a request has (its tokens, plus the group one-hot), not the hashing width.
      The initial logit's variance is (|x|^2 + 2) / (3 fan_in): about 0.2 standard deviation for the synthetic
      traces' 24 tokens of unit total norm. Drawn from the run's seed and the policy's name: the same run gives
      the same weights.
    - zeros: every model predicts 0.5 until it has seen labels that differ between models.
    - prior: zero weights; bias = logit(prior mean) per model, so predictions differ from the first request.
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
    n = max(1, len(features.token_indptr) - 1)
    fan_in = (features.token_indptr[-1] / n) + (1.0 if spec.group_features else 0.0)
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
def predict(t, out, kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b,
            indptr, index, value, groups, feature_dim):
    """Fill ``out[m]`` with the predicted satisfaction probability of request t for each model."""
    n_models = out.shape[0]
    if kind == MATRIX:
        for m in range(n_models):
            out[m] = matrix[t, m]
    elif kind == GROUP_BETA:
        g = groups[t]
        for m in range(n_models):
            out[m] = beta_a[g, m] / (beta_a[g, m] + beta_b[g, m])
    else:
        g_col = feature_dim + groups[t]
        use_group = hyper[4] > 0
        for m in range(n_models):
            z = bias[m]
            for k in range(indptr[t], indptr[t + 1]):
                z += weights[m, index[k]] * value[k]
            if use_group:
                z += weights[m, g_col]
            out[m] = _sigmoid(z)


@nb.njit(cache=True, inline="always")  # inlined into the sequential loop: docs/performance.md
def train(t, labels, mask, kind, hyper, matrix, beta_a, beta_b, weights, bias, vel_w, vel_b,
          indptr, index, value, groups, feature_dim):
    """Learn from request t's delivered labels (``mask[m]`` says which models' labels are known)."""
    n_models = labels.shape[0]
    if kind == GROUP_BETA:
        g = groups[t]
        for m in range(n_models):
            if mask[m]:
                beta_a[g, m] += labels[m]
                beta_b[g, m] += 1.0 - labels[m]
    elif kind == LOGISTIC:
        lr, epochs, mom, l2 = hyper[0], int(hyper[1]), hyper[2], hyper[3]
        use_group = hyper[4] > 0
        adagrad = hyper[5] > 0
        g_col = feature_dim + groups[t]
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
