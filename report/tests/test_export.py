"""``report.sh export``: github-action-benchmark and Bencher Metric Format files."""

from __future__ import annotations

import json

import pytest

from conftest import (A, ERRORS, floor_cells, iterations, load, medians, report,
                      transports)

FLOOR = " (machine floor)"


def _cells(doc: dict, workload: str) -> int:
    return len({b["run_name"] for b in doc["benchmarks"]
                if b["run_name"].startswith(workload + "/")})


def _floors_clearly_named(names: list[str]):
    """Floor entries say so in their name; no transport entry does."""
    for name in names:
        assert name.startswith("floor/") == (FLOOR in name), name


@pytest.fixture(scope="module")
def gab(tmp_path_factory):
    out = tmp_path_factory.mktemp("gab")
    res = report("export", A, "--format", "github-action-benchmark", "--out", out)
    assert res.returncode == 0, res.stderr
    return out


def test_github_action_benchmark_files(gab):
    doc = load(A)
    assert sorted(p.name for p in gab.iterdir()) == ["bigger-is-better.json",
                                                     "smaller-is-better.json"]
    smaller = json.loads((gab / "smaller-is-better.json").read_text())
    bigger = json.loads((gab / "bigger-is-better.json").read_text())
    for entries in (smaller, bigger):
        assert isinstance(entries, list) and entries
        names = [e["name"] for e in entries]
        assert len(set(names)) == len(names)
        for e in entries:
            assert set(e) <= {"name", "unit", "value", "range", "extra"}
            assert {"name", "unit", "value"} <= set(e)
            assert isinstance(e["name"], str) and isinstance(e["unit"], str)
            assert isinstance(e["value"], (int, float))
            assert all(isinstance(e[k], str) for k in ("range", "extra") if k in e)
    p50 = {e["name"]: e for e in smaller}["pingpong/pipe/64 [pin=cross] p50 round trip"]
    assert p50["unit"] == "ns"
    assert p50["value"] == medians(doc, "pingpong/pipe/64/manual_time", "rtt_p50_ns")
    gbps = {e["name"]: e for e in bigger}["throughput/uds/1048576 [pin=cross] throughput"]
    assert gbps["unit"] == "GB/s"
    assert gbps["value"] == pytest.approx(
        medians(doc, "throughput/uds/1048576/manual_time", "bytes_per_second") / 1e9)
    # p50 and p99 per pingpong cell, GB/s and msg/s per throughput cell, plus the floors:
    # cacheline and futex round trips (p50, p99) and syscall; memcpy in GB/s.
    assert len(smaller) == 2 * _cells(doc, "pingpong") + 2 * 2 + 1
    assert len(bigger) == 2 * _cells(doc, "throughput") + len(
        [f for f in floor_cells(doc) if f.startswith("floor/memcpy/")])
    assert _cells(doc, "pingpong") == _cells(doc, "throughput") == 4 * len(transports(doc))
    _floors_clearly_named([e["name"] for e in smaller + bigger])
    syscall = {e["name"]: e for e in smaller}[f"floor/syscall [pin=cross]{FLOOR} per call"]
    assert syscall["value"] == medians(doc, "floor/syscall/real_time", "ns_per_call")
    assert syscall["extra"].startswith("machine floor, not a transport")


def test_bmf(tmp_path):
    doc = load(A)
    res = report("export", A, "--format", "bmf", "--out", tmp_path)
    assert res.returncode == 0, res.stderr
    bmf = json.loads((tmp_path / "bmf.json").read_text())
    # every pingpong and throughput cell; floors with a latency (not memcpy: bytes/s only)
    assert isinstance(bmf, dict) and len(bmf) == _cells(doc, "pingpong") + _cells(
        doc, "throughput") + 3
    _floors_clearly_named(list(bmf))
    assert bmf[f"floor/futex_rtt [pin=cross]{FLOOR}"]["latency"]["value"] == medians(
        doc, "floor/futex_rtt/manual_time", "rtt_p50_ns")
    for name, measures in bmf.items():
        assert isinstance(name, str) and measures
        assert set(measures) <= {"latency", "throughput"}
        for m in measures.values():
            assert set(m) <= {"value", "lower_value", "upper_value"} and "value" in m
            assert all(isinstance(v, (int, float)) for v in m.values())
            assert m["lower_value"] <= m["value"] <= m["upper_value"]
    lat = bmf["pingpong/uds/64 [pin=cross]"]["latency"]
    values = [b["rtt_p50_ns"] for b in iterations(doc, "pingpong/uds/64/manual_time")]
    assert lat == {"value": medians(doc, "pingpong/uds/64/manual_time", "rtt_p50_ns"),
                   "lower_value": min(values), "upper_value": max(values)}
    thr = bmf["throughput/tcp/64 [pin=cross]"]["throughput"]
    assert thr["value"] == medians(doc, "throughput/tcp/64/manual_time", "items_per_second")


def test_failed_cells_are_named_not_exported(tmp_path):
    res = report("export", ERRORS, "--format", "bmf", "--out", tmp_path)
    assert res.returncode == 0
    assert json.loads((tmp_path / "bmf.json").read_text()) == {}
    assert "left out 8 failed cell(s)" in res.stderr
