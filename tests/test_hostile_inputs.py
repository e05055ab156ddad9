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


# --------------------------------------------------------------------------------------- security (issue 12)
# What is written only under --out, what is never executed, what is never replaced: docs/invariants.md.

def group_scenario(names, name="groups") -> dict:
    raw = copy.deepcopy(BASE)
    raw["name"] = name
    raw["split_by"] = "group"
    raw["trace"]["synth"]["groups"] = {g: {"accuracy": {"a": 0.4, "b": 0.7}, "energy_j": {"a": 1.0, "b": 10.0}}
                                       for g in names}
    raw["policies"] = [{"kind": "always", "model": "a"}]
    return raw


def all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


HOSTILE_GROUPS = ["../../../escape", "/tmp/sim-absolute-escape", "..", ".", "x", "x/.", ".hidden", "a\\b",
                  "100%", "%2E", "ü b"]


def test_group_names_never_leave_the_output_folder(capsys, tmp_path):
    from sim.running.paths import decode_name

    out = tmp_path / "deep" / "er" / "out"
    scenario = write_yaml(tmp_path, group_scenario(HOSTILE_GROUPS))
    before = all_files(tmp_path)
    rc, captured = run_cli(capsys, tmp_path, scenario, out=out)
    assert rc == 0, captured.err
    outside = {f for f in all_files(tmp_path) - before if not f.startswith("deep/er/out")}
    assert outside == {"deep", "deep/er"}, outside
    assert not Path("/tmp/sim-absolute-escape").exists()
    folders = sorted((out / "groups").iterdir())
    assert len(folders) == len(HOSTILE_GROUPS)  # every group its own folder: 'x' and 'x/.' do not overwrite
    assert sorted(decode_name(f.name) for f in folders) == sorted(HOSTILE_GROUPS)  # reversible
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["groups"]) == sorted(HOSTILE_GROUPS)  # the real names stay in the files
    for f in folders:
        assert json.loads((f / "summary.json").read_text())["policies"]["always:a"]["requests"] > 0
    from sim.report import _run_folders

    assert sorted(_run_folders(out)) == folders  # the report finds every group's folder again


def test_group_names_from_a_trace_column_never_leave_the_output_folder(capsys, tmp_path):
    cols = trace_columns()
    cols["group"] = ["../../escape"] * 15 + ["/abs"] * 15
    trace = write_trace(tmp_path / "t.parquet", cols)
    raw = yaml.safe_load(trace_scenario(tmp_path, trace).read_text())
    raw["split_by"] = "group"
    out = tmp_path / "out"
    rc, captured = run_cli(capsys, tmp_path, write_yaml(tmp_path, raw), out=out)
    assert rc == 0, captured.err
    assert {p.name for p in tmp_path.iterdir()} == {"t.parquet", "s.yaml", "out"}
    assert {p.name for p in (out / "groups").iterdir()} == {"%2E.%2F..%2Fescape", "%2Fabs"}


def test_group_folders_that_would_collide_are_an_error(capsys, tmp_path):
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, group_scenario(["Mmlu", "mmlu"])),
                          "would share the folder")


@pytest.mark.parametrize("name", ["../../escape", "/tmp/sim-absolute-name", "..", ".", "a/b"])
def test_scenario_names_never_leave_the_results_folder(capsys, tmp_path, monkeypatch, name):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    raw = copy.deepcopy(BASE)
    raw["name"] = name
    scenario = write_yaml(tmp_path, raw)
    assert main(["run", str(scenario), "-q", "--no-report"]) == 0, capsys.readouterr().err
    made = list((work / "results").iterdir())
    assert len(made) == 1 and {p.name for p in work.iterdir()} == {"results"}
    assert {p.name for p in tmp_path.iterdir()} == {"work", "s.yaml"}
    assert not Path("/tmp/sim-absolute-name").exists()
    assert made[0].name.endswith("-" + made[0].name.rsplit("-", 1)[1]) and (made[0] / "summary.json").exists()
    raw["sweep"] = {"grid": {"alpha": [0.4, 0.5]}}
    write_yaml(tmp_path, raw)
    assert main(["sweep", str(scenario), "-q", "--workers", "1"]) == 0, capsys.readouterr().err
    assert len(list((work / "results").iterdir())) == 2 and {p.name for p in work.iterdir()} == {"results"}
    assert {p.name for p in tmp_path.iterdir()} == {"work", "s.yaml"}
    capsys.readouterr()


