"""The fleet section of ``report.sh render``: inputs from two or more machines side by
side, one column per machine, the fastest marked, one plot per transport.

The second machine is FAKE: a copy of the real quick-reps-a.json made in tmp_path, its
context renamed (host ``fake-second-machine``) and its repetitions scaled by known
factors (conftest.scaled), so which machine is faster in each cell is known."""

from __future__ import annotations

import copy
import re

import pytest

from ipcbench_report import layout as headings

from conftest import (A, B, RATE, R9A, SAME, assert_shown, load, medians, report, save,
                      scaled, table, transports)

FAKE = "fake-second-machine"
FAKE_CONTEXT = {"host_name": FAKE, "cpu_model": "Fake CPU (scaled copy of quick-reps-a)",
                "cpus_online": "4", "kernel": "Linux 0.0.0-fake", "clocksource": "tsc"}
FASTER, SLOWER = 0.5, 2.0     # the fake machine's times: half of A's, or (uds) twice
PNG = b"\x89PNG\r\n\x1a\n"


def _fake(doc: dict, tmp_path, name: str = "fake-second-machine.json",
          **context) -> object:
    """A FAKE second machine from ``doc``: every cell FASTER (times × 0.5, rates × 2)
    except uds's, which are SLOWER (times × 2, rates ÷ 2)."""
    uds = {b["run_name"] for b in doc["benchmarks"] if b["run_name"].split("/")[1] == "uds"}
    others = {b["run_name"] for b in doc["benchmarks"]} - uds
    fake = scaled(scaled(doc, FASTER, others), SLOWER, uds)
    fake["context"].update(FAKE_CONTEXT, **context)
    return save(fake, tmp_path / name)


def _md(out) -> str:
    return (out / "report.md").read_text()


def _section(md: str) -> str:
    return md.split(f"## {headings.FLEET}\n", 1)[1].split("\n## ", 1)[0]


def _tables(md: str) -> list[tuple[list[str], list[list[str]]]]:
    """Header and rows of each table of the fleet section: machines, then cells."""
    return [table(block) for block in _section(md).split("\n\n") if block.startswith("|")]


def _render(*args):
    res = report("render", *args)
    assert res.returncode == 0, res.stderr
    return res


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    out = tmp / "report"
    _render(A, _fake(load(A), tmp), "--out", out)
    return out


def test_one_column_per_machine_and_their_context(fleet):
    (mh, mrows), (header, _) = _tables(_md(fleet))
    assert header == ["cell", "metric", "vm", FAKE, "fastest", "fastest vs slowest"]
    assert mh == ["machine", "vm", FAKE]
    ctx = load(A)["context"]
    by = {r[0]: r[1:] for r in mrows}
    assert by["host"] == ["vm", FAKE]
    assert by["CPU model"] == [ctx["cpu_model"], FAKE_CONTEXT["cpu_model"]]
    assert by["CPUs online"] == [ctx["cpus_online"], "4"]
    assert by["kernel"] == [ctx["kernel"], "Linux 0.0.0-fake"]
    assert by["clocksource"] == ["kvm-clock", "tsc"]
    assert by["virtualised"] == [
        "yes (KVM guest: clocksource kvm-clock)",
        "unknown (the context does not record it; clocksource tsc does not tell)"]
    assert by["files (latest first)"] == [A.name, "fake-second-machine.json"]
    html = (fleet / "index.html").read_text()
    # the cells table's machine headers carry the context as a tooltip, too
    assert re.search(r'<th title="CPU model: Fake CPU \(scaled copy of quick-reps-a\); '
                     r'CPUs online: 4; kernel: Linux 0\.0\.0-fake; clocksource: tsc; '
                     rf'virtualised: unknown[^"]*">{FAKE}</th>', html)


