"""``report.sh export``: github-action-benchmark and Bencher Metric Format files."""

from __future__ import annotations

import copy
import json
import re
import statistics

import pytest

from conftest import (A, ERRORS, MANY, floor_cells, iterations, load, medians, report,
                      save, transports)
from ipcbench_report.layout import fmt
from ipcbench_report.model import cell_id

FLOOR = " (machine floor)"
# What the tracker is promised, written out here rather than read from export.py: per
# github-action-benchmark name suffix, the counter whose median is the smaller-is-better
# entry (one entry, one series, per statistic; none where a cell lacks the counter).
SMALLER = {
    "p50 round trip": "rtt_p50_ns", "p99 round trip": "rtt_p99_ns",
    "p99.9 round trip": "rtt_p999_ns",
    "p50 one way": "oneway_p50_ns", "p99 one way": "oneway_p99_ns",
    "p99.9 one way": "oneway_p999_ns",
    "per call": "ns_per_call",
    "client CPU per message": "cpu_client_ns_per_msg",
    "peer CPU per message": "cpu_peer_ns_per_msg",
    "daemon CPU per message": "cpu_daemon_ns_per_msg",
    "server CPU per message": "cpu_server_ns_per_msg",
    "publisher CPU per message": "cpu_publisher_ns_per_msg",
    "subscriber CPU per message": "cpu_subscriber_ns_per_msg",
}
# Per BMF measure slug, the counters that may stand for it (first one the cell has): the
# built-in latency and throughput as before, then one custom measure (ns) per statistic.
BMF = {
    "latency": ("rtt_p50_ns", "oneway_p50_ns", "ns_per_call"),
    "throughput": ("items_per_second", "rtt_per_s", "delivered_per_s"),
    "latency-p99": ("rtt_p99_ns", "oneway_p99_ns"),
    "latency-p99-9": ("rtt_p999_ns", "oneway_p999_ns"),
    **{f"cpu-{p}-per-msg": (f"cpu_{p}_ns_per_msg",)
       for p in ("client", "peer", "daemon", "server", "publisher", "subscriber")},
}
# CPU per message of a link's daemon, per repetition, written into pingpong/uds/64 of A
# (the fixtures have no dbus or iceoryx cell, the only ones that carry the counter).
DAEMON_CELL, DAEMON_NS = "pingpong/uds/64", (1500.0, 1750.0, 1600.0)


def _cells(doc: dict, workload: str) -> int:
    return len({b["run_name"] for b in doc["benchmarks"]
                if b["run_name"].startswith(workload + "/")})


def _floors_clearly_named(names: list[str]):
    """Floor entries say so in their name; no transport entry does."""
    for name in names:
        assert name.startswith("floor/") == (FLOOR in name), name


def _reps(doc: dict) -> dict[str, list[dict]]:
    """Successful repetition rows per cell id, from the raw JSON."""
    out: dict[str, list[dict]] = {}
    for b in doc["benchmarks"]:
        if b["run_type"] == "iteration" and not b.get("error_occurred"):
            out.setdefault(cell_id(b["run_name"]), []).append(b)
    return out


def _benchmark(doc: dict, cid: str) -> str:
    floor = FLOOR if cid.startswith("floor/") else ""
    return f"{cid} [pin={doc['context']['pin_mode']}]{floor}"


def _median(doc: dict, cid: str, counter: str) -> float:
    """Median of ``counter`` over the repetitions of cell ``cid`` in the raw JSON."""
    return statistics.median(r[counter] for r in _reps(doc)[cid])


def _export(path, fmt_name: str, out) -> dict[str, object]:
    res = report("export", path, "--format", fmt_name, "--out", out)
    assert res.returncode == 0, res.stderr
    return {p.name: json.loads(p.read_text()) for p in out.iterdir()}


@pytest.fixture(scope="module")
def gab(tmp_path_factory):
    out = tmp_path_factory.mktemp("gab")
    res = report("export", A, "--format", "github-action-benchmark", "--out", out)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def with_daemon(tmp_path_factory) -> dict:
    """A with a daemon's CPU per message in every repetition of DAEMON_CELL."""
    doc = copy.deepcopy(load(A))
    rows = iterations(doc, DAEMON_CELL + "/manual_time")
    assert len(rows) == len(DAEMON_NS)
    for row, ns in zip(rows, DAEMON_NS):
        row["cpu_daemon_ns_per_msg"] = ns
    return doc


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
    # p50, p99, p99.9 and client and peer CPU per message per pingpong cell, client and
    # peer CPU per message per throughput cell, plus the floors: cacheline and futex
    # round trips (p50, p99, p99.9) and syscall; GB/s and msg/s per throughput cell and
    # memcpy in GB/s.
    assert len(smaller) == 5 * _cells(doc, "pingpong") + 2 * _cells(doc, "throughput") \
        + 3 * 2 + 1
    assert len(bigger) == 2 * _cells(doc, "throughput") + len(
        [f for f in floor_cells(doc) if f.startswith("floor/memcpy/")])
    assert _cells(doc, "pingpong") == _cells(doc, "throughput") == 4 * len(transports(doc))
    _floors_clearly_named([e["name"] for e in smaller + bigger])
    syscall = {e["name"]: e for e in smaller}[f"floor/syscall [pin=cross]{FLOOR} per call"]
    assert syscall["value"] == medians(doc, "floor/syscall/real_time", "ns_per_call")
    assert syscall["extra"].startswith("machine floor, not a transport")


