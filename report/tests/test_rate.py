"""The latency-under-load workload (``rate``), on the hand-made fixture rate_fixture.json
(see conftest.RATE for its known answers)."""

from __future__ import annotations

import csv

import pytest
from conftest import MANY, R9A, RATE, load, report, save, table

from ipcbench_report import ReportError, compute, export, layout, render_csv, render_md
from ipcbench_report import rate as rate_mod
from ipcbench_report.load import load_run, load_runs
from ipcbench_report.model import cell_id

RATE_T = layout.RATE
CELLS_T = layout.CELLS


def _md(path, slo_ns=None) -> str:
    model = compute.build([load_run(path)], None, slo_ns)
    return render_md.render(layout.document(model, [], (path, "")))


def _tables(md: str) -> list[tuple[list[str], list[list[str]]]]:
    """Header and rows of each table of the section, in order (sustainable, cells)."""
    section = md.split(f"## {RATE_T}\n", 1)[1].split("\n## ", 1)[0]
    return [table(block) for block in section.split("\n\n") if block.startswith("|")]


def _sustainable(path, slo_ns=None) -> dict[tuple[str, str], dict[str, str]]:
    """(transport, size) -> the row of the sustainable-rate table, by header."""
    header, rows = _tables(_md(path, slo_ns))[0]
    return {(r[0], r[1]): dict(zip(header, r)) for r in rows}


def _edited(tmp_path, cell: str, **values) -> object:
    """rate_fixture.json with ``values`` set in every repetition row of ``cell``."""
    doc = load(RATE)
    for b in doc["benchmarks"]:
        if b["run_type"] == "iteration" and cell_id(b["run_name"]) == cell:
            b.update(values)
    return save(doc, tmp_path / "edited.json")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("rate") / "out"
    r = report("render", RATE, "--out", out)
    assert r.returncode == 0, r.stderr
    return out


# --- the sustainable rate -------------------------------------------------------------

def test_sustainable_rate_on_known_answers():
    by = _sustainable(RATE)
    uds = by[("uds", "64 B")]
    assert uds["sustainable rate (msgs/s)"] == "100000"
    assert uds["corrected p99 there (µs)"] == "95.0"      # the tie's higher p99 (load:20)
    assert uds["idle p99 (µs)"] == "30.0"
    assert uds["p99 ÷ idle p99"] == "×3.17"
    assert uds["CPU/msg there (ns)"] == "3500"            # 2100 + 1400 of load:20
    assert uds["shared CPU"] == "no"
    assert uds["saturated at (msgs/s)"] == "150000, 400000, 450000"
    small = by[("uds", "4 KiB")]                           # p99 = budget: within
    assert (small["sustainable rate (msgs/s)"], small["corrected p99 there (µs)"],
            small["p99 ÷ idle p99"], small["failed"]) == ("20000", "100", "×2.00",
                                                          "rate:40000")
    tcp = by[("tcp", "64 B")]
    assert tcp["sustainable rate (msgs/s)"] == layout.NONE_WITHIN == "none within budget"
    assert tcp["corrected p99 there (µs)"] == tcp["idle p99 (µs)"] == "—"
    assert len(by) == 3


def test_cpu_per_message_leaves_the_senders_pacing_out(tmp_path):
    # The sustainable cell of uds at 64 B is load:20 (2100 + 1400 ns); its sender spun
    # 600 ns per request to its send times: the load generator's, not the transport's.
    edited = _edited(tmp_path, "rate/uds/64/load:20", cpu_pacing_ns_per_msg=600.0)
    assert _sustainable(edited)[("uds", "64 B")]["CPU/msg there (ns)"] == "2900"


def test_tie_of_offered_rates_shows_the_higher_p99_then_the_first_cell():
    series = {(s.transport, s.size): s
              for s in rate_mod.build([load_run(RATE)]).series}
    best = series[("uds", 64)].sustainable
    assert best.cell.id == "rate/uds/64/load:20" and best.offered == 100e3
    s = series[("uds", 64)]
    low = next(p for p in s.points if p.cell.id.endswith("load:20"))
    low.cell.reps = [dict(r, lat_p99_ns=90e3) for r in low.cell.reps]   # equal p99s
    assert s.sustainable.cell.id == "rate/uds/64/rate:100000"            # file order