def test_the_faster_machine_is_marked(fleet):
    doc = load(A)
    _, (header, rows) = _tables(_md(fleet))
    cells = {b["run_name"].replace("/manual_time", "").replace("/real_time", "")
             for b in doc["benchmarks"]}
    assert sorted(r[0] for r in rows) == sorted(cells)        # every cell, once
    vm, fake = header.index("vm"), header.index(FAKE)
    for row in rows:
        uds = row[0].split("/")[1] == "uds"
        winner, loser = (vm, fake) if uds else (fake, vm)
        assert row[header.index("fastest")] == header[winner], row
        assert headings.FASTEST in row[winner] and headings.FASTEST not in row[loser], row
        assert row[header.index("fastest vs slowest")] == "×2.00", row
    # the figures are the JSON medians, the fake one scaled by its known factor
    row = next(r for r in rows if r[0] == "pingpong/uds/64")
    p50 = medians(doc, "pingpong/uds/64/manual_time", "rtt_p50_ns") * 1e-3
    assert_shown(row[vm].split()[0], p50)
    assert_shown(row[fake].split()[0], p50 * SLOWER)
    row = next(r for r in rows if r[0] == "throughput/pipe/1048576")
    gbps = medians(doc, "throughput/pipe/1048576/manual_time", "bytes_per_second") * 1e-9
    assert_shown(row[vm].split()[0], gbps)
    assert_shown(row[fake].split()[0], gbps / FASTER)
    html = (fleet / "index.html").read_text()
    assert html.count('<td class="best"') == len(rows)


def test_one_plot_per_transport(fleet):
    names = {f"fleet_{t}_pin-cross.png" for t in transports(load(A))}
    assert {p.name for p in fleet.glob("fleet_*")} == names
    for name in names:
        assert (fleet / name).read_bytes()[:8] == PNG
        assert f"- `{name}`: " in _section(_md(fleet))
    html = (fleet / "index.html").read_text()
    assert len(re.findall(r'<img[^>]*src="data:image/png;base64,', html)) == 4 + len(names)


def test_fleet_transport_chooses_the_plots(tmp_path):
    out = tmp_path / "report"
    _render(A, _fake(load(A), tmp_path), "--fleet-transport", "uds",
            "--fleet-transport", "shm-spin", "--out", out)
    assert sorted(p.name for p in out.glob("fleet_*")) == [
        "fleet_shm-spin_pin-cross.png", "fleet_uds_pin-cross.png"]
    # the table still has every cell
    cells = {b["run_name"] for b in load(A)["benchmarks"]}
    assert len(_tables(_md(out))[1][1]) == len(cells)


