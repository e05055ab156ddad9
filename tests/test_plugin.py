"""Routers written in Python (``kind: python``, sim/policies/plugin.py): parity with the numba MESS+, the
order of callbacks, and what a broken plugin produces (one line, exit 2, nothing written)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from sim.cli import main
from sim.config import POLICIES, load_scenario, validate_scenario
from sim.running.runner import build_trace, simulate_scenario
from tests.conftest import REPO
from tests.test_hostile_inputs import assert_one_line_error, snapshot

EXAMPLE = REPO / "examples" / "messplus_plugin.py"
QUICKSTART = REPO / "scenarios" / "quickstart.yaml"


def _quickstart_pair(mode: str, requests: int) -> dict:
    """The quickstart scenario, shortened, with the built-in MESS+ (group_beta) and the plugin side by side."""
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["trace"]["synth"]["requests"] = requests
    raw["engine"] = {"mode": mode, "progress": False}
    raw["policies"] = [
        {"kind": "messplus", "name": "builtin", "V": 1e-2, "c": 0.1, "explore_needs_feedback": True,
         "predictor": {"kind": "group_beta"}},
        {"kind": "python", "name": "plugin", "entry": f"{EXAMPLE}:MessPlus", "args": {"V": 1e-2, "c": 0.1}},
    ]
    return raw


@pytest.mark.parametrize("mode", ["des", "sequential"])
def test_messplus_plugin_parity(mode):
    """examples/messplus_plugin.py makes exactly the built-in numba MESS+'s decisions, in both engines."""
    scenario = validate_scenario(_quickstart_pair(mode, 4000))
    result = simulate_scenario(scenario)
    a, b = result.frames["builtin"], result.frames["plugin"]
    cols = ["request_id", "model_index", "explored", "q_tracked", "start_s", "end_s", "feedback_s"]
    assert a.select(cols).equals(b.select(cols))
    assert a["explored"].sum() > 10 and a["model_index"].n_unique() == 3  # not a degenerate routing
    sa, sb = result.summary["policies"]["builtin"], result.summary["policies"]["plugin"]
    assert sa["satisfaction"] == sb["satisfaction"] and sa["cost_total"] == sb["cost_total"]
    assert sb["kind"] == "python" and sb["causal"] is True


class _Recorder:
    """Records every call; routes by index, explores on every 7th request."""

    def __init__(self, models, alpha, rng, log):
        self.models, self.log = models, log

    def decide(self, request):
        self.log.append(("decide", request.index, request.arrival_s))
        if request.index % 7 == 0:
            import sim

            return sim.Explore()
        return self.models[request.index % 2] if request.index % 3 else request.index % 2

    def on_complete(self, index, model, cost):
        self.log.append(("complete", index, model, np.array(cost, dtype=float).size))

    def on_feedback(self, index, model, satisfied):
        self.log.append(("feedback", index, model, np.array(satisfied, dtype=float).size))


@pytest.mark.parametrize("mode", ["des", "sequential"])
def test_plugin_callbacks_are_causal(small_raw, mode, monkeypatch):
    """decide sees only arrival data; on_complete/on_feedback come after the request's decision, once each,
    with every model's cost and labels for an exploration; feedback follows completion."""
    import tests.test_plugin as me

    log: list = []
    monkeypatch.setattr(me, "_LOG", log, raising=False)
    small_raw["engine"]["mode"] = mode
    small_raw["policies"] = [{"kind": "python", "name": "rec", "entry": "tests.test_plugin:_LoggedRecorder"}]
    scenario = validate_scenario(small_raw)
    result = simulate_scenario(scenario, build_trace(scenario))
    df = result.frames["rec"]
    n = df.height
    decided, completed, fed = {}, {}, {}
    for i, e in enumerate(log):
        book = {"decide": decided, "complete": completed, "feedback": fed}[e[0]]
        assert e[1] not in book, f"{e[0]} twice for {e[1]}"
        book[e[1]] = i
        if e[0] != "decide":
            assert e[3] == (3 if e[1] % 7 == 0 else 1), e  # an exploration sees every model
    assert len(decided) == len(completed) == n and 0 < len(fed) < n
    assert all(decided[t] < completed[t] for t in completed) and all(completed[t] < fed[t] for t in fed)
    assert [e[1] for e in log if e[0] == "decide"] == list(range(n))
    explored = df["explored"].to_numpy()
    assert explored[::7].all() and explored.sum() == len(range(0, n, 7))
    assert (df["model_index"].to_numpy()[::7] == 2).all()


_LOG: list = []


class _LoggedRecorder(_Recorder):
    def __init__(self, models, alpha, rng):
        import tests.test_plugin as me

        super().__init__(models, alpha, rng, me._LOG)


