"""Sweeps: run a scenario over a grid of configurations, locally in a process pool or on a Ray cluster.

Layout of a sweep folder ``DIR``::

    DIR/sweep.yaml                 the base scenario (resolved) and its sweep block, for the record
    DIR/cells/<cell-id>/           one folder per cell: the result files `sim run` writes for the cell's
                                   config (not report.html), plus `_complete.json`, written last, atomically
    DIR/traces/<trace-key>.npz     traces shared by several cells, built once (private cache; with
                                   <trace-key>.sha256, never unpickled: sim/running/trace_cache.py)
    DIR/manifest.parquet           one row per cell x policy (x group for split_by: group runs)

Design decisions:

- A cell id is the first 16 hex digits of the SHA-256 of the cell's resolved config (``scenario.resolved.yaml``),
  so the same configuration always lands in the same folder, whatever the sweep around it.
- A cell's seed comes from the root seed and the cell's own coordinates (``sweep.seeds: derived``,
  :func:`derive_seed`) or is the root seed (``shared``); never from execution order. Every stream of the run
  is then ``SeedSequence(seed, name)`` as everywhere else (sim/rng.py).
- Resumable: a cell counts as done only when ``_complete.json`` exists; it is written last, by an atomic
  rename. A folder without it is a half-written cell: it is wiped and the cell is run again.
- Cells sharing a synthetic trace (same trace spec, seed, zoo, events) get it built once, stored as a file
  under ``DIR/traces`` and passed to workers as a path (never as a pickled argument); a trace file named by
  the scenario is a path already. Each worker keeps the last few traces it loaded, and cells go out sorted by
  trace in small chunks, so a worker loads a trace about once.
- The local backend warms numba (compiles or loads every kernel) in the parent before forking, so workers
  never race to compile. A failing cell is recorded (status ``failed``, one-line error in the manifest,
  traceback in ``cells/<id>/_error.txt``) and the sweep goes on.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import shutil
import signal
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from sim import config as cfg
from sim.atomic import atomic_path, write_json, write_text
from sim.errors import UserError
from sim.running import paths, trace_cache

MARKER = "_complete.json"
ERROR_FILE = "_error.txt"
# Fields that never change the trace that build_trace makes (everything else is conservatively in the key).
NOT_IN_TRACE = {"name", "description", "alpha", "feedback", "engine", "split_by", "policies", "expect", "sweep"}
LEAD_COLUMNS = ["cell_id", "cell_index", "status", "error", "case", "policy", "group"]


# ---------------------------------------------------------------- expansion

@dataclass(frozen=True)
class Cell:
    index: int  # position in the expansion order: the manifest's row order
    case: str | None
    coords: tuple[tuple[str, Any], ...]  # every assignment that makes this cell, in application order
    scenario: cfg.Scenario
    resolved: str  # scenario.resolved.yaml of the cell
    cell_id: str
    trace_key: str
    config: dict = field(repr=False, compare=False)  # the resolved config flattened to dotted keys


def set_path(data: dict, path: str, value: Any, where: str) -> None:
    """Assign ``value`` at a dotted key path, exactly as ``--set`` does (:func:`sim.config.assign`)."""
    try:
        cfg.assign(data, path, value)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None


def _axes_rows(grid: dict[str, list], zipped: dict[str, list]) -> list[list[tuple[str, Any]]]:
    """Assignments of every combination: the zip rows x the grid product (last grid key fastest)."""
    zip_rows = [list(zip(zipped, vals)) for vals in zip(*zipped.values())] if zipped else [[]]
    grid_rows = [list(zip(grid, vals)) for vals in itertools.product(*grid.values())] if grid else [[]]
    return [z + g for z in zip_rows for g in grid_rows]


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def derive_seed(root: int, coords: list[tuple[str, Any]]) -> int:
    """A cell's seed: ``SeedSequence(root, spawn_key = SHA-256 of the coordinates)``, 63 bits."""
    digest = hashlib.sha256(canonical(sorted([k, v] for k, v in coords)).encode()).digest()
    words = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 32, 4))
    ss = np.random.SeedSequence(entropy=int(root), spawn_key=words)
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def flatten(obj: Any, prefix: str = "", out: dict | None = None) -> dict:
    """Nested mappings and lists of mappings to dotted keys; lists of scalars become JSON text."""
    out = {} if out is None else out
    if isinstance(obj, dict):
        if not obj and prefix:
            out[prefix] = None
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}.{i}", out)
    elif isinstance(obj, (list, tuple)):
        out[prefix] = canonical(list(obj))
    else:
        out[prefix] = obj
    return out


