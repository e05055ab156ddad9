"""One row of the scaling table in docs/performance.md: wall time and peak memory of one run.

    python tests/benchmarks/scaling.py --requests 1000000 [--tokens 24] [--mode des|sequential] [--models 3]

Runs ``python -m sim run scenarios/scale_text.yaml --no-report`` under ``/usr/bin/time -v`` in a child process
with the request count, text tokens and engine set by ``--set``; ``--models M`` other than 3 replaces the zoo by
M synthetic models (accuracy 0.35 ... 0.65, energy 80 ... 2000 J geometric, latency 0.4 ... 4.5 s, cheapest
first). Prints one Markdown row: requests, models, tokens, engine, wall seconds, CPU seconds (user + system:
steadier than wall time on a shared machine), peak RSS in GB, the 1-minute load average at the end.
Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def zoo_overrides(m: int) -> list[str]:
    names = [f"m{i:02d}" for i in range(m)]
    frac = [i / (m - 1) for i in range(m)]
    accuracy = {n: round(0.35 + 0.3 * f, 4) for n, f in zip(names, frac)}
    energy = {n: round(80.0 * 25.0**f, 2) for n, f in zip(names, frac)}
    latency = {n: round(0.4 + 4.1 * f, 3) for n, f in zip(names, frac)}
    groups = {"arc_challenge": {"accuracy": accuracy, "energy_j": energy}}
    zoo = [{"name": n, "slots": 16} for n in names]
    return ["--set", f"trace.synth.groups={json.dumps(groups)}", "--set", f"trace.synth.latency_s={json.dumps(latency)}",
            "--set", f"zoo={json.dumps(zoo)}"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--tokens", type=int, default=24)
    p.add_argument("--mode", choices=("des", "sequential"), default="des")
    p.add_argument("--models", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "sim", "run", str(REPO / "scenarios" / "scale_text.yaml"),
               "--no-report", "-q", "--out", str(Path(tmp) / "out"),
               "--set", f"trace.synth.requests={a.requests}", "--set", f"trace.synth.text.tokens={a.tokens}",
               "--set", f"engine.mode={a.mode}"] + (zoo_overrides(a.models) if a.models != 3 else [])
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        return out.returncode
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", out.stderr).group(1)
    seconds = sum(float(x) * 60**i for i, x in enumerate(reversed(wall.split(":"))))
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    cpu = sum(float(re.search(rf"{what} time \(seconds\): (\S+)", out.stderr).group(1)) for what in ("User", "System"))
    load = os.getloadavg()[0]
    print(f"| {a.requests:,} | {a.models} | {a.tokens} | {a.mode} | {seconds:.1f} s | {cpu:.1f} s | {rss_kb * 1024 / 1e9:.2f} GB | {load:.1f} |",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
