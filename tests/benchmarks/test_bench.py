"""A small pytest-benchmark suite for the hot paths (`python -m sim bench` has the full-size figures).

Nothing here asserts a speed: a noisy machine must not fail the suite. Each benchmark checks that the workload
routed every request it was given, and stores requests per second in ``extra_info``. It is not part of the
default run (it times, it does not test): ``pytest tests/benchmarks --run-slow --benchmark-autosave``, then
``pytest-benchmark compare``.
"""

from __future__ import annotations

import pytest

from sim.running.bench import simpy_mm1, workload

pytestmark = pytest.mark.slow

SIZES = {"fast_path": 200_000, "fast_path_logistic": 50_000, "plugin_path": 10_000, "des": 20_000}

@pytest.fixture(scope="module")
def workloads():
    return {
        "fast_path": workload(SIZES["fast_path"], "group_beta"),
        "fast_path_logistic": workload(SIZES["fast_path_logistic"], "logistic"),
        "plugin_path": workload(SIZES["plugin_path"], plugin=True),
        "des": workload(SIZES["des"], "group_beta", "des"),
    }


@pytest.mark.parametrize("name", list(SIZES))
def test_bench_routing(benchmark, workloads, name):
    once = workloads[name]
    once()  # numba loads or compiles outside the timing
    elapsed, n = benchmark.pedantic(once, rounds=5, iterations=1)
    benchmark.extra_info["requests"] = n
    benchmark.extra_info["requests_per_s"] = n / benchmark.stats.stats.median if benchmark.stats else None
    assert n == SIZES[name] and elapsed > 0


def test_bench_simpy_mm1(benchmark):
    n = 20_000
    elapsed = benchmark.pedantic(simpy_mm1, args=(n,), rounds=3, iterations=1)  # simpy_mm1 checks all n were served
    assert elapsed > 0
    benchmark.extra_info["requests"] = n
    if benchmark.stats:
        benchmark.extra_info["requests_per_s"] = n / benchmark.stats.stats.median
