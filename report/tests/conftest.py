"""Shared helpers: run scripts/report.sh as a subprocess, read the fixtures (real output
of the suite) and derive new result files from them in temporary directories."""

from __future__ import annotations

import copy
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPORT_SH = ROOT / "scripts" / "report.sh"
A, B = FIXTURES / "quick-reps-a.json", FIXTURES / "quick-reps-b.json"
SAME, ERRORS = FIXTURES / "quick-same.json", FIXTURES / "errors.json"
# Two runs of one build, minutes apart, 9 interleaved repetitions each (pipe, uds, tcp,
# shm-spin at 64 B and 1 MiB, with floors): what a CI gate compares.
R9A, R9B = FIXTURES / "reps9-a.json", FIXTURES / "reps9-b.json"
LAYERS = FIXTURES / "layers.json"  # uds, zmq-ipc, grpc-uds, grpc-stream-uds at 64 B, 64 KiB
# Cut from reps9-a / reps9-b (pipe only, repetition rows only): pingpong/pipe/64 succeeds
# 9 times in the baseline; in the candidate 7 of its 9 repetitions fail (watchdog) and
# the 2 survivors are baseline repetitions made 40 % slower. throughput/pipe/64 fails in
# every repetition of both runs; throughput/pipe/1048576 is the two honest runs.
PARTIAL_BASE = FIXTURES / "partial-fail-base.json"
PARTIAL_CAND = FIXTURES / "partial-fail-cand.json"
# Hand-made: 3 repetitions (±1 %) of p50 RTT at 64 B and bytes/s at 1 MiB chosen so that
# shm-spin, posix-mq, pipe and uds score 1, 0.75, 0.5 and 0 on both metrics.
STARS = FIXTURES / "stars-known.json"
# Hand-made from layers.json (pingpong only, 3 repetitions at 0.99/1/1.01 x): uds
# (encoding framing), zmq-ipc (none), grpc-uds, grpc-stream-uds (protobuf); RTT p50 at
# 64 B 20/25/30/20.3 µs, at 64 KiB 40/39/52/60 µs; floor/encoding-framing 100 ns at 64 B,
# 50 ns at 64 KiB; floor/encoding-protobuf 600 ns at 64 B, failed in every repetition at
# 64 KiB. Known answers: test_render.test_encoding_share_of_each_layer.
ENCODINGS = FIXTURES / "encodings-known.json"
# HAND-MADE FIXTURE (fixtures/make_many_clients_fixture.py writes it), shaped after the
# runner's contract for issue 23's workloads, which were written in parallel: uds and tcp,
# 9 interleaved repetitions (0.97…1.03 × each figure), 2 CPUs. clients at 64 B: uds
# event-loop N=1,2,4,8 at 50k/90k/120k/110k round trips/s (one N=8 repetition at 2M/s:
# the mean would peak at 8, the median peaks at 4; p99 80 µs, Jain 0.97 there); uds
# thread-per-client 48k/95k/100k/130k (peak 8, Jain 0.6, p99 400 µs); tcp event-loop N=1,2
# (peak 2, 70k) and N=4 failed in every repetition; uds event-loop at 4 KiB N=1,2. fanout
# at 64 B: uds N=1,2,4 delivering 100k/180k/200k/s (slowest subscriber 50k/s, p99 90 µs
# at 4), tcp N=1,2. Busy processes = N + 1: every cell with N >= 2 is oversubscribed.
MANY = FIXTURES / "many_clients_fixture.json"
# HAND-MADE FIXTURE (fixtures/make_rate_fixture.py writes it), shaped after the runner's
# contract for the latency-under-load workload (rate/<transport>/<bytes>/rate:<msgs/s> or
# load:<pct>), written in parallel: uds and tcp, 3 interleaved repetitions (latencies
# x 1/0.99, 1, 1/1.01), context ipcbench_slo_p99_ns "100000". uds at 64 B: sustainable
# 100 000 msgs/s, where rate:100000 (p99 90 µs) and load:20 (20 % of max_rate 500 000,
# p99 95 µs, CPU 2100 + 1400 ns/msg) tie and the higher p99 is shown; above it
# rate:150000 (80 µs, saturated in 1 of 3 repetitions), rate:200000 (150 µs: over budget),
# rate:400000 (30 µs) and load:90 (450 000, 40 µs), both saturated; idle p99
# (pingpong/uds/64) 30 µs. uds at 4 KiB: rate:20000 at p99 = 100 µs exactly (within),
# rate:40000 failed in every repetition, idle p99 50 µs. tcp at 64 B: none within budget
# (rate:10000 at 150 µs on a shared CPU; rate:50000 saturated at 40 µs), no pingpong cell.
RATE = FIXTURES / "rate_fixture.json"

sys.path.insert(0, str(ROOT / "report"))


def report(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``scripts/report.sh ARGS`` and capture its output."""
    return subprocess.run([str(REPORT_SH), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def save(doc: dict, path: Path) -> Path:
    path.write_text(json.dumps(doc, indent=1))
    return path


def iterations(doc: dict, run_name: str) -> list[dict]:
    return [b for b in doc["benchmarks"]
            if b["run_name"] == run_name and b["run_type"] == "iteration"]


def medians(doc: dict, run_name: str, key: str) -> float:
    return statistics.median(b[key] for b in iterations(doc, run_name))


def transports(doc: dict) -> list[str]:
    """Transport names of the run, from the context key ``ipcbench_transports``."""
    return [t["name"] for t in json.loads(doc["context"]["ipcbench_transports"])]


def floor_cells(doc: dict) -> list[str]:
    """Run names of the ``floor/*`` rows, in file order."""
    return list(dict.fromkeys(b["run_name"] for b in doc["benchmarks"]
                              if b["run_name"].startswith("floor/")))


def scaled(doc: dict, factor: float, cells: set[str] | None = None) -> dict:
    """Copy of ``doc`` whose repetitions take ``factor`` times as long: times, *_ns and
    *ns_per_* counters multiplied, *_per_second counters divided (all cells, or
    ``cells``)."""
    doc = copy.deepcopy(doc)
    for b in doc["benchmarks"]:
        if b["run_type"] != "iteration" or (cells and b["run_name"] not in cells):
            continue
        for k in list(b):
            if k in ("real_time", "cpu_time") or k.endswith("_ns") or "ns_per_" in k:
                b[k] *= factor
            elif k.endswith("_per_second"):
                b[k] /= factor
    return doc


def table(md: str, section: str = "") -> tuple[list[str], list[list[str]]]:
    """Header and rows of the first Markdown table (under ``## section`` if given)."""
    body = md.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0] if section else md
    lines = [ln for ln in body.splitlines() if ln.startswith("|")]
    split = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]
    return split[0], split[2:]


def shown(text: str) -> tuple[float, float]:
    """(number, tolerance) of a displayed figure: half a unit of its last digit."""
    m = re.match(r"-?\d+(?:\.(\d+))?", text)
    assert m, f"no number in {text!r}"
    return float(m.group(0)), 0.5 * 10 ** -len(m.group(1) or "") + 1e-12


def assert_shown(text: str, expected: float):
    value, tol = shown(text)
    assert abs(value - expected) <= tol, f"{text!r} shows {value}, JSON gives {expected}"


@pytest.fixture(scope="session")
def fixture_docs() -> dict[str, dict]:
    return {p.name: load(p) for p in (A, B, SAME, ERRORS)}
