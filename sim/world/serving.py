"""GPU serving: service time and energy from measured profiles, model placement on GPUs, and sharing.

A zoo entry with ``profile: {model_id, gpu}`` no longer takes its latency and energy from the trace. When
one of its requests starts, the engine asks :class:`Serving` for them:

- batch b = ceil(busy slots of the model / replicas), counting the starting request (requests spread evenly
  over replicas);
- service time = prefill(prompt tokens) + output tokens x ITL(b) x slowdown;
- energy = prefill J + output tokens x J/token(b). ITL and J/token are interpolated linearly between the
  measured batch sizes and clamped at both ends (sim/trace/importers/profiles.py).

Sharing (an assumption: no measurement of co-located models exists, see the H200 profile's README). With
``sharing: time_slice``, when k other models placed on the same GPU are busy as a request starts, the GPU
alternates between k + 1 batches, so its tokens come k + 1 times slower; energy per token is unchanged (the
GPU does the same work, interleaved). The slowdown is fixed when the request starts. ``sharing: none``
treats every model as if it had the GPU to itself.

Each named GPU also draws ``idle_w`` while none of its models is busy. That idle energy is reported per GPU,
next to the active energy of the requests it served, and is not charged to any request.

Output tokens come from the trace's ``output_tokens__<m>`` columns (required for a profiled model); the
prompt from ``prompt_tokens`` (0 if absent).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sim import config as cfg
from sim.errors import UserError
from sim.trace.format import Trace

MAX_TABLE = 1 << 16


class Serving:
    """Per-run state: the lookup tables, the energy matrix it fills, and per-GPU busy-time accounting."""

    def __init__(self, scenario: cfg.Scenario, trace: Trace, cost: np.ndarray, energy: np.ndarray | None):
        from sim.trace.importers.profiles import get_curve, load_profiles

        zoo = {z.name: z for z in scenario.zoo or []}
        self.models = trace.models
        self.cost, self.energy = cost, energy
        self.objective_is_energy = scenario.objective == "energy_j"
        m = len(self.models)
        self.profiled = [False] * m
        self.replicas = [zoo[n].replicas if n in zoo else 1 for n in self.models]
        gpu_names = [g.name for g in scenario.gpus]
        self.gpu_of = [gpu_names.index(zoo[n].gpu) if n in zoo and zoo[n].gpu else -1 for n in self.models]
        self.gpus = scenario.gpus
        self.time_slice = scenario.sharing == "time_slice"
        self.itl: list[np.ndarray | None] = [None] * m
        self.ept: list[np.ndarray | None] = [None] * m
        self.prefill_s = np.zeros(m)
        self.prefill_j = np.zeros(m)
        self.curves: dict[str, dict] = {}
        prompt = trace.features.prompt_tokens
        self.prompt = prompt if prompt is not None else np.zeros(trace.n)
        self.out_tokens = trace.outcomes.output_tokens
        tables: dict[str, object] = {}
        for i, name in enumerate(self.models):
            z = zoo.get(name)
            if z is None or z.profile is None:
                continue
            if self.out_tokens is None:
                raise UserError(f"zoo {name}: a profiled model needs 'output_tokens__{name}' in the trace")
            ref = z.profile
            source = ref.source or scenario.profiles
            if source not in tables:
                if not Path(source).exists():
                    raise UserError(f"zoo {name}: profile source {source}: no such file or folder")
                tables[source] = load_profiles(source)
            select = {"variant": ref.variant} if ref.variant else {}
            curve = get_curve(tables[source], ref.model_id, ref.gpu,
                              scale_from=ref.scale_from.model_dump() if ref.scale_from else None, **select)
            slots = (z.slots or 256)
            size = min(MAX_TABLE, int(math.ceil(slots)) + 1)
            b = np.arange(size, dtype=np.float64)
            b[0] = 1.0
            self.itl[i] = curve.itl_s(b)
            self.ept[i] = curve.energy_per_token_j(b)
            self.prefill_s[i] = curve.prefill_s_per_token or 0.0
            self.prefill_j[i] = curve.prefill_j_per_token or 0.0
            self.profiled[i] = True
            self.curves[name] = curve.describe()
        n_gpus = len(self.gpus)
        self.active = [0] * n_gpus  # busy parts on the GPU's models
        self.busy_since = [0.0] * n_gpus
        self.busy_s = [0.0] * n_gpus
        self.intervals: list[list[tuple[float, float]]] = [[] for _ in range(n_gpus)]  # busy periods per GPU
        self.active_j = [0.0] * n_gpus
        self.last_s = 0.0

    def start(self, t: int, m: int, busy: list[int], now: float, trace_latency: float) -> float:
        """Request t starts on model m (``busy[m]`` already counts it); returns its service time."""
        g = self.gpu_of[m]
        slowdown = 1.0
        if g >= 0:
            if self.time_slice:
                others = sum(1 for k, gk in enumerate(self.gpu_of) if gk == g and k != m and busy[k] > 0)
                slowdown += others
            if self.active[g] == 0:
                self.busy_since[g] = now
            self.active[g] += 1
        if not self.profiled[m]:
            if g >= 0 and self.energy is not None:
                self.active_j[g] += self.energy[t, m]
            return trace_latency * slowdown
        table = self.itl[m]
        batch = min(len(table) - 1, -(-busy[m] // self.replicas[m]))
        tokens = self.out_tokens[t, m]
        joules = self.prefill_j[m] * self.prompt[t] + tokens * self.ept[m][batch]
        if self.energy is not None:
            self.energy[t, m] = joules
        if self.objective_is_energy:
            self.cost[t, m] = joules
        if g >= 0:
            self.active_j[g] += joules
        return self.prefill_s[m] * self.prompt[t] + tokens * table[batch] * slowdown

    def end(self, m: int, now: float) -> None:
        g = self.gpu_of[m]
        self.last_s = max(self.last_s, now)
        if g >= 0:
            self.active[g] -= 1
            if self.active[g] == 0:
                self.busy_s[g] += now - self.busy_since[g]
                self.intervals[g].append((self.busy_since[g], now))

    def summary(self, end_s: float) -> dict:
        """Per-GPU occupancy and energy over [0, end_s], idle energy apart; and the curves used."""
        out = {}
        span = max(end_s, self.last_s)
        for g, gpu in enumerate(self.gpus):
            idle = max(0.0, span - self.busy_s[g])
            out[gpu.name] = {
                "type": gpu.type,
                "models": [n for n, k in zip(self.models, self.gpu_of) if k == g],
                "busy_fraction": self.busy_s[g] / span if span > 0 else 0.0,
                "active_energy_j": self.active_j[g],
                "idle_energy_j": gpu.idle_w * idle,
                "timeline": busy_timeline(self.intervals[g], span),
            }
        return {"gpus": out, "profiles": self.curves, "sharing": "time_slice" if self.time_slice else "none"}


def busy_timeline(intervals: list[tuple[float, float]], span: float, windows: int = 100) -> dict:
    """The busy fraction of each of ``windows`` equal windows of [0, span], from a GPU's busy periods."""
    if span <= 0:
        return {"window_s": 0.0, "busy_fraction": []}
    width = span / windows
    a = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    # busy time before x: the overlap of every busy period with [0, x]
    before = np.array([float((np.clip(x, a[:, 0], a[:, 1]) - a[:, 0]).sum()) for x in np.arange(windows + 1) * width])
    return {"window_s": width, "busy_fraction": [round(float(b), 6) for b in np.diff(before) / width]}
