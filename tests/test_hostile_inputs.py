"""Hostile inputs: every bad scenario, trace or path a new user can produce gets one line naming the problem.

Each case goes through the real command line (``sim.cli.main(["run", ...])``) and checks: exit status 2,
exactly one line on stderr containing the expected phrase, no traceback, nothing on stdout, and no output
written (the result folder does not even exist afterwards). Traces are written with pyarrow directly, with
and without the ``messplus_sim`` metadata, so the simulator's own writer cannot tidy them up first.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from sim.cli import main

BASE = {
    "name": "hostile",
    "seed": 1,
    "alpha": 0.5,
    "trace": {"synth": {"requests": 60, "groups": {"g": {"accuracy": {"a": 0.4, "b": 0.7},
                                                         "energy_j": {"a": 1.0, "b": 10.0}}}}},
    "engine": {"mode": "sequential", "progress": False},
    "policies": [{"kind": "messplus", "predictor": {"kind": "group_beta"}}, {"kind": "always", "model": "a"}],
}


def run_cli(capsys, tmp_path: Path, scenario: str | Path, *extra: str, out: Path | None = None):
    out = out if out is not None else tmp_path / "out"
    rc = main(["run", str(scenario), "--out", str(out), "-q", *extra])
    captured = capsys.readouterr()
    return rc, captured


def assert_one_line_error(capsys, tmp_path, scenario, phrase, *extra, out=None):
    out = out if out is not None else tmp_path / "out"
    before = snapshot(tmp_path)
    rc, captured = run_cli(capsys, tmp_path, scenario, *extra, out=out)
    err = captured.err
    assert rc == 2, err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert "Traceback" not in err and captured.out == ""
    assert phrase.lower() in err.lower(), err
    assert not out.exists() or out.is_file(), "a failed run must not create its result folder"
    assert snapshot(tmp_path) == before, "a failed run must not write anything"
    return err


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def write_yaml(tmp_path: Path, raw: dict, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


def write_text(tmp_path: Path, text: str | bytes, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


# --------------------------------------------------------------------------------------- the scenario file

@pytest.mark.parametrize("text, phrase", [
    ("- a\n- b\n", "a scenario must be a mapping of keys to values, got list"),
    ("just words\n", "must be a mapping of keys to values, got str"),
    ("42\n", "got int"),
    ("", "the scenario is empty"),
    ("# nothing but a comment\n\n", "the scenario is empty"),
    ("alpha: 0.5\nalpha: 0.6\n", "duplicate key 'alpha'"),
    ("policies:\n  - {kind: always, model: a, model: b}\n", "duplicate key 'model'"),
    ("? [a, b]\n: 1\n", "a key must be a plain value, not a list"),
    ("alpha: [0.5\n", "invalid YAML (line"),
    ("alpha: 0.5\n\tseed: 1\n", "invalid YAML"),
    ("a: !!python/object:os.system x\n", "invalid YAML"),
    ("base: &b 1\nalias: *nope\n", "invalid YAML"),
])
def test_malformed_yaml(capsys, tmp_path, text, phrase):
    assert_one_line_error(capsys, tmp_path, write_text(tmp_path, text), phrase)


def test_not_utf8(capsys, tmp_path):
    assert_one_line_error(capsys, tmp_path, write_text(tmp_path, b"\xff\xfe\x00alpha: 0.5"), "cannot read")


def test_yaml_merge_keys_are_allowed(capsys, tmp_path):
    """``<<: *anchor`` is ordinary YAML; keys set next to a merge override the merged ones, not 'duplicates'."""
    raw = copy.deepcopy(BASE)
    raw.pop("policies")
    text = yaml.safe_dump(raw, sort_keys=False) + (
        "policies:\n"
        "- &d {kind: messplus, name: base, V: 0.5, predictor: {kind: group_beta}}\n"
        "- {<<: *d, name: merged, V: 0.01}\n")
    from sim.config import parse_yaml

    assert parse_yaml(text, "s.yaml")["policies"][1] == {"kind": "messplus", "name": "merged", "V": 0.01,
                                                          "predictor": {"kind": "group_beta"}}
    rc, captured = run_cli(capsys, tmp_path, write_text(tmp_path, text))
    assert rc == 0, captured.err
    assert set(json.loads((tmp_path / "out" / "summary.json").read_text())["policies"]) == {"base", "merged"}


@pytest.mark.parametrize("path, phrase", [
    ("nope.yaml", "no such file"),
    (".", "is a directory"),
])
def test_scenario_path_missing_or_directory(capsys, tmp_path, path, phrase):
    assert_one_line_error(capsys, tmp_path, tmp_path / path, phrase)


def mutate(raw, dotted, value):
    node = raw
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return raw


@pytest.mark.parametrize("key, value, phrase", [
    # NaN and infinity, wherever they appear
    ("alpha", float("nan"), "alpha: NaN and infinity are not allowed"),
    ("alpha", float("inf"), "NaN and infinity are not allowed"),
    ("policies.0.V", float("-inf"), "policies.0.V: NaN and infinity"),
    ("feedback", {"delay": {"dist": "fixed", "mean_s": float("nan")}}, "feedback.delay.mean_s: NaN"),
    ("alpha", "nan", "alpha"),
    ("alpha", "1e400", "finite number"),
    # huge numbers
    ("trace.synth.requests", 10**30, "trace.synth.requests: Input should be less than or equal to"),
    ("trace.synth.arrivals", {"process": "poisson", "rate": 1e300}, "trace.synth.arrivals.rate"),
    ("seed", 2**80, "seed: Input should be less than or equal to"),
    ("policies.0.V", 1e300, "policies.0.V: Input should be less than or equal to"),
    ("zoo", [{"name": "a", "slots": 10**20}, {"name": "b"}], "zoo.0.slots"),
    ("trace.synth.groups.g.energy_j", {"a": 1e200, "b": 1.0}, "trace.synth.groups.g.energy_j.a"),
    # alpha outside (0, 1), V <= 0, c < 0
    ("alpha", 0, "alpha: Input should be greater than 0"),
    ("alpha", 0.0, "alpha: Input should be greater than 0"),
    ("alpha", 1, "alpha: Input should be less than 1"),
    ("alpha", -0.2, "alpha: Input should be greater than 0"),
    ("alpha", 1.5, "alpha: Input should be less than 1"),
    ("policies.0", {"kind": "messplus", "alpha": 1.0}, "policies.0.alpha: Input should be less than 1"),
    ("policies.0", {"kind": "messplus", "V": 0}, "policies.0.V: Input should be greater than 0"),
    ("policies.0", {"kind": "messplus", "V": -1e-4}, "policies.0.V: Input should be greater than 0"),
    ("policies.0", {"kind": "messplus", "c": -0.1}, "policies.0.c: Input should be greater than or equal to 0"),
    # wrong types and shapes
    ("alpha", True, "alpha: expected a number or a name, got a boolean"),
    ("policies.0", {"kind": "messplus", "V": True}, "policies.0.V: expected a number or a name, got a boolean"),
    ("zoo", [{"name": "a", "slots": True}, {"name": "b"}], "zoo.0.slots: expected a number or a name, got a boolean"),
    ("trace.synth.groups.g.energy_j", {"a": 1.0, "b": False}, "trace.synth.groups.g.energy_j: expected a number"),
    ("zoo", [{"name": True}, {"name": "b"}], "zoo.0.name: expected a number or a name, got a boolean"),
    ("policies", [], "policies"),
    ("policies", {"kind": "messplus"}, "policies"),
    ("trace", "traces/x.parquet", "trace"),
])
def test_bad_config_values(capsys, tmp_path, key, value, phrase):
    raw = mutate(copy.deepcopy(BASE), key, value)
    # yaml.safe_dump writes nan/inf as .nan/.inf, which YAML reads back as floats: the user's spelling
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, raw), phrase)


@pytest.mark.parametrize("setting, phrase", [
    ("alpha=.nan", "alpha: NaN and infinity are not allowed"),
    ("alpha=-.inf", "NaN and infinity"),
    ("policies.messplus.V=0", "policies.0.V: Input should be greater than 0"),
    ("policies.messplus.c=-1", "policies.0.c"),
    ("trace.synth.requests=99999999999999999999", "less than or equal to"),
])
def test_bad_values_through_set(capsys, tmp_path, setting, phrase):
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, BASE), phrase, "--set", setting)


@pytest.mark.parametrize("groups, zoo, phrase", [
    ({"g": {"accuracy": {"a": 0.5}, "energy_j": {"a": 1.0}}}, None, "a zoo needs at least 2 models"),
    (None, [{"name": "a"}], "zoo: a zoo needs at least 2 models to route between, got 1"),
    (None, [{"name": "a"}, {"name": "a"}], "listed twice"),
    ({"g": {"accuracy": {"Llama-1B": 0.4, "llama_1b": 0.6}, "energy_j": {"Llama-1B": 1.0, "llama_1b": 2.0}}},
     None, "model names 'Llama-1B' and 'llama_1b' collide"),
    ({"g": {"accuracy": {"x.y": 0.4, "XY": 0.6}, "energy_j": {"x.y": 1.0, "XY": 2.0}}}, None, "collide"),
    ({"g": {"accuracy": {"a b": 0.4, "c": 0.6}, "energy_j": {"a b": 1.0, "c": 2.0}}}, None,
     "may only use letters, digits"),
    (None, [{"name": "a"}, {"name": "zz"}], "zoo: model(s) ['zz'] are not in the trace"),
    (None, [{"name": "A"}, {"name": "b"}], "['A'] are not in the trace"),
])
def test_bad_zoos(capsys, tmp_path, groups, zoo, phrase):
    raw = copy.deepcopy(BASE)
    if groups is not None:
        raw["trace"]["synth"]["groups"] = groups
        raw["policies"] = [{"kind": "messplus", "predictor": {"kind": "group_beta"}}]
    if zoo is not None:
        raw["zoo"] = zoo
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, raw), phrase)


@pytest.mark.parametrize("policy, phrase", [
    ({"kind": "always", "model": "zz"}, "unknown model 'zz'"),
    ({"kind": "threshold", "weak": "a", "strong": "nope"}, "unknown model 'nope'"),
    ({"kind": "messplus", "predictor": {"kind": "replay"}}, "needs 'pred__<model>' columns"),
])
def test_errors_found_late_leave_no_folder(capsys, tmp_path, policy, phrase):
    """Problems found only when routers are built (after the output check) still leave nothing behind."""
    raw = copy.deepcopy(BASE)
    raw["policies"] = [policy]
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, raw), phrase, out=tmp_path / "new" / "deep" / "out")
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------------------- trace files

def trace_columns(n: int = 30, models=("a", "b")) -> dict:
    cols = {"request_id": np.arange(n, dtype=np.int64), "arrival_s": np.arange(n, dtype=np.float64) * 0.5,
            "group": ["g"] * n}
    for i, m in enumerate(models):
        cols[f"sat__{m}"] = (np.arange(n) % (i + 2) == 0).astype(np.float64)
        cols[f"energy_j__{m}"] = np.full(n, 10.0**i)
        cols[f"latency_s__{m}"] = np.full(n, 0.1)
    return cols


def write_trace(path: Path, cols: dict, models=("a", "b"), metadata=True, meta_bytes: bytes | None = None) -> Path:
    table = pa.table(cols)
    if metadata:
        meta = meta_bytes or json.dumps({"format_version": 1, "models": list(models), "cost_unit": "J"}).encode()
        table = table.replace_schema_metadata({b"messplus_sim": meta})
    pq.write_table(table, path)
    return path


def trace_scenario(tmp_path: Path, trace: Path | str) -> Path:
    raw = {"name": "hostile_trace", "alpha": 0.5, "trace": {"path": str(trace)},
           "engine": {"mode": "des", "progress": False},
           "policies": [{"kind": "messplus", "predictor": {"kind": "group_beta"}}, {"kind": "always", "model": "a"}]}
    return write_yaml(tmp_path, raw)


def edit(**changes):
    def apply(cols):
        for key, fn in changes.items():
            cols[key] = fn(cols[key])
        return cols
    return apply


def set_at(i, value):
    def fn(a):
        a = np.array(a, copy=True)
        a[i] = value
        return a
    return fn


def with_model(m, i=2):
    def apply(cols):
        extra = trace_columns(models=("a", "b", m))
        return {**cols, **{k: v for k, v in extra.items() if k.endswith(f"__{m}")}}
    return apply


TRACE_CASES = {
    "zero_rows": (lambda c: {k: v[:0] for k, v in c.items()}, "the trace has zero rows"),
    "duplicate_ids": (edit(request_id=set_at(3, 2)), "column 'request_id' has duplicated values"),
    "fractional_ids": (edit(request_id=lambda a: a + 0.5), "column 'request_id' must hold whole numbers"),
    "non_monotone": (edit(arrival_s=set_at(5, 0.1)), "arrivals are not sorted: row 5"),
    "nan_energy": (edit(energy_j__a=set_at(2, np.nan)), "column 'energy_j__a' has 1 NaN or infinite value(s)"),
    "inf_latency": (edit(latency_s__b=set_at(4, np.inf)), "column 'latency_s__b' has 1 NaN or infinite"),
    "inf_arrival": (edit(arrival_s=set_at(29, np.inf)), "column 'arrival_s' has 1 NaN or infinite"),
    "nan_label": (edit(sat__a=set_at(0, np.nan)), "column 'sat__a' has 1 NaN"),
    "negative_energy": (edit(energy_j__b=set_at(2, -1.0)), "column 'energy_j__b' has negative value(s), first at row 2"),
    "negative_arrival": (edit(arrival_s=lambda a: a - 1.0), "column 'arrival_s' has negative value(s)"),
    "label_above_one": (edit(sat__b=set_at(2, 1.5)), "column 'sat__b' must lie in [0, 1]"),
    "label_below_zero": (edit(sat__a=set_at(2, -0.5)), "column 'sat__a' has negative value(s)"),
    "huge_energy": (edit(energy_j__a=lambda a: np.full(len(a), 1.7e308)), "column 'energy_j__a' has value(s) above 1e+12"),
    "huge_latency": (edit(latency_s__a=set_at(1, 1e300)), "column 'latency_s__a' has value(s) above 1e+12"),
    "huge_arrival": (edit(arrival_s=lambda a: a * 1e300), "column 'arrival_s' has value(s) above 1e+12"),
    "string_label": (edit(sat__a=lambda a: ["yes"] * len(a)), "column 'sat__a' must be numeric"),
    "missing_latency": (lambda c: {k: v for k, v in c.items() if k != "latency_s__b"}, "missing column 'latency_s__b'"),
    "missing_arrival": (lambda c: {k: v for k, v in c.items() if k != "arrival_s"}, "missing required column 'arrival_s'"),
    "no_cost": (lambda c: {k: v for k, v in c.items() if k != "energy_j__a"}, "has neither 'energy_j__a' nor 'cost_usd__a'"),
    "undeclared_model": (with_model("c"), "columns for model(s) ['c']"),
    "undeclared_energy_only": (lambda c: {**c, "energy_j__c": np.ones(30)}, "columns for model(s) ['c'] (e.g. 'energy_j__c')"),
    "colliding_names": (with_model("A"), "collide"),
    "missing_group": (edit(group=lambda a: a[:3] + [None] + a[4:]), "column 'group' has 1 missing value(s)"),
    "label_column_with_a_null": (edit(sat__a=lambda a: [None] + list(a[1:])), "column 'sat__a' has 1 missing value(s)"),
}


# without metadata the sat__<m> columns declare the models, so a full set of columns for 'c' is a 3-model trace
TRACE_MATRIX = [(case, meta) for case in TRACE_CASES for meta in (True, False)
                if not (case == "undeclared_model" and not meta)]


@pytest.mark.parametrize("case, metadata", TRACE_MATRIX,
                         ids=[f"{c}-{'meta' if m else 'nometa'}" for c, m in TRACE_MATRIX])
def test_bad_traces(capsys, tmp_path, case, metadata):
    change, phrase = TRACE_CASES[case]
    cols = change(trace_columns())
    models = ("a", "b", "A") if case == "colliding_names" else ("a", "b")
    trace = write_trace(tmp_path / "t.parquet", cols, models=models, metadata=metadata)
    assert_one_line_error(capsys, tmp_path, trace_scenario(tmp_path, trace), phrase)


def test_metadata_declares_a_model_without_columns(capsys, tmp_path):
    """The reverse of an undeclared column: the metadata names a model the table has no columns for."""
    trace = write_trace(tmp_path / "t.parquet", trace_columns(), models=("a", "b", "c"))
    assert_one_line_error(capsys, tmp_path, trace_scenario(tmp_path, trace), "missing column 'sat__c' for model 'c'")


def test_scenario_zoo_names_a_model_the_trace_lacks(capsys, tmp_path):
    trace = write_trace(tmp_path / "t.parquet", trace_columns())
    raw = yaml.safe_load(trace_scenario(tmp_path, trace).read_text())
    raw["zoo"] = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, raw), "zoo: model(s) ['c'] are not in the trace")


def test_scenario_zoo_may_select_a_subset(capsys, tmp_path):
    """Not an error: a zoo that leaves out some of the trace's (declared) models routes between the rest."""
    trace = write_trace(tmp_path / "t.parquet", trace_columns(models=("a", "b", "c")), models=("a", "b", "c"))
    raw = yaml.safe_load(trace_scenario(tmp_path, trace).read_text())
    raw["zoo"] = [{"name": "a"}, {"name": "c"}]
    rc, captured = run_cli(capsys, tmp_path, write_yaml(tmp_path, raw))
    assert rc == 0, captured.err
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["models"] == ["a", "c"]