def test_default_folder_is_named_after_the_config(capsys, tmp_path, monkeypatch):
    """Issue 16: without --out a different configuration gets its own folder, and the run says where."""
    monkeypatch.chdir(tmp_path)
    scenario = write_yaml(tmp_path, BASE)
    for alpha in ("0.5", "0.6", "0.5"):
        assert main(["run", str(scenario), "--set", f"alpha={alpha}", "--no-report"]) == 0
        assert "results: results/hostile-" in capsys.readouterr().out
    assert len(list((tmp_path / "results").iterdir())) == 2


@pytest.mark.parametrize("name, phrase", [("n" * 300, "too long for a folder name"),
                                          ("ü" * 50, "too long for a folder name")])
def test_long_scenario_names_are_refused_before_simulating(capsys, tmp_path, name, phrase):
    raw = copy.deepcopy(BASE)
    raw["name"] = name
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, raw), phrase)


def test_long_group_names_are_refused_before_simulating(capsys, tmp_path):
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, group_scenario(["g" * 300, "h"])),
                          "too long for a folder name")


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_symlinked_output_that_leads_nowhere(capsys, tmp_path, kind):
    out = tmp_path / "out"
    if kind == "dangling":
        out.symlink_to(tmp_path / "missing")
    else:
        out.symlink_to(tmp_path / "out2")
        (tmp_path / "out2").symlink_to(out)
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, BASE),
                          "link to nothing" if kind == "dangling" else "link loop", out=out)


def special_files(tmp_path: Path) -> list[Path]:
    import stat

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    made = [fifo]
    if os.geteuid() == 0:  # a character device like /dev/null, made here so that a failure harms nothing
        dev = tmp_path / "dev"
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        made.append(dev)
    return made


def test_writers_never_replace_a_device_or_fifo(capsys, tmp_path):
    import stat

    for target in special_files(tmp_path):
        kind = os.stat(target).st_mode
        rc = main(["trace", "synth", "-o", str(target), "--requests", "10"])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "not a regular file" in err, err
        assert os.stat(target).st_mode == kind and not stat.S_ISREG(kind)
        rc, captured = run_cli(capsys, tmp_path, write_yaml(tmp_path, BASE), out=target)
        assert rc == 2 and captured.err.count("\n") == 1 and "not a directory" in captured.err, captured.err
        assert os.stat(target).st_mode == kind
    from sim.atomic import write_text as atomic_write_text
    from sim.errors import UserError

    with pytest.raises(UserError, match="not a regular file"):
        atomic_write_text(tmp_path / "fifo", "x")


def test_a_device_or_fifo_as_input_is_refused_at_once(capsys, tmp_path):
    import signal

    inputs = special_files(tmp_path) + ([Path("/dev/zero")] if Path("/dev/zero").exists() else [])
    signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(AssertionError("blocked on a special file")))
    signal.alarm(20)
    try:
        for special in inputs:
            assert_one_line_error(capsys, tmp_path, special, "not a regular file")
            assert_one_line_error(capsys, tmp_path, trace_scenario(tmp_path, special), "not a regular file")
            (tmp_path / "s.yaml").unlink()
    finally:
        signal.alarm(0)


BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))


@pytest.mark.parametrize("text, phrase", [
    (BOMB, "expands to more than"),
    ("name: x\nloop: &l [*l]\n", "refers to itself"),
    ("name: x\nalpha: " + "[" * 500 + "]" * 500 + "\n", "nests deeper than"),
    ("name: x\nalpha: " + "[" * 70 + "]" * 70 + "\n", "nests deeper than"),
    ("name: x\nseed: " + "7" * 5000 + "\n", "4300"),
])
def test_yaml_bombs_and_limits(capsys, tmp_path, text, phrase):
    import time

    t0 = time.monotonic()
    assert_one_line_error(capsys, tmp_path, write_text(tmp_path, text), phrase)
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("setting, phrase", [
    ("trace.synth.groups={g: {accuracy: {a: 0.4, b: 0.7}, energy_j: {a: 1, b: 2}}, g: {}}", "duplicate key 'g'"),
    ("alpha=" + "[" * 500 + "]" * 500, "nests deeper than"),
    ("alpha=" + BOMB.replace("\n", ", ").join("{}"), "expands to more than"),
    ("seed=" + "7" * 5000, "4300"),
])
def test_set_values_obey_the_file_rules(capsys, tmp_path, setting, phrase):
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, BASE), phrase, "--set", setting)


