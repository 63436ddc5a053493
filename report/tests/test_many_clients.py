"""The many-clients (``clients``) and fan-out (``fanout``) workloads of issue 23, on the
hand-made fixture many_clients_fixture.json (see conftest.MANY for its known answers)."""

from __future__ import annotations

import copy
import csv
import json

import pytest
from conftest import MANY, R9A, load, report, save, table

from ipcbench_report import compute, layout, render_md
from ipcbench_report.load import load_run
from ipcbench_report.model import cell_id

CLIENTS_T = layout.MANY_CLIENTS
FANOUT_T = layout.FANOUT_TITLE


def _md(path) -> str:
    model = compute.build([load_run(path)])
    return render_md.render(layout.document(model, [], (path, "")))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("many") / "out"
    r = report("render", MANY, "--out", out)
    assert r.returncode == 0, r.stderr
    return out


def test_cell_id_keeps_ipcbench_parameters_and_drops_google_benchmarks():
    assert cell_id("clients/uds/64/clients:4/server:event-loop/iterations:1/manual_time") \
        == "clients/uds/64/clients:4/server:event-loop"
    assert cell_id("clients/uds/64/clients:4/server:event-loop/manual_time") \
        == "clients/uds/64/clients:4/server:event-loop"
    assert cell_id("fanout/tcp/64/subscribers:8/iterations:1/manual_time") \
        == "fanout/tcp/64/subscribers:8"
    assert cell_id("pingpong/uds/64/repeats:3/threads:1/manual_time") == "pingpong/uds/64"


def test_loader_keeps_n_and_model_in_identity():
    run = load_run(MANY)
    clients = [c for c in run.cells.values() if c.kind == "clients"]
    # 4 + 4 uds N at 64 B (two models), 3 tcp, 2 uds at 4 KiB: none collapsed.
    assert len(clients) == 13
    assert {(c.n, c.server) for c in clients if c.transport == "uds" and c.size == 64} \
        == {(n, m) for n in (1, 2, 4, 8) for m in ("event-loop", "thread-per-client")}
    assert all(c.repetitions == 9 for c in run.cells.values())      # not 9 × N
    fanout = sorted(c.n for c in run.cells.values() if c.kind == "fanout"
                    and c.transport == "uds")
    assert fanout == [1, 2, 4]
    # Not a pingpong cell, whatever the shared prefix.
    assert run.cell("clients", "uds", 64) is None
    assert run.cell("pingpong", "uds", 64) is None
    cell = run.cells["clients/uds/64/clients:4/server:event-loop"]
    assert cell.primary() == ("rtt_per_s", False)
    assert cell.median("rtt_per_s") == pytest.approx(120e3)
    assert run.cells["fanout/uds/64/subscribers:2"].primary() == ("delivered_per_s", False)


def test_loader_refuses_a_parameter_that_is_not_key_value(tmp_path):
    doc = load(MANY)
    doc["benchmarks"][0]["name"] = doc["benchmarks"][0]["run_name"] = \
        "clients/uds/64/four/server:event-loop/manual_time"
    r = report("compare", save(doc, tmp_path / "bad.json"), MANY)
    assert r.returncode == 2 and "is not named" in r.stderr


def test_table_picks_the_peak_n_by_median():
    header, rows = table(_md(MANY), CLIENTS_T)
    by = {(r[0], r[1], r[2]): dict(zip(header, r)) for r in rows}
    ev = by[("uds", "event-loop", "64 B")]
    # N=8 has a 2M/s repetition: its mean (~320k/s) would peak there, its median does not.
    assert ev["N measured"] == "1, 2, 4, 8"
    assert ev["peak N"] == "4"
    assert ev["round trips/s at peak (k/s)"] == "120"
    assert ev["RTT p99 at peak (µs)"] == "80.0"
    assert ev["fairness (Jain)"] == "0.97"
    tpc = by[("uds", "thread-per-client", "64 B")]
    assert (tpc["peak N"], tpc["fairness (Jain)"], tpc["RTT p99 at peak (µs)"]) \
        == ("8", "0.6", "400")
    tcp = by[("tcp", "event-loop", "64 B")]
    assert (tcp["peak N"], tcp["failed N"]) == ("2", "4")      # N=4 failed throughout
    assert by[("uds", "event-loop", "4 KiB")]["peak N"] == "2"
    assert len(rows) == 4
    fh, frows = table(_md(MANY), FANOUT_T)
    fan = {r[0]: dict(zip(fh, r)) for r in frows}
    assert (fan["uds"]["peak N"], fan["uds"]["delivered/s at peak (k/s)"],
            fan["uds"]["slowest subscriber's rate (k/s)"],
            fan["uds"]["slowest subscriber's p99 (µs)"]) == ("4", "200", "50.0", "90.0")
    assert fan["tcp"]["peak N"] == "2"


def test_oversubscribed_cells_are_named():
    md = _md(MANY)
    clients = md.split(f"## {CLIENTS_T}\n", 1)[1].split("\n## ", 1)[0]
    line = next(ln for ln in clients.splitlines() if "Oversubscribed" in ln)
    assert "8 cell(s)" in line
    assert "clients/uds/64/clients:8/server:thread-per-client (9 busy processes on 2 " \
           "CPUs)" in line
    assert "clients/tcp/64/clients:2/server:event-loop (3 busy processes" in line
    assert "clients:1/" not in line          # 2 busy processes on 2 CPUs: not over
    fanout = md.split(f"## {FANOUT_T}\n", 1)[1].split("\n## ", 1)[0]
    assert "fanout/uds/64/subscribers:4 (5 busy processes on 2 CPUs)" in fanout
    assert "subscribers:1 " not in fanout


