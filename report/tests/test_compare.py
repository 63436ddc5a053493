"""``report.sh compare``: exit 0 on identical runs and on two honest runs, 1 on a cell
made 50 % slower (when the repetitions allow a verdict), listing of one-sided cells."""

from __future__ import annotations

import copy
import re

from conftest import A, B, SAME, load, medians, merged, report, save, scaled, table

PIPE64 = "pingpong/pipe/64/manual_time"            # tied repetitions in quick-reps-a
# Distinct repetitions, and quick-reps-a and -b agree on it (many cells of the two honest
# runs differ by far more than 50 %, so merging them would hide the slowdown).
THR1M = "throughput/uds/1048576/manual_time"
SYSCALL = "floor/syscall/real_time"                # a machine floor, ns_per_call


def _verdicts(stdout: str) -> dict[str, list[str]]:
    """Comparison rows by cell: cell, metric, baseline, candidate, change, p, reps,
    verdict, why."""
    return {r[0]: r for r in table(stdout)[1]}


def test_identical_inputs_pass():
    res = report("compare", A, A)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "**0 regression(s)**" in res.stdout
    assert "REGRESSION" not in res.stdout


def test_two_honest_runs_pass():
    res = report("compare", A, B)
    assert res.returncode == 0, res.stdout
    assert "cannot reach p < 0.05" in res.stdout       # 3 vs 3 repetitions: said so
    assert "**0 regression(s)**" in res.stdout


def test_cell_50_percent_slower_fails_with_enough_repetitions(tmp_path):
    a, b = load(A), load(B)
    ratio = medians(a, THR1M, "bytes_per_second") / medians(b, THR1M, "bytes_per_second")
    assert abs(ratio - 1) < 0.05, ratio                # premise: a stable cell
    base = merged(a, b)                                # 6 repetitions per cell
    base_path = save(base, tmp_path / "base.json")
    cand = save(scaled(base, 1.5, {THR1M}), tmp_path / "cand.json")
    res = report("compare", base_path, cand)
    assert res.returncode == 1, res.stdout
    rows = _verdicts(res.stdout)
    row = rows[THR1M.removesuffix("/manual_time")]
    assert "REGRESSION" in row[7] and row[4] == "-33.3 %" and row[6] == "6/6"
    assert sum("REGRESSION" in r[7] for r in rows.values()) == 1
    assert report("compare", base_path, base_path).returncode == 0


def test_slower_floor_is_reported_not_gated(tmp_path):
    """A floor measures the machine: 50 % slower with 6 vs 6 separated repetitions would
    be a regression for a cell; for a floor it is shown apart and does not fail."""
    base = merged(load(A), load(B))
    base_path = save(base, tmp_path / "base.json")
    cand = save(scaled(base, 1.5, {SYSCALL}), tmp_path / "cand.json")
    res = report("compare", base_path, cand)
    assert res.returncode == 0, res.stdout
    assert "**0 regression(s)**" in res.stdout
    cells = _verdicts(res.stdout.split("\n## Machine floors\n")[0])
    assert THR1M.removesuffix("/manual_time") in cells
    assert not [c for c in cells if c.startswith("floor/")]     # not among the cells
    floors = {r[0]: r for r in table(res.stdout, "Machine floors")[1]}
    row = floors["floor/syscall"]
    assert row[4] == "+50.0 %" and float(row[5]) < 0.05 and row[6] == "6/6"
    assert row[7] == "worse (floor, not gated)"
    assert "Machine floors moved by more than 5 % (floor/syscall +50 %)" in res.stdout


def test_newly_failing_floor_fails(tmp_path):
    cand = load(A)
    for b in cand["benchmarks"]:
        if b["run_name"] == SYSCALL and b["run_type"] == "iteration":
            b["error_occurred"], b["error_message"] = True, "injected"
    res = report("compare", A, save(cand, tmp_path / "cand.json"))
    assert res.returncode == 1, res.stdout
    row = {r[0]: r for r in table(res.stdout, "Machine floors")[1]}["floor/syscall"]
    assert "REGRESSION" in row[7] and "new failure: injected" in row[8]


def test_cell_50_percent_slower_with_3_repetitions(tmp_path):
    a = load(A)
    tied = save(scaled(a, 1.5, {PIPE64}), tmp_path / "tied.json")
    res = report("compare", A, tied)
    assert res.returncode == 1, res.stdout             # ties: normal approximation
    row = _verdicts(res.stdout)["pingpong/pipe/64"]
    assert row[4] == "+50.0 %" and "REGRESSION" in row[7]

    distinct = save(scaled(a, 1.5, {THR1M}), tmp_path / "distinct.json")
    res = report("compare", A, distinct)
    assert res.returncode == 0, res.stdout             # exact test: p >= 0.1
    row = _verdicts(res.stdout)[THR1M.removesuffix("/manual_time")]
    assert row[7] == "worse (untestable)" and "smallest p = 0.1" in row[8]
    assert report("compare", A, distinct, "--alpha", "0.11").returncode == 1


def test_no_repetitions_decides_by_threshold(tmp_path):
    cand = save(scaled(load(SAME), 1.5, {PIPE64}), tmp_path / "cand.json")
    res = report("compare", SAME, cand, "--threshold", "10")
    assert res.returncode == 1
    row = _verdicts(res.stdout)["pingpong/pipe/64"]
    assert "REGRESSION" in row[7] and "threshold only" in row[8]
    assert "decided by the threshold alone" in res.stdout
    assert report("compare", SAME, cand, "--threshold", "60").returncode == 0


def test_pin_mode_difference_is_stated():
    res = report("compare", A, SAME)
    assert "pin_mode differs (baseline cross, candidate same)" in res.stdout


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
    assert "new failure: injected" in _verdicts(res.stdout)["pingpong/pipe/64"][8]


def test_bad_options_exit_2():
    assert report("compare", A, B, "--alpha", "0").returncode == 2
    assert report("compare", A, B, "--threshold", "-1").returncode == 2