def _one_line(res, *words):
    assert res.returncode == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("report: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_fleet_transport_must_be_measured_on_two_machines(tmp_path):
    out = tmp_path / "report"
    _one_line(report("render", A, _fake(load(A), tmp_path), "--fleet-transport",
                     "no-such", "--out", out), "--fleet-transport no-such", "uds")
    assert not out.exists()


def test_one_machine_has_no_fleet_section(tmp_path):
    """A and B: two runs of one machine (same host_name and cpu_model)."""
    out = tmp_path / "report"
    res = _render(A, B, "--out", out)
    assert headings.FLEET not in _md(out) and "fleet of" not in res.stderr
    assert not list(out.glob("fleet_*"))
    _one_line(report("render", A, B, "--fleet-transport", "uds", "--out",
                     tmp_path / "other"), "one machine (vm)")
    assert not (tmp_path / "other").exists()


def test_same_host_name_on_two_cpus_is_two_machines(tmp_path):
    """Real files: two VMs both named vm, one AMD EPYC, one Intel Xeon."""
    out = tmp_path / "report"
    _render(A, R9A, "--out", out)
    (mh, _), (header, rows) = _tables(_md(out))
    assert mh == ["machine", "vm (AMD EPYC)", "vm (Intel(R) Xeon(R) Processor)"]
    assert header[2:4] == mh[1:]
    # only the cells both measured: reps9-a has pipe, uds, tcp, shm-spin at 64 B, 1 MiB
    ids = {r[0] for r in rows}
    assert "pingpong/uds/64" in ids and "pingpong/uds/4096" not in ids
    assert "4096" in _section(_md(out)) and "measured on one machine only" in _md(out)


def test_a_machine_shows_its_latest_run(tmp_path):
    """Two files of the FAKE machine: the later one (by the context's date, given first
    on the command line) is 4x slower than A everywhere, the older 2x faster."""
    doc = load(A)
    old = scaled(doc, 0.5)
    new = scaled(doc, 4.0)
    for d, date in ((old, "2026-12-01T00:00:00+00:00"), (new, "2026-12-02T00:00:00+00:00")):
        d["context"].update(FAKE_CONTEXT, date=date)
    paths = [save(new, tmp_path / "fake-new.json"), save(old, tmp_path / "fake-old.json")]
    out = tmp_path / "report"
    _render(A, *paths, "--out", out)
    (_, mrows), (header, rows) = _tables(_md(out))
    assert header[2:4] == ["vm", FAKE]                     # two machines, not three
    assert {r[0]: r[1:] for r in mrows}["files (latest first)"][1] == \
        "fake-new.json, fake-old.json"
    assert {r[header.index("fastest")] for r in rows} == {"vm"}
    assert {r[header.index("fastest vs slowest")] for r in rows} == {"×4.00"}


def test_placements_are_never_mixed(tmp_path):
    """vm ran pin=cross (A) and pin=same (quick-same.json); the FAKE machine only
    cross: vm's column holds A's figures, and pin=same is named, not compared."""
    out = tmp_path / "report"
    _render(A, SAME, _fake(load(A), tmp_path), "--out", out)
    md = _md(out)
    tables = _tables(md)
    assert len(tables) == 2                               # machines, one placement
    header, rows = tables[1]
    assert "Placement pin=cross, verify_payload=false: vm, fake-second-machine." in md
    assert "Placement pin=same, verify_payload=false was run by vm alone: not compared." \
        in md
    row = next(r for r in rows if r[0] == "pingpong/pipe/64")
    expected = medians(load(A), "pingpong/pipe/64/manual_time", "rtt_p50_ns") * 1e-3
    same = medians(load(SAME), "pingpong/pipe/64/manual_time", "rtt_p50_ns") * 1e-3
    assert abs(expected - same) > 0.1                    # the test can tell them apart
    assert_shown(row[header.index("vm")].split()[0], expected)
    assert {p.name for p in out.glob("fleet_*")} == {
        f"fleet_{t}_pin-cross.png" for t in transports(load(A))}


def test_differing_wait_strategies_are_not_compared(tmp_path):
    doc = copy.deepcopy(load(A))
    for b in doc["benchmarks"]:
        if b["run_name"] == "pingpong/uds/64/manual_time":
            b["label"] = b["label"].replace("wait=blocking", "wait=spin")
    out = tmp_path / "report"
    _render(A, _fake(doc, tmp_path), "--out", out)
    _, (header, rows) = _tables(_md(out))
    row = next(r for r in rows if r[0] == "pingpong/uds/64")
    assert row[header.index("fastest")] == "not compared"
    assert not any("fastest" in c for c in row[2:4])
    other = next(r for r in rows if r[0] == "pingpong/uds/4096")
    assert other[header.index("fastest")] == "vm"


def test_rate_cells_are_left_out(tmp_path):
    doc = load(RATE)
    fake = copy.deepcopy(doc)
    fake["context"].update(FAKE_CONTEXT)
    out = tmp_path / "report"
    _render(RATE, save(fake, tmp_path / "fake-rate.json"), "--out", out)
    _, (_, rows) = _tables(_md(out))
    assert rows and not [r for r in rows if r[0].startswith("rate/")]
    n = len({b["run_name"] for b in doc["benchmarks"] if b["run_name"].startswith("rate/")})
    assert f"{n} latency-under-load cell(s) (rate/*) are left out" in _md(out)
    # identical copies: every machine ties, so both are marked (and some row is: an
    # empty list would pass all() without checking anything)
    marked = [r for r in rows if r[-2] != "—"]
    assert marked and all(r[-2] == f"vm, {FAKE}" for r in marked)
