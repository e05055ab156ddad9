"""Run a scenario: build the trace, route it under every policy, evaluate, and write the results.

Outputs in the result folder (each written to a temporary name, then renamed):
- ``requests.parquet``: one row per request and policy (see :func:`sim.evaluation.metrics.request_frame`);
- ``occupancy.parquet``: busy slots and queue length per model over time (discrete-event mode);
- ``summary.json``: per-policy figures; ``scenario.resolved.yaml``: the scenario with every default filled in.
"""

from __future__ import annotations

import math
import os
import secrets
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from sim import config as cfg
from sim.provenance import parquet_metadata, provenance
from sim.atomic import durable_replace, remove_stale_temps, write_json, write_text
from sim.world.engine import simulate
from sim.world.events import apply_trace_events, availability, recovery
from sim.errors import UserError
from sim.evaluation.decomposition import cost_decomposition
from sim.evaluation.guarantees import GUARANTEE_COLUMNS, policy_guarantees
from sim.memory import release_free_memory
from sim.evaluation.metrics import evaluate, q_before, request_frame
from sim.evaluation.constraints import evaluate_constraints, gave_way, scenario_constraints
from sim.evaluation.sla import verdict
from sim.policies.plugin import wrap_router
from sim.policies.registry import build_router, describe, facts, policy_alpha
from sim.policies.router import EXPLORE_ALL
from sim.rng import stream
from sim.running import paths
from sim.world.sequential import run_sequential
from sim.world.serving import Serving
from sim.trace.synth import synth_columns, synth_provenance
from sim.trace.format import DictColumns, Trace, build, check_model_names, load_trace, select_models, subset



def build_trace(scenario: cfg.Scenario) -> Trace:
    src = scenario.trace
    drop = () if scenario.profiled else ("prompt_tokens", "output_tokens")  # read only by GPU profiles
    if src.synth is not None:
        from sim.memory import check_fits

        check_fits(src.synth.requests, len(src.synth.models), "trace.synth")  # before a MemoryError, not after
        cols, models = synth_columns(src.synth, scenario.seed)
        trace = build(DictColumns(cols), models, path="<synth>", provenance=synth_provenance(src.synth, scenario.seed),
                      objective=scenario.objective, drop=drop)
    elif src.recipe is not None:
        from sim.trace.importers.recipe import build_recipe_trace

        trace = build_recipe_trace(src.recipe, scenario.seed, objective=scenario.objective, drop=drop)
    else:
        trace = load_trace(src.path, objective=scenario.objective, drop=drop)
    trace = select_zoo(trace, scenario)
    if scenario.events:  # rate changes and degradations are trace transforms (sim/world/events.py)
        trace = apply_trace_events(trace, scenario)
    release_free_memory()  # the columns read while building it
    return trace


def select_zoo(trace: Trace, scenario: cfg.Scenario) -> Trace:
    """Restrict and reorder the trace's models to the scenario's zoo (the zoo's order is the cost order)."""
    if scenario.zoo is None:
        return trace
    names = [z.name for z in scenario.zoo]
    missing = [n for n in names if n not in trace.models]
    if missing:
        raise UserError(f"zoo: model(s) {missing} are not in the trace (it has {trace.models})")
    if len(set(names)) != len(names):
        raise UserError(f"zoo: a model is listed twice in {names}")
    check_model_names(names, "zoo")
    if names == trace.models:
        return trace
    return select_models(trace, names)


def capacities(trace: Trace, scenario: cfg.Scenario) -> list[float]:
    by_name = {z.name: z for z in scenario.zoo or []}
    caps = []
    for m in trace.models:
        z = by_name.get(m)
        caps.append(math.inf if z is None or z.slots is None else float(z.replicas * z.slots))
    return caps


