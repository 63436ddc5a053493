"""``report.sh compare``: exit 0 on identical runs and on two honest runs, 1 on a cell
made 50 % slower (when the repetitions allow a verdict), on new failed repetitions and
on cells missing from the candidate, 2 when nothing was compared; one-sided cells.
Table columns: cell, metric, baseline, candidate, change, p, p (Holm), reps, verdict,
why."""

from __future__ import annotations

import copy
import re

import pytest

from conftest import (A, B, ERRORS, LAYERS, PARTIAL_BASE, PARTIAL_CAND, R9A, R9B, SAME,
                      floor_cells, load, medians, report, save, scaled, table)

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


TCP_GONE = ["pingpong/tcp/64", "throughput/tcp/64", "throughput/tcp/4096",
            "throughput/tcp/65536", "throughput/tcp/1048576"]


def _one_sided(tmp_path) -> tuple[dict, object]:
    """quick-reps-a without its throughput/tcp cells and with pingpong/tcp/64 renamed
    pingpong/tcp/128: 5 cells only in the baseline, 1 only in the candidate."""
    cand = copy.deepcopy(load(A))
    cand["benchmarks"] = [b for b in cand["benchmarks"]
                          if not b["run_name"].startswith("throughput/tcp/")]
    for b in cand["benchmarks"]:
        if b["run_name"] == "pingpong/tcp/64/manual_time":
            b["run_name"] = b["name"] = "pingpong/tcp/128/manual_time"
    return cand, save(cand, tmp_path / "cand.json")


def _cells(doc: dict) -> set[str]:
    return {re.sub(r"/(manual|real)_time$", "", b["run_name"]) for b in doc["benchmarks"]}


def test_cells_missing_from_the_candidate_fail_unless_allowed(tmp_path):
    cand, cand_path = _one_sided(tmp_path)
    res = report("compare", A, cand_path)
    assert res.returncode == 1, res.stdout
    assert "**0 regression(s)**" in res.stdout
    missing = re.search(r"\*\*5 cell\(s\) of the baseline missing from the candidate\*\* "
                        r"\(this fails the comparison; --allow-missing accepts it\): (.*)",
                        res.stdout)
    assert missing and missing.group(1).split(", ") == TCP_GONE
    floors = len(floor_cells(load(A)))
    both = len(_cells(load(A)) & _cells(cand))
    counts = (f"{both} compared ({both - floors} transport cells, {floors} machine floors), "
              "6 skipped: 5 only in the baseline{}, 1 only in the candidate.")
    assert counts.format("") in res.stdout

    out = tmp_path / "cmp.md"
    res = report("compare", A, cand_path, "--allow-missing", "--out", out)
    assert res.returncode == 0, res.stdout
    assert out.read_text() == res.stdout
    assert "missing from the candidate**" not in res.stdout
    assert counts.format(" (accepted: --allow-missing)") in res.stdout
    only = re.search(r"Only in the baseline: (.*)", res.stdout).group(1)
    assert only.split(", ") == TCP_GONE
    assert "Only in the candidate: pingpong/tcp/128" in res.stdout

    # the other way round, pingpong/tcp/128 is missing; cells only in the candidate
    # never fail the gate
    assert report("compare", cand_path, A).returncode == 1
    fewer = dict(load(A), benchmarks=[b for b in load(A)["benchmarks"]
                                      if not b["run_name"].startswith("throughput/tcp/")])
    assert report("compare", save(fewer, tmp_path / "fewer.json"), A).returncode == 0


def test_new_failures_fail(tmp_path):
    cand, _ = _one_sided(tmp_path)
    for b in cand["benchmarks"]:
        if b["run_name"] == PIPE64 and b["run_type"] == "iteration":
            b["error_occurred"], b["error_message"] = True, "injected"
    res = report("compare", A, save(cand, tmp_path / "broken.json"), "--allow-missing")
    assert res.returncode == 1
    assert "new failure: injected" in _verdicts(res.stdout)["pingpong/pipe/64"][9]


def _nothing_compared(res, expect: str, out=None):
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("report: nothing to gate on: no "
                                                   "transport cell was compared; "), res.stderr
    assert expect in lines[0], lines[0]
    assert res.stdout == "" and (out is None or not out.exists())


