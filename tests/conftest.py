"""Shared fixtures. ``--run-slow`` enables tests marked ``slow`` (long horizons, big property runs)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from sim.process import prepare

prepare()  # as the CLI does: numba's cache keyed by the kernel sources (import sim sets nothing)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


SMALL = {
    "name": "small",
    "seed": 7,
    "alpha": 0.5,
    "trace": {"synth": {
        "requests": 1500,
        "arrivals": {"process": "poisson", "rate": 4.0},
        "groups": {
            "easy": {"difficulty_mean": -0.5, "accuracy": {"s": 0.5, "m": 0.65, "l": 0.75},
                     "energy_j": {"s": 10.0, "m": 50.0, "l": 200.0}},
            "hard": {"difficulty_mean": 0.5, "accuracy": {"s": 0.25, "m": 0.45, "l": 0.6},
                     "energy_j": {"s": 12.0, "m": 60.0, "l": 240.0}},
        },
        "latency_s": {"s": 0.2, "m": 0.6, "l": 1.5},
    }},
    "zoo": [{"name": "s", "slots": 2}, {"name": "m", "slots": 2}, {"name": "l", "slots": 2}],
    "feedback": {"rate": 0.7, "delay": {"dist": "exponential", "mean_s": 2.0}},
    "engine": {"mode": "des", "progress": False},
    "policies": [
        {"kind": "messplus", "V": 0.01, "c": 0.5, "predictor": {"kind": "logistic"}},
        {"kind": "messplus", "name": "mp_beta", "V": 0.01, "c": 0.5, "energy_estimate": "last",
         "explore_needs_feedback": True, "predictor": {"kind": "group_beta"}},
        {"kind": "threshold", "weak": "s", "strong": "l", "threshold": 0.2, "predictor": {"kind": "group_beta"}},
        {"kind": "always", "model": "m"},
        {"kind": "random_with_constraint"},
        {"kind": "oracle_hindsight"},
        {"kind": "offline_optimum"},
    ],
}


@pytest.fixture
def small_raw():
    """A small scenario mapping (3 models, 2 groups, slots, sparse delayed feedback, every policy kind)."""
    return copy.deepcopy(SMALL)