def _case(case: str, with_daemon: dict, tmp_path) -> tuple[object, dict]:
    """(results file, its raw JSON) of a parametrized case."""
    if case == "daemon":
        return save(with_daemon, tmp_path / "daemon.json"), with_daemon
    path = {"A": A, "many": MANY}[case]
    return path, load(path)


@pytest.mark.parametrize("case", ["A", "daemon", "many"])
def test_github_action_benchmark_one_entry_per_statistic(case, with_daemon, tmp_path):
    """Every smaller-is-better entry, old and new, is the median of its counter over the
    cell's repetitions in the raw JSON; a cell without the counter has no entry."""
    path, doc = _case(case, with_daemon, tmp_path)
    smaller = _export(path, "github-action-benchmark", tmp_path / "out")[
        "smaller-is-better.json"]
    expected = {f"{_benchmark(doc, cid)} {what}":
                statistics.median(r[counter] for r in rows if counter in r)
                for cid, rows in _reps(doc).items() if not cid.startswith("rate/")
                for what, counter in SMALLER.items() if any(counter in r for r in rows)}
    assert {e["name"]: e["value"] for e in smaller} == expected
    assert all(e["unit"] == "ns" for e in smaller)


def test_github_action_benchmark_tails_and_cpu(gab, with_daemon, tmp_path):
    doc = load(A)
    smaller = {e["name"]: e for e in json.loads(
        (gab / "smaller-is-better.json").read_text())}
    run = "pingpong/tcp/64/manual_time"
    p999 = smaller["pingpong/tcp/64 [pin=cross] p99.9 round trip"]
    values = [b["rtt_p999_ns"] for b in iterations(doc, run)]
    assert p999["value"] == statistics.median(values) != medians(doc, run, "rtt_p99_ns")
    assert p999["unit"] == "ns" and p999["range"] == f"± {fmt(statistics.stdev(values))}"
    assert p999["extra"].startswith("median of 3 repetition(s); ")
    for process in ("client", "peer"):
        for cell in ("pingpong/tcp/64", "throughput/tcp/1048576"):
            assert smaller[f"{cell} [pin=cross] {process} CPU per message"]["value"] == \
                medians(doc, cell + "/manual_time", f"cpu_{process}_ns_per_msg")
    # floors measure no process's CPU; no cell of A has a daemon, a server, a publisher
    assert not [n for n in smaller if n.startswith("floor/") and "CPU" in n]
    assert not [n for n in smaller if "daemon" in n or "server" in n or "publisher" in n]
    futex = smaller[f"floor/futex_rtt [pin=cross]{FLOOR} p99.9 round trip"]
    assert futex["value"] == medians(doc, "floor/futex_rtt/manual_time", "rtt_p999_ns")

    daemon = _export(save(with_daemon, tmp_path / "d.json"), "github-action-benchmark",
                     tmp_path / "d")["smaller-is-better.json"]
    assert [(e["name"], e["value"]) for e in daemon if "daemon" in e["name"]] == \
        [(f"{DAEMON_CELL} [pin=cross] daemon CPU per message", 1600.0)]

    many = {e["name"]: e["value"] for e in _export(
        MANY, "github-action-benchmark", tmp_path / "m")["smaller-is-better.json"]}
    mdoc = load(MANY)
    fan = "fanout/uds/64/subscribers:4"
    assert many[f"{fan} [pin=cross] p99.9 one way"] == _median(mdoc, fan,
                                                              "oneway_p999_ns")
    for process in ("publisher", "subscriber"):
        assert many[f"{fan} [pin=cross] {process} CPU per message"] == _median(
            mdoc, fan, f"cpu_{process}_ns_per_msg")
    clients = "clients/uds/64/clients:4/server:event-loop"
    for process in ("server", "client"):
        assert many[f"{clients} [pin=cross] {process} CPU per message"] == _median(
            mdoc, clients, f"cpu_{process}_ns_per_msg")
    assert many[f"{fan} [pin=cross] p99.9 one way"] != many[f"{fan} [pin=cross] p99 one way"]
    assert f"{fan} [pin=cross] p99.9 round trip" not in many      # fan-out: one way only
    assert f"{clients} [pin=cross] p99.9 one way" not in many


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
        assert set(measures) <= set(BMF)
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


