"""Routers written in Python by the user: ``{kind: python, name, entry, args}`` (docs/plugins.md).

The class named by ``entry`` is built as ``Class(models=[names, cheapest first], alpha=float, rng=Generator,
**args)`` and must have three methods:

- ``decide(request) -> str | int | Explore``: the model to serve request ``request.index`` (a name, or an index
  into ``models``); ``Explore()`` runs every model, as a MESS+ exploration does, and serves the largest one's
  answer;
- ``on_complete(index, model, cost)``: service of ``index`` ended; ``model`` is the served model's name and
  ``cost`` the cost the provider observes: a float, or for an exploration a read-only array with every model's
  cost (cheapest first);
- optionally ``on_latency(index, model, latency_s)``: called right after ``on_complete`` with the request's
  latency (end - arrival, queueing included), which the provider knows at completion; the sequential engine
  has no clock and passes 0.0;
- ``on_feedback(index, model, satisfied)``: the user's verdict arrived (after the configured delay, with the
  configured probability); ``satisfied`` is 0.0/1.0, or for an exploration a read-only array with every
  model's label (as the built-in MESS+ with ``explore_needs_feedback: true`` learns them).

Both engines call them in the order the numba routers see the same events: in the discrete-event engine,
the completions and feedback delivered since the previous decision, in delivery order, then ``decide``; in
sequential mode ``decide``, ``on_complete`` and (if feedback is given) ``on_feedback`` for each request.
``request`` carries only what is known on arrival (:class:`Request`); outcomes reach the router only through
the two callbacks, after the fact.

``rng`` is a fresh Generator per policy on the scenario's exploration stream (``stream(seed, "explore")``,
sim/rng.py), the stream the built-in MESS+ draws its exploration uniforms from: every policy sees the same
draws (common random numbers), and a router that draws one ``rng.random()`` per request reproduces MESS+'s.

The engine also tracks, for the report, the queue the provider can compute from delivered feedback
(``q_tracked``: ``max(0, Q + alpha - satisfied(served))`` at each feedback), as it does for MESS+.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from sim.errors import UserError
from sim.rng import stream

METHODS = ("decide", "on_complete", "on_feedback")


@dataclass(frozen=True)
class Explore:
    """Returned by ``decide``: run the request on every model and serve the largest model's answer.

    ``serve`` may name that model (its name or index) for clarity; another model is not supported yet.
    """

    serve: str | int | None = None


class Request(NamedTuple):
    """What a router may know about a request when it arrives (read-only)."""

    index: int
    request_id: Any
    arrival_s: float
    group: str
    text: str | None
    prompt_tokens: int | None
    predictions: np.ndarray | None  # per model, when the trace has pred__<model> columns
    # at this request's arrival, per model (cheapest first): requests waiting and slots busy. The discrete-event
    # engine fills them; the sequential engine has no clock and passes zeros.
    queued: np.ndarray | None = None
    busy: np.ndarray | None = None


class PluginError(UserError):
    """An exception raised inside the user's router: the message carries the user's traceback."""


def load_class(entry: str, where: str) -> type:
    """``path/file.py:Class`` (already absolute: sim/config.py anchors it at the scenario) or ``pkg.mod:Class``."""
    target, sep, name = entry.rpartition(":")
    if not sep or not target or not name.isidentifier():
        raise UserError(f"{where}: entry {entry!r} must be 'path/to/file.py:Class' or 'package.module:Class'")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise UserError(f"{where}: entry {entry!r}: no file {path}")
            spec = importlib.util.spec_from_file_location(f"sim_plugin_{path.stem}_{abs(hash(path))}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except UserError:
        raise
    except Exception as e:  # an import error, or an exception raised while the user's module runs
        raise PluginError(f"{where}: cannot load {entry!r}: {type(e).__name__}: {e}\n"
                          + _user_traceback(e)) from None
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise UserError(f"{where}: entry {entry!r}: {target} has no class {name!r}")
    missing = [m for m in METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise UserError(f"{where}: class {name} lacks the method(s) {', '.join(missing)} (see docs/plugins.md)")
    return cls


def _user_traceback(e: BaseException) -> str:
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:  # drop our own frames
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb)).rstrip()


def build_plugin(policy, context) -> "PluginRouter":
    """The registry's builder for ``kind: python`` (sim/config.py)."""
    from sim.policies.registry import policy_alpha

    where = f"policy {policy.label}"
    cls = load_class(policy.entry, where)
    trace = context.trace
    alpha = policy_alpha(policy, context.alpha)
    try:
        user = cls(models=list(trace.models), alpha=alpha, rng=stream(context.seed, "explore"), **policy.args)
    except Exception as e:
        raise PluginError(f"{where}: {cls.__name__}(...) raised {type(e).__name__}: {e}\n"
                          + _user_traceback(e)) from None
    return PluginRouter(user, trace, alpha, where)


