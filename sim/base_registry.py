"""A registry per family (policies, predictors), in the style of Vidur's ``utils/base_registry.py``.

A kind is declared once, on its pydantic config class, with :meth:`Registry.register`: what it sees,
whether it is causal, which bounds and charts apply, and where its builder lives. Everything that used to be
a hand-kept table (``SEES``, ``NON_CAUSAL``, ``BOUND_KINDS``, ``V_KINDS``, the config's discriminated unions)
is derived from these entries. Builders are named as ``"module:function"`` and imported when first used,
so that reading a scenario does not import numba.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Kind:
    """One registered kind of a family. ``info`` holds the family's own attributes (see each family)."""

    name: str
    config: type
    builder: str  # "module:function"
    info: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, key):
        try:
            return self.__dict__["info"][key]
        except KeyError:
            raise AttributeError(key) from None

    def build(self, *args, **kwargs):
        module, _, name = self.builder.partition(":")
        fn: Callable = getattr(importlib.import_module(module), name)
        return fn(*args, **kwargs)


class Registry:
    """Kinds of one family, in registration order (the order of the config's union and of the CLI help)."""

    def __init__(self, family: str, defaults: dict[str, Any]):
        self.family = family
        self.defaults = defaults
        self._kinds: dict[str, Kind] = {}

    def register(self, builder: str, **info):
        """Class decorator: register the config class under its ``kind`` literal's value."""
        unknown = set(info) - set(self.defaults)
        if unknown:
            raise TypeError(f"{self.family} registry: unknown attribute(s) {sorted(unknown)}")

        def deco(cls):
            name = cls.model_fields["kind"].annotation.__args__[0]
            if name in self._kinds:
                raise ValueError(f"{self.family} kind {name!r} registered twice")
            self._kinds[name] = Kind(name, cls, builder, {**self.defaults, **info})
            return cls

        return deco

    def get(self, name: str) -> Kind:
        return self._kinds[name]

    def __iter__(self):
        return iter(self._kinds.values())

    def __contains__(self, name: str) -> bool:
        return name in self._kinds

    def names(self, **where) -> set[str]:
        """The kinds whose attributes equal the given values, e.g. ``names(causal=False)``."""
        return {k.name for k in self if all(k.info[a] == v for a, v in where.items())}

    def configs(self) -> tuple[type, ...]:
        return tuple(k.config for k in self)
