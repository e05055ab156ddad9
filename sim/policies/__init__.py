"""The decision: routers, their satisfaction predictors, and the registry that builds them from a scenario.

- :mod:`sim.policies.registry`: policy kind -> router;
- :mod:`sim.policies.router`: the routing kernels (MESS+, threshold, fixed plans);
- :mod:`sim.policies.predictors`: satisfaction predictors.
"""
