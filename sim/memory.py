"""Give freed heap memory back to the operating system (glibc only; elsewhere a no-op).

A long run reads its trace one large column at a time and writes its results in chunks. Many of the buffers
this frees are small enough for glibc to keep on its heap, where they stay resident until the top of the heap
is free, which a long-lived array usually prevents. ``malloc_trim`` returns every free page of the heap; on a
10^7-request trace that is about 0.1 GB off the run's peak (docs/performance.md).
"""

from __future__ import annotations

import ctypes

try:  # the C library the interpreter already has loaded: no library search (a subprocess) at import
    _trim = ctypes.CDLL(None).malloc_trim
except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
    _trim = None


def release_free_memory() -> None:
    if _trim is not None:
        _trim(0)
