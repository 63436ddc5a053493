"""The floor probed beside each cell (counters floor_before, floor_after, floor,
floor_ratio, floor_change, host_changed; label tokens floor=<kind> and host-changed):
the comparison table's (×N), ``compare --normalized`` and ``render --normalized``.

Fixtures are derived from reps9-a.json (9 interleaved repetitions of 16 transport cells
and 5 machine floors) by ``beside``, which adds the counters as the runner writes them,
with a known floor_ratio per repetition."""

from __future__ import annotations

import copy
import csv
import re
import statistics

from conftest import R9A, iterations, load, report, save, scaled, table

import matplotlib.colors

from ipcbench_report import compute, layout, plots
from ipcbench_report.compare import compare as compare_runs
from ipcbench_report.load import load_runs
from ipcbench_report.stats import holm

PING = "pingpong/uds/64/manual_time"               # uds blocks: floor=futex_rtt
THR = "throughput/uds/1048576/manual_time"         # floor=copy_stream
# Spread of floor_ratio over the 9 repetitions of a cell (file order); median 1.
JITTER = (0.98, 0.985, 0.99, 0.995, 1.0, 1.005, 1.01, 1.015, 1.02)
RATIO = 2.0                                        # every cell at 2 × its floor


def _cell(run_name: str) -> str:
    return re.sub(r"/(manual|real)_time$", "", run_name)


def beside(doc: dict, ratio=lambda name, k: RATIO * JITTER[k], marked=(),
           only: str = "") -> dict:
    """Copy of ``doc`` whose pingpong and throughput repetition rows (only those of
    transport ``only`` when given) carry the floor beside the cell: floor_ratio =
    ``ratio(run_name, k)`` for the k-th repetition of the cell in file order, floor
    derived from the cell's own figure (rtt_p50_ns ÷ ratio, or ratio × bytes_per_second).
    (run_name, k) in ``marked``: probes 2/3 and 4/3 of the floor (floor_change 1, above
    the margin 0.5), host_changed = 1 and the label token host-changed; otherwise probes
    within ±1 %."""
    doc = copy.deepcopy(doc)
    doc["context"]["host_change_margin"] = "0.500000"
    seen: dict[str, int] = {}
    for b in doc["benchmarks"]:
        name = b["run_name"]
        kind = name.split("/")[0]
        if b["run_type"] != "iteration" or kind not in ("pingpong", "throughput") \
                or (only and name.split("/")[1] != only) or b.get("error_occurred"):
            continue
        k = seen[name] = seen.get(name, -1) + 1
        r = ratio(name, k)
        if kind == "pingpong":
            floor = b["rtt_p50_ns"] / r
            probe = "futex_rtt" if "wait=blocking" in b["label"] else "pair_rtt"
        else:
            floor = r * b["bytes_per_second"]
            probe = "copy_stream"
        hit = (name, k) in marked
        before, after = (floor * 2 / 3, floor * 4 / 3) if hit else (floor * 0.99,
                                                                       floor * 1.01)
        b.update(floor_before=before, floor_after=after, floor=(before + after) / 2,
                 floor_ratio=r, floor_change=max(before, after) / min(before, after) - 1,
                 host_changed=1.0 if hit else 0.0)
        b["label"] += f" floor={probe}" + (" host-changed" if hit else "")
    return doc


def _rows(stdout: str) -> dict[str, list[str]]:
    return {r[0]: r for r in table(stdout)[1]}


# Columns of the normalized compare table (the raw change beside the change).
CHANGE, RAW, P_ADJ, REPS, VERDICT, WHY = 4, 5, 7, 8, 9, 10


def test_a_a_host_state_differs_normalized_passes(tmp_path):
    """A/A: the candidate ran on a machine twice as slow (every figure, and every floor
    beside it, 2×); its floor_ratio agrees within 2 %. Raw, every cell regresses;
    normalized, none does, and the raw change is still shown."""
    base = save(beside(load(R9A)), tmp_path / "base.json")
    cand = save(beside(scaled(load(R9A), 2.0),
                       lambda name, k: RATIO * 1.02 * JITTER[(k + 3) % 9]),
                tmp_path / "cand.json")
    raw = report("compare", base, cand)
    assert raw.returncode == 1, raw.stdout
    assert "**16 regression(s)**" in raw.stdout
    res = report("compare", base, cand, "--normalized")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "**0 regression(s)**" in res.stdout
    assert "21 compared (16 transport cells, 5 machine floors; 16 normalized on " \
           "floor_ratio, 5 raw)." in res.stdout
    header, _ = table(res.stdout)
    assert header[CHANGE:RAW + 1] == ["change", "raw change"]
    row = _rows(res.stdout)[_cell(PING)]
    assert row[1] == "floor_ratio ↓" and row[2] == "×2.00" and row[3] == "×2.04"
    assert row[CHANGE] == "+2.0 %" and row[RAW] == "+100.0 %" and row[REPS] == "9/9"
    assert row[VERDICT] == "unchanged"
    # machine floors are compared raw, and never gated
    floors = {r[0]: r for r in table(res.stdout, "Machine floors")[1]}
    assert floors["floor/syscall"][VERDICT] == "worse (floor, not gated)"