BROKEN = {
    "bad_entry": ("entry: 'nonsense'", "must be 'path/to/file.py:Class'"),
    "no_file": ("entry: 'missing.py:R'", "no file"),
    "no_class": ("entry: 'r.py:Nope'", "has no class 'Nope'"),
    "no_method": ("entry: 'r.py:NoFeedback'", "lacks the method(s) on_feedback"),
    "bad_return": ("entry: 'r.py:BadReturn'", "decide returned 'gpt-9' at request index 0"),
}

ROUTERS = '''
class NoFeedback:
    def __init__(self, models, alpha, rng): pass
    def decide(self, request): return 0
    def on_complete(self, index, model, cost): pass

class BadReturn(NoFeedback):
    def decide(self, request): return "gpt-9"
    def on_feedback(self, index, model, satisfied): pass

class Raises(BadReturn):
    def decide(self, request):
        if request.index == 5:
            return helper(request)
        return 0

def helper(request):
    raise ValueError("boom in user code")
'''


def _plugin_scenario(tmp_path: Path, entry: str) -> Path:
    from tests.test_hostile_inputs import BASE

    (tmp_path / "routers").mkdir(exist_ok=True)
    (tmp_path / "routers" / "r.py").write_text(ROUTERS)
    raw = copy.deepcopy(BASE)
    raw["policies"] = [{"kind": "python", "name": "mine", **yaml.safe_load(entry)}]
    path = tmp_path / "routers" / "s.yaml"  # entries are relative to the scenario file's folder
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_plugin_one_line(capsys, tmp_path, case):
    entry, phrase = BROKEN[case]
    assert_one_line_error(capsys, tmp_path, _plugin_scenario(tmp_path, entry), phrase, out=tmp_path / "out")


@pytest.mark.parametrize("mode", ["des", "sequential"])
def test_exception_in_plugin_shows_user_traceback(capsys, tmp_path, mode):
    scenario = _plugin_scenario(tmp_path, "entry: 'r.py:Raises'")
    before = snapshot(tmp_path)
    rc = main(["run", str(scenario), "--out", str(tmp_path / "out"), "-q", "--set", f"engine.mode={mode}"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "decide raised ValueError at request index 5" in err and "boom in user code" in err
    assert 'r.py", line' in err and "in helper" in err  # the user's own frames
    assert "sim/policies" not in err  # not ours
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_entry_relative_to_scenario_file(tmp_path):
    scenario, _ = load_scenario(_plugin_scenario(tmp_path, "entry: 'r.py:BadReturn'"))
    assert scenario.policies[0].entry == f"{(tmp_path / 'routers' / 'r.py').resolve()}:BadReturn"


def test_registry_is_the_single_source():
    """The config's policy union and the derived tables come from the registry."""
    from sim.policies.registry import NON_CAUSAL, SEES
    from sim.report.sweep import BOUND_KINDS, V_KINDS

    assert set(SEES) == {k.name for k in POLICIES} and "python" in SEES
    assert NON_CAUSAL == BOUND_KINDS == {"oracle_hindsight", "offline_optimum"}
    assert V_KINDS == {"messplus"}
    for kind in POLICIES:
        assert kind.config.model_fields["kind"].annotation.__args__[0] == kind.name


def test_plugin_frame_has_the_builtin_schema(small_raw):
    small_raw["policies"] = [small_raw["policies"][0],
                             {"kind": "python", "name": "p", "entry": f"{EXAMPLE}:MessPlus"}]
    result = simulate_scenario(validate_scenario(small_raw))
    a, b = result.frames.values()
    assert a.schema == b.schema
    assert isinstance(pl.concat([a, b]), pl.DataFrame)


def test_sweep_over_a_plugin_with_a_relative_entry(small_raw, tmp_path, capsys):
    """`sim sweep` anchors a plugin's file at the scenario (its cells may run from any folder), and sweeps args."""
    raw = copy.deepcopy(small_raw)
    raw["trace"]["synth"]["requests"] = 200
    (tmp_path / "routers").mkdir()
    (tmp_path / "routers" / "mp.py").write_text(EXAMPLE.read_text())
    raw["policies"] = [{"kind": "python", "name": "mine", "entry": "mp.py:MessPlus", "args": {"V": 0.01}}]
    raw["sweep"] = {"grid": {"policies.mine.args.V": [0.01, 1.0]}}
    path = tmp_path / "routers" / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    rc = main(["sweep", str(path), "--out", str(tmp_path / "out"), "--workers", "1"])
    assert rc == 0, capsys.readouterr().err
    m = pl.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert m.height == 2 and (m["status"] == "ok").all()
