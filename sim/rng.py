"""Every random stream is derived from the scenario seed and a tuple of names, never from execution order.

``stream(seed, "feedback")`` is the same generator whichever policy, sweep cell or process asks for it, so
adding a policy or reordering a sweep cannot change anybody else's draws.
"""

from __future__ import annotations

import zlib

import numpy as np


def _key(part: object) -> int:
    if isinstance(part, (int, np.integer)) and part >= 0:
        return int(part)
    return zlib.crc32(str(part).encode())


def seed_sequence(seed: int, *names: object) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=int(seed), spawn_key=tuple(_key(n) for n in names))


def stream(seed: int, *names: object) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, *names)))