def test_a_b_ratio_worse_raw_better_normalized_fails(tmp_path):
    """A/B: pingpong/uds/64 is 10 % faster raw but 20 % further from its floor: raw
    passes, normalized flags exactly that cell."""
    base = save(beside(load(R9A)), tmp_path / "base.json")
    cand = save(beside(scaled(load(R9A), 0.9, {PING}),
                       lambda name, k: RATIO * JITTER[k] * (1.2 if name == PING else 1)),
                tmp_path / "cand.json")
    raw = report("compare", base, cand)
    assert raw.returncode == 0, raw.stdout
    assert _rows(raw.stdout)[_cell(PING)][8] == "improved"
    res = report("compare", base, cand, "--normalized")
    assert res.returncode == 1, res.stdout
    assert "**1 regression(s)**: pingpong/uds/64\n" in res.stdout
    row = _rows(res.stdout)[_cell(PING)]
    assert row[VERDICT] == "**REGRESSION**" and row[CHANGE] == "+20.0 %"
    assert row[RAW] == "-10.0 %" and float(row[P_ADJ]) < 0.05
    assert "p < 0.05 (Holm, 16 cells)" in row[WHY]


def _six_marked(tmp_path, mark: bool):
    """The candidate's pingpong/uds/64 has its first 6 repetitions at 1.5 × the
    baseline's floor_ratio (marked host_changed when ``mark``), the last 3 as the
    baseline's; every repetition of throughput/uds/1048576 is marked."""
    worse = {(PING, k) for k in range(6)}
    every = {(THR, k) for k in range(9)}
    base = save(beside(load(R9A)), tmp_path / "base.json")
    cand = save(beside(load(R9A),
                       lambda name, k: RATIO * JITTER[k] * (1.5 if (name, k) in worse
                                                            else 1),
                       (worse if mark else set()) | every),
                tmp_path / f"cand-{mark}.json")
    return report("compare", base, cand, "--normalized")


def test_marked_repetitions_are_left_out(tmp_path):
    """Counted, the 6 worse repetitions make pingpong/uds/64 a regression (9 vs 9, p =
    6.6e-4 alone); marked host_changed, they are left out and 9 vs 3 repetitions agree.
    A cell whose every repetition of a side is marked is skipped, saying why."""
    counted = _six_marked(tmp_path, mark=False)
    assert counted.returncode == 1, counted.stdout
    assert _rows(counted.stdout)[_cell(PING)][VERDICT] == "**REGRESSION**"

    res = _six_marked(tmp_path, mark=True)
    assert res.returncode == 0, res.stdout
    row = _rows(res.stdout)[_cell(PING)]
    assert row[VERDICT] == "unchanged" and row[REPS] == "9/3"
    assert "left out, host_changed: candidate repetition(s) 1, 2, 3, 4, 5, 6 of 9" \
        in row[WHY]
    skipped = _rows(res.stdout)[_cell(THR)]
    assert skipped[VERDICT] == "skipped (host changed)" and skipped[REPS] == "9/0"
    assert skipped[WHY].startswith("the machine changed during every repetition of the "
                                   "candidate (host_changed = 1)")
    assert "20 compared (15 transport cells, 5 machine floors; 15 normalized on " \
           "floor_ratio, 5 raw), 1 skipped: 1 every repetition of a side marked " \
           "host_changed." in res.stdout


def test_raw_compare_notes_marked_repetitions(tmp_path):
    base = save(beside(load(R9A)), tmp_path / "base.json")
    cand = save(beside(load(R9A), marked={(PING, 0)}), tmp_path / "cand.json")
    res = report("compare", base, cand)
    assert "1 cell(s) have repetitions marked host_changed" in res.stdout
    assert "1 cell(s) have repetitions" not in report("compare", base, base).stdout


