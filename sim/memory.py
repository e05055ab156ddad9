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


#: A lower bound on what a run holds per request: request id, arrival and features (about 48 bytes) and per
#: model at least satisfaction, cost, energy and latency (about 32 bytes). The measured peak is higher (1.79 GB
#: for 10^7 requests and 2 models: docs/performance.md), so a run refused by this bound could never have fit.
BYTES_PER_REQUEST = 48
BYTES_PER_REQUEST_AND_MODEL = 32


def available_bytes() -> int | None:
    """Memory the system can still give (MemAvailable + SwapFree, Linux), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.split()[1:2]}
        return info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, KeyError, ValueError, IndexError):
        return None


def check_fits(requests: int, models: int, what: str) -> None:
    """Refuse, before anything is built, a run that cannot fit in memory (one line instead of a MemoryError)."""
    from sim.errors import UserError

    need = requests * (BYTES_PER_REQUEST + BYTES_PER_REQUEST_AND_MODEL * models)
    have = available_bytes()
    if have is not None and need > have:
        raise UserError(f"{what}: {requests:,} requests x {models} models need at least {need / 1e9:.1f} GB of "
                        f"memory and {have / 1e9:.1f} GB are available; use fewer requests")
