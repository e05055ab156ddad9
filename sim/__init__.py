"""messplus-sim: an offline laboratory for cost-optimal LLM request routing with SLA guarantees (MESS+).

A request's path through the package, folder by folder: ``trace`` (the input: files, synthetic traces,
importers) -> ``world`` (time, slots, GPUs, events) -> ``policies`` (routers and predictors: the decision) ->
``evaluation`` (outcomes joined, the optimum, the bounds) -> ``running`` (result files, sweeps) -> ``report``;
``cli`` is the command line, ``config`` types the scenario.

``import sim`` changes nothing in the process: the environment the simulator wants (numba's cache folder,
Arrow's allocator) is set by the command line, :func:`run` and sweeps for themselves (sim/process.py).

Public API (docs/api.md): :func:`run`, :class:`Explore` and :class:`Request` (routers written in Python,
docs/plugins.md).
"""

__version__ = "0.1.0"


def __getattr__(name):
    # the public names, imported on first use so that ``import sim`` stays light
    if name in ("Explore", "Request"):
        from sim.policies import plugin

        return getattr(plugin, name)
    if name in ("run", "RunOutput"):
        from sim import api

        return getattr(api, name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