def test_everything_skipped_exits_2(tmp_path):
    """Every repetition of every candidate cell marked: nothing was compared, so the
    gate does not pass; one line on stderr, nothing on stdout."""
    doc = load(R9A)
    every = {(b["run_name"], k) for b in doc["benchmarks"] for k in range(9)}
    base = save(beside(doc), tmp_path / "base.json")
    cand = save(beside(doc, marked=every), tmp_path / "cand.json")
    out = tmp_path / "cmp.md"
    res = report("compare", base, cand, "--normalized", "--out", out)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines == [f"report: nothing to gate on: no transport cell was compared; of the "
                     f"21 cells in both {base} and {cand}, 5 are machine floors (not "
                     "gated) and the 16 transport cells were skipped (every repetition of "
                     "a side marked host_changed)"], res.stderr
    assert res.stdout == "" and not out.exists()
    assert report("compare", base, cand).returncode == 0      # raw: every repetition


def test_old_files_compare_raw_when_normalized(tmp_path):
    """Files without the floor beside their cells compare as without --normalized."""
    res = report("compare", R9A, R9A, "--normalized")
    assert res.returncode == 0, res.stdout
    assert "21 compared (16 transport cells, 5 machine floors; 0 normalized on " \
           "floor_ratio, 21 raw)." in res.stdout
    assert _rows(res.stdout)[_cell(PING)][1] == "rtt_p50_ns ↓"


# --- the comparison table's (×N) --------------------------------------------------------

PING_MARKED = {(PING, k) for k in range(5)}        # 5 of 9: they would move the median
THR_MARKED = {(THR, k) for k in range(9)}          # every repetition


def _headline(tmp_path):
    """uds (only) carries the floor beside its cells: pingpong/uds/64 at 2 × JITTER
    except 5 marked repetitions at 10 ×; throughput/uds/1048576 marked in every
    repetition. pipe has none: its (×N) come from the run's floors."""
    doc = beside(load(R9A), lambda name, k: 10.0 if (name, k) in PING_MARKED
                 else RATIO * JITTER[k], PING_MARKED | THR_MARKED, only="uds")
    return doc, save(doc, tmp_path / "headline.json")


def _rep(doc: dict, run_name: str, key: str, keep=lambda k: True) -> list[float]:
    return [b[key] for k, b in enumerate(iterations(doc, run_name)) if keep(k)]


def test_headline_multiple_per_cell_or_run_wide(tmp_path):
    doc, path = _headline(tmp_path)
    model = compute.build(load_runs([path]))
    rows = {r.transport: r.entries for r in model.rows}
    unmarked = lambda k: (PING, k) not in PING_MARKED              # noqa: E731
    p50 = rows["uds"]["rtt50_64"]
    assert p50.rule == "beside_ratio" and p50.floor_name == "per-cell futex_rtt"
    assert p50.multiple == statistics.median(RATIO * JITTER[k] for k in range(5, 9))
    assert statistics.median(_rep(doc, PING, "floor_ratio")) == 10.0   # counted: 10
    p99 = rows["uds"]["rtt99_64"]
    assert p99.rule == "beside_p99"
    assert p99.multiple == statistics.median(_rep(doc, PING, "rtt_p99_ns", unmarked)) \
        / statistics.median(_rep(doc, PING, "floor", unmarked))
    msgs = rows["uds"]["msgs_64"]
    assert msgs.floor_name == "per-cell copy_stream" and msgs.multiple == RATIO
    gbps = rows["uds"]["gbps_1m"]
    assert gbps.multiple is None and gbps.no_multiple == compute.ALL_MARKED
    futex = statistics.median(_rep(doc, "floor/futex_rtt/manual_time", "rtt_p50_ns"))
    pipe = rows["pipe"]["rtt50_64"]
    assert pipe.rule == "rtt" and pipe.floor_name == "floor/futex_rtt"
    assert pipe.multiple == statistics.median(
        _rep(doc, "pingpong/pipe/64/manual_time", "rtt_p50_ns")) / futex
    # a split-run cell or an old file: no floor beside it, so the run-wide floor
    plain = {r.transport: r.entries for r in compute.build(load_runs([R9A])).rows}
    assert plain["uds"]["rtt50_64"].floor_name == "floor/futex_rtt"


