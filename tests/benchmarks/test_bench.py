"""A small pytest-benchmark suite for the hot paths (`python -m sim bench` has the full-size figures).

Nothing here asserts a speed: a noisy machine must not fail the suite. Compare runs with
``pytest tests/benchmarks --benchmark-autosave`` and ``pytest-benchmark compare``; each benchmark also stores
requests per second in ``extra_info``.
"""

from __future__ import annotations

import pytest

from sim.running.bench import simpy_mm1, workload


@pytest.fixture(scope="module")
def workloads():
    return {
        "fast_path": workload(200_000, "group_beta"),
        "fast_path_logistic": workload(50_000, "logistic"),
        "des": workload(20_000, "group_beta", "des"),
        "plugin_sequential": workload(5_000, plugin=True),
    }


@pytest.mark.parametrize("name", ["fast_path", "fast_path_logistic", "des", "plugin_sequential"])
def test_bench_routing(benchmark, workloads, name):
    once = workloads[name]
    once()  # numba loads or compiles outside the timing
    elapsed, n = benchmark.pedantic(once, rounds=5, iterations=1)
    benchmark.extra_info["requests"] = n
    benchmark.extra_info["requests_per_s"] = n / benchmark.stats.stats.median if benchmark.stats else None
    assert elapsed > 0


def test_bench_simpy_mm1(benchmark):
    n = 20_000
    benchmark.pedantic(simpy_mm1, args=(n,), rounds=3, iterations=1)
    benchmark.extra_info["requests"] = n
    if benchmark.stats:
        benchmark.extra_info["requests_per_s"] = n / benchmark.stats.stats.median
