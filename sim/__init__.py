"""messplus-sim: an offline laboratory for cost-optimal LLM request routing with SLA guarantees (MESS+).

A request's path through the package: ``trace`` (or ``synth``) -> ``engine`` / ``sequential`` (time and
slots) -> ``router`` + ``predictors`` (the decision) -> ``metrics`` (evaluation) -> ``runner`` (files) ->
``report``. ``config`` types the scenario; ``policies`` maps names to routers; ``theory`` holds the bounds.
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
    for name in ("predictors.py", "router.py", "sequential.py", "metrics.py", "engine.py", "theory.py", "nrt.py"):
        p = here / name
        if p.exists():
            h.update(p.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "messplus-sim"
    os.environ["NUMBA_CACHE_DIR"] = str(base / f"numba-{h.hexdigest()[:16]}")


_numba_cache_dir()
# Arrow's default allocator (mimalloc) keeps freed pages mapped; a trace is read one large column at a time and
# each is freed after conversion, so glibc's allocator, which unmaps large blocks, keeps the peak lower.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
