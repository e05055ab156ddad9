"""MESS+ written as a Python router plugin (docs/plugins.md), with a per-group Beta predictor.

It makes the same decisions as the built-in numba router ``{kind: messplus, explore_needs_feedback: true,
predictor: {kind: group_beta}}`` (tests/test_plugin.py checks it in both engines), because it does the same
arithmetic in the same order and draws one exploration uniform per request from ``rng`` (the scenario's
exploration stream, the one the built-in draws from). Use it as::

    policies:
      - {kind: python, name: mp_plugin, entry: "../examples/messplus_plugin.py:MessPlus", args: {V: 0.01, c: 0.1}}
"""

from __future__ import annotations

import numpy as np

import sim


class MessPlus:
    def __init__(self, models, alpha, rng, V=1e-4, c=0.1, prior_a=1.0, prior_b=1.0):
        self._names = list(models)
        self.n_models = len(models)
        self.alpha, self.rng, self.V, self.c = alpha, rng, V, c
        self.prior = (prior_a, prior_b)
        self.beta = {}  # group -> (a, b) arrays per model: the Beta posterior of P(model satisfies)
        self.groups = {}  # request index -> group, to learn from feedback
        self.cost = np.ones(self.n_models)  # running mean cost per model; the reference starts every one at 1
        self.cost_count = np.zeros(self.n_models)
        self.queue = 0.0  # Q: the accumulated shortfall of delivered satisfaction against alpha

    def _posterior(self, group):
        if group not in self.beta:
            self.beta[group] = (np.full(self.n_models, self.prior[0]), np.full(self.n_models, self.prior[1]))
        return self.beta[group]

    def decide(self, request):
        t = request.index
        self.groups[t] = request.group
        a, b = self._posterior(request.group)
        predicted = a / (a + b)
        u = self.rng.random()  # one draw per request, used or not: the built-in reads u_explore[t]
        p = min(self.c / max(t, 1) ** 0.25, 1.0)
        if u < p:
            return sim.Explore()
        best = 0  # argmin V cost[m] + Q (alpha - predicted[m]), by differences; ties go to the cheaper model
        for m in range(1, self.n_models):
            gap = self.V * (self.cost[m] - self.cost[best])
            if predicted[m] == predicted[best]:  # tied predictions: the queue may still buy the larger model
                if self.queue > 0.0 and self.queue > gap:  # (docs/theory.md, "Tied predictions")
                    best = m
            elif gap + self.queue * (predicted[best] - predicted[m]) < 0.0:
                best = m
        return best

    def on_complete(self, index, model, cost):
        if isinstance(cost, np.ndarray):  # an exploration: every model ran
            for m in range(self.n_models):
                self.cost_count[m] += 1.0
                self.cost[m] += (cost[m] - self.cost[m]) / self.cost_count[m]
        else:
            m = self.models_index(model)
            self.cost_count[m] += 1.0
            self.cost[m] += (cost - self.cost[m]) / self.cost_count[m]

    def on_feedback(self, index, model, satisfied):
        served = self.models_index(model)
        label = satisfied[served] if isinstance(satisfied, np.ndarray) else satisfied
        q = self.queue + self.alpha - label
        self.queue = q if q > 0.0 else 0.0
        group = self.groups.pop(index)
        if isinstance(satisfied, np.ndarray):  # an exploration's labels train the predictor
            a, b = self._posterior(group)
            a += satisfied
            b += 1.0 - satisfied

    def models_index(self, model):
        return self._names.index(model)
