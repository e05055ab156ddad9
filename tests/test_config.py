"""Scenario loading: typed validation, one-line errors with hints, --set overrides, resolved output."""

from __future__ import annotations

import json

import pytest
import yaml

from sim.cli import main
from sim.config import apply_overrides, validate_scenario
from sim.errors import UserError


def write(tmp_path, raw) -> str:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(raw))
    return str(p)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["policies"][0].update(Vv=1), "unknown key 'policies.0.Vv'; did you mean 'V'?"),
    (lambda r: r.update(alhpa=0.3), "unknown key 'alhpa'; did you mean 'alpha'?"),
    (lambda r: r["policies"][0]["predictor"].update(lrate=1), "did you mean 'lr'?"),
    (lambda r: r.update(alpha=1.5), "alpha: Input should be less than 1"),
    (lambda r: r["policies"][0].update(V="big"), "policies.0.V: Input should be a valid number"),
    (lambda r: r["policies"][0].update(kind="mesplus"), "policies.0"),
    (lambda r: r["trace"].update(path="x.parquet"), "give exactly one of 'path'"),
])
def test_bad_scenarios_one_line(small_raw, tmp_path, capsys, mutate, message):
    mutate(small_raw)
    out = tmp_path / "out"
    assert main(["run", write(tmp_path, small_raw), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_set_overrides_by_index_and_name(small_raw):
    raw = apply_overrides(small_raw, ["alpha=0.6", "policies.mp_beta.V=0.5", "policies.0.c=0",
                                      "engine.mode=sequential"])
    s = validate_scenario(raw)
    assert s.alpha == 0.6 and s.policies[1].V == 0.5 and s.policies[0].c == 0 and s.engine.mode == "sequential"
    small_raw["policies"][0]["name"] = "mp_0.5"
    assert apply_overrides(small_raw, ["policies.mp_0.5.V=0.3"])["policies"][0]["V"] == 0.3
    with pytest.raises(UserError, match="no list item named 'nope'"):
        apply_overrides(small_raw, ["policies.nope.V=1"])
    with pytest.raises(UserError, match="expected key.path=value"):
        apply_overrides(small_raw, ["alpha"])


def test_run_writes_results_and_resolved_scenario(small_raw, tmp_path, capsys):
    small_raw["trace"]["synth"]["requests"] = 300
    out = tmp_path / "out"
    assert main(["run", write(tmp_path, small_raw), "--out", str(out), "--set", "policies.messplus.V=0.02"]) == 0
    assert "messplus" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"scenario", "seed", "alpha", "policies"}
    for entry in summary["policies"].values():
        assert {"requests", "satisfaction", "violation", "cost_total", "cost_per_request", "energy_j_total",
                "energy_j_per_request", "energy_j_total_exploit_only", "explorations", "call_ratio",
                "latency_s"} <= set(entry)
        assert not {"cost", "energy_j"} & set(entry)  # totals are named as totals
        assert entry["cost_per_request"] == pytest.approx(entry["cost_total"] / entry["requests"])
    prov = summary["provenance"]
    assert set(prov) == {"simulator_version", "git_commit", "python", "numpy", "numba", "polars", "scenario_sha256"}
    import hashlib
    import pyarrow.parquet as pq

    assert prov["scenario_sha256"] == hashlib.sha256((out / "scenario.resolved.yaml").read_bytes()).hexdigest()
    for name in ("requests.parquet", "occupancy.parquet"):
        if (out / name).exists():
            meta = pq.read_schema(out / name).metadata
            assert json.loads(meta[b"messplus_sim.provenance"]) == prov, name
        assert set(entry["latency_s"]) == {"p50", "p95", "p99"}
    assert summary["policies"]["offline_optimum"]["causal"] is False
    resolved = yaml.safe_load((out / "scenario.resolved.yaml").read_text())
    assert resolved["policies"][0]["V"] == 0.02 and resolved["policies"][0]["cost_estimate"] == "mean"
    # the resolved scenario reruns to the same results
    assert main(["run", str(out / "scenario.resolved.yaml"), "--out", str(tmp_path / "again"), "-q"]) == 0
    assert (tmp_path / "again" / "requests.parquet").read_bytes() == (out / "requests.parquet").read_bytes()


def test_refuses_folder_of_another_scenario(small_raw, tmp_path, capsys):
    small_raw["trace"]["synth"]["requests"] = 200
    out = tmp_path / "out"
    assert main(["run", write(tmp_path, small_raw), "--out", str(out), "-q"]) == 0
    before = (out / "summary.json").read_bytes()
    assert main(["run", write(tmp_path, small_raw), "--out", str(out), "-q", "--set", "alpha=0.6"]) == 2
    assert "different scenario" in capsys.readouterr().err
    assert (out / "summary.json").read_bytes() == before
    assert main(["run", write(tmp_path, small_raw), "--out", str(out), "-q", "--set", "alpha=0.6", "--overwrite"]) == 0


def test_trace_synth_command(tmp_path, capsys):
    out = tmp_path / "t.parquet"
    assert main(["trace", "synth", "-o", str(out), "--requests", "500", "--cv", "3"]) == 0
    from sim.trace.format import load_trace

    t = load_trace(out)
    assert t.n == 500 and t.models == ["llama-3.2-1b", "llama-3.1-8b", "llama-3.3-70b"]
    assert t.provenance["generator"] == "sim.synth"
    assert t.outcomes.p_true is not None


def test_disk_full_is_one_line(small_raw, tmp_path, capsys, monkeypatch):
    import errno

    import sim.running.runner

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(sim.running.runner, "write_json", full)
    small_raw["trace"]["synth"]["requests"] = 200
    assert main(["run", write(tmp_path, small_raw), "--out", str(tmp_path / "out"), "-q", "--no-report"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: No space left on device") and err.count("\n") == 1


def test_energy_estimate_is_an_alias_of_cost_estimate(small_raw):
    """The key was renamed (the estimates hold the objective's cost, which may be USD); the old name reads the same."""
    def resolved(key, value):
        raw = json.loads(json.dumps(small_raw))
        messplus = next(p for p in raw["policies"] if p["kind"] == "messplus")
        messplus.pop("energy_estimate", None), messplus.pop("cost_estimate", None)
        messplus[key] = value
        return validate_scenario(raw, "s").model_dump(mode="json")

    assert resolved("energy_estimate", "last") == resolved("cost_estimate", "last")
    assert resolved("energy_estimate", "last") != resolved("cost_estimate", "mean")
    both = json.loads(json.dumps(small_raw))
    both["policies"][0].update(cost_estimate="mean", energy_estimate="last")
    with pytest.raises(UserError, match="both given; keep cost_estimate"):
        validate_scenario(both, "s")