def _cleared(tmp_path, cells: list[str]):
    """rate_fixture.json with the saturated flag of ``cells`` set to 0 throughout."""
    doc = load(RATE)
    for b in doc["benchmarks"]:
        if b["run_type"] == "iteration" and cell_id(b["run_name"]) in cells:
            b["saturated"] = 0.0
    return save(doc, tmp_path / "cleared.json")


def test_saturated_cells_with_low_p99_are_excluded(tmp_path):
    # rate:400000 (p99 30 µs) and load:90 (450 000 msgs/s, 40 µs) are within budget by
    # p99 but saturated; cleared (with rate:150000), the highest of them wins.
    run = load_run(RATE)
    assert all(run.cells[c].values("saturated") == [1.0] * 3
               for c in ("rate/uds/64/rate:400000", "rate/uds/64/load:90"))
    assert _sustainable(RATE)[("uds", "64 B")]["sustainable rate (msgs/s)"] == "100000"
    cleared = _cleared(tmp_path, ["rate/uds/64/rate:400000", "rate/uds/64/load:90",
                                  "rate/uds/64/rate:150000"])
    row = _sustainable(cleared)[("uds", "64 B")]
    assert (row["sustainable rate (msgs/s)"], row["corrected p99 there (µs)"]) == \
        ("450000", "40.0")


def test_saturated_in_one_repetition_is_excluded(tmp_path):
    # rate:150000 (p99 80 µs) is saturated in 1 of 3 repetitions: the median of the flag
    # is 0, yet the cell is excluded; cleared, it is the sustainable rate.
    cell = load_run(RATE).cells["rate/uds/64/rate:150000"]
    assert cell.median("saturated") == 0.0 and cell.values("saturated").count(1.0) == 1
    assert _sustainable(RATE)[("uds", "64 B")]["sustainable rate (msgs/s)"] == "100000"
    row = _sustainable(_cleared(tmp_path, ["rate/uds/64/rate:150000"]))[("uds", "64 B")]
    assert row["sustainable rate (msgs/s)"] == "150000"


def test_a_cell_over_budget_is_excluded_and_the_budget_moves_it():
    # rate:200000 has p99 150 µs: over 100 µs; within 150 µs (the boundary counts).
    assert _sustainable(RATE)[("uds", "64 B")]["sustainable rate (msgs/s)"] == "100000"
    row = _sustainable(RATE, 150e3)[("uds", "64 B")]
    assert (row["sustainable rate (msgs/s)"], row["corrected p99 there (µs)"]) == \
        ("200000", "150")
    row = _sustainable(RATE, 149_999)[("uds", "64 B")]
    assert row["sustainable rate (msgs/s)"] == "100000"


def test_none_within_budget_until_the_budget_allows_it():
    tcp = _sustainable(RATE, 200e3)[("tcp", "64 B")]
    # rate:50000 (p99 40 µs) stays out: saturated. rate:10000 ran on a shared CPU.
    assert tcp["sustainable rate (msgs/s)"] == "10000"
    assert tcp["shared CPU"] == "yes (shared CPU)"
    assert tcp["idle p99 (µs)"] == "—" and tcp["p99 ÷ idle p99"] == "—"


def test_budget_from_context_default_and_option(tmp_path):
    md = _md(RATE)
    assert "p99 budget: 100 µs (the run's context key ipcbench_slo_p99_ns)." in md
    doc = load(RATE)
    doc["context"]["ipcbench_slo_p99_ns"] = "150000"
    ctx = save(doc, tmp_path / "ctx.json")
    assert _sustainable(ctx)[("uds", "64 B")]["sustainable rate (msgs/s)"] == "200000"
    del doc["context"]["ipcbench_slo_p99_ns"]
    old = save(doc, tmp_path / "old.json")
    assert "p99 budget: 100 µs (the default: the run's context has no " \
           "ipcbench_slo_p99_ns)." in _md(old)
    assert _sustainable(old)[("uds", "64 B")]["sustainable rate (msgs/s)"] == "100000"
    assert "p99 budget: 2000 µs (set with --slo-p99)." in _md(ctx, 2e6)


