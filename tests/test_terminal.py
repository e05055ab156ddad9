"""What a person reads in the terminal: names printed as text (issue 12, item 6), tables readable at 80 and 200
columns, and the SLA verdict read from summary.json (issue 16)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from sim.cli.run import print_group_table, print_summary
from sim.text import printable

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ["[/red]", "[bold red]x[/bold red]", "\x1b[31mred\x1b[0m", "\x1b]0;title\x07", "a\x9bb"]


def _summary(names: list[str], models: list[str] | None = None) -> dict:
    models = models or ["small", "large"]
    pols = {}
    for i, n in enumerate(names):
        share = {m: 0.0 for m in models}
        share[models[i % len(models)]] = 1.0
        pols[n] = {"kind": "always", "causal": True, "oracle": False, "requests": 100, "satisfaction": 0.5,
                   "violation": 0.0, "cost_total": 1234.5, "explorations": 0, "call_ratio": share,
                   "latency_s": {"p50": 1.0, "p95": 2.0, "p99": 3.0}}
    return {"scenario": names[0], "alpha": 0.5, "engine": "des", "cost_unit": "J", "models": models,
            "trace": {"requests": 100}, "policies": pols}


def _render(summary: dict, width: int, fn=print_summary) -> str:
    c = Console(width=width, record=True, file=io.StringIO(), force_terminal=True, color_system="standard")
    fn(summary, c)
    return c.file.getvalue()


def test_printable_escapes_control_characters():
    assert printable("a\x1b[31mb") == "a\\x1b[31mb"
    assert printable("x\x07\x9b\x7f") == "x\\x07\\x9b\\x7f"
    assert printable("[/red] ok") == "[/red] ok"


@pytest.mark.parametrize("width", [80, 200])
def test_table_prints_names_as_text(width):
    out = _render(_summary(HOSTILE), width)
    # Markup is shown, not obeyed or crashed on; ESC and BEL from the names never reach the terminal raw. (Rich's own
    # colour codes are ESC [ ... m sequences; the names' ESC appear only as the visible escape \x1b.)
    assert "[/red]" in out and "[bold red]x[/bold red]" in out
    assert "\\x1b[31mred\\x1b[0m" in out and "\x1b]0;" not in out and "\x07" not in out and "\x9b" not in out


def test_group_table_prints_names_as_text():
    s = _summary(["p"])
    s["groups"] = {g: dict(_summary(HOSTILE), alpha=0.5) for g in HOSTILE}
    out = _render(s, 120, print_group_table)
    assert "[/red]" in out and "\x07" not in out


@pytest.mark.parametrize("width", [80, 200])
def test_table_readable_at_width(width):
    """Names are never cut (every full name appears), no unit is wrapped away from its number, and with 11 models
    the one non-zero share of the last model is shown."""
    names = ["messplus", "messplus_feedback", "always:gpt-4-1106-preview", "random_with_constraint"]
    models = [f"model-{i}" for i in range(10)] + ["gpt-4-1106-preview"]
    s = _summary(names, models)
    s["policies"]["always:gpt-4-1106-preview"]["call_ratio"] = {m: (1.0 if m == models[-1] else 0.0) for m in models}
    plain = Console(width=width, record=True, file=io.StringIO())
    print_summary(s, plain)
    out = plain.export_text().replace("\u00a0", " ")
    for n in names:
        assert n in out, (n, out)
    assert "#11 1.00" in out and "#11 gpt-4-1106-preview" in out
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= width
    for line in out.splitlines():
        assert not line.strip().startswith(("J", "kJ", "MJ")), out


def test_sla_verdict_is_read_from_the_summary():
    s = _summary(["a", "b", "c"])
    s["policies"]["a"]["sla"] = {"met": True, "satisfaction": 0.5, "alpha": 0.5, "tolerance": 0.0, "rule": "x"}
    s["policies"]["b"]["sla"] = {"met": False, "satisfaction": 0.5, "alpha": 0.5, "tolerance": 0.0, "rule": "x"}
    plain = Console(width=200, record=True, file=io.StringIO())
    print_summary(s, plain)
    rows = {line.split()[0]: line.split()[1] for line in plain.export_text().splitlines()
            if line.strip()[:2] in ("a ", "b ", "c ")}
    assert rows == {"a": "met", "b": "missed", "c": "n.a."}


def _write(tmp_path: Path, policy_name: str, scenario_name: str) -> Path:
    scen = tmp_path / "s.yaml"
    scen.write_text(json.dumps({
        "name": scenario_name, "seed": 1, "alpha": 0.5,
        "trace": {"synth": {"requests": 300, "arrivals": {"process": "poisson", "rate": 2.0},
                            "groups": {"g": {"accuracy": {"a": 0.4, "b": 0.7}, "energy_j": {"a": 1.0, "b": 5.0}}},
                            "latency_s": {"a": 0.1, "b": 0.2}}},
        "zoo": [{"name": "a"}, {"name": "b"}], "engine": {"mode": "sequential"},
        "policies": [{"kind": "always", "model": "a", "name": policy_name}, {"kind": "always", "model": "b"}]}))
    return scen


@pytest.mark.parametrize("name", ["[/red]", "\x1b[2J\x1b]0;pwned\x07"])
def test_run_and_check_with_hostile_names(tmp_path, name):
    """A policy or scenario named ``[/red]`` neither crashes ``sim run`` nor ``sim check``; an ESC sequence in a
    name is printed as a visible escape."""
    scen = _write(tmp_path, name, "s" if "\x1b" in name else "x" + name.replace("/", "_"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="80")
    for cmd in (["run", str(scen), "--out", str(tmp_path / "out"), "--no-report"], ["check", str(scen)]):
        r = subprocess.run([sys.executable, "-m", "sim", *cmd], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "\x1b" not in r.stdout + r.stderr
        assert printable(name) in r.stdout


def test_help_names_the_console_script():
    code = "import sys; sys.argv[0] = '{}'; from sim.cli import main; main(['--help'])"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for argv0, want in [("/usr/local/bin/sim", "usage: sim "), ("-m", "usage: python -m sim ")]:
        r = subprocess.run([sys.executable, "-c", code.format(argv0)], capture_output=True, text=True, env=env)
        assert r.stdout.startswith(want), r.stdout[:80]


@pytest.mark.slow  # compiles every kernel into an empty cache (about 50 s on 2 cores)
def test_first_run_says_it_compiles(tmp_path):
    """With an empty numba cache the run says that it compiles (the first run is otherwise silent for ~10 s)."""
    scen = _write(tmp_path, "p", "s")
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-m", "sim", "run", str(scen), "--out", str(tmp_path / "o"), "--no-report"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and "compiling kernels (once" in r.stderr
    r = subprocess.run([sys.executable, "-m", "sim", "run", str(scen), "--out", str(tmp_path / "o"), "--no-report"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and "compiling kernels" not in r.stderr


def test_check_table_keeps_bound_names_whole_at_80_columns(tmp_path):
    """`sim check` at 80 columns: every bound name whole, n.a. reasons listed under the table."""
    from sim import config as cfg
    from sim.cli.check import check_scenario, print_outcome

    scenario, _ = cfg.load_scenario(_write(tmp_path, "p", "s"))
    o = check_scenario(scenario)
    c = Console(width=80, record=True, file=io.StringIO())
    print_outcome(o, c)
    out = c.export_text()
    assert max(len(line) for line in out.splitlines()) <= 80
    for b in o.bounds:
        assert str(b["bound"]) in out
    assert "…" not in out
