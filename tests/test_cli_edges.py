"""CLI rough edges of issue 16: scenario-relative paths (and --set paths relative to the current directory)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from sim.config import load_scenario, relative_to_scenario


def test_every_path_field_is_joined_to_the_scenario_folder():
    raw = {"trace": {"path": "t.parquet", "synth": {"arrivals": {"process": "file", "path": "a.csv"}},
                     "recipe": {"outcomes": {"path": "o.csv"}, "arrivals": {"path": "/abs/a.csv"},
                                "profile": {"path": ["p1.csv", "p2.csv"]}}},
           "profiles": "prof", "zoo": [{"name": "a", "profile": {"source": "s"}}, {"name": "b"}]}
    out = relative_to_scenario(raw, Path("scen"))
    j = os.path.join
    assert out["trace"]["path"] == j("scen", "t.parquet")
    assert out["trace"]["synth"]["arrivals"]["path"] == j("scen", "a.csv")
    assert out["trace"]["recipe"]["outcomes"]["path"] == j("scen", "o.csv")
    assert out["trace"]["recipe"]["arrivals"]["path"] == "/abs/a.csv"
    assert out["trace"]["recipe"]["profile"]["path"] == [j("scen", "p1.csv"), j("scen", "p2.csv")]
    assert out["profiles"] == j("scen", "prof") and out["zoo"][0]["profile"]["source"] == j("scen", "s")
    # "../" in a shipped scenario: the same path as before when run from the repository root.
    assert relative_to_scenario({"profiles": "../../shared/x"}, Path("scenarios"))["profiles"] == "../shared/x"


def test_load_scenario_from_another_folder_and_set_paths(tmp_path, monkeypatch):
    folder = tmp_path / "scen"
    folder.mkdir()
    (folder / "s.yaml").write_text(yaml.safe_dump({
        "name": "rel", "alpha": 0.5, "trace": {"path": "data/t.parquet"}, "zoo": [{"name": "a"}, {"name": "b"}],
        "policies": [{"kind": "always", "model": "a"}]}))
    monkeypatch.chdir(tmp_path)
    assert load_scenario(Path("scen") / "s.yaml")[0].trace.path == os.path.join("scen", "data", "t.parquet")
    monkeypatch.chdir(folder)
    assert load_scenario("s.yaml")[0].trace.path == os.path.join("data", "t.parquet")
    # --set paths are command-line arguments: relative to the current directory, untouched.
    monkeypatch.chdir(tmp_path)
    assert load_scenario(folder / "s.yaml", ["trace.path=here.parquet"])[0].trace.path == "here.parquet"


def test_trace_synth_refuses_a_non_parquet_name(tmp_path, capsys):
    from sim.cli import main

    out = tmp_path / "x.csv"
    assert main(["trace", "synth", "-o", str(out), "--requests", "10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ".parquet" in err and not out.exists()