# --- --slo-p99 -------------------------------------------------------------------------

@pytest.mark.parametrize("text, ns", [("100us", 1e5), ("2ms", 2e6), ("50000ns", 5e4),
                                      ("1.5ms", 1.5e6), ("100µs", 1e5), ("1s", 1e9),
                                      (" 250us ", 2.5e5)])
def test_slo_parsing(text, ns):
    assert rate_mod.parse_duration(text) == pytest.approx(ns)


@pytest.mark.parametrize("text", ["100", "abc", "0us", "-5us", "5 parsecs", "", "us",
                                  "1e3us", "100 ms"])
def test_slo_parsing_refuses(text):
    with pytest.raises(ReportError, match=r"^--slo-p99 .*not a positive duration"):
        rate_mod.parse_duration(text)


def _one_line(res, expect):
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("report: "), res.stderr
    assert expect in lines[0]


@pytest.mark.parametrize("value", ["100", "fast", "0ms"])
def test_render_refuses_a_bad_slo_with_one_line(tmp_path, value):
    out = tmp_path / "out"
    res = report("render", RATE, f"--slo-p99={value}", "--out", out)
    _one_line(res, f"--slo-p99 '{value}': not a positive duration; give a number and a "
                   "unit, e.g. 100us, 2ms or 50000ns")
    assert res.stdout == "" and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_render_applies_the_slo_option(tmp_path):
    out = tmp_path / "out"
    res = report("render", RATE, "--slo-p99=150us", "--out", out)
    assert res.returncode == 0, res.stderr
    header, rows = _tables((out / "report.md").read_text())[0]
    row = dict(zip(header, next(r for r in rows if r[:2] == ["uds", "64 B"])))
    assert row["sustainable rate (msgs/s)"] == "200000"


