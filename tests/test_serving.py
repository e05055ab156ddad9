"""GPU serving (sim/world/serving.py): profile-based service time and energy, GPU sharing, idle energy."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from sim.config import validate_scenario
from sim.errors import UserError
from sim.running.runner import build_trace, simulate_scenario
from sim.trace.format import from_frame

from conftest import DATA, REPO

# a made-up profile in the H200 decode format: ITL 10 ms / 20 ms at batch 1 / 4, J/token 1.0 / 0.4
DECODE = """model,batch,ctx,layers_measured,layers,step_ms,tokens_per_s,j_per_step,j_per_token,avg_power_w,params_b
tiny,1,1024,1,1,10.0,100,1.0,1.0,100,1
tiny,4,1024,1,1,20.0,200,1.6,0.4,80,1
big,1,1024,1,1,40.0,25,4.0,4.0,100,8
big,4,1024,1,1,50.0,80,8.0,2.0,160,8
"""


@pytest.fixture
def profile_dir(tmp_path):
    d = tmp_path / "prof"
    d.mkdir()
    (d / "decode.csv").write_text(DECODE)
    return d


def scenario(profile_dir, sharing="time_slice", **extra):
    raw = {
        "alpha": 0.5, "trace": {"path": "unused.parquet"}, "engine": {"mode": "des", "progress": False},
        "gpus": [{"name": "g0", "type": "H200", "idle_w": 50.0}], "sharing": sharing, "profiles": str(profile_dir),
        "zoo": [{"name": "tiny", "slots": 4, "gpu": "g0", "profile": {"model_id": "tiny", "gpu": "H200"}},
                {"name": "big", "slots": 4, "gpu": "g0", "profile": {"model_id": "big", "gpu": "H200"}}],
        "policies": [{"kind": "always", "model": "tiny"}, {"kind": "always", "model": "big"},
                     {"kind": "random_with_constraint"}],
        **extra,
    }
    return validate_scenario(raw)


def trace(arrivals, tokens=100):
    n = len(arrivals)
    df = pl.DataFrame({
        "request_id": np.arange(n), "arrival_s": np.asarray(arrivals, float), "group": ["g"] * n,
        "sat__tiny": np.zeros(n), "sat__big": np.ones(n),
        "energy_j__tiny": np.full(n, 999.0), "energy_j__big": np.full(n, 999.0),
        "latency_s__tiny": np.full(n, 99.0), "latency_s__big": np.full(n, 99.0),
        "output_tokens__tiny": np.full(n, tokens), "output_tokens__big": np.full(n, tokens),
    })
    return from_frame(df, ["tiny", "big"])


def test_alone_uses_batch_one(profile_dir):
    r = simulate_scenario(scenario(profile_dir), trace([0.0, 10.0, 20.0]))
    tiny = r.frames["always:tiny"]
    np.testing.assert_allclose((tiny["end_s"] - tiny["start_s"]).to_numpy(), 100 * 0.010)  # 100 tokens x 10 ms
    np.testing.assert_allclose(tiny["energy_j"].to_numpy(), 100 * 1.0)  # the trace's 999 J is replaced
    big = r.frames["always:big"]
    np.testing.assert_allclose((big["end_s"] - big["start_s"]).to_numpy(), 100 * 0.040)
    gpu = r.summary["policies"]["always:tiny"]["serving"]["gpus"]["g0"]
    assert gpu["active_energy_j"] == pytest.approx(300.0)
    # busy 3 x 1 s of the 21 s from 0 to the last completion: idle 18 s at 50 W
    assert gpu["busy_fraction"] == pytest.approx(3 / 21)
    assert gpu["idle_energy_j"] == pytest.approx(50.0 * 18)


def test_batching_interpolates_itl_and_energy(profile_dir):
    # three requests at once on one model: batches 1, 2, 3 -> ITL 10, 13.33, 16.67 ms; J/token 1, 0.8, 0.6
    r = simulate_scenario(scenario(profile_dir), trace([0.0, 0.0, 0.0]))
    tiny = r.frames["always:tiny"]
    np.testing.assert_allclose((tiny["end_s"] - tiny["start_s"]).to_numpy(), [1.0, 4 / 3, 5 / 3])
    np.testing.assert_allclose(tiny["energy_j"].to_numpy(), [100.0, 80.0, 60.0])
    # the router's cost estimate learns the measured energy, not the trace's
    assert r.summary["policies"]["always:tiny"]["cost_total"] == pytest.approx(240.0)


@pytest.mark.parametrize("sharing, slowdown", [("time_slice", 2.0), ("none", 1.0)])
def test_models_sharing_a_gpu_slow_each_other(profile_dir, sharing, slowdown):
    sc = scenario(profile_dir, sharing=sharing, policies=[{"kind": "messplus", "c": 1.0, "predictor": {"kind": "group_beta"}}])
    r = simulate_scenario(sc, trace([0.0]))  # c = 1: the first request explores, on both models at once
    df = r.frames["messplus"]
    assert df["explored"][0]
    # tiny starts first (alone: 1 s); big starts while tiny is busy: 100 x 40 ms x slowdown
    assert df["end_s"][0] == pytest.approx(4.0 * slowdown)
    assert df["energy_j"][0] == pytest.approx(100 * 1.0 + 100 * 4.0)


def test_profile_needs_output_tokens_and_des(profile_dir):
    sc = scenario(profile_dir)
    df = pl.DataFrame({k: v for k, v in zip(["request_id", "arrival_s", "group"], [[0], [0.0], ["g"]])}).with_columns(
        **{f"{f}__{m}": pl.lit(1.0) for f in ("sat", "energy_j", "latency_s") for m in ("tiny", "big")})
    with pytest.raises(UserError, match="output_tokens__tiny"):
        simulate_scenario(sc, from_frame(df, ["tiny", "big"]))
    raw = sc.model_dump(mode="json")
    raw["engine"]["mode"] = "sequential"
    with pytest.raises(UserError, match="needs engine.mode: des"):
        validate_scenario(raw)
    raw["engine"]["mode"] = "des"
    raw["zoo"][0]["gpu"] = "nope"
    with pytest.raises(UserError, match="no GPU named 'nope'"):
        validate_scenario(raw)


@pytest.mark.skipif(not (DATA / "h200_llama_profile").is_dir(), reason="needs ../shared/data/h200_llama_profile")
def test_paper_llama_h200_scenario_runs():
    from sim.config import load_scenario

    sc, _ = load_scenario(REPO / "scenarios" / "paper_llama_h200.yaml", ["trace.synth.requests=1500", "engine.progress=false"])
    r = simulate_scenario(sc, build_trace(sc))
    one, big = r.summary["policies"]["always:llama-3.2-1b"], r.summary["policies"]["always:llama-3.3-70b"]
    assert one["energy_j_total"] < big["energy_j_total"]
    assert set(one["serving"]["gpus"]) == {"h200-0"}
    assert one["serving"]["profiles"]["llama-3.3-70b"]["gpu"] == "H200"


def test_busy_timeline_windows():
    from sim.world.serving import busy_timeline

    tl = busy_timeline([(0.0, 1.0), (2.5, 4.0)], 4.0, windows=4)
    assert tl["window_s"] == 1.0
    assert tl["busy_fraction"] == pytest.approx([1.0, 0.0, 0.5, 1.0])


def test_report_shows_the_gpu_view(profile_dir, tmp_path):
    from sim.report.charts import load_run, run_charts
    from sim.running.runner import run_scenario

    sc = scenario(profile_dir)
    run_scenario(sc, tmp_path / "out", trace=trace([0.0, 0.5, 3.0]))
    charts, skipped = run_charts(load_run(tmp_path / "out"))
    assert "gpus" in dict(charts) and "gpus" not in skipped
