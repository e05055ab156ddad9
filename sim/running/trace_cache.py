"""A sweep's shared traces on disk, in a format that cannot run code: ``.npz`` read with ``allow_pickle=False``.

``DIR/traces/<key>.npz`` holds every array of a built :class:`~sim.trace.format.Trace` (each with its own dtype,
so a loaded trace is bit-for-bit the one that was built) and its other fields as JSON; ``<key>.sha256`` is the
SHA-256 of the ``.npz`` bytes. A reader trusts an entry only when both agree: a missing, damaged or planted
entry is rebuilt from the cell's config (:func:`sim.running.sweep.build_shared_trace`) or, in a worker,
simply not used (the cell builds its trace itself). Nothing in the cache is ever unpickled or executed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from sim.atomic import atomic_path
from sim.trace.format import Outcomes, RequestFeatures, Trace

SUFFIX = ".npz"
_META = "__meta__"


def entry_path(folder: str | os.PathLike, key: str) -> Path:
    return Path(folder) / f"{key}{SUFFIX}"


def _hash_path(path: Path) -> Path:
    return path.with_suffix(".sha256")


def _split(obj) -> tuple[dict, dict]:
    """A dataclass's fields as (arrays, JSON-able rest)."""
    arrays, rest = {}, {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            if v.dtype == object:
                raise TypeError(f"trace field {f.name} holds Python objects; cannot cache it without pickle")
            arrays[f.name] = v
        else:
            rest[f.name] = v
    return arrays, rest


def write_entry(path: Path, trace: Trace) -> None:
    """Store ``trace`` at ``path`` and its hash beside it (the hash last: present = the entry is whole)."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict = {}
    for part_name, part in (("trace", trace), ("features", trace.features), ("outcomes", trace.outcomes)):
        a, rest = _split(part)
        rest.pop("features", None)
        rest.pop("outcomes", None)
        arrays.update({f"{part_name}.{k}": v for k, v in a.items()})
        meta[part_name] = rest
    buf = io.BytesIO()
    meta_bytes = np.frombuffer(json.dumps(meta, allow_nan=False).encode("utf-8"), dtype=np.uint8)
    np.savez(buf, **arrays, **{_META: meta_bytes})
    data = buf.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    with atomic_path(_hash_path(path)) as tmp:
        tmp.write_text(hashlib.sha256(data).hexdigest() + "\n", encoding="ascii")


def read_entry(path: Path) -> Trace | None:
    """The cached trace, or None when the entry is missing, unreadable or does not match its hash."""
    try:
        data = Path(path).read_bytes()
        expected = _hash_path(Path(path)).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if hashlib.sha256(data).hexdigest() != expected:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
        fields: dict[str, dict] = {part: dict(meta[part]) for part in ("trace", "features", "outcomes")}
        for k, v in arrays.items():
            part, name = k.split(".", 1)
            fields[part][name] = v
        features = RequestFeatures(**fields["features"])
        outcomes = Outcomes(**fields["outcomes"])
        return Trace(**fields["trace"], features=features, outcomes=outcomes)
    except Exception:  # noqa: BLE001 - any damage means "not cached": the caller builds the trace instead
        return None


def is_valid(path: Path) -> bool:
    return read_entry(path) is not None
