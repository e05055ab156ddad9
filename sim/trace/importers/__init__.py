"""Importers for real data: per-request outcome tables, arrival traces and measured GPU profiles.

- :mod:`sim.trace.importers.outcomes`: wide outcome tables (RouterBench, RouteLLM, the MESS+ reference CSV) -> trace.
- :mod:`sim.trace.importers.arrivals`: arrival-time traces (Azure LLM inference, any CSV/JSONL) -> arrivals Parquet.
- :mod:`sim.trace.importers.compose`: outcomes x arrivals (x a GPU profile) -> trace.
- :mod:`sim.trace.importers.profiles`: ML.ENERGY v2/v3 and the H200 Llama measurements -> profile table and
  :class:`~sim.trace.importers.profiles.ProfileCurve`.
- :mod:`sim.trace.importers.info`: summary statistics of a trace or arrivals file (``trace info``).

See ``docs/importers.md`` for the exact commands on the files in ``../shared/data``.
"""
