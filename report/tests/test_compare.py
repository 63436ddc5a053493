"""``report.sh compare``: exit 0 on identical runs and on two honest runs, 1 on a cell
made 50 % slower (when the repetitions allow a verdict), listing of one-sided cells.
Table columns: cell, metric, baseline, candidate, change, p, p (Holm), reps, verdict,
why."""

from __future__ import annotations

import copy
import re

import pytest

from conftest import A, B, R9A, R9B, SAME, load, medians, report, save, scaled, table

PIPE64 = "pingpong/pipe/64/manual_time"            # tied repetitions in quick-reps-a
# Distinct repetitions, and quick-reps-a and -b agree on it (many cells of the two honest
# runs differ by far more than 50 %, so merging them would hide the slowdown).
THR1M = "throughput/uds/1048576/manual_time"
SYSCALL = "floor/syscall/real_time"                # a machine floor, ns_per_call


def _verdicts(stdout: str) -> dict[str, list[str]]:
    """Comparison rows by cell."""
    return {r[0]: r for r in table(stdout)[1]}


def test_identical_inputs_pass():
    res = report("compare", A, A)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "**0 regression(s)**" in res.stdout
    assert "REGRESSION" not in res.stdout


def test_two_honest_runs_pass():
    res = report("compare", A, B)
    assert res.returncode == 0, res.stdout
    assert "Use --benchmark_repetitions=" in res.stdout    # 3 vs 3 repetitions: said so
    assert "**0 regression(s)**" in res.stdout


def test_two_honest_runs_with_9_repetitions_pass():
    """The gate's case: two runs of one build. A cell that is worse with p < alpha on
    its own is chance among the many tested; after Holm's correction it is not a
    regression."""
    res = report("compare", R9A, R9B)
    assert res.returncode == 0, res.stdout
    assert "**0 regression(s)**" in res.stdout
    rows = _verdicts(res.stdout).values()
    chance = [r for r in rows if r[8] == "worse (not significant)" and float(r[5]) < 0.05]
    assert chance, "premise: the fixtures hold a cell that only the correction clears"
    assert all(float(r[6]) >= 0.05 and "Holm, 16 cells" in r[9] for r in chance)
    assert "Use --benchmark_repetitions=" not in res.stdout  # 9 are enough for 16 cells


def test_cell_50_percent_slower_fails_with_enough_repetitions(tmp_path):
    cand = save(scaled(load(R9A), 1.5, {THR1M}), tmp_path / "cand.json")
    res = report("compare", R9A, cand)
    assert res.returncode == 1, res.stdout
    rows = _verdicts(res.stdout)
    row = rows[THR1M.removesuffix("/manual_time")]
    assert "REGRESSION" in row[8] and row[4] == "-33.3 %" and row[7] == "9/9"
    assert float(row[6]) < 0.05 and "Holm, 16 cells" in row[9]
    assert sum("REGRESSION" in r[8] for r in rows.values()) == 1
    assert report("compare", R9A, R9A).returncode == 0


def test_slower_floor_is_reported_not_gated(tmp_path):
    """A floor measures the machine: 50 % slower with 9 vs 9 separated repetitions would
    be a regression for a cell; for a floor it is shown apart and does not fail."""
    cand = save(scaled(load(R9A), 1.5, {SYSCALL}), tmp_path / "cand.json")
    res = report("compare", R9A, cand)
    assert res.returncode == 0, res.stdout
    assert "**0 regression(s)**" in res.stdout
    cells = _verdicts(res.stdout.split("\n## Machine floors\n")[0])
    assert THR1M.removesuffix("/manual_time") in cells
    assert not [c for c in cells if c.startswith("floor/")]     # not among the cells
    floors = {r[0]: r for r in table(res.stdout, "Machine floors")[1]}
    row = floors["floor/syscall"]
    assert row[4] == "+50.0 %" and float(row[5]) < 0.05 and row[7] == "9/9"
    assert row[8] == "worse (floor, not gated)"
    assert "Machine floors moved by more than 5 % (floor/syscall +50 %)" in res.stdout


def test_newly_failing_floor_fails(tmp_path):
    cand = load(A)
    for b in cand["benchmarks"]:
        if b["run_name"] == SYSCALL and b["run_type"] == "iteration":
            b["error_occurred"], b["error_message"] = True, "injected"
    res = report("compare", A, save(cand, tmp_path / "cand.json"))
    assert res.returncode == 1, res.stdout
    row = {r[0]: r for r in table(res.stdout, "Machine floors")[1]}["floor/syscall"]
    assert "REGRESSION" in row[8] and "new failure: injected" in row[9]


