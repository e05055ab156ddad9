"""The public Python API: ``sim.run`` (docs/api.md).

    import sim
    r = sim.run("scenarios/quickstart.yaml", set={"alpha": 0.6}, out=None)   # out=None: nothing written
    r.summary        # the dict that summary.json holds
    r.requests       # a polars DataFrame with the columns of requests.parquet
    r.occupancy      # the occupancy log (discrete-event engine), or None

    sim.run("scenarios/quickstart.yaml", routers={"mine": MyRouter(models=[...], alpha=0.5, rng=...)})

A router object passed in ``routers`` is added to the scenario's policies as ``{kind: python, name: <key>,
entry: "<object>:<class>"}`` and used as it is (it must have ``decide``, ``on_complete`` and ``on_feedback``,
docs/plugins.md); the caller builds it, so its models, alpha and random generator are the caller's to set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl


@dataclass
class RunOutput:
    summary: dict
    requests: pl.DataFrame | None  # None for a split_by: group scenario written to ``out`` (see its folders)
    occupancy: pl.DataFrame | None


def run(scenario: str | Path | dict, set: dict[str, Any] | None = None, out: str | Path | None = None,
        routers: dict[str, object] | None = None, overwrite: bool = False) -> RunOutput:
    """Run a scenario (a YAML path or a mapping) with optional ``--set``-style overrides (``{"alpha": 0.6,
    "policies.messplus.V": 0.1}``). ``out=None`` writes nothing; a folder writes the result files there, as
    ``python -m sim run --no-report`` does. Errors in the scenario raise :class:`sim.errors.UserError`."""
    from sim.process import prepare

    prepare()  # numba's cache folder and Arrow's allocator, if this process has not imported them yet
    from sim import config as cfg
    from sim.running.runner import run_scenario, simulate_scenario, with_provenance

    overrides = [f"{key}={json.dumps(value)}" for key, value in (set or {}).items()]
    if isinstance(scenario, dict):
        raw = cfg.apply_overrides(json.loads(json.dumps(scenario)), overrides)
        base = Path.cwd()
    else:
        raw = cfg.apply_overrides(cfg.read_scenario_file(scenario), overrides)
        base = Path(scenario).parent
    routers = dict(routers or {})
    if routers:
        raw = {**raw, "policies": [*raw.get("policies", []), *(
            {"kind": "python", "name": name, "entry": f"<object>:{type(obj).__name__}"} for name, obj in routers.items())]}
    where = str(scenario) if not isinstance(scenario, dict) else "scenario"
    parsed = cfg.validate_scenario(cfg.anchor_plugin_entries(raw, base), where)
    if out is None:
        result = simulate_scenario(parsed, routers=routers)
    else:
        result = run_scenario(parsed, Path(out), overwrite=overwrite, routers=routers)
    # the dict summary.json holds, provenance included (what produced it: sim/provenance.py), written or not
    summary = result.summary if "provenance" in result.summary else with_provenance(result.summary, parsed)
    if out is not None and not result.frames and parsed.split_by != "group":
        return RunOutput(summary, pl.read_parquet(Path(out) / "requests.parquet"),
                         _read_optional(Path(out) / "occupancy.parquet"))
    frames = list(result.frames.values())
    return RunOutput(summary, pl.concat(frames) if frames else None, result.occupancy)


def _read_optional(path: Path) -> pl.DataFrame | None:
    return pl.read_parquet(path) if path.exists() else None