def test_headline_marks_cells_and_says_why(tmp_path):
    doc, path = _headline(tmp_path)
    out = tmp_path / "report"
    res = report("render", path, "--out", out)
    assert res.returncode == 0, res.stderr
    md = (out / "report.md").read_text()
    header, rows = table(md, layout.COMPARISON)
    uds = next(r for r in rows if r[0] == "uds")
    pipe = next(r for r in rows if r[0] == "pipe")
    p50 = uds[header.index("RTT p50 64 B (µs)")]       # median of repetitions 6…9
    assert f"(×{layout.fmt(RATIO * statistics.median(JITTER[5:]))})" in p50
    assert p50.endswith(" †")
    assert uds[header.index("throughput 1 MiB (GB/s)")].endswith(" †")
    assert "×" not in uds[header.index("throughput 1 MiB (GB/s)")]
    assert "†" not in "".join(pipe) and "×" in pipe[header.index("RTT p50 64 B (µs)")]
    section = md.split(f"## {layout.COMPARISON}\n", 1)[1].split("\n## ", 1)[0]
    assert "Per cell, where the cell carries the floor probed beside it" in section
    assert "Otherwise run-wide, from the machine floors measured in the same run" \
        in section
    assert f"- No (×N) for uds throughput 1 MiB: {compute.ALL_MARKED}." in section
    assert "- † The machine changed during a repetition of 2 cell(s)" in section
    before = _rep(doc, PING, "floor_before")[0]
    assert (f"- pingpong/uds/64 (futex_rtt, repetition(s) 1, 2, 3, 4, 5 of 9): "
            f"repetition 1: {layout.fmt(before / 1e3)} µs → ") in section
    assert "- throughput/uds/1048576 (copy_stream, repetition(s) 1, 2, 3, 4, 5, 6, 7, " \
           "8, 9 of 9): repetition 1: " in section
    assert "; every repetition marked, so no per-cell (×N)" in section
    html = (out / "index.html").read_text()
    assert "×2.00 of per-cell copy_stream" in html     # the entries name their floor
    assert "×2.02 of per-cell futex_rtt" in html
    _, cells = table(md, layout.CELLS)
    marked = {r[1] for r in cells if "host changed" in r[4]}
    assert marked == {"pingpong/uds/64", "throughput/uds/1048576"}
    assert all("host-changed" not in r[6] for r in cells)  # one repetition's, not the cell's


# --- render --normalized --------------------------------------------------------------

def test_render_normalized_draws_times_floor(tmp_path, monkeypatch):
    path = save(beside(load(R9A)), tmp_path / "beside.json")
    raw, norm = tmp_path / "raw", tmp_path / "norm"
    assert report("render", path, "--out", raw).returncode == 0
    res = report("render", path, "--out", norm, "--normalized")
    assert res.returncode == 0, res.stderr
    for name in ("rtt_vs_size.png", "throughput_vs_size.png"):
        png = (norm / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png != (raw / name).read_bytes()
    md = (norm / "report.md").read_text()
    assert "`rtt_vs_size.png`: Round-trip time p50 × floor vs message size" in md
    assert "`throughput_vs_size.png`: One-way throughput × floor vs message size" in md
    assert "× floor" not in (raw / "report.md").read_text()

    labels: dict[str, list[str]] = {}
    ys: dict[str, list] = {}

    def keep(fig, dest):
        labels[dest.name] = [ax.get_ylabel() for ax in fig.axes]
        ys[dest.name] = [list(line.get_ydata()) for ax in fig.axes
                         for line in ax.get_lines() if not line.get_label().startswith("×1")]
        return dest

    monkeypatch.setattr(plots, "_save", keep)
    plots.render(compute.build(load_runs([path]), normalized=True), tmp_path)
    assert labels["rtt_vs_size.png"] == [plots.NORMALIZED_RTT_LABEL]
    assert labels["throughput_vs_size.png"] == [plots.NORMALIZED_THROUGHPUT_LABEL]
    assert all("× floor" in t for t in labels["rtt_vs_size.png"]
               + labels["throughput_vs_size.png"])
    # one line per transport through 64 B and 1 MiB, each at the median ratio
    assert ys["rtt_vs_size.png"] == [[RATIO, RATIO]] * 4
    assert ys["throughput_vs_size.png"] == [[RATIO, RATIO]] * 4
    plots.render(compute.build(load_runs([path])), tmp_path)
    assert labels["rtt_vs_size.png"] == ["round-trip time, µs (line p50, band up to p99)"]


def test_render_normalized_without_any_floor_beside_exits_2(tmp_path):
    out = tmp_path / "report"
    res = report("render", R9A, "--out", out, "--normalized")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"report: --normalized: no pingpong or throughput cell of {R9A} carries "
        "floor_ratio (the floor probed beside each cell; results written before ipcbench "
        "probed it, or of a split run, have none)"]
    assert not out.exists()