def test_no_cell_in_common_exits_2(tmp_path):
    """A gate that compared nothing must not pass (it said "0 regression(s)", exit 0)."""
    out = tmp_path / "cmp.md"
    _nothing_compared(report("compare", ERRORS, LAYERS, "--out", out),
                      "have no cell in common (8 and 16 cells)", out)
    _nothing_compared(report("compare", ERRORS, LAYERS, "--allow-missing"),
                      "have no cell in common")


def test_only_floors_or_failing_cells_in_common_exit_2(tmp_path):
    """Floors are not gated and cells that failed in every repetition of both runs were
    measured in neither: with nothing else in common, nothing was compared."""
    doc = load(A)
    floors = save(dict(doc, benchmarks=[b for b in doc["benchmarks"]
                                        if b["run_name"].startswith("floor/")]),
                  tmp_path / "floors-only.json")
    n = len(floor_cells(doc))
    _nothing_compared(report("compare", A, floors, "--allow-missing"),
                      f"of the {n} cells in both {A} and {floors}, {n} are machine floors "
                      "(not gated) and none is a transport cell")
    _nothing_compared(report("compare", ERRORS, ERRORS),
                      "the 8 transport cells were skipped (failed in every repetition of "
                      "both runs)")


def test_failed_repetitions_new_in_the_candidate_regress():
    """7 of 9 candidate repetitions fail and the 2 survivors are 40 % slower: 9 vs 2
    repetitions cannot reach p < alpha, which used to pass as "worse (untestable)"; any
    failed repetition the baseline did not have is a regression. A cell that failed in
    every repetition of both runs is said to, and is neither compared nor a regression."""
    res = report("compare", PARTIAL_BASE, PARTIAL_CAND)
    assert res.returncode == 1, res.stdout
    assert "**1 regression(s)**: pingpong/pipe/64\n" in res.stdout
    assert "2 compared (2 transport cells), 1 skipped: 1 failed in every repetition of both " \
           "runs." in res.stdout
    rows = _verdicts(res.stdout)
    message = next(b["error_message"] for b in load(PARTIAL_CAND)["benchmarks"]
                   if b["run_name"] == PIPE64 and b.get("error_occurred"))
    ping = rows["pingpong/pipe/64"]
    assert ping[8] == "**REGRESSION**" and ping[7] == "9/2" and ping[4].startswith("+")
    assert ping[9] == (f"new failure: {message} (7 of 9 repetitions failed; in the "
                       "baseline none)")
    failing = rows["throughput/pipe/64"]
    assert failing[8] == "failing"
    assert failing[9].startswith("failed in every repetition of both runs, so measured in "
                                 "neither: not a regression of the change (peer set-up: ")
    assert rows["throughput/pipe/1048576"][8] == "unchanged"


def test_failed_repetitions_not_new_do_not_regress():
    """The same share failed in both runs (the candidate against itself), or fewer in the
    candidate: not a regression; the table still says how many failed."""
    res = report("compare", PARTIAL_CAND, PARTIAL_CAND)
    assert res.returncode == 0, res.stdout
    row = _verdicts(res.stdout)["pingpong/pipe/64"]
    assert row[8] == "unchanged" and row[7] == "2/2"
    assert "baseline: 7 of 9 repetitions failed (" in row[9]
    assert "candidate: 7 of 9 repetitions failed (" in row[9]
    res = report("compare", PARTIAL_CAND, PARTIAL_BASE)
    assert res.returncode == 0, res.stdout
    row = _verdicts(res.stdout)["pingpong/pipe/64"]
    assert "REGRESSION" not in row[8] and "baseline: 7 of 9 repetitions failed" in row[9]


def test_bad_options_exit_2():
    assert report("compare", A, B, "--alpha", "0").returncode == 2
    assert report("compare", A, B, "--threshold", "-1").returncode == 2


def test_repetitions_run_back_to_back_are_noted(tmp_path):
    doc = load(R9B)
    doc["context"]["random_interleaving"] = "false"
    res = report("compare", R9A, save(doc, tmp_path / "b2b.json"))
    assert "The candidate ran each cell's repetitions back to back" in res.stdout
    assert "The baseline ran" not in res.stdout
