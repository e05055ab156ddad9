"""What a process running the simulator sets for itself: called by the CLI entry, by :func:`sim.run` and
before a sweep starts its workers (which inherit it), never by ``import sim``.

- ``NUMBA_CACHE_DIR``: numba invalidates a cached function only when its own file changes, not when a kernel
  it calls from another module does; a stale cross-module cache silently runs old code. Hashing every kernel
  module's source into the cache folder's name makes any change start a fresh cache. It must be set before
  numba is first imported (numba reads it then); if it is already set, it is left alone.
- ``ARROW_DEFAULT_MEMORY_POOL=system``: Arrow's default allocator (mimalloc) keeps freed pages mapped; a trace
  is read one large column at a time and each is freed after conversion, so glibc's allocator, which unmaps
  large blocks, keeps the peak lower. Also read when pyarrow is first imported.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def numba_cache_dir() -> str:
    """The cache folder keyed by the source of every module that defines or calls a numba kernel (derived,
    so that a new kernel file cannot be forgotten)."""
    here = Path(__file__).parent
    h = hashlib.sha256()
    for p in sorted(here.rglob("*.py")):
        text = p.read_bytes()
        if b"numba" in text:
            h.update(str(p.relative_to(here)).encode())
            h.update(text)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "messplus-sim"
    return str(base / f"numba-{h.hexdigest()[:16]}")


def prepare() -> None:
    """Set the environment the simulator wants for this process (and the workers it starts); idempotent."""
    if "NUMBA_CACHE_DIR" not in os.environ:
        os.environ["NUMBA_CACHE_DIR"] = numba_cache_dir()
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