def trace_key(scenario: cfg.Scenario) -> str:
    dump = scenario.model_dump(mode="json", exclude=NOT_IN_TRACE)
    dump["profiled"] = scenario.profiled  # without GPU profiles the trace leaves out token counts
    return hashlib.sha256(canonical(dump).encode()).hexdigest()[:16]


def expand(raw: dict, where: str = "scenario") -> tuple[cfg.Scenario, list[Cell]]:
    """The base scenario and every cell of its ``sweep:`` block, in expansion order."""
    base = cfg.validate_scenario(raw, where)
    spec = base.sweep
    if spec is None:
        raise UserError(f"{where}: has no 'sweep:' block (see the README's Sweeps section)")
    body = {k: v for k, v in raw.items() if k != "sweep"}
    cases = spec.cases or [None]
    cells: list[Cell] = []
    seen: dict[str, int] = {}
    top = _axes_rows(spec.grid, spec.zip)
    for ci, case in enumerate(cases):
        label = None if case is None else (case.name if case.name is not None else str(ci))
        own = [list(case.set.items())] if case is not None else [[]]
        inner = _axes_rows(case.grid, case.zip) if case is not None else [[]]
        for assignments in ([*own[0], *a, *b] for a in inner for b in top):
            index = len(cells)
            coords = [(k, v) for k, v in assignments]
            cell_where = f"{where}: sweep cell {index}" + (f" (case {label})" if label is not None else "")
            data = copy.deepcopy(body)
            for key, value in coords:
                set_path(data, key, value, cell_where)
            scenario = cfg.validate_scenario(data, cell_where)
            if spec.seeds == "derived":
                seed = derive_seed(scenario.seed, [(k, v) for k, v in coords if k != "seed"])
                scenario = cfg.validate_scenario({**data, "seed": seed}, cell_where)
            resolved = cfg.resolved_yaml(scenario)
            cell_id = hashlib.sha256(resolved.encode()).hexdigest()[:16]
            if cell_id in seen:
                raise UserError(f"{cell_where}: resolves to the same configuration as cell {seen[cell_id]} "
                                f"(an axis that changes nothing?)")
            seen[cell_id] = index
            config = flatten(scenario.model_dump(mode="json"))
            cells.append(Cell(index, label, tuple(coords), scenario, resolved, cell_id, trace_key(scenario), config))
    return base, cells


# ---------------------------------------------------------------- running one cell (in a worker)

_TRACES: OrderedDict[str, Any] = OrderedDict()
_TRACE_CACHE_SIZE = 4
_CRASH_AFTER = "SIM_SWEEP_CRASH_AFTER"  # fault injection for the resumability test: die inside cell k+1
_cells_done_here = 0


def _cached_trace(key: str, make: Callable[[], Any]):
    """This worker's last few traces, by trace key (a trace is read-only once built)."""
    if key in _TRACES:
        _TRACES.move_to_end(key)
        return _TRACES[key]
    trace = make()
    _TRACES[key] = trace
    while len(_TRACES) > _TRACE_CACHE_SIZE:
        _TRACES.popitem(last=False)
    return trace


def build_shared_trace(out_dir: str, key: str, resolved: str) -> tuple[str, str | None]:
    """Build one shared trace and store it at ``DIR/traces/<key>.npz`` unless a valid entry is there already (a
    damaged or planted one is rebuilt); returns (key, error or None)."""
    from sim.running.runner import build_trace

    path = trace_cache.entry_path(Path(out_dir) / "traces", key)
    try:
        if not trace_cache.is_valid(path):
            trace = build_trace(cfg.validate_scenario(cfg.parse_yaml(resolved, "cell")))
            trace_cache.write_entry(path, trace)
        return key, None
    except Exception as e:  # the cells of this trace build it themselves and report the error
        return key, f"{type(e).__name__}: {e}"


