"""The ``sweep:`` block of a scenario: which cells a sweep runs (see sim/running/sweep.py and the README's "Sweeps").

A cell is the scenario with a set of dotted-key assignments applied (the same paths as ``--set``: list items by
index or by policy name). The block combines three kinds of axes::

    sweep:
      seeds: shared            # the default; or 'derived', see below
      cases:                   # alternatives; each case applies its keys together
        - name: arc_challenge
          set: {trace.synth.requests: 1172, trace.synth.groups: {...}}
          grid: {alpha: [0.4, 0.5, 0.6]}        # a case may carry its own grid / zip (per-case value lists)
        - ...
      zip:                     # lists of equal length, advanced together (one axis)
        policies.0.V: [1.0e-2, 1.0e-4]
        policies.0.c: [0.1, 1.0]
      grid:                    # the cartesian product of these lists
        seed: [42, 43, 44]

Cells = (each case x its own zip x its own grid) x the top zip x the top grid, in that nesting order (the
last grid key varies fastest). Assignments apply in the order case.set, case.zip, case.grid, zip, grid; a
key may be given only once per cell.

Seeds: ``shared`` is the default, because a sweep is nearly always read as a comparison across its axes (cost
against V, satisfaction against alpha), and a paired comparison needs every cell to see the same trace and the same
random draws (common random numbers): then a difference between two cells is the effect of the setting, not of
another sample. Replicates come from a ``seed`` axis (``grid: {seed: [42, 43, 44]}``). With ``derived`` every cell's seed is drawn from ``SeedSequence(root seed, hash of the cell's own
coordinates)`` (the root seed is the scenario's, or the cell's ``seed`` coordinate if seeds are swept), so cells
are independent replicates and no draw depends on execution order. With ``shared`` every cell keeps the root
seed: cells that differ only in, say, V see the same trace and the same exploration draws (paired comparisons,
as in the paper, where a seed is a data shuffle).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def used_twice(names: list[str]) -> list[str]:
    """The names that occur more than once, sorted (for "names used twice" errors here and in sim/config.py)."""
    return sorted({n for n in names if names.count(n) > 1})

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


def _check_axes(axes: dict[str, list], what: str) -> dict[str, list]:
    for key, values in axes.items():
        if not isinstance(key, str) or not key.strip() or any(not p for p in key.split(".")):
            raise ValueError(f"{what}: {key!r} is not a dotted key path")
        if key.split(".")[0] == "sweep":
            raise ValueError(f"{what}: {key!r}: a sweep cannot sweep its own 'sweep' block")
        if not isinstance(values, list) or not values:
            raise ValueError(f"{what}: {key!r} needs a non-empty list of values")
    return axes


class _Axes(_Strict):
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="cartesian product of value lists")
    zip: dict[str, list[Any]] = Field(default_factory=dict, description="equal-length lists advanced together")

    @field_validator("grid")
    @classmethod
    def _grid(cls, v):
        return _check_axes(v, "grid")

    @field_validator("zip")
    @classmethod
    def _zip(cls, v):
        _check_axes(v, "zip")
        lengths = {k: len(x) for k, x in v.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"zip: lists must have equal lengths, got {lengths}")
        return v

    @model_validator(mode="after")
    def _no_key_twice(self):
        both = sorted(set(self.grid) & set(self.zip))
        if both:
            raise ValueError(f"key(s) {both} appear in both grid and zip")
        return self


class SweepCase(_Axes):
    name: str | None = Field(None, description="the case's label in the manifest (default: its index)")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted keys applied together")

    @field_validator("set")
    @classmethod
    def _set(cls, v):
        for key in v:
            _check_axes({key: [None]}, "set")
        return v

    @model_validator(mode="after")
    def _set_not_swept(self):
        twice = sorted(set(self.set) & (set(self.grid) | set(self.zip)))
        if twice:
            raise ValueError(f"key(s) {twice} are both set and swept in one case")
        return self


class SweepSpec(_Axes):
    seeds: Literal["derived", "shared"] = Field(
        "shared", description="derived: per-cell seed from the root seed and the cell's coordinates; "
                               "shared: every cell keeps the root seed (common random numbers)")
    cases: list[SweepCase] = Field(default_factory=list, description="alternatives, each with its own keys")

    @field_validator("cases")
    @classmethod
    def _case_names(cls, v):
        dup = used_twice([c.name if c.name is not None else str(i) for i, c in enumerate(v)])
        if dup:
            raise ValueError(f"case names {dup} are used twice")
        return v

    @model_validator(mode="after")
    def _not_empty_and_disjoint(self):
        if not (self.grid or self.zip or self.cases):
            raise ValueError("a sweep needs at least one of 'grid', 'zip' or 'cases'")
        top = set(self.grid) | set(self.zip)
        for i, c in enumerate(self.cases):
            twice = sorted(top & (set(c.set) | set(c.grid) | set(c.zip)))
            if twice:
                raise ValueError(f"cases.{i}: key(s) {twice} are also swept at the top level")
        return self
