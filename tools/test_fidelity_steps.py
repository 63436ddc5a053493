"""tools/fidelity.py runs other tools: one that fails, hangs or prints no figure ends
the script with one clear line, never a traceback or a wait without end."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

import pytest

from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "fidelity.py"


def load():
    spec = importlib.util.spec_from_file_location("fidelity", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_step_that_hangs_is_killed_and_named():
    f = load()
    t0 = time.monotonic()
    with pytest.raises(f.StepFailed, match=r"^sleep 30: no result within 0\.5 s, killed$"):
        f.run(["sleep", "30"], timeout=0.5)
    assert time.monotonic() - t0 < 10


def test_a_failed_step_says_its_status_and_last_words():
    f = load()
    with pytest.raises(f.StepFailed, match=r"exit status 3: second$"):
        f.run(["sh", "-c", "echo first >&2; echo second >&2; exit 3"])


def test_a_json_tool_s_error_is_quoted_not_its_last_brace():
    f = load()
    with pytest.raises(f.StepFailed, match=r"exit status 1: unable to connect to server$"):
        f.run(["sh", "-c", 'printf \'{\n "error": "unable to connect to server"\n}\n\'; exit 1'])


def test_output_without_the_figure_is_an_error_not_a_traceback():
    f = load()
    assert f.figure(r"rtt_p50_ns=([0-9.]+)", "tcp size=64 rtt_p50_ns=123", "x") == 123.0
    with pytest.raises(f.StepFailed, match="sockperf: no figure in its output"):
        f.figure(r"percentile 50\.000 =\s*([0-9.]+)", "sockperf: error", "sockperf")


def test_a_missing_tool_ends_the_script_with_one_line(tmp_path):
    p = subprocess.run([sys.executable, str(SCRIPT), "--build", str(tmp_path / "nowhere"),
                        "--rounds", "1", "--placements", "cross"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stdout == ""
    last = p.stderr.strip().splitlines()[-1]
    assert last == f"fidelity: {tmp_path / 'nowhere'}/ipcbench: No such file or directory"
    assert "Traceback" not in p.stderr