def metric_rows(summary: dict) -> list[dict]:
    """One flat dict per policy (and per group for split_by: group) from a run's summary.json."""
    rows = []
    groups = summary["groups"].items() if summary.get("split_by") == "group" else [(None, summary)]
    for g, s in groups:
        for label, p in s["policies"].items():
            row = {"policy": label, "group": g, "run_alpha": s.get("alpha"), "cost_unit": s.get("cost_unit")}
            for k, v in flatten(p).items():
                row[k] = v
            rows.append(row)
    return rows


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def run_cell(out_dir: str, job: dict) -> dict:
    """Run one cell into ``DIR/cells/<id>``; never raises for a failing cell (its error is returned)."""
    global _cells_done_here
    from sim.running.runner import run_scenario

    cell_dir = Path(out_dir) / "cells" / job["cell_id"]
    if (cell_dir / MARKER).exists():
        return json.loads((cell_dir / MARKER).read_text(encoding="utf-8")) | {"status": "ok"}
    if cell_dir.exists():
        shutil.rmtree(cell_dir)  # a half-written cell from an interrupted sweep
    t0 = time.perf_counter()
    try:
        # The cell's text is our own safe_dump: libyaml's parser (when PyYAML has it) reads it into the same data
        # as the pure-Python one, several times faster (docs/performance.md).
        scenario = cfg.validate_scenario(yaml.load(job["resolved"], Loader=_FAST_LOADER))
        trace = None
        if job.get("trace_path"):  # a shared synthetic trace, built once (None if its entry is missing or damaged)
            trace = _cached_trace(job["trace_key"], lambda: trace_cache.read_entry(Path(job["trace_path"])))
            if trace is None:
                _TRACES.pop(job["trace_key"], None)
        if trace is None and scenario.trace.path is not None:  # a trace file: read once per worker
            from sim.running.runner import build_trace

            trace = _cached_trace(job["trace_key"], lambda: build_trace(scenario))
        scenario = scenario.model_copy(update={"engine": scenario.engine.model_copy(update={"progress": False})}) \
            if scenario.engine.progress else scenario
        result = run_scenario(scenario, cell_dir, overwrite=True, trace=trace)
        summary = result.summary
        crash = os.environ.get(_CRASH_AFTER)
        if crash is not None and _cells_done_here >= int(crash):
            os.kill(os.getpid(), signal.SIGKILL)  # results written, marker not: a half-written cell
        done = {"cell_id": job["cell_id"], "rows": metric_rows(summary), "wall_s": round(time.perf_counter() - t0, 6)}
        (cell_dir / ERROR_FILE).unlink(missing_ok=True)  # an earlier attempt's error is no longer true
        write_json(cell_dir / MARKER, done)  # last, atomically: from now on the cell counts
        _cells_done_here += 1
        return done | {"status": "ok"}
    except Exception as e:
        message = str(e).splitlines()[0] if str(e) else ""
        error = f"{type(e).__name__}: {message}" if not isinstance(e, UserError) else message
        try:
            write_text(cell_dir / ERROR_FILE, traceback.format_exc())
        except OSError:
            pass
        return {"cell_id": job["cell_id"], "status": "failed", "error": error, "rows": []}


def run_chunk(out_dir: str, jobs: list[dict]) -> list[dict]:
    return [run_cell(out_dir, job) for job in jobs]


