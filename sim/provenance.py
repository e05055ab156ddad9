"""What produced a result file: ``provenance(resolved_yaml)`` goes into every ``summary.json`` (key ``provenance``)
and into the Parquet metadata of every result file (key ``messplus_sim.provenance``, the same JSON).

Everything in it is fixed for a given checkout and environment, so reruns of a scenario stay byte-identical. The git
commit is read from the checkout's files (``.git``, worktrees and packed refs included) rather than by running
``git``, which would execute whatever a repository's configuration asks for; it is null outside a git checkout.
"""

from __future__ import annotations

import hashlib
import json
import platform
from functools import lru_cache
from pathlib import Path

#: The key of the provenance JSON in Parquet file metadata.
PARQUET_KEY = b"messplus_sim.provenance"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _is_sha(s: str | None) -> bool:
    return s is not None and len(s) == 40 and all(c in "0123456789abcdef" for c in s)


def git_commit(start: Path | None = None) -> str | None:
    """The commit checked out in the git working tree that holds ``start`` (default: this package), or None.
    (Read once per process through :func:`_environment`.)"""
    here = (start or Path(__file__).resolve().parent)
    for d in (here, *here.parents):
        dot = d / ".git"
        if dot.is_dir():
            gitdir = dot
        elif dot.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = _read(dot) or ""
            if not text.startswith("gitdir:"):
                return None
            gitdir = (d / text[len("gitdir:"):].strip()).resolve()
        else:
            continue
        head = _read(gitdir / "HEAD")
        if head is None:
            return None
        if _is_sha(head):
            return head
        if not head.startswith("ref:"):
            return None
        ref = head[4:].strip()
        common = gitdir
        commondir = _read(gitdir / "commondir")
        if commondir:
            common = (gitdir / commondir).resolve()
        for base in (gitdir, common):
            sha = _read(base / ref)
            if _is_sha(sha):
                return sha
        packed = _read(common / "packed-refs") or ""
        for line in packed.splitlines():
            parts = line.split(" ", 1)
            if len(parts) == 2 and parts[1] == ref and _is_sha(parts[0]):
                return parts[0]
        return None
    return None


@lru_cache(maxsize=1)
def _environment() -> dict:
    import numba
    import numpy
    import polars

    from sim import __version__

    return {"simulator_version": __version__, "git_commit": git_commit(), "python": platform.python_version(),
            "numpy": numpy.__version__, "numba": numba.__version__, "polars": polars.__version__}


def provenance(resolved_yaml: str) -> dict:
    """The provenance block of a run of the scenario whose resolved YAML is ``resolved_yaml``."""
    return {**_environment(), "scenario_sha256": hashlib.sha256(resolved_yaml.encode("utf-8")).hexdigest()}


def parquet_metadata(resolved_yaml: str) -> dict[bytes, bytes]:
    """Schema metadata for a result Parquet file."""
    return {PARQUET_KEY: json.dumps(provenance(resolved_yaml), sort_keys=True).encode("utf-8")}
