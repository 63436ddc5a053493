"""tools/fidelity.py runs other tools: one that fails, hangs or prints no figure ends
the script with one clear line, never a traceback or a wait without end."""

from __future__ import annotations

import importlib.util
import json
import statistics
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


FIXTURES = Path(__file__).resolve().parents[1] / "report" / "tests" / "fixtures"


def test_results_are_read_through_the_report_loader():
    f = load()
    doc = json.loads((FIXTURES / "reps9-a.json").read_text())
    reps = [b["rtt_p50_ns"] for b in doc["benchmarks"]
            if b["run_name"] == "pingpong/uds/64/manual_time" and b["run_type"] == "iteration"]
    assert len(reps) == 9
    assert f.results(FIXTURES / "reps9-a.json")["pingpong/uds/64"]["rtt_p50_ns"] \
        == statistics.median(reps)


def test_a_file_that_is_not_an_ipcbench_result_is_refused_with_the_loader_s_reason(
        tmp_path):
    f = load()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"context": {"host_name": "x"}, "benchmarks": [
        {"name": "BM_Foo/8", "run_name": "BM_Foo/8", "run_type": "iteration",
         "iterations": 1, "real_time": 1.0, "cpu_time": 1.0, "time_unit": "ns"}]}))
    with pytest.raises(f.StepFailed, match=r"^.*other\.json is not an ipcbench result: its "
                       r"context has no 'ipcbench_version'"):
        f.results(other)


def test_a_failed_cell_is_named_not_a_missing_key(tmp_path):
    f = load()
    doc = json.loads((FIXTURES / "errors.json").read_text())
    failed = next(b for b in doc["benchmarks"] if b.get("error_occurred"))
    with pytest.raises(f.StepFailed, match=r"^ipcbench cell .* failed: "):
        f.results(FIXTURES / "errors.json")
    assert failed["error_message"]


def test_h2load_times_are_read_in_their_units():
    f = load()
    assert f.duration_ns("85us") == 85e3
    assert f.duration_ns("1.24ms") == 1.24e6
    assert f.duration_ns("2s") == 2e9
    with pytest.raises(f.StepFailed, match="unreadable time '12ns'"):
        f.duration_ns("12ns")


H2LOAD_OUT = """finished in 1.00s, 9990.00 req/s, 1.2MB/s
requests: 1000 total, 1000 started, 1000 done, {ok} succeeded, {bad} failed, 0 errored, 0 timeout
status codes: {ok} 2xx, 0 3xx, {bad} 4xx, 0 5xx
                     min         max         mean         sd        +/- sd
time for request:       85us      1.24ms       112us        30us    95.00%
"""


class FakePeer:
    token = "t"
    port = 1


def test_h2load_mean_is_read_only_when_every_request_was_answered(monkeypatch):
    f = load()
    monkeypatch.setattr(f, "run", lambda *a, **k: H2LOAD_OUT.format(ok=1000, bad=0))
    assert f.h2load_mean_ns(FakePeer(), "body", 1000, 0) == 112e3
    monkeypatch.setattr(f, "run", lambda *a, **k: H2LOAD_OUT.format(ok=999, bad=1))
    with pytest.raises(f.StepFailed, match="h2load: 999 of 1000 requests answered 2xx"):
        f.h2load_mean_ns(FakePeer(), "body", 1000, 0)


AB_OUT = """Complete requests:      1000
Failed requests:        0
{non2xx}Keep-Alive requests:    1000
Time per request:       0.112 [ms] (mean)
Time per request:       0.112 [ms] (mean, across all concurrent requests)
"""


def test_ab_mean_is_read_only_when_every_request_was_answered(monkeypatch):
    f = load()
    monkeypatch.setattr(f, "run", lambda *a, **k: AB_OUT.format(non2xx=""))
    assert f.ab_mean_ns(FakePeer(), "body", 1000, 0) == pytest.approx(112e3)
    monkeypatch.setattr(f, "run", lambda *a, **k: AB_OUT.format(non2xx="Non-2xx responses:      1000\n"))
    with pytest.raises(f.StepFailed, match="ab: 1000 of 1000 requests complete, 0 failed, 1000 not 2xx"):
        f.ab_mean_ns(FakePeer(), "body", 1000, 0)


SOCKPERF_UL_OUT = """sockperf: [Valid Duration] RunTime=1.550 sec; SentMessages=15504; ReceivedMessages=15504
sockperf: ---> <MAX> observation = 3985.338
sockperf: ---> percentile 99.999 = 3985.338
sockperf: ---> percentile 99.000 = 1284.182
sockperf: ---> percentile 90.000 =   32.653
sockperf: ---> percentile 50.000 =   25.783
sockperf: ---> <MIN> observation =    9.849
"""


class FakeServer:
    def terminate(self):
        pass

    def wait(self, timeout=None):
        return 0


def test_sockperf_under_load_doubles_its_half_round_trips(monkeypatch):
    f = load()
    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        return SOCKPERF_UL_OUT
    monkeypatch.setattr(f, "run", fake_run)
    monkeypatch.setattr(f.subprocess, "Popen", lambda *a, **k: FakeServer())
    monkeypatch.setattr(f.time, "sleep", lambda s: None)
    p50, p99 = f.sockperf_under_load((0, 1), 64, 10000, 2)
    assert (p50, p99) == (pytest.approx(2 * 25.783e3), pytest.approx(2 * 1284.182e3))
    # every message answered, at the offered rate
    assert "--mps=10000" in seen["cmd"] and "--reply-every=1" in seen["cmd"]
    monkeypatch.setattr(f, "run", lambda *a, **k: "sockperf: error")
    with pytest.raises(f.StepFailed, match="sockperf: no figure in its output"):
        f.sockperf_under_load((0, 1), 64, 10000, 2)