def test_render_of_a_run_with_only_clients_and_fanout_cells(rendered):
    names = {p.name for p in rendered.iterdir()}
    assert {"clients_vs_n.png", "fanout_vs_n.png", "index.html", "report.md",
            "results.csv"} <= names
    html = (rendered / "index.html").read_text()
    md = (rendered / "report.md").read_text()
    for text in (html, md):
        assert CLIENTS_T in text and FANOUT_T in text
    assert "at 64 B, one line per transport and server model" in md   # smallest size
    rows = list(csv.DictReader((rendered / "results.csv").open()))
    cell = next(r for r in rows if r["cell"] == "clients/uds/64/clients:8/server:"
                "thread-per-client")
    assert (cell["n"], cell["server_model"], cell["workload"]) == \
        ("8", "thread-per-client", "clients")
    assert float(cell["rtt_per_s"]) == pytest.approx(130e3)
    assert float(cell["fairness_jain"]) == pytest.approx(0.6)
    fan = next(r for r in rows if r["cell"] == "fanout/uds/64/subscribers:4")
    assert (fan["n"], fan["server_model"]) == ("4", "")
    assert float(fan["delivered_per_s_min"]) == pytest.approx(50e3)


def test_render_without_fanout_has_no_fanout_section(tmp_path):
    doc = load(MANY)
    doc["benchmarks"] = [b for b in doc["benchmarks"] if not b["name"].startswith("fanout/")]
    out = tmp_path / "out"
    r = report("render", save(doc, tmp_path / "clients.json"), "--out", out)
    assert r.returncode == 0, r.stderr
    assert not (out / "fanout_vs_n.png").exists() and (out / "clients_vs_n.png").exists()
    md = (out / "report.md").read_text()
    assert CLIENTS_T in md and FANOUT_T not in md


def test_existing_views_ignore_the_new_cells(tmp_path):
    """Pingpong/throughput figures of a run are the same with clients/fanout cells
    beside them (same transports, uds and tcp)."""
    base = load(R9A)
    mixed = copy.deepcopy(base)
    many = load(MANY)
    mixed["benchmarks"] += many["benchmarks"]
    plain = compute.build([load_run(R9A)])
    both = compute.build([load_run(save(mixed, tmp_path / "mixed.json"))])

    def figures(model):
        return {(row.transport, k): e.value for row in model.rows
                for k, e in row.entries.items()}
    assert figures(both) == figures(plain)
    assert both.stars == plain.stars
    assert len(both.many.series) == len(compute.build([load_run(MANY)]).many.series)


def _halved(cell: str, counter: str = "rtt_per_s") -> dict:
    doc = load(MANY)
    for b in doc["benchmarks"]:
        if b["run_type"] == "iteration" and cell_id(b["run_name"]) == cell \
                and counter in b:
            b[counter] /= 2
    return doc


def test_compare_flags_a_drop_of_one_clients_cell(tmp_path):
    cand = save(_halved("clients/uds/64/clients:4/server:event-loop"), tmp_path / "c.json")
    r = report("compare", MANY, cand)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "**1 regression(s)**: clients/uds/64/clients:4/server:event-loop" in r.stdout
    row = next(ln for ln in r.stdout.splitlines()
               if ln.startswith("| clients/uds/64/clients:4/server:event-loop |"))
    assert "rtt_per_s ↑" in row and "-50.0 %" in row and "**REGRESSION**" in row
    # the same N under the other model, and other N of this model, are unchanged
    for other in ("clients/uds/64/clients:4/server:thread-per-client",
                  "clients/uds/64/clients:8/server:event-loop"):
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith(f"| {other} |"))
        assert "unchanged" in line


def test_compare_flags_a_drop_of_one_fanout_cell_and_a_higher_rate_is_no_regression(
        tmp_path):
    cand = save(_halved("fanout/tcp/64/subscribers:2", "delivered_per_s"),
                tmp_path / "c.json")
    r = report("compare", MANY, cand)
    assert r.returncode == 1
    assert "**1 regression(s)**: fanout/tcp/64/subscribers:2" in r.stdout
    r = report("compare", cand, MANY)          # twice the rate: better, not worse
    assert r.returncode == 0, r.stdout
    line = next(ln for ln in r.stdout.splitlines()
                if ln.startswith("| fanout/tcp/64/subscribers:2 |"))
    assert "improved" in line


def test_compare_names_a_missing_n_by_its_full_identity(tmp_path):
    doc = load(MANY)
    doc["benchmarks"] = [b for b in doc["benchmarks"]
                         if cell_id(b["run_name"]) != "clients/uds/64/clients:8/server:"
                         "thread-per-client"]
    r = report("compare", MANY, save(doc, tmp_path / "c.json"))
    assert r.returncode == 1
    assert "Only in the baseline: clients/uds/64/clients:8/server:thread-per-client" \
        in r.stdout


def test_exports_carry_the_aggregate_rates(tmp_path):
    r = report("export", MANY, "--format", "bmf", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    bmf = json.loads((tmp_path / "bmf.json").read_text())
    assert bmf["fanout/uds/64/subscribers:4 [pin=cross]"]["throughput"]["value"] \
        == pytest.approx(200e3)
    assert bmf["clients/uds/64/clients:4/server:event-loop [pin=cross]"]["throughput"][
        "value"] == pytest.approx(120e3)
    assert "clients/tcp/64/clients:4/server:event-loop" in r.stderr    # failed: left out
