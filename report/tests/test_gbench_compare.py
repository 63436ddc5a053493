"""Google Benchmark's own compare.py (Debian: libbenchmark-tools, needs python3-scipy)
reads our files unchanged. Skipped when it is not installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import A, B

COMPARE = Path("/usr/share/benchmark/compare.py")


def test_gbench_compare_reads_our_json():
    if not COMPARE.exists():
        pytest.skip("libbenchmark-tools not installed")
    pytest.importorskip("scipy")
    python = shutil.which("python3", path="/usr/bin") or "python3"
    res = subprocess.run([python, str(COMPARE), "--no-color", "benchmarks", str(A), str(B)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "pingpong/pipe/64/manual_time_pvalue" in res.stdout
    assert "throughput/tcp/1048576/manual_time_median" in res.stdout