def _worker_init(parent_pid: int | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if parent_pid is not None:
        die_with(parent_pid)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def die_with(parent_pid: int, interval_s: float = 0.5) -> None:
    """End this worker when the sweep that started it ends, even by ``kill -9`` (which it cannot catch): a
    worker must not go on writing cells, nor hold the terminal or a pipe (``sim sweep | tee``) open.

    Two mechanisms: Linux's ``PR_SET_PDEATHSIG`` (SIGKILL when the process that forked us dies: the fork
    server, which itself ends when the sweep does), and a thread that checks every ``interval_s`` that the
    sweep's process still runs (any POSIX system, and the case of a fork server that outlives the sweep)."""
    import sys
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while _alive(parent_pid):
            time.sleep(interval_s)
        os._exit(1)

    if not _alive(parent_pid):
        os._exit(1)
    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


# ---------------------------------------------------------------- numba warm-up

WARM_SCENARIO = {
    "name": "warm", "seed": 1, "alpha": 0.5,
    "trace": {"synth": {
        "requests": 64, "arrivals": {"process": "poisson", "rate": 4.0},
        "groups": {"a": {"accuracy": {"s": 0.4, "l": 0.7}, "energy_j": {"s": 1.0, "l": 5.0}},
                   "b": {"accuracy": {"s": 0.3, "l": 0.6}, "energy_j": {"s": 1.0, "l": 5.0}}},
        "latency_s": {"s": 0.1, "l": 0.3}, "text": {"tokens": 4}}},
    "zoo": [{"name": "s", "slots": 1}, {"name": "l", "slots": 1}],
    "feedback": {"rate": 0.5, "delay": {"dist": "exponential", "mean_s": 1.0}},
    "engine": {"mode": "des", "progress": False},
    "policies": [
        {"kind": "messplus", "c": 1.0, "predictor": {"kind": "logistic"}},
        {"kind": "messplus", "name": "b", "c": 1.0, "predictor": {"kind": "group_beta"}},
        {"kind": "messplus", "name": "o", "c": 1.0, "predictor": {"kind": "oracle"}},
        {"kind": "threshold", "weak": "s", "strong": "l", "predictor": {"kind": "logistic"}},
        {"kind": "always", "model": "s"},
        {"kind": "random_with_constraint"},
        {"kind": "offline_optimum"},
        {"kind": "oracle_hindsight"},
    ],
}


def warm_numba() -> None:
    """Compile (or load from the on-disk cache) every kernel a run uses, in both engine modes, for 0/1 labels
    (stored as uint8) and for fractional ones (float64): each is its own compiled variant."""
    from dataclasses import replace

    from sim.running.runner import build_trace, simulate_scenario

    for mode in ("des", "sequential"):
        raw = copy.deepcopy(WARM_SCENARIO)
        raw["engine"]["mode"] = mode
        scenario = cfg.validate_scenario(raw, "warm-up")
        trace = build_trace(scenario)
        fractional = replace(trace.outcomes, sat=trace.outcomes.sat * 0.5)
        for t in (trace, replace(trace, outcomes=fractional)):
            simulate_scenario(scenario, t)


# ---------------------------------------------------------------- the sweep

@dataclass
class SweepReport:
    out: Path
    cells: int
    ran: int = 0
    skipped: int = 0
    failed: int = 0
    pending: int = 0
    wall_s: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)


def _chunks(jobs: list[dict], size: int) -> list[list[dict]]:
    """Consecutive jobs, ``size`` per chunk (jobs come sorted by trace, so a chunk mostly shares one)."""
    return [jobs[i:i + size] for i in range(0, len(jobs), size)]


def write_manifest(out: Path, cells: list[Cell], results: dict[str, dict]) -> Path:
    """``DIR/manifest.parquet``: one row per cell x policy (x group), in expansion order."""
    import polars as pl

    rows = []
    metric_keys: dict[str, None] = {}
    config_keys: dict[str, None] = {}
    for c in cells:
        for k in c.config:
            config_keys.setdefault(k, None)
    for c in cells:
        r = results.get(c.cell_id, {"status": "pending", "rows": []})
        policy_config = {p.label: flatten(p.model_dump(mode="json"), "policy") for p in c.scenario.policies}
        lead = {"cell_id": c.cell_id, "cell_index": c.index, "status": r["status"], "error": r.get("error"),
                "case": c.case}
        metrics = r.get("rows") or [{"policy": None, "group": None}]
        for m in metrics:
            row = dict(lead)
            row.update(c.config)
            for k, v in policy_config.get(m.get("policy"), {}).items():  # the row's own policy: policy.V, ...
                config_keys.setdefault(k, None)
                row[k] = v
            for k, v in m.items():
                key = k if k in ("policy", "group") or k not in config_keys and k not in lead else f"result.{k}"
                metric_keys.setdefault(key, None)
                row[key] = v
            rows.append(row)
    columns = LEAD_COLUMNS + [k for k in config_keys if k not in LEAD_COLUMNS] + \
        [k for k in metric_keys if k not in LEAD_COLUMNS]
    df = pl.from_dicts(rows, infer_schema_length=None, strict=False)
    for k in columns:
        if k not in df.columns:
            df = df.with_columns(pl.lit(None).alias(k))
    df = df.select(columns)
    from sim.report.sweep import with_frontier_columns

    df = with_frontier_columns(df)  # AIQ, APGR, CPT per series (docs/theory.md, Frontier metrics)
    path = out / "manifest.parquet"
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=False)
    return path


def run_sweep(raw: dict, out: Path, **options) -> SweepReport:
    """Expand the sweep, skip completed cells, run the rest, write the manifest; one sweep per folder at a time
    (a second one refuses with one line: sim/running/paths.py).

    ``order_seed`` shuffles the execution order (results do not depend on it; the tests check that).
    """
    out = Path(out).absolute()  # workers (Ray: on other machines) may not share our working directory
    expanded = expand(raw, options.get("where", "scenario"))  # a bad sweep is refused before the folder is touched
    paths.check_output_path(out)
    with paths.output_lock(out):
        return _run_sweep_locked(expanded, out, **options)