def test_trace_synth_spec_bombs(capsys, tmp_path):
    rc = main(["trace", "synth", str(write_text(tmp_path, BOMB)), "-o", str(tmp_path / "t.parquet")])
    err = capsys.readouterr().err
    assert rc == 2 and "expands to more than" in err and err.count("\n") == 1
    assert not (tmp_path / "t.parquet").exists()


def small_sweep(tmp_path: Path) -> Path:
    raw = copy.deepcopy(BASE)
    raw["sweep"] = {"seeds": "shared", "grid": {"alpha": [0.4, 0.5, 0.6]}}  # one trace shared by 3 cells
    return write_yaml(tmp_path, raw, "sweep.yaml")


def cell_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "cells").rglob("*"))
            if p.is_file() and p.name != "_complete.json"}


def test_the_sweep_trace_cache_never_runs_code(capsys, tmp_path):
    import pickle
    import shutil

    out = tmp_path / "sw"
    scenario = small_sweep(tmp_path)
    assert main(["sweep", str(scenario), "-o", str(out), "-q", "--workers", "1"]) == 0, capsys.readouterr().err
    expected = cell_files(out)
    entries = list((out / "traces").glob("*.npz"))
    assert len(entries) == 1 and not list((out / "traces").glob("*.pkl"))
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    planted = pickle.dumps(Payload())
    entry = entries[0]
    for damage in ("pickle_as_npz", "pickle_with_matching_hash", "truncated", "pickle_file_beside"):
        import hashlib

        if damage == "pickle_file_beside":
            entry.with_suffix(".pkl").write_bytes(planted)
        elif damage == "truncated":
            entry.write_bytes(entry.read_bytes()[:100])
        else:
            entry.write_bytes(planted)
            if damage == "pickle_with_matching_hash":
                entry.with_suffix(".sha256").write_text(hashlib.sha256(planted).hexdigest())
        shutil.rmtree(out / "cells")  # every cell runs again, from the cache
        assert main(["sweep", str(scenario), "-o", str(out), "-q", "--workers", "1"]) == 0
        capsys.readouterr()
        assert not marker.exists(), damage
        assert cell_files(out) == expected, damage  # same results: the damaged entry was not used
        from sim.running import trace_cache

        assert trace_cache.is_valid(entry), f"{damage}: the damaged entry was rebuilt"


def test_the_trace_cache_round_trips_a_trace_exactly(tmp_path, small_raw):
    import dataclasses

    from sim import config as cfg
    from sim.running import trace_cache
    from sim.running.runner import build_trace

    trace = build_trace(cfg.validate_scenario(small_raw))
    path = tmp_path / "k.npz"
    trace_cache.write_entry(path, trace)
    back = trace_cache.read_entry(path)
    for part in ("features", "outcomes", None):
        a, b = (getattr(trace, part), getattr(back, part)) if part else (trace, back)
        for f in dataclasses.fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if isinstance(x, np.ndarray):
                assert x.dtype == y.dtype and np.array_equal(x, y), f.name
            elif f.name not in ("features", "outcomes"):
                assert x == y, f.name


def test_a_second_writer_is_refused(capsys, tmp_path):
    from sim.running.paths import output_lock

    out = tmp_path / "out"
    run, sweep = write_yaml(tmp_path, BASE), small_sweep(tmp_path)
    with output_lock(out):  # another process writing there (flock conflicts between open files, same process too)
        before = snapshot(tmp_path)
        for argv in (["run", str(run), "--out", str(out), "-q"],
                     ["sweep", str(sweep), "--out", str(out), "-q", "--workers", "1"]):
            rc = main(argv)
            err = capsys.readouterr().err
            assert rc == 2 and err.count("\n") == 1 and "another sim process is writing there" in err, err
        assert snapshot(tmp_path) == before
    rc, captured = run_cli(capsys, tmp_path, write_yaml(tmp_path, BASE), out=out)  # free again
    assert rc == 0, captured.err