@pytest.mark.parametrize("case", ["A", "daemon", "many"])
def test_bmf_one_measure_per_statistic(case, with_daemon, tmp_path):
    """The whole BMF file, recomputed from the raw JSON: per cell, each measure it has a
    counter for, value the median, lower/upper the smallest/largest repetition."""
    path, doc = _case(case, with_daemon, tmp_path)
    bmf = _export(path, "bmf", tmp_path / "out")["bmf.json"]
    expected = {}
    for cid, rows in _reps(doc).items():
        if cid.startswith("rate/"):
            continue
        measures = {}
        for measure, counters in BMF.items():
            values = next(([r[c] for r in rows if c in r] for c in counters
                           if any(c in r for r in rows)), None)
            if values:
                measures[measure] = {"value": statistics.median(values)} | (
                    {"lower_value": min(values), "upper_value": max(values)}
                    if len(values) >= 2 else {})
        if measures:
            expected[_benchmark(doc, cid)] = measures
    assert bmf == expected
    for measures in bmf.values():          # lower-case slugs with hyphens, as Bencher's
        for slug in measures:
            assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug) and len(slug) <= 64


def test_bmf_tails_and_cpu(with_daemon, tmp_path):
    doc = load(A)
    bmf = _export(A, "bmf", tmp_path / "a")["bmf.json"]
    run = "pingpong/tcp/64/manual_time"
    values = [b["rtt_p999_ns"] for b in iterations(doc, run)]
    p999 = bmf["pingpong/tcp/64 [pin=cross]"]["latency-p99-9"]
    assert p999 == {"value": statistics.median(values), "lower_value": min(values),
                    "upper_value": max(values)}
    assert p999["value"] != bmf["pingpong/tcp/64 [pin=cross]"]["latency-p99"]["value"]
    assert bmf["pingpong/tcp/64 [pin=cross]"]["latency-p99"]["value"] == medians(
        doc, run, "rtt_p99_ns")
    # the built-in measures as before: p50 round trip and messages/s
    assert bmf["pingpong/tcp/64 [pin=cross]"]["latency"]["value"] == medians(
        doc, run, "rtt_p50_ns")
    thr = bmf["throughput/tcp/1048576 [pin=cross]"]
    assert thr["throughput"]["value"] == medians(
        doc, "throughput/tcp/1048576/manual_time", "items_per_second")
    assert set(thr) == {"throughput", "cpu-client-per-msg", "cpu-peer-per-msg"}
    assert thr["cpu-peer-per-msg"]["value"] == medians(
        doc, "throughput/tcp/1048576/manual_time", "cpu_peer_ns_per_msg")
    assert set(bmf[f"floor/syscall [pin=cross]{FLOOR}"]) == {"latency"}
    assert set(bmf[f"floor/futex_rtt [pin=cross]{FLOOR}"]) == {
        "latency", "latency-p99", "latency-p99-9"}

    daemon = _export(save(with_daemon, tmp_path / "d.json"), "bmf", tmp_path / "d")[
        "bmf.json"]
    assert {name: m["cpu-daemon-per-msg"] for name, m in daemon.items()
            if "cpu-daemon-per-msg" in m} == {f"{DAEMON_CELL} [pin=cross]": {
                "value": 1600.0, "lower_value": 1500.0, "upper_value": 1750.0}}

    many = _export(MANY, "bmf", tmp_path / "m")["bmf.json"]
    mdoc = load(MANY)
    fan = "fanout/uds/64/subscribers:4"
    measures = many[f"{fan} [pin=cross]"]
    assert set(measures) == {"latency", "throughput", "latency-p99", "latency-p99-9",
                             "cpu-publisher-per-msg", "cpu-subscriber-per-msg"}
    assert measures["latency-p99-9"]["value"] == _median(mdoc, fan, "oneway_p999_ns")
    assert measures["latency-p99"]["value"] == _median(mdoc, fan, "oneway_p99_ns")
    clients = "clients/uds/64/clients:4/server:event-loop"
    measures = many[f"{clients} [pin=cross]"]
    assert measures["cpu-server-per-msg"]["value"] == _median(
        mdoc, clients, "cpu_server_ns_per_msg")
    assert measures["latency-p99-9"]["value"] == _median(mdoc, clients, "rtt_p999_ns")


def test_failed_cells_are_named_not_exported(tmp_path):
    res = report("export", ERRORS, "--format", "bmf", "--out", tmp_path)
    assert res.returncode == 0
    assert json.loads((tmp_path / "bmf.json").read_text()) == {}
    assert "left out 8 failed cell(s)" in res.stderr
