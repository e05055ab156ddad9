"""The input: a trace of requests and their outcomes on every model.

- :mod:`sim.trace.format`: the trace (columns, validation, Parquet I/O) and what a router may read of it;
- :mod:`sim.trace.synth`: synthetic traces (latent difficulty, arrivals, text);
- :mod:`sim.trace.importers`: real data (outcome tables, arrivals, GPU profiles) turned into traces.
"""
