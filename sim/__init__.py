"""messplus-sim: an offline laboratory for cost-optimal LLM request routing with SLA guarantees (MESS+).

A request's path through the package, folder by folder: ``trace`` (the input: files, synthetic traces,
importers) -> ``world`` (time, slots, GPUs, events) -> ``policies`` (routers and predictors: the decision) ->
``evaluation`` (outcomes joined, the optimum, the bounds) -> ``running`` (result files, sweeps) -> ``report``;
``cli`` is the command line, ``config`` types the scenario.
"""

import hashlib
import os
from pathlib import Path

__version__ = "0.1.0"


def _numba_cache_dir() -> None:
    """Key numba's on-disk cache by the source of every kernel module.

    numba invalidates a cached function only when its own file changes, not when a kernel it calls from
    another module does; a stale cross-module cache silently runs old code. Hashing all kernel sources
    into the cache folder name makes any change start a fresh cache.
    """
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    here = Path(__file__).parent
    h = hashlib.sha256()
    # every module that defines or calls a numba kernel (derived, so that a new kernel file cannot be forgotten)
    for p in sorted(here.rglob("*.py")):
        text = p.read_bytes()
        if b"numba" in text:
            h.update(str(p.relative_to(here)).encode())
            h.update(text)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "messplus-sim"
    os.environ["NUMBA_CACHE_DIR"] = str(base / f"numba-{h.hexdigest()[:16]}")


_numba_cache_dir()
# Arrow's default allocator (mimalloc) keeps freed pages mapped; a trace is read one large column at a time and
# each is freed after conversion, so glibc's allocator, which unmaps large blocks, keeps the peak lower.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def __getattr__(name):
    # the public names, imported on first use so that ``import sim`` stays light
    if name in ("Explore", "Request"):
        from sim.policies import plugin

        return getattr(plugin, name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