def feedback_draws(scenario: cfg.Scenario, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Which requests get user feedback, and after what delay: the same draws for every policy."""
    fb = scenario.feedback
    given = stream(scenario.seed, "feedback").random(n) < fb.rate
    rng = stream(scenario.seed, "feedback_delay")
    d = fb.delay
    if d.dist == "none" or d.mean_s == 0:
        delay = np.zeros(n)
    elif d.dist == "fixed":
        delay = np.full(n, d.mean_s)
    elif d.dist == "exponential":
        delay = rng.exponential(d.mean_s, n)
    else:
        s2 = np.log1p(d.cv**2)
        delay = rng.lognormal(np.log(d.mean_s) - s2 / 2, np.sqrt(s2), n)
    return given, delay


@dataclass
class RunResult:
    summary: dict
    frames: dict[str, pl.DataFrame] = field(default_factory=dict)
    occupancy: pl.DataFrame | None = None


def simulate_scenario(scenario: cfg.Scenario, trace: Trace | None = None,
                      progress: Callable[[str, int, int], None] | None = None,
                      sink: "ResultStream | None" = None, routers: dict[str, object] | None = None) -> RunResult:
    """Route the trace under every policy of the scenario. Pure: writes nothing, unless ``sink`` is given: then
    each policy's requests and occupancy go to it as they are made, and the result holds only the summary.
    ``routers``: router objects made by the caller for ``python`` policies of those names (sim.run)."""
    trace = trace if trace is not None else build_trace(scenario)
    sequential = scenario.engine.mode == "sequential"
    caps = capacities(trace, scenario)
    o = trace.outcomes
    policies: dict[str, dict] = {}
    frames: dict[str, pl.DataFrame] = {}
    occupancy = []
    avail = availability(trace, scenario) if scenario.events else None
    lp_cache: dict = {}  # offline optima shared by the policies' guarantees (same trace, same alpha)
    for policy in scenario.policies:
        label = policy.label
        # Every policy gets the same draws (they depend on the seed only); they are made per policy so that
        # they can go as soon as its decisions are made (10^7-request runs, docs/performance.md).
        given, delay = feedback_draws(scenario, trace.n)
        u_explore = stream(scenario.seed, "explore").random(trace.n)
        if routers and policy.kind == "python" and label in routers:
            router = wrap_router(routers[label], trace, policy_alpha(policy, scenario.alpha), label)
        else:
            router = build_router(policy, trace, scenario.alpha, scenario.seed, u_explore, scenario)
        router.set_availability(avail)
        tick = (lambda done, label=label: progress(label, done, trace.n)) if progress else None
        decisions, occ, serving, ptrace = run_policy(scenario, trace, router, caps, given, delay, tick,
                                                     None if sink is None else sink.occupancy(label, trace.models))
        if occ is not None:
            occupancy.append(occupancy_frame(label, trace.models, occ))
        given = delay = u_explore = router.u_explore = None
        alpha = policy_alpha(policy, scenario.alpha)
        cols, summary = evaluate(ptrace, decisions, alpha)
        policies[label] = {**describe(policy), **summary, **facts(policy, trace, alpha),
                           "sla": verdict(summary["satisfaction"], alpha, summary["requests"])}
        if policies[label]["causal"]:  # docs/theory.md, "Where the cost goes"
            ledger = getattr(getattr(router, "state", None), "ledger", None)
            policies[label]["cost_decomposition"] = cost_decomposition(ptrace, cols, alpha, ledger, lp_cache)
        if scenario.constraints:
            entries = evaluate_constraints(scenario_constraints(scenario, alpha), cols["sat"], cols["cost"],
                                           cols["arrival_s"], cols["end_s"], sequential)
            policies[label]["constraints"] = entries
            policies[label]["gave_way"] = gave_way(entries)
        if not sequential and serving is not None:
            policies[label]["serving"] = serving.summary(float(np.nanmax(decisions["end_s"])))
        if scenario.events:
            policies[label]["recovery"] = recovery(trace.arrival_s, q_before(cols["q_after"]), cols["q_after"],
                                                   scenario.events)
        if sink is None:
            frames[label] = request_frame(label, ptrace, cols)
        else:  # written now, so that the columns only the table needs can go before the guarantees run
            sink.requests(label, ptrace, cols)
            cols = {k: cols[k] for k in GUARANTEE_COLUMNS}
            decisions = {k: decisions[k] for k in ("q_tracked",)}
        policies[label]["guarantees"] = policy_guarantees(scenario, policy, ptrace, router, decisions, cols, alpha,
                                                          lp_cache)
        decisions = cols = None  # let this policy's columns go before the next one runs
    warn_infeasible(scenario.name, policies)
    o_sat = [o.sat[:, i].mean() for i in range(trace.m)]  # per column: pairwise summation (axis=0 is naive)
    summary = {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "alpha": scenario.alpha,
        "engine": scenario.engine.mode,
        "cost_unit": trace.cost_unit,
        "trace": {"path": trace.path, "requests": trace.n, "span_s": float(trace.arrival_s[-1] - trace.arrival_s[0]),
                  "provenance": trace.provenance},
        "models": trace.models,
        "groups": trace.features.group_names,
        "model_accuracy": {m: float(o_sat[i]) for i, m in enumerate(trace.models)},
        "model_mean_cost": {m: float(o.cost[:, i].mean()) for i, m in enumerate(trace.models)},
        "policies": policies,
    }
    # the summary in memory is the one summary.json holds (sim.run returns it): provenance included
    return RunResult(with_provenance(summary, scenario), frames, pl.concat(occupancy) if occupancy else None)


def warn_infeasible(name: str, policies: dict) -> None:
    """One line on stderr when alpha is out of reach (the fixed mixtures and the offline optimum know it)."""
    out = [label for label, p in policies.items() if p.get("feasible") is False]
    if out:
        reason = policies[out[0]]["infeasible_reason"]
        print(f"warning: {name}: the SLA target is out of reach ({reason}); infeasible for: {', '.join(out)}",
              file=sys.stderr)


def run_policy(scenario: cfg.Scenario, trace: Trace, router, caps: list[float], given: np.ndarray,
               delay: np.ndarray, tick=None, occupancy_sink=None):
    """Route the trace under one router in the scenario's engine; both engines return the same decision columns.

    Returns (decisions, occupancy or None, serving or None, the trace the costs were charged on). In sequential
    mode there is no clock: ``start_s = end_s = arrival_s``, and ``feedback_s`` is the arrival time where
    feedback was given (NaN elsewhere).
    """
    decisions, occ, serving, ptrace = _run_policy(scenario, trace, router, caps, given, delay, tick, occupancy_sink)
    # what an exploration cost: every model's, or the one model it ran (docs/theory.md §4)
    decisions["explore_all"] = getattr(getattr(router, "params", None), "explore", EXPLORE_ALL) == EXPLORE_ALL
    return decisions, occ, serving, ptrace


def _run_policy(scenario, trace, router, caps, given, delay, tick, occupancy_sink):
    o = trace.outcomes
    if scenario.engine.mode == "sequential":
        decisions = run_sequential(router, o.sat, o.cost, given)
        arrival = trace.arrival_s
        decisions.update(start_s=arrival, end_s=arrival, feedback_s=np.where(given, arrival, np.nan),
                         feedback_given=given)
        if tick:
            tick(trace.n)
        return decisions, None, None, trace
    serving, ptrace = None, trace
    if scenario.profiled:  # service times and energy depend on the load, so every policy gets its own copy
        cost = o.cost.copy()
        energy = cost if scenario.objective == "energy_j" else (None if o.energy_j is None else o.energy_j.copy())
        ptrace = replace(trace, outcomes=replace(o, cost=cost, energy_j=energy))
        serving = Serving(scenario, ptrace, cost, energy)
    decisions, occ = simulate(router, trace.arrival_s, o.latency_s, ptrace.outcomes.cost, o.sat, caps, given,
                              delay, progress=tick, serving=serving, occupancy_sink=occupancy_sink)
    return decisions, occ, serving, ptrace


def occupancy_frame(label: str, models: list[str], occ) -> pl.DataFrame:
    return pl.DataFrame({
        "policy": pl.repeat(label, len(occ.time_s), dtype=pl.Utf8, eager=True), "time_s": occ.time_s,
        "model": pl.Series(np.asarray(models)[occ.model], dtype=pl.Enum(models)),
        "busy": occ.busy, "queued": occ.queued})


class ResultStream:
    """Writes ``requests.parquet`` and ``occupancy.parquet`` while the policies run, in row groups of 2^18 rows,
    so that a run never holds a whole per-request table or occupancy log (10^7-request runs).

    Each file grows under a hidden temporary name in ``out`` (``.requests.parquet.<random>.tmp``, as
    :func:`sim.atomic.atomic_path` names them) and is renamed into place by :meth:`commit`, which writes the
    stamp ``scenario.resolved.yaml`` last (present: every result file there is of that scenario). ``out`` is
    created only when the first rows are ready; on any failure the temporary files (and a folder this run
    created) are removed.
    """

    ROWS = 1 << 18  # 2^18 rows x 19 columns: about 40 MB of chunk buffers at a time

    def __init__(self, out: Path, metadata: dict[bytes, bytes] | None = None):
        self.out = Path(out)
        self.metadata = metadata or {}  # Parquet schema metadata of every file (sim/provenance.py)
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.temps: dict[str, Path] = {}
        self.created: list[Path] = []  # folders this run made, innermost first

    def _temp(self, name: str) -> Path:
        if not self.out.exists():
            d = self.out
            while not d.exists():
                self.created.append(d)
                d = d.parent
            self.out.mkdir(parents=True, exist_ok=True)
        while True:
            tmp = self.out / f".{name}.{secrets.token_hex(6)}.tmp"
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                return tmp
            except FileExistsError:
                continue

    def _write(self, name: str, df: pl.DataFrame) -> None:
        table = df.to_arrow()
        if self.metadata:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **self.metadata})
        writer = self.writers.get(name)
        if writer is None:
            self.temps[name] = self._temp(name)
            writer = self.writers[name] = pq.ParquetWriter(self.temps[name], table.schema, compression="zstd",
                                                           write_page_checksum=True)
        writer.write_table(table, row_group_size=self.ROWS)

    def requests(self, label: str, trace: Trace, cols: dict) -> None:
        for lo in range(0, trace.n, self.ROWS):
            self._write("requests.parquet", request_frame(label, trace, cols, slice(lo, lo + self.ROWS)))
        release_free_memory()

    def occupancy(self, label: str, models: list[str]) -> Callable:
        return lambda chunk: self._write("occupancy.parquet", occupancy_frame(label, models, chunk))

    def commit(self, summary: dict, scenario: cfg.Scenario) -> None:
        for w in self.writers.values():
            w.close()
        self.writers = {}
        out = self.out
        out.mkdir(parents=True, exist_ok=True)
        stamp = out / "scenario.resolved.yaml"
        if stamp.exists() and stamp.read_text(encoding="utf-8") != cfg.resolved_yaml(scenario):
            stamp.unlink()  # --overwrite: an interrupted rewrite must not leave new files under the old stamp
            (out / "report.html").unlink(missing_ok=True)  # nor the old scenario's report next to new results
        for name in ("requests.parquet", "occupancy.parquet"):
            if name in self.temps:
                durable_replace(self.temps.pop(name), out / name)
            else:
                (out / name).unlink(missing_ok=True)
        remove_stale_temps(out, RESULT_FILES)  # a killed earlier run's leftovers (ours are renamed by now)
        write_json(out / "summary.json", with_provenance(summary, scenario))
        write_text(stamp, cfg.resolved_yaml(scenario))
        self.created = []

    def __enter__(self) -> "ResultStream":
        return self

    def __exit__(self, kind, value, tb) -> bool:
        for w in self.writers.values():
            try:
                w.close()
            except Exception:
                pass
        for tmp in self.temps.values():
            tmp.unlink(missing_ok=True)
        for d in self.created:
            try:
                d.rmdir()
            except OSError:
                break
        return False


#: Every file a run writes into its result folder.
RESULT_FILES = ("requests.parquet", "occupancy.parquet", "summary.json", "scenario.resolved.yaml", "report.html")


def check_out_dir(out: Path, resolved: str, overwrite: bool) -> None:
    """Refuse to mix results of different scenarios in one folder, unless told to overwrite."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out}: exists and is not a directory")
    previous = out / "scenario.resolved.yaml"
    if previous.exists() and not overwrite:
        if previous.read_text(encoding="utf-8") != resolved:
            raise UserError(f"output {out}: holds results of a different scenario; use --overwrite or another --out")
    # Probe the nearest existing folder without creating ``out``: a run that fails later (bad trace, unknown
    # model) must leave no trace on disk, not even an empty folder. The writers create ``out`` at the end.
    base = out
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise UserError(f"output {out}: cannot write there ({base} is not a directory)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"output {out}: cannot write there ({e.strerror})") from None


def with_provenance(summary: dict, scenario: cfg.Scenario) -> dict:
    """The summary with its ``provenance`` block (sim/provenance.py): what produced it."""
    return {**summary, "provenance": provenance(cfg.resolved_yaml(scenario))}


def group_runs(scenario: cfg.Scenario, trace: Trace):
    """For ``split_by: group``: yield (group, scenario with the group's alpha, the group's sub-trace)."""
    synth_groups = scenario.trace.synth.groups if scenario.trace.synth is not None else {}
    for gi, g in enumerate(trace.features.group_names):
        spec = synth_groups.get(g)
        alpha = spec.alpha if spec is not None and spec.alpha is not None else scenario.alpha
        sub = subset(trace, trace.features.groups == gi)
        yield g, scenario.model_copy(update={"alpha": alpha, "split_by": "none", "name": f"{scenario.name}/{g}"}), sub


def run_scenario(scenario: cfg.Scenario, out: Path, overwrite: bool = False, progress=None,
                 trace: Trace | None = None, routers: dict[str, object] | None = None) -> RunResult:
    """Simulate and write; ``trace`` (the scenario's built trace, e.g. a sweep's shared one) skips building it."""
    out = Path(out)
    paths.encode_name(scenario.name, "scenario name")  # too long for a folder: say so now, not after simulating
    paths.check_output_path(out)
    check_out_dir(out, cfg.resolved_yaml(scenario), overwrite)
    if paths.lock_is_held(out):  # say so before simulating; output_lock below is what makes it safe
        raise UserError(f"output {out}: another sim process is writing there; wait for it or use another --out")
    if scenario.split_by == "group":
        trace = trace if trace is not None else build_trace(scenario)
        # Group names come from the scenario or the trace: encoded, never joined raw (sim/running/paths.py)
        folders = paths.folder_names(trace.features.group_names, "group name")
        groups = {}
        with paths.output_lock(out):
            check_out_dir(out, cfg.resolved_yaml(scenario), overwrite)  # again, now that no one else writes here
            for g, sub_scenario, sub in group_runs(scenario, trace):
                tick = (lambda label, done, total, g=g: progress(f"{g}: {label}", done, total)) if progress else None
                with ResultStream(out / "groups" / folders[g], parquet_metadata(cfg.resolved_yaml(sub_scenario))) as sink:
                    result = simulate_scenario(sub_scenario, sub, progress=tick, sink=sink, routers=routers)
                    sink.commit(result.summary, sub_scenario)
                groups[g] = result.summary
            summary = {"scenario": scenario.name, "seed": scenario.seed, "split_by": "group", "groups": groups}
            summary = with_provenance(summary, scenario)
            write_json(out / "summary.json", summary)
            write_text(out / "scenario.resolved.yaml", cfg.resolved_yaml(scenario))
        return RunResult(summary)
    with paths.output_lock(out):  # one writer per folder; a failed run removes the folder it created
        check_out_dir(out, cfg.resolved_yaml(scenario), overwrite)  # again, now that no one else writes here
        with ResultStream(out, parquet_metadata(cfg.resolved_yaml(scenario))) as sink:  # written as each policy ends
            result = simulate_scenario(scenario, trace, progress=progress, sink=sink, routers=routers)
            sink.commit(result.summary, scenario)
    return result