@pytest.mark.parametrize("meta, phrase", [
    (b"{not json", "corrupt 'messplus_sim' metadata"),
    (json.dumps({"format_version": 99, "models": ["a", "b"]}).encode(), "format version 99 is newer"),
])
def test_bad_metadata(capsys, tmp_path, meta, phrase):
    trace = write_trace(tmp_path / "t.parquet", trace_columns(), meta_bytes=meta)
    assert_one_line_error(capsys, tmp_path, trace_scenario(tmp_path, trace), phrase)


def damaged(kind: str, good: bytes) -> bytes:
    if kind == "truncated_half":
        return good[: len(good) // 2]
    if kind == "truncated_footer":
        return good[:-3]
    if kind == "empty":
        return b""
    if kind == "footer_length":
        return good[:-8] + bytes(4) + good[-4:]
    if kind == "garbage":
        return b"PAR1" + bytes(range(256)) * 4 + b"PAR1"
    if kind == "csv":
        return b"request_id,arrival_s\n0,0.0\n"
    raise KeyError(kind)


@pytest.mark.parametrize("kind", ["truncated_half", "truncated_footer", "empty", "footer_length", "garbage", "csv"])
def test_damaged_parquet(capsys, tmp_path, kind):
    good = write_trace(tmp_path / "good.parquet", trace_columns()).read_bytes()
    (tmp_path / "good.parquet").unlink()
    bad = tmp_path / "t.parquet"
    bad.write_bytes(damaged(kind, good))
    err = assert_one_line_error(capsys, tmp_path, trace_scenario(tmp_path, bad), "not a readable Parquet file")
    assert str(bad) in err


def test_corrupted_data_pages_are_detected(capsys, tmp_path):
    """Traces written by the simulator carry a CRC per page, checked on reading: a flipped byte anywhere in the
    data is an error, never different numbers. (Files from tools that write no checksums cannot be checked this
    way; their values still pass the full validation.)"""
    from sim.trace.format import load_trace, write_trace as sim_write_trace
    import polars as pl

    cols = trace_columns(200)
    cols["energy_j__a"] = np.random.default_rng(0).random(200) + 0.5  # incompressible pages
    path = tmp_path / "t.parquet"
    sim_write_trace(pl.DataFrame(cols), path, ["a", "b"], {"test": True})
    good = path.read_bytes()
    reference = load_trace(path)
    data_end = len(good) - 8 - int.from_bytes(good[-8:-4], "little")  # where the footer starts
    detected = 0
    for offset in range(4, data_end, max(1, (data_end - 4) // 60)):
        b = bytearray(good)
        b[offset] ^= 0xFF
        path.write_bytes(bytes(b))
        try:
            t = load_trace(path)
        except Exception as e:  # noqa: BLE001 -- the CLI test below checks it is a UserError
            assert type(e).__name__ == "UserError", (offset, e)
            detected += 1
            continue
        # a flip in padding or page statistics may be harmless: then the data must be exactly the same
        assert np.array_equal(t.outcomes.cost, reference.outcomes.cost), offset
        assert np.array_equal(t.outcomes.sat, reference.outcomes.sat), offset
        assert np.array_equal(t.arrival_s, reference.arrival_s), offset
    assert detected >= 50
    b = bytearray(good)
    b[data_end // 2] ^= 0xFF
    path.write_bytes(bytes(b))
    err = assert_one_line_error(capsys, tmp_path, trace_scenario(tmp_path, path), "not a readable Parquet file")
    assert "checksum" in err.lower() or "deserialize" in err.lower() or "parquet" in err.lower()


@pytest.mark.parametrize("where, phrase", [
    ("missing.parquet", "no such file"),
    (".", "is a directory, expected a Parquet file"),
])
def test_trace_path_missing_or_directory(capsys, tmp_path, where, phrase):
    assert_one_line_error(capsys, tmp_path, trace_scenario(tmp_path, tmp_path / where), phrase)


def test_arrivals_file_problems(capsys, tmp_path):
    raw = copy.deepcopy(BASE)
    raw["trace"]["synth"]["arrivals"] = {"process": "file", "path": str(tmp_path / "none.csv")}
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, raw), "arrivals file")
    (tmp_path / "a.csv").write_text("arrival_s\n0\n2\n1\n" + "3\n" * 100)
    raw["trace"]["synth"]["arrivals"] = {"process": "file", "path": str(tmp_path / "a.csv")}
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, raw), "must be finite, non-negative and sorted")


