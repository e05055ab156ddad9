"""The public API: ``sim.run`` and an ``import sim`` that changes nothing in the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import polars as pl
import pytest
import yaml

from sim.errors import UserError
from sim.rng import stream
from tests.conftest import REPO

QUICKSTART = REPO / "scenarios" / "quickstart.yaml"


def test_import_sim_changes_nothing():
    code = ("import os, sys; before = dict(os.environ); import sim; "
            "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items()); "
            "assert not {'numba', 'polars', 'pyarrow', 'numpy'} & set(sys.modules), 'heavy imports'")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "ARROW_DEFAULT_MEMORY_POOL")}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env={**env, "PYTHONPATH": str(REPO)})


def _small_quickstart() -> dict:
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["trace"]["synth"]["requests"] = 1500
    raw["engine"]["progress"] = False
    return raw


def test_run_in_memory_matches_written_results(tmp_path):
    import sim

    raw = _small_quickstart()
    r = sim.run(raw, set={"alpha": 0.6}, out=None)
    assert r.summary["alpha"] == 0.6 and not any(tmp_path.iterdir())
    w = sim.run(raw, set={"alpha": 0.6}, out=tmp_path / "out")
    written = pl.read_parquet(tmp_path / "out" / "requests.parquet")
    assert r.requests.columns == written.columns and r.requests.equals(written)
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == json.loads(json.dumps(r.summary))
    assert w.requests.equals(written)
    assert json.loads(json.dumps(w.summary)) == json.loads((tmp_path / "out" / "summary.json").read_text())


def test_run_accepts_a_router_object():
    import sim
    from examples.messplus_plugin import MessPlus

    raw = _small_quickstart()
    raw["policies"] = [{"kind": "python", "name": "by_entry", "entry": str(REPO / "examples" / "messplus_plugin.py")
                        + ":MessPlus", "args": {"V": 0.01, "c": 0.1}}]
    mine = MessPlus(models=["llama-3.2-1b", "llama-3.1-8b", "llama-3.3-70b"], alpha=0.5,
                    rng=stream(raw["seed"], "explore"), V=0.01, c=0.1)
    r = sim.run(raw, routers={"mine": mine})
    by_entry = r.requests.filter(pl.col("policy") == "by_entry").drop("policy")
    by_object = r.requests.filter(pl.col("policy") == "mine").drop("policy")
    assert by_entry.equals(by_object)
    assert r.summary["policies"]["mine"]["kind"] == "python"


def test_run_reports_bad_input_as_user_error():
    import sim

    with pytest.raises(UserError, match="alpha"):
        sim.run(_small_quickstart(), set={"alpha": 7})