def _run_sweep_locked(expanded: tuple, out: Path, *, workers: int | None = None, backend: str = "local",
                      address: str | None = None, where: str = "scenario", show_progress: bool = False,
                      order_seed: int | None = None, chunk_size: int | None = None,
                      on_result: Callable[[dict], None] | None = None) -> SweepReport:
    t_start = time.perf_counter()
    base, cells = expanded
    (out / "cells").mkdir(parents=True, exist_ok=True)
    write_text(out / "sweep.yaml", yaml_record(base))

    results: dict[str, dict] = {}
    pending: list[Cell] = []
    for c in cells:
        marker = out / "cells" / c.cell_id / MARKER
        if marker.exists():
            try:
                results[c.cell_id] = json.loads(marker.read_text(encoding="utf-8")) | {"status": "ok"}
                continue
            except ValueError:
                pass  # unreadable marker (cannot happen with atomic writes, but be safe): redo the cell
        pending.append(c)
    report = SweepReport(out=out, cells=len(cells), skipped=len(cells) - len(pending))

    # Shared traces: built once for every key that two or more pending cells use
    counts: dict[str, int] = {}
    for c in pending:
        counts[c.trace_key] = counts.get(c.trace_key, 0) + 1
    # (a trace file is already a path: workers read it themselves, once each)
    shared = {c.trace_key: c.resolved for c in pending if counts[c.trace_key] > 1 and c.scenario.trace.path is None}
    jobs = []
    for c in pending:
        tp = str(trace_cache.entry_path(out / "traces", c.trace_key)) if c.trace_key in shared else None
        jobs.append({"cell_id": c.cell_id, "resolved": c.resolved, "trace_path": tp, "trace_key": c.trace_key,
                     "index": c.index})
    jobs.sort(key=lambda j: (j["trace_key"], j["index"]))
    if order_seed is not None:
        rng = np.random.default_rng(order_seed)
        jobs = [jobs[i] for i in rng.permutation(len(jobs))]
    n_workers = max(1, workers or os.cpu_count() or 1)
    size = chunk_size or max(1, min(16, -(-len(jobs) // (n_workers * 6)) if jobs else 1))
    chunks = _chunks(jobs, size)
    trace_tasks = [(k, r) for k, r in shared.items()
                   if not trace_cache.is_valid(trace_cache.entry_path(out / "traces", k))]

    def done(res: dict) -> None:
        results[res["cell_id"]] = res
        if res["status"] == "ok":
            report.ran += 1
        else:
            report.failed += 1
            report.errors[res["cell_id"]] = res.get("error", "")
        if on_result is not None:
            on_result(res)

    try:
        with _progress(show_progress, len(cells), report.skipped) as tick:
            def finished(res: dict) -> None:
                done(res)
                tick(res["status"] == "ok")

            if not jobs:
                pass
            elif backend == "local":
                _run_local(str(out), trace_tasks, chunks, n_workers, finished)
            elif backend == "ray":
                _run_ray(str(out), trace_tasks, chunks, address, finished)
            else:
                raise UserError(f"--backend {backend!r}: expected 'local' or 'ray'")
    finally:
        for c in cells:  # cells a worker finished before its chunk came back (an interrupted sweep)
            marker = out / "cells" / c.cell_id / MARKER
            if c.cell_id not in results and marker.exists():
                try:
                    results[c.cell_id] = json.loads(marker.read_text(encoding="utf-8")) | {"status": "ok"}
                except ValueError:
                    pass
        report.pending = sum(1 for c in cells if c.cell_id not in results)
        write_manifest(out, cells, results)
        report.wall_s = time.perf_counter() - t_start
    return report


def yaml_record(base: cfg.Scenario) -> str:
    import yaml

    text = cfg.resolved_yaml(base)
    sweep = base.sweep.model_dump(mode="json") if base.sweep is not None else None
    return text + yaml.safe_dump({"sweep": sweep}, sort_keys=False)


class _progress:
    """A rich progress bar with cells done, failed and an ETA (a no-op when disabled)."""

    def __init__(self, enabled: bool, total: int, already: int):
        self.enabled, self.total, self.already = enabled, total, already
        self.bar = None

    def __enter__(self):
        if not self.enabled:
            return lambda ok: None
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True))
        self.bar.__enter__()
        task = self.bar.add_task("sweep", total=self.total, completed=self.already, failed=0)
        failed = [0]

        def tick(ok: bool) -> None:
            if not ok:
                failed[0] += 1
            self.bar.update(task, advance=1, failed=failed[0])

        return tick

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False


def _run_local(out: str, trace_tasks, chunks, workers: int, finished) -> None:
    if workers == 1 or len(chunks) == 1 and not trace_tasks:
        for key, resolved in trace_tasks:
            build_shared_trace(out, key, resolved)
        for chunk in chunks:
            for job in chunk:
                finished(run_cell(out, job))
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from sim.process import prepare

    prepare()  # the workers inherit it (a no-op under the CLI, which has set it already)
    # Compile once here, into numba's on-disk cache: workers then load the kernels instead of racing to compile.
    warm_numba()
    # Not plain fork: polars' (and numba's) thread pools do not survive a fork of a process that has used them,
    # and a forked worker can hang on a lock held by a thread that no longer exists. A fork server imports the
    # package once, before any such thread starts, and forks the workers from there.
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["sim.running.sweep", "sim.running.runner"])
    else:
        ctx = mp.get_context("spawn")
    ex = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),))
    try:
        if trace_tasks:
            for f in [ex.submit(build_shared_trace, out, k, r) for k, r in trace_tasks]:
                f.result()
        futures = {ex.submit(run_chunk, out, chunk): chunk for chunk in chunks}
        remaining = set(futures)
        while remaining:
            ready, remaining = wait(remaining, timeout=0.5, return_when=FIRST_COMPLETED)
            for f in ready:
                try:
                    for res in f.result():
                        finished(res)
                except BrokenProcessPool as e:
                    for job in futures[f]:
                        finished({"cell_id": job["cell_id"], "status": "failed", "rows": [],
                                  "error": f"worker process died ({e})"})
        ex.shutdown(wait=True)
    except BaseException:
        workers_now = list((getattr(ex, "_processes", None) or {}).values())  # no public way to stop them
        ex.shutdown(wait=False, cancel_futures=True)
        for p in workers_now:
            if p.is_alive():
                p.terminate()
        for p in workers_now:
            p.join(timeout=5)
        raise


