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
ORACLE_KINDS = cfg.PREDICTORS.names(oracle=True)


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
                    seed: int, name: str) -> PredictorState:
    """Make the predictor state. Only oracle kinds receive outcomes; everything else sees features only.

    The kind's builder (registered on its config class in sim/config.py) returns what differs from the
    defaults below: ``kind`` (the kernel branch), ``matrix``, ``hyper``, ``weights``, ``prior``.
    """
    g = len(features.group_names)
    made = {"kind": MATRIX, "matrix": np.zeros((0, n_models)), "hyper": np.zeros(6),
            "weights": np.zeros((0, 0)), "prior": (1.0, 1.0)}
    made.update(cfg.PREDICTORS.get(spec.kind).build(spec, features, n_models, outcomes_for_oracle, seed, name))
    weights = made["weights"]
    a0, b0 = made["prior"]
    return PredictorState(
        kind=made["kind"], hyper=made["hyper"], matrix=np.ascontiguousarray(made["matrix"]),
        beta_a=np.full((g, n_models), a0), beta_b=np.full((g, n_models), b0),
        weights=weights, bias=np.zeros(n_models), vel_w=np.zeros_like(weights), vel_b=np.zeros(n_models),
        indptr=features.token_indptr, index=features.token_index, value=features.token_value,
        groups=features.groups, feature_dim=features.feature_dim,
    )


# ---- builders of the registered kinds (sim/config.py names them on each config class)

def matrix_from_p_true(spec, features, n_models, outcomes_for_oracle, seed, name) -> dict:
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


def replay(spec, features, n_models, outcomes_for_oracle, seed, name) -> dict:
    if features.pred is None:
        from sim.errors import UserError

        raise UserError(f"policy {name}: predictor 'replay' needs 'pred__<model>' columns in the trace")
    return {"matrix": features.pred}


def group_beta(spec, features, n_models, outcomes_for_oracle, seed, name) -> dict:
    return {"kind": GROUP_BETA, "prior": (spec.prior_a, spec.prior_b)}


def logistic(spec, features, n_models, outcomes_for_oracle, seed, name) -> dict:
    hyper = np.array([spec.lr, spec.epochs, spec.momentum, spec.l2, 1.0 if spec.group_features else 0.0,
                      1.0 if spec.optimizer == "adagrad" else 0.0], np.float64)
    return {"kind": LOGISTIC, "hyper": hyper,
            "weights": np.zeros((n_models, features.feature_dim + len(features.group_names)))}


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
