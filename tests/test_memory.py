"""Peak memory of a 10^7-request discrete-event run stays under 2 GB (docs/performance.md).

Runs ``scenarios/memory_10m.yaml`` in a child process, once from its synth block and once from the same trace
written to Parquet, and reads the child's peak resident set size from ``getrusage``. Slow (about 4 minutes
with the trace file): ``--run-slow`` only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

LIMIT_BYTES = 2 * 10**9
SCENARIO = REPO / "scenarios" / "memory_10m.yaml"


def peak_rss_of(args: list[str], cwd: Path) -> int:
    """Peak RSS in bytes of ``python -m sim ARGS`` (the largest child so far: run each in a fresh process)."""
    code = ("import resource, runpy, sys; sys.argv = ['sim'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('sim', run_name='__main__')\nexcept SystemExit as e:\n    rc = e.code or 0\n"
            "else:\n    rc = 0\n"
            "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    peak_kb = int(next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("PEAK")))
    return peak_kb * 1024


@pytest.mark.slow
def test_10m_request_des_run_from_synth_block_peaks_under_2gb(tmp_path):
    peak = peak_rss_of(["run", str(SCENARIO), "--out", str(tmp_path / "out"), "-q"], tmp_path)
    assert peak < LIMIT_BYTES, f"peak RSS {peak / 1e9:.2f} GB"


@pytest.mark.slow
def test_10m_request_des_run_from_trace_file_peaks_under_2gb(tmp_path):
    raw = yaml.safe_load(SCENARIO.read_text())
    subprocess.run([sys.executable, "-m", "sim", "trace", "synth", str(SCENARIO), "-o", "big.parquet", "--seed",
                    str(raw["seed"])], cwd=tmp_path, check=True, capture_output=True, timeout=900)
    raw["trace"] = {"path": str(tmp_path / "big.parquet")}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    peak = peak_rss_of(["run", "run.yaml", "--out", "out", "-q"], tmp_path)
    assert peak < LIMIT_BYTES, f"peak RSS {peak / 1e9:.2f} GB"