def _run_ray(out: str, trace_tasks, chunks, address: str | None, finished) -> None:
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install 'messplus-sim[ray]'") from None
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, ValueError) as e:
            raise UserError(f"--address {address}: cannot connect to a Ray cluster ({e})") from None
        started = True
    try:
        build = ray.remote(num_cpus=1)(build_shared_trace)
        if trace_tasks:
            ray.get([build.remote(out, k, r) for k, r in trace_tasks])
        remote = ray.remote(num_cpus=1)(_ray_chunk)
        cwd = os.getcwd()  # relative trace paths in a scenario resolve as they do here (same shared mounts)
        refs = {remote.remote(out, chunk, cwd): chunk for chunk in chunks}
        remaining = list(refs)
        while remaining:
            ready, remaining = ray.wait(remaining, num_returns=1, timeout=0.5)
            for ref in ready:
                try:
                    results = ray.get(ref)
                except Exception as e:  # a worker or node died: its cells stay unfinished
                    results = [{"cell_id": j["cell_id"], "status": "failed", "rows": [],
                                "error": f"Ray task failed ({type(e).__name__})"} for j in refs[ref]]
                for res in results:
                    finished(res)
    except BaseException:
        for ref in locals().get("remaining", []):
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


_warm_here = False


def _ray_chunk(out: str, jobs: list[dict], cwd: str | None = None) -> list[dict]:
    """A Ray task: a chunk of cells. A worker warms numba once (from the node's cache after the first)."""
    global _warm_here
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    if not _warm_here:
        warm_numba()
        _warm_here = True
    return run_chunk(out, jobs)


def describe_cells(cells: list[Cell], limit: int = 20) -> str:
    lines = [f"{len(cells)} cells"]
    for c in cells[:limit]:
        coords = ", ".join(f"{k}={v if not isinstance(v, (dict, list)) else '…'}" for k, v in c.coords)
        lines.append(f"  {c.cell_id}  {('[' + c.case + '] ') if c.case else ''}{coords}  seed={c.scenario.seed}")
    if len(cells) > limit:
        lines.append(f"  … and {len(cells) - limit} more")
    return "\n".join(lines)


def sys_workers(requested: int | None) -> int:
    return max(1, requested or os.cpu_count() or 1)


__all__ = ["Cell", "SweepReport", "expand", "derive_seed", "run_sweep", "run_cell", "warm_numba", "write_manifest",
           "describe_cells", "sys_workers"]