def test_a_bad_context_budget_is_refused_unless_overridden(tmp_path):
    doc = load(RATE)
    doc["context"]["ipcbench_slo_p99_ns"] = "100us"
    bad = save(doc, tmp_path / "bad.json")
    _one_line(report("render", bad, "--out", tmp_path / "out"),
              "context 'ipcbench_slo_p99_ns' is '100us', not a positive whole number of ns")
    assert not (tmp_path / "out").exists()
    res = report("render", bad, "--slo-p99=100us", "--out", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert report("compare", bad, bad).returncode == 0     # only render reads the budget


# --- the section and its plots ---------------------------------------------------------

def test_section_and_plots_present_with_rate_cells(rendered):
    names = {p.name for p in rendered.iterdir()}
    assert {"rate_latency_64B.png", "rate_latency_4096B.png"} <= names
    for name in ("rate_latency_64B.png", "rate_latency_4096B.png"):
        data = (rendered / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    md = (rendered / "report.md").read_text()
    html = (rendered / "index.html").read_text()
    for text in (md, html):
        assert RATE_T in text
        assert "receipt − intended send time" in text
        assert "below 95 % of its schedule" in text and "(scheduled_rate; the offered" in text
    assert "`rate_latency_64B.png`" in md and "tcp's corrected against its uncorrected " \
        "p99 (right; tcp is the first transport by name with rate cells at this size)" in md
    assert html.count('src="data:image/png;base64,') == 4 + 2


@pytest.mark.parametrize("path", [R9A, MANY])
def test_no_section_and_no_plot_without_rate_cells(tmp_path, path):
    out = tmp_path / "out"
    assert report("render", path, "--out", out).returncode == 0
    assert not list(out.glob("rate_*"))
    for name in ("report.md", "index.html"):
        text = (out / name).read_text()
        assert RATE_T not in text and "Latency under load" not in text


def test_render_replaces_a_previous_report_with_other_sizes(tmp_path):
    out = tmp_path / "out"
    doc = load(RATE)
    doc["benchmarks"] = [b for b in doc["benchmarks"] if "/4096/" not in b["name"]]
    assert report("render", RATE, "--out", out).returncode == 0
    res = report("render", save(doc, tmp_path / "small.json"), "--out", out)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.glob("rate_*")) == ["rate_latency_64B.png"]


def test_saturated_and_shared_cells_are_marked_in_every_table():
    md = _md(RATE)
    header, rows = _tables(md)[1]
    by = {(r[0], r[1], r[2]): dict(zip(header, r)) for r in rows}
    assert by[("uds", "64 B", "rate:400000")]["saturated"] == "saturated"
    assert by[("uds", "64 B", "rate:400000")]["within budget"] == "no"
    assert by[("uds", "64 B", "rate:150000")]["saturated"] == "saturated"
    assert by[("uds", "64 B", "rate:100000")]["saturated"] == "no"
    assert by[("tcp", "64 B", "rate:10000")]["shared CPU"] == "shared CPU"
    header, rows = table(md, CELLS_T)
    cells = {r[1]: dict(zip(header, r)) for r in rows}
    assert cells["rate/uds/64/rate:400000"]["median"] == "30.0 µs saturated"
    assert cells["rate/uds/64/rate:400000"]["primary metric"] == "lat_p99_ns ↓"
    assert cells["rate/tcp/64/rate:10000"]["median"] == "150 µs shared CPU"
    assert cells["rate/uds/64/rate:100000"]["median"] == "90.0 µs"


def test_csv_flags_hold_when_any_repetition_set_them(rendered):
    rows = {r["cell"]: r for r in csv.DictReader((rendered / "results.csv").open())}
    row = rows["rate/uds/64/rate:150000"]               # saturated in 1 of 3
    assert float(row["saturated"]) == 1.0 and row["workload"] == "rate"
    assert float(row["lat_p99_ns"]) == pytest.approx(80e3)      # a median
    assert float(rows["rate/uds/64/rate:100000"]["saturated"]) == 0.0
    assert float(rows["rate/tcp/64/rate:10000"]["shared_cpu"]) == 1.0


# --- existing views with rate cells beside them ----------------------------------------

@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """reps9-a.json plus every rate row of rate_fixture.json (uds and tcp, both measured
    by reps9-a)."""
    doc = load(R9A)
    doc["benchmarks"] += [b for b in load(RATE)["benchmarks"]
                          if b["name"].startswith("rate/")]
    return save(doc, tmp_path_factory.mktemp("mixed") / "mixed.json")


def test_existing_views_ignore_rate_cells(mixed):
    plain = compute.build([load_run(R9A)])
    both = compute.build([load_run(mixed)])

    def figures(model):
        return {(row.transport, k): e.value for row in model.rows
                for k, e in row.entries.items()}
    assert figures(both) == figures(plain)
    assert [c.key for c in both.columns] == [c.key for c in plain.columns]
    assert [(r.transport, r.wait) for r in both.rows] == \
        [(r.transport, r.wait) for r in plain.rows]
    assert both.stars == plain.stars
    assert [(x.transport, x.base, x.size) for x in both.relative] == \
        [(x.transport, x.base, x.size) for x in plain.relative]
    assert not both.many and not plain.rate
    assert len(both.rate.series) == 3
    md_plain, md_both = (render_md.render(layout.document(m, [], (R9A, "")))
                         for m in (plain, both))
    for title in (layout.COMPARISON, layout.STARS, layout.CRITERIA,
                  layout.relative_title(plain)):
        assert table(md_both, title) == table(md_plain, title)
    sections = [ln[3:] for ln in md_plain.splitlines() if ln.startswith("## ")]
    at = sections.index(layout.FLOORS)            # after the workloads, before the floors
    assert [ln[3:] for ln in md_both.splitlines() if ln.startswith("## ")] == \
        sections[:at] + [RATE_T] + sections[at:]


def test_exports_leave_rate_cells_out(mixed):
    for fmt_name in export.FORMATS:
        plain, plain_skipped = export.export(load_run(R9A), fmt_name)
        both, skipped = export.export(load_run(mixed), fmt_name)
        assert both == plain and "rate/" not in "".join(both.values())
        # the failed rate cell is named as left out, as any failed cell
        assert skipped == plain_skipped + ["rate/uds/4096/rate:40000"]


def test_csv_has_the_rate_cells_beside_the_others(mixed):
    plain = list(csv.DictReader(render_csv.render([load_run(R9A)]).splitlines()))
    both = list(csv.DictReader(render_csv.render([load_run(mixed)]).splitlines()))
    rate_rows = [r for r in both if r["workload"] == "rate"]
    assert len(both) == len(plain) + len(rate_rows) and len(rate_rows) == 13
    assert set(plain[0]) <= set(both[0])
    common = {r["cell"]: r for r in both if r["workload"] != "rate"}
    for r in plain:                              # the same figures, but the file name
        assert {k: v for k, v in common[r["cell"]].items() if k in r and k != "file"} \
            == {k: v for k, v in r.items() if k != "file"}


def test_compare_gates_rate_cells_on_corrected_p99_and_marks_them(mixed, tmp_path):
    res = report("compare", mixed, mixed)
    assert res.returncode == 0, res.stdout + res.stderr
    line = next(ln for ln in res.stdout.splitlines()
                if ln.startswith("| rate/uds/64/rate:400000 |"))
    assert "lat_p99_ns ↓" in line
    assert "saturated in the baseline and candidate (achieved below 95 % of its " \
           "schedule's rate)" in line
    line = next(ln for ln in res.stdout.splitlines()
                if ln.startswith("| rate/tcp/64/rate:10000 |"))
    assert "shared CPU" in line and "saturated" not in line
    line = next(ln for ln in res.stdout.splitlines()
                if ln.startswith("| rate/uds/64/rate:100000 |"))
    assert "saturated" not in line and "shared CPU" not in line
    # pingpong cells are compared as before
    line = next(ln for ln in res.stdout.splitlines()
                if ln.startswith("| pingpong/uds/64 |"))
    assert "rtt_p50_ns ↓" in line


def test_several_runs_have_a_run_column_and_their_budgets(tmp_path):
    doc = load(RATE)
    doc["context"]["ipcbench_slo_p99_ns"] = "150000"
    doc["context"]["host_name"] = "other"
    second = save(doc, tmp_path / "second.json")
    model = compute.build(load_runs([RATE, second]))
    md = render_md.render(layout.document(model, [], (RATE, "")))
    assert "p99 budget: vm: 100 µs (the run's context key ipcbench_slo_p99_ns); " \
           "other: 150 µs (the run's context key ipcbench_slo_p99_ns)." in md
    header, rows = _tables(md)[0]
    assert header[:3] == ["transport", "run", "size"]
    by = {(r[0], r[1], r[2]): dict(zip(header, r)) for r in rows}
    assert by[("uds", "vm", "64 B")]["sustainable rate (msgs/s)"] == "100000"
    assert by[("uds", "other", "64 B")]["sustainable rate (msgs/s)"] == "200000"
    assert len(rows) == 6


def test_split_run_cells_show_their_point_not_the_link(tmp_path):
    """A split run names its rate cells ``…/load:<pct>/link:cross-host``: the tables show
    the point (``load:<pct>``, ``rate:<N>``) and place the cells as the same cells of a
    loopback run."""
    import re
    doc = load(RATE)
    for b in doc["benchmarks"]:
        for key in ("name", "run_name"):
            if isinstance(b.get(key), str) and b[key].startswith("rate/"):
                b[key] = re.sub(r"/((?:rate|load):[^/]+)", r"/\1/link:cross-host",
                                b[key], count=1)
    split = save(doc, tmp_path / "split.json")
    plain, crossed = _tables(_md(RATE)), _tables(_md(split))
    assert crossed == plain
    points = [row[2] for row in plain[1][1]]
    assert points and all(p.startswith(("rate:", "load:")) for p in points)