def test_a_writer_that_finds_the_lock_taken_late_writes_nothing(capsys, tmp_path, monkeypatch):
    """The lock is taken after the early checks; a second writer that loses the race there still leaves the
    first one's folder as it was."""
    from sim.running import paths

    out = tmp_path / "out"
    monkeypatch.setattr(paths, "lock_is_held", lambda out: False)  # as if both passed the early probe together
    with paths.output_lock(out):
        rc, captured = run_cli(capsys, tmp_path, write_yaml(tmp_path, BASE), out=out)
        assert rc == 2 and "another sim process is writing there" in captured.err
        assert {p.name for p in out.iterdir()} == {paths.LOCK_FILE}


def test_request_ids_of_2_63_or_more_are_refused(capsys, tmp_path):
    cols = trace_columns()
    cols["request_id"] = np.arange(30, dtype=np.uint64) + np.uint64(2**63)
    trace = write_trace(tmp_path / "t.parquet", cols)
    assert_one_line_error(capsys, tmp_path, trace_scenario(tmp_path, trace), "2^63 or more")


def test_a_model_name_with_a_trailing_newline_is_refused(capsys, tmp_path):
    from sim.trace.format import MODEL_NAME

    assert MODEL_NAME.match("a") and not MODEL_NAME.match("a\n")
    raw = copy.deepcopy(BASE)
    raw["trace"]["synth"]["groups"]["g"] = {"accuracy": {"a\n": 0.4, "b": 0.7}, "energy_j": {"a\n": 1.0, "b": 10.0}}
    raw["policies"] = [{"kind": "always", "model": "b"}]
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, raw), "may only use letters")


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_bytes().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.add(c)
            todo.append(c)
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sweep_workers_die_with_their_parent(tmp_path):
    """kill -9 of `sim sweep --workers 2`: the fork server and the workers end too, and a pipe reading the
    sweep's output (`sim sweep | tee`) reaches its end."""
    import select
    import signal
    import subprocess
    import sys
    import time

    raw = copy.deepcopy(BASE)
    raw["trace"]["synth"]["requests"] = 5000
    raw["sweep"] = {"grid": {"seed": list(range(1, 200))}}
    scenario = write_yaml(tmp_path, raw)
    out = tmp_path / "sw"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "sim", "sweep", str(scenario), "--out", str(out), "--workers", "2",
                             "-q"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while len(descendants(proc.pid)) < 3 or not list((out / "cells").glob("*")):  # the workers are at work
            assert time.monotonic() < deadline and proc.poll() is None, "the sweep did not start its workers"
            time.sleep(0.2)
        below = descendants(proc.pid)
        assert len(below) >= 3  # the fork server and two workers
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 20
        while any(running(p) for p in below):
            assert time.monotonic() < deadline, f"still running after the parent died: {below}"
            time.sleep(0.1)
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready and proc.stdout.read() == b"", "someone still holds the sweep's stdout"
        done = len(list((out / "cells").glob("*/_complete.json")))
        time.sleep(1.5)
        assert len(list((out / "cells").glob("*/_complete.json"))) == done, "cells still being written"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


# --------------------------------------------------------------------------------------- tracebacks found late (issue 12.9)

def with_column(name, value):
    def apply(cols):
        cols[name] = value(len(cols["request_id"])) if callable(value) else value
        return cols
    return apply


@pytest.mark.parametrize("case, change, phrase", [
    ("ragged embedding", with_column("embedding", lambda n: [[1.0, 2.0]] * (n - 1) + [[1.0]]), "equal-length"),
    ("null embedding row", with_column("embedding", lambda n: pa.array([[1.0, 2.0]] * (n - 1) + [None])),
     "equal-length"),
    ("string embedding", with_column("embedding", lambda n: ["x"] * n), "must hold a list of numbers"),
    ("integer text", with_column("text", lambda n: list(range(n))), "'text' must hold text"),
    ("binary text", with_column("text", lambda n: pa.array([b"ab"] * n, pa.binary())), "'text' must hold text"),
    ("list group", with_column("group", lambda n: [["a"]] * n), "'group' must hold text or integers"),
    ("non-UTF-8 group", with_column("group", lambda n: pa.array([b"\xff\xfe"] * n, pa.binary())),
     "'group' must hold text or integers"),
])
def test_trace_columns_of_the_wrong_type(capsys, tmp_path, case, change, phrase):
    trace = write_trace(tmp_path / "t.parquet", change(trace_columns()))
    assert_one_line_error(capsys, tmp_path, trace_scenario(tmp_path, trace), phrase)
    if "group" in case:  # `trace info` reads the group column too
        rc = main(["trace", "info", str(trace)])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and phrase in err, err


