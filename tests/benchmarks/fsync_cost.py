"""Cost of the fsyncs in sim.atomic: 2000 atomic JSON writes with and without them, interleaved, 4 rounds."""
import tempfile, time, sys
from pathlib import Path
import sim.atomic as atomic
real = atomic.fsync_path
res = {"fsync": [], "none": []}
with tempfile.TemporaryDirectory(dir=sys.argv[1] if len(sys.argv) > 1 else None) as d:
    for r in range(4):
        for mode in ("fsync", "none"):
            atomic.fsync_path = real if mode == "fsync" else (lambda *a, **k: None)
            t0 = time.perf_counter()
            for i in range(2000):
                atomic.write_json(Path(d) / f"f{i % 50}.json", {"i": i, "mode": mode})
            res[mode].append((time.perf_counter() - t0) / 2000 * 1e3)
for k, v in res.items():
    print(k, "ms per atomic write: min %.3f median %.3f" % (min(v), sorted(v)[len(v) // 2]))
