"""Benchmarks behind ``python -m sim bench`` (work in progress)."""


def run_bench(**kw):
    raise NotImplementedError


def format_table(results):
    raise NotImplementedError
