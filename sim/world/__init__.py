"""The world a router acts in: time, slots, GPUs and events.

- :mod:`sim.world.engine`: the discrete-event engine (SimPy's event order, its own heap): arrivals, FIFO slots, completions, delayed feedback;
- :mod:`sim.world.sequential`: the paper's setting, one numba loop per policy;
- :mod:`sim.world.serving`: GPU profiles, batching and sharing; :mod:`sim.world.events`: changes over time.
"""