def test_cell_50_percent_slower_with_3_repetitions(tmp_path):
    """3 vs 3 repetitions cannot reach p < 0.05 even alone (smallest p = 0.1, ties
    included): the slower cell is shown as untestable, the run passes, and the notes
    say how many repetitions the comparison needs."""
    a = load(A)
    for cell in (PIPE64, THR1M):                       # tied and distinct repetitions
        slower = save(scaled(a, 1.5, {cell}), tmp_path / "slower.json")
        res = report("compare", A, slower)
        assert res.returncode == 0, res.stdout
        row = _verdicts(res.stdout)[cell.removesuffix("/manual_time")]
        assert row[8] == "worse (untestable)" and "smallest p = 0.1" in row[9], row
        need = re.search(r"Use --benchmark_repetitions=(\d+) or more", res.stdout)
        assert need and int(need.group(1)) >= 6, res.stdout


def test_no_repetitions_decides_by_threshold(tmp_path):
    cand = save(scaled(load(SAME), 1.5, {PIPE64}), tmp_path / "cand.json")
    res = report("compare", SAME, cand, "--threshold", "10")
    assert res.returncode == 1
    row = _verdicts(res.stdout)["pingpong/pipe/64"]
    assert "REGRESSION" in row[8] and "threshold only" in row[9]
    assert "decided by the threshold alone" in res.stdout
    assert report("compare", SAME, cand, "--threshold", "60").returncode == 0


def test_pin_mode_difference_is_stated():
    res = report("compare", A, SAME)
    assert "pin_mode differs (baseline cross, candidate same)" in res.stdout


@pytest.mark.parametrize("key, base, cand", [
    # a memory-mapped file on tmpfs is not one on ext4
    ("run_dir_fs", "tmpfs", "ext4"),
    # round trips timed another way (the clock once read after the reply)
    ("latency_metric", "rtt_* = full round trip (request + reply), CLOCK_MONOTONIC",
     "rtt_* = full round trip (request + reply), one CLOCK_MONOTONIC read per round trip, "
     "taken while the next request is in flight"),
])
def test_unlike_runs_are_noted(tmp_path, key, base, cand):
    a = load(A)
    c = copy.deepcopy(a)
    a["context"][key], c["context"][key] = base, cand
    res = report("compare", save(a, tmp_path / "a.json"), save(c, tmp_path / "c.json"))
    assert f"{key} differs (baseline {base}, candidate {cand})" in res.stdout
    same = report("compare", save(a, tmp_path / "a.json"), save(a, tmp_path / "a2.json"))
    assert f"{key} differs" not in same.stdout


def test_one_sided_cells_listed_and_new_failures_fail(tmp_path):
    a = load(A)
    cand = copy.deepcopy(a)
    cand["benchmarks"] = [b for b in cand["benchmarks"]
                          if not b["run_name"].startswith("throughput/tcp/")]
    for b in cand["benchmarks"]:
        if b["run_name"] == "pingpong/tcp/64/manual_time":
            b["run_name"] = b["name"] = "pingpong/tcp/128/manual_time"
    cand_path = save(cand, tmp_path / "cand.json")
    out = tmp_path / "cmp.md"
    res = report("compare", A, cand_path, "--out", out)
    assert res.returncode == 0, res.stdout
    assert out.read_text() == res.stdout
    only = re.search(r"Only in the baseline: (.*)", res.stdout).group(1)
    assert only.split(", ") == ["pingpong/tcp/64", "throughput/tcp/64",
                                "throughput/tcp/4096", "throughput/tcp/65536",
                                "throughput/tcp/1048576"]
    assert "Only in the candidate: pingpong/tcp/128" in res.stdout

    for b in cand["benchmarks"]:
        if b["run_name"] == PIPE64 and b["run_type"] == "iteration":
            b["error_occurred"], b["error_message"] = True, "injected"
    res = report("compare", A, save(cand, tmp_path / "broken.json"))
    assert res.returncode == 1
    assert "new failure: injected" in _verdicts(res.stdout)["pingpong/pipe/64"][9]


def test_bad_options_exit_2():
    assert report("compare", A, B, "--alpha", "0").returncode == 2
    assert report("compare", A, B, "--threshold", "-1").returncode == 2


def test_repetitions_run_back_to_back_are_noted(tmp_path):
    doc = load(R9B)
    doc["context"]["random_interleaving"] = "false"
    res = report("compare", R9A, save(doc, tmp_path / "b2b.json"))
    assert "The candidate ran each cell's repetitions back to back" in res.stdout
    assert "The baseline ran" not in res.stdout
