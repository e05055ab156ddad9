"""Interruptions: killing ``python -m sim run`` at any moment never leaves a half-written or mixed-up folder.

A scenario that takes a few seconds runs once to completion; then runs of the same scenario into the same
folder are killed with SIGINT, SIGTERM and SIGKILL at random moments and in the middle of writing. After
each kill the folder holds only complete files, byte-identical to the completed run's (a run is
deterministic, so a replaced file is the same file); SIGINT and SIGTERM leave no temporary file and exit
130 / 143 with one line; SIGKILL can leave only hidden ``.<name>.<random>.tmp`` files, which nothing reads and
the next run to complete in the folder removes. A run of a different scenario into the folder is refused unless
``--overwrite``; an ``--overwrite`` run killed half-way never leaves new files under the old scenario's
``scenario.resolved.yaml`` stamp. Sweeps killed at random moments resume to byte-identical results.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = {"requests.parquet", "occupancy.parquet", "summary.json", "scenario.resolved.yaml", "report.html"}
TEMP = re.compile(r"^\.(?P<name>[^/]+)\.[^/.]+\.tmp$")
# report.html is rebuilt from the results and not byte-reproducible (it is checked for completeness only)
DETERMINISTIC = RESULTS - {"report.html"}
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}

SCENARIO = {
    "name": "interrupt",
    "seed": 3,
    "alpha": 0.55,
    "trace": {"synth": {
        "requests": 12000,
        "arrivals": {"process": "poisson", "rate": 20.0},
        "groups": {"g": {"accuracy": {"s": 0.4, "m": 0.6, "l": 0.7}, "energy_j": {"s": 1.0, "m": 5.0, "l": 20.0}}},
        "latency_s": {"s": 0.1, "m": 0.3, "l": 0.8},
        "text": {"tokens": 4},
    }},
    "zoo": [{"name": "s", "slots": 4}, {"name": "m", "slots": 4}, {"name": "l", "slots": 8}],
    "feedback": {"rate": 0.8, "delay": {"dist": "exponential", "mean_s": 1.0}},
    "engine": {"mode": "des", "progress": False},
    "policies": [
        {"kind": "messplus", "V": 0.01, "c": 0.2, "predictor": {"kind": "group_beta"}},
        {"kind": "always", "model": "s"},
        {"kind": "always", "model": "l"},
        {"kind": "random_with_constraint"},
    ],
}


def start(scenario: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "sim", "run", str(scenario), "--out", str(out), "-q", *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def run_to_completion(scenario: Path, out: Path, *extra: str) -> float:
    t0 = time.monotonic()
    rc, err = finish(start(scenario, out, *extra))
    assert rc == 0, err
    return time.monotonic() - t0


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def check_complete(path: Path) -> None:
    """Each kind of result file parses in full."""
    if path.suffix == ".parquet":
        pq.read_table(path, page_checksum_verification=True)
    elif path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".yaml":
        yaml.safe_load(path.read_text())
    elif path.suffix == ".html":
        assert path.read_text().rstrip().endswith("</html>")


def temp_files(out: Path) -> set[str]:
    return {n for n in os.listdir(out) if TEMP.match(n)} if out.exists() else set()


def assert_clean(out: Path, sig: int, rc: int, err: str, expected: dict[str, bytes],
                 temps_before: set[str] = frozenset()) -> None:
    """After a killed run of the scenario whose complete results are ``expected``."""
    # -sig: the signal arrived during interpreter start-up, before the CLI installed its handlers (nothing written)
    assert rc in (0, EXIT[sig], -sig), (sig, rc, err)
    if sig != signal.SIGKILL:
        assert "Traceback" not in err, err
        if rc == EXIT[sig]:
            assert err.strip().splitlines() == ["interrupted: partial outputs were discarded, completed files are intact"]
    # The output lock (docs/invariants.md S4) is removed by its writer; only a SIGKILL (now or earlier) leaves it
    names = {p.name for p in out.iterdir()} - {".sim.lock"}
    temps = {n for n in names if TEMP.match(n)}
    if sig != signal.SIGKILL:  # (an earlier SIGKILL's leftovers may remain until a run completes here)
        assert not temps - temps_before, f"temporary files left after {signal.Signals(sig).name}: {temps}"
    assert all(TEMP.match(n).group("name") in RESULTS for n in temps)
    assert names - temps <= RESULTS, names
    for name in names - temps:
        check_complete(out / name)
        if name in DETERMINISTIC:
            assert (out / name).read_bytes() == expected[name], f"{name} differs from the completed run's"


def kill_at(scenario: Path, out: Path, sig: int, delay: float, *extra: str) -> tuple[int, str]:
    proc = start(scenario, out, *extra)
    time.sleep(delay)
    proc.send_signal(sig)
    return finish(proc)


def kill_while_writing(scenario: Path, out: Path, sig: int, which: str, *extra: str) -> tuple[int, str]:
    """Send ``sig`` as soon as a temporary file for ``which`` appears: the run is then writing results."""
    old = temp_files(out)  # an earlier SIGKILL's leftovers do not count
    proc = start(scenario, out, *extra)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if any(n.startswith(f".{which}.") for n in temp_files(out) - old):
            break
        time.sleep(0.002)
    if proc.poll() is None:
        proc.send_signal(sig)
    return finish(proc)


@pytest.fixture(scope="module")
def completed(tmp_path_factory):
    """One complete run: the folder, the scenario file and the bytes of every result file."""
    root = tmp_path_factory.mktemp("interrupt")
    scenario = root / "s.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO, sort_keys=False))
    out = root / "out"
    run_to_completion(scenario, out)  # the first run may compile numba kernels: time the second
    expected = files(out)
    assert set(expected) == RESULTS
    duration = run_to_completion(scenario, out)
    assert {k: v for k, v in files(out).items() if k in DETERMINISTIC} == \
        {k: v for k, v in expected.items() if k in DETERMINISTIC}, "a re-run must rewrite identical files"
    return root, scenario, out, expected, duration


SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]


def kill_randomly(completed, rounds: int, seed: int) -> None:
    root, scenario, out, expected, duration = completed
    rng = random.Random(seed)
    outcomes = []
    for sig in SIGNALS * rounds:
        delay = rng.uniform(0.6, max(0.7, duration * 0.9))
        before = temp_files(out)
        rc, err = kill_at(scenario, out, sig, delay)
        assert_clean(out, sig, rc, err, expected, before)
        outcomes.append((signal.Signals(sig).name, round(delay, 2), rc))
    assert any(rc != 0 for *_, rc in outcomes), outcomes  # at least some kills landed mid-run


def test_kills_at_random_moments_leave_complete_files(completed):
    kill_randomly(completed, rounds=1, seed=20240607)


@pytest.mark.slow
def test_many_kills_at_random_moments(completed):
    kill_randomly(completed, rounds=5, seed=int(time.time()))


WRITING = [(signal.SIGINT, "requests.parquet"), (signal.SIGTERM, "requests.parquet"),
           (signal.SIGKILL, "requests.parquet"), (signal.SIGTERM, "summary.json"),
           pytest.param(signal.SIGINT, "summary.json", marks=pytest.mark.slow),
           pytest.param(signal.SIGKILL, "summary.json", marks=pytest.mark.slow),
           pytest.param(signal.SIGTERM, "report.html", marks=pytest.mark.slow),
           pytest.param(signal.SIGKILL, "occupancy.parquet", marks=pytest.mark.slow)]


@pytest.mark.parametrize("sig, which", WRITING, ids=lambda v: getattr(v, "name", v))
def test_kill_while_writing(completed, sig, which):
    root, scenario, out, expected, duration = completed
    before = temp_files(out)
    rc, err = kill_while_writing(scenario, out, sig, which)
    assert_clean(out, sig, rc, err, expected, before)
    if which in ("requests.parquet", "occupancy.parquet"):  # slow to write: the signal lands inside the write
        assert rc == EXIT[sig], (rc, err)


def test_a_complete_run_removes_the_temporaries_of_a_killed_one(completed):
    """A SIGKILL cannot clean up; the next run that completes in the folder removes its leftovers."""
    root, scenario, out, expected, duration = completed
    rc, err = kill_while_writing(scenario, out, signal.SIGKILL, "requests.parquet")
    assert rc == EXIT[signal.SIGKILL], err
    assert temp_files(out), "the kill should have left a temporary file to clean up"
    proc = subprocess.run([sys.executable, "-m", "sim", "run", str(scenario), "--out", str(out), "-q"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert temp_files(out) == set()
    assert {k: v for k, v in files(out).items() if k != "report.html"} == \
        {k: v for k, v in expected.items() if k != "report.html"}


def test_kill_in_a_fresh_folder_leaves_no_result_set(completed, tmp_path):
    """Killed before the end, a run into a new folder leaves no scenario.resolved.yaml, the 'complete' stamp."""
    root, scenario, out, expected, duration = completed
    fresh = tmp_path / "fresh"
    for sig in (signal.SIGINT, signal.SIGTERM):
        rc, err = kill_while_writing(scenario, fresh, sig, "requests.parquet")
        assert rc == EXIT[sig], err
        assert not fresh.exists() or not (fresh / "scenario.resolved.yaml").exists()
        if fresh.exists():
            assert_clean(fresh, sig, rc, err, expected)


def test_different_scenario_refused_without_overwrite(completed):
    root, scenario, out, expected, duration = completed
    proc = subprocess.run([sys.executable, "-m", "sim", "run", str(scenario), "--out", str(out), "-q",
                           "--set", "alpha=0.6"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: output {out}: holds results of a different scenario; use --overwrite or another --out"]
    now = files(out)
    assert {k: now[k] for k in DETERMINISTIC} == {k: expected[k] for k in DETERMINISTIC}


def test_overwrite_killed_midway_never_mixes_scenarios(completed, tmp_path):
    """--overwrite replaces the old results; killed half-way, the old stamp is gone before any new file lands."""
    root, scenario, out, expected, duration = completed
    folder = tmp_path / "both"
    folder.mkdir()
    for name, data in expected.items():
        (folder / name).write_bytes(data)
    other = tmp_path / "other"
    run_to_completion(scenario, other, "--set", "alpha=0.6")
    expected_other = files(other)
    old_stamp, new_stamp = expected["scenario.resolved.yaml"], expected_other["scenario.resolved.yaml"]
    assert old_stamp != new_stamp
    for sig, which in ((signal.SIGTERM, "requests.parquet"), (signal.SIGKILL, "summary.json"),
                       (signal.SIGINT, "report.html")):
        rc, err = kill_while_writing(scenario, folder, sig, which, "--set", "alpha=0.6", "--overwrite")
        assert rc in (0, EXIT[sig]), err
        names = {p.name for p in folder.iterdir() if not TEMP.match(p.name)}
        stamp = (folder / "scenario.resolved.yaml").read_bytes() if "scenario.resolved.yaml" in names else None
        assert stamp in (None, old_stamp, new_stamp)
        if stamp == old_stamp:  # nothing was replaced yet
            assert {k: v for k, v in files(folder).items() if not TEMP.match(k)} == expected
        if stamp != new_stamp:  # an old report must not survive next to new results either
            assert "report.html" not in names or stamp == old_stamp
        for name in names:  # every file is complete and belongs to one of the two scenarios
            check_complete(folder / name)
            data = (folder / name).read_bytes()
            if name not in DETERMINISTIC:
                continue
            assert data in (expected.get(name), expected_other.get(name)), name
            if stamp == new_stamp:
                assert data == expected_other[name], f"{name} is not the new scenario's under the new stamp"
        for n in os.listdir(folder):  # start the next kill from the old results again
            (folder / n).unlink()
        for name, data in expected.items():
            (folder / name).write_bytes(data)


def test_atomic_write_interrupted_at_every_step(tmp_path, monkeypatch):
    """In process: an interruption right after the temporary file is created, in the middle of writing, and
    just before the rename, each leaves the old file intact and no temporary file."""
    import sim.atomic as atomic

    target = tmp_path / "summary.json"
    target.write_text("old")
    real_close = os.close

    def close_then_interrupt(fd):  # the moment between creating the temp file and handing it out
        real_close(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "close", close_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["summary.json"]

    with pytest.raises(KeyboardInterrupt), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["summary.json"]

    def replace_interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", replace_interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_json(target, {"new": True})
    monkeypatch.undo()
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["summary.json"]


def test_result_files_follow_the_umask(tmp_path):
    """Results are ordinary files (0666 minus the umask), not private 0600 temporaries."""
    from sim.atomic import write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupt_landing_in_a_finaliser_is_honoured(monkeypatch, capsys, sig, code):
    """Python swallows an exception raised inside ``__del__`` (pyarrow's ParquetWriter has one), printing
    'Exception ignored ... Traceback'. The CLI notes such an interrupt instead and exits as interrupted."""
    import sim.cli as cli
    import sim.cli.run as run_command

    class Finaliser:
        def __del__(self):
            os.kill(os.getpid(), sig)  # the handler runs at the next bytecode: still inside __del__
            for _ in range(100):
                pass

    def command(args):
        Finaliser()
        return 0

    monkeypatch.setattr(run_command, "main", command)
    before = signal.getsignal(signal.SIGTERM), sys.unraisablehook
    assert cli.main(["run", "unused.yaml"]) == code
    err = capsys.readouterr().err
    assert err.splitlines() == ["interrupted: partial outputs were discarded, completed files are intact"], err
    assert (signal.getsignal(signal.SIGTERM), sys.unraisablehook) == before  # restored


# ---------------------------------------------------------------- sweeps


def test_sweep_killed_at_random_moments_resumes_to_the_same_results(small_raw, tmp_path):
    """Kill ``sim sweep`` with SIGINT, SIGTERM and SIGKILL at random moments, rerunning after each; the last run
    completes, and the folder then equals an uninterrupted sweep's, byte for byte (timing fields aside)."""
    import copy

    from test_sweep import tree_bytes

    raw = copy.deepcopy(small_raw)
    raw["trace"]["synth"]["requests"] = 3000
    raw["policies"] = [p for p in raw["policies"] if p["kind"] in ("messplus", "always")]
    raw["sweep"] = {"grid": {"alpha": [0.4, 0.5, 0.6], "policies.messplus.V": [0.001, 0.01, 0.1, 1.0]}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))

    def sweep(out: Path) -> list[str]:
        return [sys.executable, "-m", "sim", "sweep", str(path), "--out", str(out), "-q", "--workers", "1"]

    # a first run compiles the kernels when they changed: time a warm one, or every kill lands after the end
    warm = subprocess.run(sweep(tmp_path / "warm"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert warm.returncode == 0, warm.stderr
    t0 = time.monotonic()
    fresh = subprocess.run(sweep(tmp_path / "fresh"), cwd=REPO, capture_output=True, text=True, timeout=300)
    duration = time.monotonic() - t0
    assert fresh.returncode == 0, fresh.stderr
    out = tmp_path / "killed"
    rng = random.Random(20261128)
    outcomes = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL, signal.SIGKILL):
        proc = subprocess.Popen(sweep(out), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.3, 0.7) * duration)  # later runs skip finished cells, so they end sooner
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
        outcomes.append((signal.Signals(sig).name, proc.returncode))
        if sig != signal.SIGKILL:
            assert "Traceback" not in err, err
        if (out / "manifest.parquet").exists():  # a manifest on disk is always a complete file
            pq.read_table(out / "manifest.parquet")
    done = subprocess.run(sweep(out), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    killed = {k: v for k, v in tree_bytes(out).items() if not TEMP.match(Path(k).name)}  # a SIGKILL's leftovers
    assert killed == tree_bytes(tmp_path / "fresh"), outcomes
    assert any(rc != 0 for _, rc in outcomes), outcomes  # the kills landed mid-sweep