# --------------------------------------------------------------------------------------- the output folder

def test_output_under_a_regular_file(capsys, tmp_path):
    blocker = tmp_path / "plain.txt"
    blocker.write_text("keep me")
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, BASE), "cannot write there",
                          out=blocker / "results")
    assert blocker.read_text() == "keep me"


def test_output_is_a_regular_file(capsys, tmp_path):
    blocker = tmp_path / "plain.txt"
    blocker.write_text("keep me")
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, BASE), "exists and is not a directory", out=blocker)
    assert blocker.read_text() == "keep me"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into read-only folders")
def test_output_in_a_read_only_folder(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, BASE), "cannot write there", out=ro / "out")
    finally:
        ro.chmod(0o755)


def test_output_on_an_unwritable_filesystem(capsys, tmp_path):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    err = assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, BASE), "cannot write there",
                                out=Path("/proc/self/sim-results"))
    assert "/proc/self/sim-results" in err


def test_a_good_run_still_works(capsys, tmp_path):
    """The harness itself: the base scenario and a base trace run cleanly (so each case fails for its reason)."""
    rc, captured = run_cli(capsys, tmp_path, write_yaml(tmp_path, BASE))
    assert rc == 0, captured.err
    for metadata in (True, False):
        trace = write_trace(tmp_path / f"t{metadata}.parquet", trace_columns(), metadata=metadata)
        rc, captured = run_cli(capsys, tmp_path, trace_scenario(tmp_path, trace), "--overwrite",
                               out=tmp_path / f"o{metadata}")
        assert rc == 0, captured.err
