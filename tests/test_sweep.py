"""Sweeps: expansion, order-independent seeds, resumability, failing cells, and the Ray backend."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from sim.config import validate_scenario
from sim.errors import UserError
from sim.running.runner import run_scenario
from sim.running.sweep import MARKER, derive_seed, expand, run_sweep

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sweep_raw(small_raw):
    """The small scenario (des engine, slots, delayed feedback) swept over 6 cells: per-case alpha lists x V."""
    raw = copy.deepcopy(small_raw)
    raw["trace"]["synth"]["requests"] = 300
    raw["policies"] = [p for p in raw["policies"] if p["kind"] in ("messplus", "always")]
    raw["sweep"] = {
        "cases": [
            {"name": "sparse", "set": {"feedback.rate": 0.5}, "grid": {"alpha": [0.4, 0.5]}},
            {"name": "full", "set": {"feedback.rate": 1.0}, "grid": {"alpha": [0.6]}},
        ],
        "grid": {"policies.messplus.V": [0.01, 0.1]},
    }
    return raw


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), skipping timing-only markers' wall_s and caches."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_dir() or rel.startswith("traces/"):
            continue
        data = p.read_bytes()
        if p.name == MARKER:
            doc = json.loads(data)
            doc.pop("wall_s")
            data = json.dumps(doc, sort_keys=True).encode()
        out[rel] = data
    return out


# ---------------------------------------------------------------- expansion

def test_expansion_cases_grid_zip(sweep_raw):
    sweep_raw["sweep"]["seeds"] = "derived"
    base, cells = expand(sweep_raw)
    assert len(cells) == 6
    assert [c.case for c in cells] == ["sparse"] * 4 + ["full"] * 2
    assert [c.scenario.alpha for c in cells] == [0.4, 0.4, 0.5, 0.5, 0.6, 0.6]
    assert [c.scenario.policies[0].V for c in cells] == [0.01, 0.1] * 3
    assert [c.scenario.feedback.rate for c in cells] == [0.5] * 4 + [1.0] * 2
    assert len({c.cell_id for c in cells}) == 6
    assert len({c.scenario.seed for c in cells}) == 6  # derived: independent replicates
    assert base.sweep is not None and "sweep" not in cells[0].resolved
    del sweep_raw["sweep"]["seeds"]  # the default is shared: paired cells, one seed
    assert len({c.scenario.seed for c in expand(sweep_raw)[1]}) == 1

    sweep_raw["sweep"] = {"zip": {"alpha": [0.4, 0.6], "policies.messplus.V": [0.01, 0.1]}, "grid": {"seed": [1, 2]},
                          "seeds": "shared"}
    _, cells = expand(sweep_raw)
    assert [(c.scenario.alpha, c.scenario.policies[0].V, c.scenario.seed) for c in cells] == [
        (0.4, 0.01, 1), (0.4, 0.01, 2), (0.6, 0.1, 1), (0.6, 0.1, 2)]


def test_paper_grid_has_1512_cells():
    from sim.config import read_scenario_file

    _, cells = expand(read_scenario_file(REPO / "scenarios" / "paper_grid.yaml"))
    assert len(cells) == 1512
    assert len({c.trace_key for c in cells}) == 8 * 3  # one trace per benchmark and seed, shared by 63 cells
    alphas = {}
    for c in cells:
        alphas.setdefault(c.case, set()).add(c.scenario.alpha)
    assert alphas["logiqa"] == {0.3, 0.4, 0.45} and alphas["sciq"] == {0.95, 0.96, 0.97}
    assert {c.scenario.seed for c in cells} == {42, 43, 44}


def test_seeds_come_from_coordinates_not_order(sweep_raw):
    _, cells = expand(sweep_raw)
    # one more V value: the existing cells keep their coordinates, hence their seeds and ids
    sweep_raw["sweep"]["grid"]["policies.messplus.V"] = [0.001, 0.01, 0.1]
    _, more = expand(sweep_raw)
    assert {c.cell_id for c in cells} < {c.cell_id for c in more}
    coords = [("alpha", 0.4), ("policies.messplus.V", 0.1)]
    assert derive_seed(7, coords) == derive_seed(7, coords[::-1]) != derive_seed(8, coords)


@pytest.mark.parametrize("sweep, message", [
    ({"grid": {"alpha": []}}, "non-empty list"),
    ({"grid": {"alpha": [0.4]}, "zip": {"alpha": [0.5]}}, "both grid and zip"),
    ({"zip": {"alpha": [0.4, 0.5], "seed": [1]}}, "equal lengths"),
    ({"grid": {"alpha": [1.5]}}, "sweep cell 0: alpha"),
    ({"grid": {"policies.nosuch.V": [1]}}, "no list item named 'nosuch'"),
    ({"grid": {"alpah": [0.5]}}, "unknown key 'alpah'"),
    ({"seeds": "shared", "grid": {"description": ["a", "a"]}}, "same configuration as cell 0"),
    ({}, "at least one of"),
])
def test_bad_sweeps_are_one_line_errors(sweep_raw, sweep, message):
    sweep_raw["sweep"] = sweep
    with pytest.raises(UserError, match=message) as e:
        expand(sweep_raw)
    assert "\n" not in str(e.value)



def test_sweep_keys_and_set_share_one_parser(sweep_raw):
    """A policy name with a dot (mp_0.5) is addressed whole, by a sweep key as by --set (one parser)."""
    from sim.config import apply_overrides

    sweep_raw["policies"][0]["name"] = "mp_0.5"
    sweep_raw["sweep"] = {"grid": {"policies.mp_0.5.V": [0.01, 0.1]}}
    _, cells = expand(sweep_raw)
    assert [c.scenario.policies[0].V for c in cells] == [0.01, 0.1]
    by_set = apply_overrides(sweep_raw, ["policies.mp_0.5.V=0.1"])
    assert by_set["policies"][0]["V"] == 0.1 and cells[1].scenario.policies[0].label == "mp_0.5"


# ---------------------------------------------------------------- running

def test_cell_equals_plain_run(sweep_raw, tmp_path):
    """A cell folder holds exactly what `sim run` writes for the cell's resolved config."""
    report = run_sweep(sweep_raw, tmp_path / "s", workers=1)
    assert (report.ran, report.failed) == (6, 0)
    _, cells = expand(sweep_raw)
    c = cells[3]
    run_scenario(validate_scenario(yaml.safe_load(c.resolved)), tmp_path / "plain")
    for name in ("requests.parquet", "occupancy.parquet", "summary.json", "scenario.resolved.yaml"):
        assert (tmp_path / "s" / "cells" / c.cell_id / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()
    m = pl.read_parquet(tmp_path / "s" / "manifest.parquet")
    assert m.height == 6 * 3  # one row per cell x policy
    assert m["cell_id"].unique(maintain_order=True).to_list() == [c.cell_id for c in cells]
    row = m.filter((pl.col("cell_id") == c.cell_id) & (pl.col("policy") == "messplus")).to_dicts()[0]
    summary = json.loads((tmp_path / "plain" / "summary.json").read_text())
    assert row["satisfaction"] == summary["policies"]["messplus"]["satisfaction"]
    assert row["policy.V"] == c.scenario.policies[0].V and row["alpha"] == c.scenario.alpha
    assert row["status"] == "ok" and row["error"] is None and row["case"] == c.case


def test_shuffled_order_is_byte_identical(sweep_raw, tmp_path):
    run_sweep(sweep_raw, tmp_path / "a", workers=1)
    run_sweep(sweep_raw, tmp_path / "b", workers=2, order_seed=12345, chunk_size=1)
    a, b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 6 * 4
    for k in a:
        assert a[k] == b[k], k


def test_failing_cell_is_recorded_and_others_run(sweep_raw, tmp_path):
    sweep_raw["sweep"]["cases"].append({"name": "broken", "set": {"trace": {"path": str(tmp_path / "missing.parquet")}},
                                        "grid": {"alpha": [0.5]}})
    report = run_sweep(sweep_raw, tmp_path / "s", workers=2)
    assert (report.ran, report.failed, report.cells) == (6, 2, 8)
    m = pl.read_parquet(tmp_path / "s" / "manifest.parquet")
    bad = m.filter(pl.col("status") == "failed")
    assert bad["case"].to_list() == ["broken", "broken"]
    assert all("missing.parquet: no such file" in e for e in bad["error"].to_list())
    assert bad["policy"].null_count() == 2 and bad["satisfaction"].null_count() == 2
    assert (m.filter(pl.col("status") == "ok")["satisfaction"].null_count()) == 0
    for cid in bad["cell_id"].to_list():
        assert "Traceback" in (tmp_path / "s" / "cells" / cid / "_error.txt").read_text()
        assert not (tmp_path / "s" / "cells" / cid / MARKER).exists()


def _sweep_cli(path: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim", "sweep", str(path), "--out", str(out), "-q", *extra],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=300)


def test_resume_after_a_killed_sweep(sweep_raw, tmp_path):
    """Kill the sweep inside its 3rd cell (results written, marker not): the rerun keeps the 2 finished cells,
    redoes the half-written one and the rest, and ends byte-identical to an uninterrupted sweep."""
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sweep_raw, sort_keys=False))
    out = tmp_path / "killed"
    r = _sweep_cli(path, out, "--workers", "1", env={"SIM_SWEEP_CRASH_AFTER": "2"})
    assert r.returncode == -9, r.stderr
    cells = sorted((out / "cells").iterdir())
    complete = [c for c in cells if (c / MARKER).exists()]
    half = [c for c in cells if not (c / MARKER).exists()]
    assert len(complete) == 2 and len(half) == 1 and (half[0] / "summary.json").exists()
    before = {c.name: (c / MARKER).stat().st_mtime_ns for c in complete}

    r = _sweep_cli(path, out, "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert "6 cells: 4 ran, 2 already done, 0 failed" in r.stdout
    assert {c.name: (out / "cells" / c.name / MARKER).stat().st_mtime_ns for c in complete} == before
    m = pl.read_parquet(out / "manifest.parquet")
    assert m["status"].to_list() == ["ok"] * 18

    run_sweep(sweep_raw, tmp_path / "fresh", workers=1)
    assert tree_bytes(out) == tree_bytes(tmp_path / "fresh")


def test_cli_errors_are_one_line(tmp_path, small_raw):
    path = tmp_path / "nosweep.yaml"
    path.write_text(yaml.safe_dump(small_raw, sort_keys=False))
    r = _sweep_cli(path, tmp_path / "o")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "has no 'sweep:' block" in r.stderr


def test_ray_backend_matches_local(sweep_raw, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'messplus-sim[ray]')")
    run_sweep(sweep_raw, tmp_path / "local", workers=2)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        report = run_sweep(sweep_raw, tmp_path / "ray", backend="ray")
    finally:
        ray.shutdown()
    assert (report.ran, report.failed) == (6, 0)
    assert tree_bytes(tmp_path / "ray") == tree_bytes(tmp_path / "local")