def wrap_router(user, trace, alpha: float, label: str) -> "PluginRouter":
    """A router object made by the caller (``sim.run(..., routers=...)``), checked like a loaded class."""
    missing = [m for m in METHODS if not callable(getattr(user, m, None))]
    if missing:
        raise UserError(f"router {label}: lacks the method(s) {', '.join(missing)} (see docs/plugins.md)")
    return PluginRouter(user, trace, alpha, f"router {label}")


class PluginRouter:
    """Adapts a user's router to the engines: the same entry points as the numba path, in Python."""

    kind = None  # not a numba router kind

    def __init__(self, user, trace, alpha: float, where: str):
        self.user = user
        self.where = where
        self.models = list(trace.models)
        self.alpha = float(alpha)
        self.q_tracked = 0.0
        f = trace.features
        self._request_id = trace.request_id
        self._arrival = trace.arrival_s
        self._groups, self._group_names = f.groups, f.group_names
        self._text = getattr(f, "text", None)
        self._prompt_tokens = f.prompt_tokens
        self._pred = f.pred
        self.u_explore = None  # the runner drops it after the run, as for the numba routers
        self.load = np.zeros((2, len(self.models)))  # busy slots, queue length: filled by the engine (bind_world)
        self._clock = None  # (arrival_s, end_s) in the discrete-event engine
        self._on_latency = callable(getattr(user, "on_latency", None))

    def bind_world(self, arrival_s, start_s, end_s, capacity) -> np.ndarray:
        """The discrete-event engine's clock columns (read only for completed requests) and its load array."""
        self._clock = (arrival_s, end_s)
        return self.load

    def set_availability(self, avail) -> None:
        if avail is not None:
            raise UserError(f"{self.where}: python routers do not support model outages (events: down) yet")

    def _call(self, method: str, t: int, *args):
        try:
            return getattr(self.user, method)(*args)
        except UserError:
            raise
        except Exception as e:
            raise PluginError(f"{self.where}: {method} raised {type(e).__name__} at request index {t}:\n"
                              + _user_traceback(e)) from None

    def _request(self, t: int) -> Request:
        pred = None
        if self._pred is not None:
            pred = self._pred[t].copy()
            pred.flags.writeable = False
        tokens = None if self._prompt_tokens is None else int(self._prompt_tokens[t])
        text = None if self._text is None else self._text[t]
        queued, busy = self.load[1].copy(), self.load[0].copy()
        queued.flags.writeable = busy.flags.writeable = False
        # ``ndarray.item(t)``: the element as a Python scalar in one call (the same value as ``float(a[t])``)
        request_id = self._request_id
        request_id = request_id.item(t) if isinstance(request_id, np.ndarray) else request_id[t]
        return Request(t, request_id, self._arrival.item(t), self._group_names[self._groups.item(t)], text, tokens,
                       pred, queued, busy)

    def decide(self, t: int) -> tuple[int, bool]:
        """Returns (model index, explored)."""
        choice = self._call("decide", t, self._request(t))
        n = len(self.models)
        if type(choice) is int and 0 <= choice < n:  # the common case first (a plain index)
            return choice, False
        if isinstance(choice, Explore):
            serve = choice.serve
            if serve is not None and serve not in (n - 1, self.models[-1]):
                raise UserError(f"{self.where}: decide returned Explore(serve={serve!r}) at request index {t}; "
                                f"an exploration serves the largest model, {self.models[-1]!r}")
            return n - 1, True
        if isinstance(choice, str) and choice in self.models:
            return self.models.index(choice), False
        if isinstance(choice, (int, np.integer)) and not isinstance(choice, (bool, np.bool_)) and 0 <= choice < n:
            return int(choice), False
        raise UserError(f"{self.where}: decide returned {choice!r} at request index {t}; expected a model name "
                        f"{self.models}, an index 0..{n - 1} or sim.Explore()")

    def complete(self, t: int, model: int, explored: bool, cost_row: np.ndarray) -> None:
        if explored:
            cost = cost_row.copy()
            cost.flags.writeable = False
        else:
            cost = float(cost_row[model])
        self._call("on_complete", t, t, self.models[model], cost)
        if self._on_latency:
            latency = 0.0 if self._clock is None else float(self._clock[1][t] - self._clock[0][t])
            self._call("on_latency", t, t, self.models[model], latency)

    def feedback(self, t: int, model: int, explored: bool, label_row: np.ndarray) -> None:
        q = self.q_tracked + self.alpha - label_row[model]
        self.q_tracked = q if q > 0.0 else 0.0
        if explored:
            labels = label_row.copy()
            labels.flags.writeable = False
        else:
            labels = float(label_row[model])
        self._call("on_feedback", t, t, self.models[model], labels)

    def _record(self, t, model_out, explored_out, p_out, qt_out, shat_out):
        qt_out[t] = self.q_tracked
        m, explored = self.decide(t)
        model_out[t] = m
        explored_out[t] = explored
        p_out[t] = 0.0  # a Python router's exploration probability and prediction are its own business: recorded
        shat_out[t] = math.nan  # as for a plan router (no probability, no prediction)
        return m, explored

    def deliver_and_decide(self, t, pending, n_pending, cost, sat, model_out, explored_out, p_out, qt_out, shat_out):
        """The discrete-event engine's kernel (sim/world/engine.py::_deliver_and_decide_packed), in Python."""
        for i in range(n_pending):
            u = int(pending[i]) >> 1
            if pending[i] & 1 == 0:
                self.complete(u, int(model_out[u]), bool(explored_out[u]), cost[u])
            else:
                self.feedback(u, int(model_out[u]), bool(explored_out[u]), sat[u])
        if t < 0:
            return 0, False
        return self._record(t, model_out, explored_out, p_out, qt_out, shat_out)

    def run_sequential(self, sat, cost, feedback_mask, out: dict) -> None:
        """Sequential mode (sim/world/sequential.py::_run), in Python.

        The same calls as ``_record``, ``complete`` and ``feedback`` for every request, with the per-request
        overhead taken out of the loop (this path runs at Python speed: docs/performance.md): the user's methods
        are bound once, an exploit's cost and label are read as Python scalars (``ndarray.item``, the same
        values as indexing then ``float``), and the columns that are the same for every request (``p_explore``
        0, ``s_hat`` NaN) are filled once.
        """
        model_out, explored_out, qt_out = out["model"], out["explored"], out["q_tracked"]
        out["p_explore"][:] = 0.0
        out["s_hat"][:] = math.nan
        on_complete, on_feedback = self.user.on_complete, self.user.on_feedback
        on_latency = self.user.on_latency if self._on_latency else None
        names, alpha, where = self.models, self.alpha, self.where
        cost_at, label_at, given = cost.item, sat.item, feedback_mask.item
        decide = self.decide
        method = "decide"
        t = 0
        try:
            for t in range(sat.shape[0]):
                qt_out[t] = self.q_tracked
                method = "decide"
                m, explored = decide(t)
                model_out[t] = m
                explored_out[t] = explored
                method = "on_complete"
                if explored:
                    row = cost[t].copy()
                    row.flags.writeable = False
                    on_complete(t, names[m], row)
                else:
                    on_complete(t, names[m], float(cost_at(t, m)))
                if on_latency is not None:  # no clock in sequential mode: every request takes no time
                    method = "on_latency"
                    on_latency(t, names[m], 0.0)
                if given(t):
                    label = float(label_at(t, m))
                    q = self.q_tracked + alpha - label
                    self.q_tracked = q if q > 0.0 else 0.0
                    method = "on_feedback"
                    if explored:
                        labels = sat[t].copy()
                        labels.flags.writeable = False
                        on_feedback(t, names[m], labels)
                    else:
                        on_feedback(t, names[m], label)
        except UserError:
            raise
        except Exception as e:
            raise PluginError(f"{where}: {method} raised {type(e).__name__} at request index {t}:\n"
                              + _user_traceback(e)) from None