def test_render_normalized_leaves_marked_repetitions_out(tmp_path, monkeypatch):
    """The "× floor" plots take each cell's median ratio over its unmarked repetitions,
    and leave out a cell whose every repetition was marked; results.csv keeps the mark
    as the largest host_changed of the cell's repetitions."""
    low4 = {(PING, k) for k in range(4)}            # the 4 lowest ratios of uds/64
    all9 = {(THR, k) for k in range(9)}              # every repetition of uds/1 MiB
    path = save(beside(load(R9A), marked=low4 | all9), tmp_path / "marked.json")
    ys: dict[str, list] = {}

    def keep(fig, dest):
        ys[dest.name] = [list(line.get_ydata()) for ax in fig.axes
                         for line in ax.get_lines() if not line.get_label().startswith("×1")]
        return dest

    monkeypatch.setattr(plots, "_save", keep)
    plots.render(compute.build(load_runs([path]), normalized=True), tmp_path)
    unmarked_median = statistics.median(RATIO * JITTER[k] for k in range(4, 9))
    assert [unmarked_median, RATIO] in ys["rtt_vs_size.png"]
    assert ys["rtt_vs_size.png"].count([RATIO, RATIO]) == 3
    assert [RATIO] in ys["throughput_vs_size.png"]        # uds: 64 B only
    assert ys["throughput_vs_size.png"].count([RATIO, RATIO]) == 3

    out = tmp_path / "report"
    assert report("render", path, "--out", out).returncode == 0
    with open(out / "results.csv", newline="") as f:
        rows = {r["cell"]: r for r in csv.DictReader(f)}
    assert float(rows[_cell(PING)]["host_changed"]) == 1.0
    assert float(rows[_cell("pingpong/uds/1048576/manual_time")]["host_changed"]) == 0.0


# --- documented claims of report/README.md, each held by a test ---------------------------

def test_normalized_compare_notes_cells_with_the_floor_in_one_run_only(tmp_path):
    """A cell whose floor_ratio is in one run only is compared raw, and a note counts
    such cells; without --normalized there is no such note."""
    base = save(beside(load(R9A), only="uds"), tmp_path / "base.json")
    res = report("compare", base, R9A, "--normalized")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "- 4 cell(s) carry floor_ratio in one run only (the other was written before " \
           "ipcbench probed the floor beside each cell): compared raw." in res.stdout
    assert "0 normalized on floor_ratio, 21 raw" in res.stdout
    assert _rows(res.stdout)[_cell(PING)][1] == "rtt_p50_ns ↓"
    assert "in one run only" not in report("compare", base, R9A).stdout


def test_holm_runs_over_normalized_and_raw_cells_together(tmp_path):
    """With --normalized, uds's cells are compared on floor_ratio and the others raw; the
    Holm correction runs over all 16 tested transport cells at once, both kinds."""
    base = load_runs([save(beside(load(R9A), only="uds"), tmp_path / "base.json")])[0]
    cand = load_runs([save(beside(scaled(load(R9A), 1.1),
                                  lambda name, k: RATIO * JITTER[(k + 4) % 9] * 1.03,
                                  only="uds"), tmp_path / "cand.json")])[0]
    cmp = compare_runs(base, cand, 5.0, 0.05, normalized=True)
    tested = [c for c in cmp.changes if c.p is not None]
    assert len(tested) == 16
    assert sum(c.normalized for c in tested) == 4          # uds: pingpong/throughput × 2
    assert [c.p_adj for c in tested] == holm([c.p for c in tested])
    # Holm over 4 normalized cells alone would give some of them a smaller adjusted p.
    alone = holm([c.p for c in tested if c.normalized])
    assert any(a < c.p_adj for a, c in zip(alone, [c for c in tested if c.normalized]))


def test_render_normalized_draws_the_floor_as_a_grey_dashed_line_at_1(tmp_path,
                                                                      monkeypatch):
    """Every "× floor" panel has the floor itself: a grey dashed line at y = 1."""
    path = save(beside(load(R9A)), tmp_path / "beside.json")
    ones: dict[str, list] = {}

    def keep(fig, dest):
        ones[dest.name] = [(list(line.get_ydata()), line.get_linestyle(),
                            matplotlib.colors.to_hex(line.get_color()))
                           for ax in fig.axes for line in ax.get_lines()
                           if line.get_label().startswith("×1")]
        return dest

    monkeypatch.setattr(plots, "_save", keep)
    plots.render(compute.build(load_runs([path]), normalized=True), tmp_path)
    for name in ("rtt_vs_size.png", "throughput_vs_size.png"):
        assert ones[name], name
        for ys, style, color in ones[name]:
            assert ys == [1.0, 1.0] and style == "--"
            r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
            assert r == g == b and 0 < r < 255, color      # a grey
    plots.render(compute.build(load_runs([path])), tmp_path)
    assert not ones["rtt_vs_size.png"]                     # raw plots have none