def test_duplicate_column_names(capsys, tmp_path):
    t = pa.table(trace_columns())
    t = pa.Table.from_arrays(list(t.columns) + [t.column("group")], names=t.column_names + ["group"])
    pq.write_table(t, tmp_path / "t.parquet")
    assert_one_line_error(capsys, tmp_path, trace_scenario(tmp_path, tmp_path / "t.parquet"), "more than once")
    assert main(["trace", "info", str(tmp_path / "t.parquet")]) == 2
    assert "more than once" in capsys.readouterr().err


@pytest.mark.parametrize("meta, phrase", [
    (b'{"format_version": 1, "models": 5}', "models must be a list of names"),
    (b'{"format_version": "2", "models": ["a", "b"]}', "format_version must be an integer"),
    (b'[1, 2]', "must be a JSON object, found list"),
    (b'null', "must be a JSON object, found NoneType"),
    (b'{"format_version": 1, "models": ["a", "b"], "cost_unit": 3}', "cost_unit must be text"),
])
def test_malformed_metadata(capsys, tmp_path, meta, phrase):
    trace = write_trace(tmp_path / "t.parquet", trace_columns(), meta_bytes=meta)
    assert_one_line_error(capsys, tmp_path, trace_scenario(tmp_path, trace), phrase)
    assert main(["trace", "info", str(trace)]) == 2
    assert phrase in capsys.readouterr().err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    raw = copy.deepcopy(BASE)
    assert main(["run", str(write_yaml(root, raw)), "--out", str(root / "run"), "-q", "--no-report"]) == 0
    raw["sweep"] = {"grid": {"alpha": [0.4, 0.5]}}
    assert main(["sweep", str(write_yaml(root, raw, "sw.yaml")), "--out", str(root / "sweep"), "-q",
                 "--workers", "1"]) == 0
    return root


@pytest.mark.parametrize("folder, file, damage", [
    ("run", "summary.json", b"{nope"),
    ("run", "summary.json", b""),
    ("run", "requests.parquet", "half"),
    ("sweep", "manifest.parquet", b"garbage" * 10),
])
def test_report_on_a_damaged_folder(capsys, tmp_path, finished_run, folder, file, damage):
    import shutil

    d = tmp_path / folder
    shutil.copytree(finished_run / folder, d)
    good = (d / file).read_bytes()
    (d / file).write_bytes(good[:len(good) // 2] if damage == "half" else damage)
    before = snapshot(tmp_path)
    rc = main(["report", str(d)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "damaged or incomplete result files" in err, err
    assert snapshot(tmp_path) == before


def test_seed_out_of_range_for_trace_synth(capsys, tmp_path):
    rc = main(["trace", "synth", "-o", str(tmp_path / "t.parquet"), "--seed", "-1", "--requests", "10"])
    err = capsys.readouterr().err
    assert rc == 2 and "must be a whole number from 0" in err and not (tmp_path / "t.parquet").exists()


@pytest.mark.parametrize("flag, value", [("--rows", "1000000000000"), ("--rows", "0"), ("--seed", "-1")])
def test_compose_counts_out_of_range(capsys, tmp_path, flag, value):
    out = tmp_path / "t.parquet"
    rc = main(["trace", "compose", "--outcomes", "a.parquet", "--arrivals", "b.parquet", "-o", str(out), flag, value])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith(f"error: {flag} {value}:"), err
    assert not out.exists()


def test_more_requests_than_memory_is_refused_before_starting(capsys, tmp_path, monkeypatch):
    from sim import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * 10**9)  # the same on every machine
    raw = copy.deepcopy(BASE)
    raw["trace"]["synth"]["requests"] = 1_000_000_000
    assert_one_line_error(capsys, tmp_path, write_yaml(tmp_path, raw), "GB of memory")
    rc = main(["trace", "synth", "-o", str(tmp_path / "t.parquet"), "--requests", "1000000000"])
    assert rc == 2 and "GB of memory" in capsys.readouterr().err and not (tmp_path / "t.parquet").exists()
