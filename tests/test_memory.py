"""Peak memory of 10^7-request runs (docs/performance.md).

Runs ``scenarios/memory_10m.yaml`` (two models, no text) in a child process, once from its synth block and once
from the same trace written to Parquet (under 2 GB each), and ``scenarios/scale_text.yaml`` (three models, 24
hashed text tokens per request, the logistic predictor: under 4 GB; its ``trace synth``: under 1 GB), and reads
the child's peak resident set size from ``getrusage``. Slow (several minutes each on 2 cores): ``--run-slow``
only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO

LIMIT_BYTES = 2 * 10**9
SCENARIO = REPO / "scenarios" / "memory_10m.yaml"
TEXT_SCENARIO = REPO / "scenarios" / "scale_text.yaml"  # 10^7 requests with text
TEXT_LIMIT_BYTES = 4 * 10**9
SYNTH_LIMIT_BYTES = 1 * 10**9


def peak_rss_of(args: list[str], cwd: Path) -> int:
    """Peak RSS in bytes of ``python -m sim ARGS`` (the largest child so far: run each in a fresh process)."""
    code = ("import resource, runpy, sys; sys.argv = ['sim'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('sim', run_name='__main__')\nexcept SystemExit as e:\n    rc = e.code or 0\n"
            "else:\n    rc = 0\n"
            "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=3600)
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


@pytest.mark.slow
def test_10m_request_des_run_with_text_and_the_logistic_predictor_peaks_under_4gb(tmp_path):
    assert yaml.safe_load(TEXT_SCENARIO.read_text())["trace"]["synth"]["requests"] == 10**7
    peak = peak_rss_of(["run", str(TEXT_SCENARIO), "--out", str(tmp_path / "out"), "-q", "--no-report"], tmp_path)
    assert peak < TEXT_LIMIT_BYTES, f"peak RSS {peak / 1e9:.2f} GB"


@pytest.mark.slow
def test_trace_synth_of_10m_requests_with_text_peaks_under_1gb(tmp_path):
    peak = peak_rss_of(["trace", "synth", str(TEXT_SCENARIO), "-o", "big.parquet"], tmp_path)
    assert peak < SYNTH_LIMIT_BYTES, f"peak RSS {peak / 1e9:.2f} GB"
    assert pq.ParquetFile(tmp_path / "big.parquet").metadata.num_rows == 10**7
