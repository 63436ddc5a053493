"""``report.sh history add|list``, ``trend`` and ``compare --baseline-history``: a local
SQLite run history holding every repetition of every cell.

The history used by most tests (``hist``) records four runs: reps9-a and reps9-b (one
``add``, ``--branch main``), a copy of reps9-a DERIVED in a temporary directory (date one
day later, every repetition 2 % slower; ``--branch main``) and quick-reps-a, which ran on
another machine (same host name ``vm``, AMD EPYC instead of Intel Xeon; no branch).
Every refusal is one line on stderr, exit 2, and leaves the database's bytes as they
were."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import statistics
import struct

import pytest

from conftest import (A, LAYERS, PARTIAL_BASE, PARTIAL_CAND, R9A, R9B, assert_shown,
                      iterations, load, report, save, scaled, table)
from ipcbench_report.history import SCHEMA_VERSION

INTEL = "vm (Intel(R) Xeon(R) Processor, 2 CPUs)"
AMD = "vm (AMD EPYC, 2 CPUs)"
UDS64 = "pingpong/uds/64/manual_time"
# Google Benchmark's own fields of a repetition row; every other number is a counter.
GB_FIELDS = {"family_index", "per_family_instance_index", "repetitions", "repetition_index",
             "threads", "iterations", "real_time", "cpu_time"}


def _derived_later(tmp_path):
    """DERIVED from reps9-a: dated a day later, every repetition 2 % slower."""
    doc = scaled(load(R9A), 1.02)
    doc["context"]["date"] = "2026-12-03T04:22:52+00:00"
    return save(doc, tmp_path / "reps9-a-derived-later-2pct-slower.json")


@pytest.fixture(scope="module")
def hist(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hist")
    db = tmp / "history.sqlite"
    for args in ((R9A, R9B, "--branch", "main"),
                 (_derived_later(tmp), "--branch", "main"),
                 (A,)):
        res = report("history", "add", *args, "--db", db)
        assert res.returncode == 0, res.stderr
    return db


def _rows(db, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(res, expect: str):
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("report: "), res.stderr
    assert expect in lines[0], lines[0]
    assert res.stdout == ""


# --- add ----------------------------------------------------------------------------


def test_add_records_every_repetition(hist):
    doc = load(R9A)
    reps = [b for b in doc["benchmarks"] if b["run_type"] == "iteration"]
    assert len(reps) == 189                             # 21 cells x 9 repetitions
    (run_id,) = _rows(hist, "SELECT id FROM runs WHERE sha256 = ?", _sha(R9A))[0]
    assert _rows(hist, "SELECT count(*) FROM cells WHERE run_id = ?", run_id)[0][0] == 21
    assert _rows(hist, "SELECT count(*) FROM repetitions p JOIN cells c ON c.id = "
                 "p.cell_id WHERE c.run_id = ?", run_id)[0][0] == len(reps)
    # Every counter of every repetition, plus real_time_ns, cpu_time_ns and iterations.
    counters = sum(3 + sum(1 for k, v in b.items() if k not in GB_FIELDS
                           and isinstance(v, (int, float)) and not isinstance(v, bool))
                   for b in reps)
    assert _rows(hist, "SELECT count(*) FROM rep_values v JOIN repetitions p ON p.id = "
                 "v.repetition_id JOIN cells c ON c.id = p.cell_id WHERE c.run_id = ?",
                 run_id)[0][0] == counters

    def stored(cell: str, metric: str) -> list[float]:
        return sorted(v for (v,) in _rows(
            hist, "SELECT v.value FROM rep_values v JOIN repetitions p ON p.id = "
            "v.repetition_id JOIN cells c ON c.id = p.cell_id WHERE c.run_id = ? AND "
            "c.cell = ? AND v.metric = ?", run_id, cell, metric))

    rows = iterations(doc, UDS64)
    assert stored("pingpong/uds/64", "rtt_p50_ns") == sorted(b["rtt_p50_ns"] for b in rows)
    assert stored("pingpong/uds/64", "rtt_p999_ns") == sorted(
        b["rtt_p999_ns"] for b in rows)
    assert stored("pingpong/uds/64", "real_time_ns") == pytest.approx(
        sorted(b["real_time"] * 1e3 for b in rows))              # time_unit us -> ns
    thr = iterations(doc, "throughput/tcp/1048576/manual_time")
    assert stored("throughput/tcp/1048576", "bytes_per_second") == sorted(
        b["bytes_per_second"] for b in thr)


def test_add_records_the_run(hist):
    (run,) = _rows(hist, "SELECT r.file, r.run_time, r.git_commit, r.branch, "
                   "r.ipcbench_version, r.pin_mode, r.context, m.host_name, m.cpu_model, "
                   "m.num_cpus FROM runs r JOIN machines m ON m.id = r.machine_id WHERE "
                   "r.sha256 = ?", _sha(R9A))
    assert run[0] == str(R9A)
    assert run[1:6] == ("2026-12-02T04:22:52Z", "6b97fc91788e", "main", "0.1.0", "cross")
    assert json.loads(run[6]) == load(R9A)["context"]
    assert run[7:] == ("vm", "Intel(R) Xeon(R) Processor", "2")
    # Two machines: the Intel VM (three runs) and the AMD one named alike (one run).
    assert _rows(hist, "SELECT m.cpu_model, count(*) FROM runs r JOIN machines m ON "
                 "m.id = r.machine_id GROUP BY m.id ORDER BY m.id") == [
        ("Intel(R) Xeon(R) Processor", 3), ("AMD EPYC", 1)]
    assert _rows(hist, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_add_records_failed_repetitions(tmp_path):
    db = tmp_path / "h.sqlite"
    assert report("history", "add", PARTIAL_CAND, "--db", db).returncode == 0
    rows = [b for b in load(PARTIAL_CAND)["benchmarks"]
            if b["run_name"] == "pingpong/pipe/64/manual_time"
            and b["run_type"] != "aggregate"]
    failed = [b for b in rows if b.get("error_occurred")]
    assert (len(rows), len(failed)) == (9, 7)                     # premise
    got = _rows(db, "SELECT p.error, (SELECT count(*) FROM rep_values v WHERE "
                "v.repetition_id = p.id) FROM repetitions p JOIN cells c ON "
                "c.id = p.cell_id WHERE c.cell = 'pingpong/pipe/64'")
    assert len(got) == 9
    assert sorted(e for e, _ in got if e) == sorted(b["error_message"] for b in failed)
    assert all(n == 0 for e, n in got if e) and all(n > 3 for e, n in got if not e)


def test_figures_view(hist):
    rows = iterations(load(R9A), UDS64)
    got = _rows(hist, "SELECT p50_ns, p99_ns, p999_ns, cpu_client_ns_per_msg, "
                "bytes_per_second FROM figures f JOIN runs r ON r.id = f.run_id WHERE "
                "r.sha256 = ? AND f.cell = 'pingpong/uds/64' ORDER BY f.ordinal", _sha(R9A))
    assert got == [(b["rtt_p50_ns"], b["rtt_p99_ns"], b["rtt_p999_ns"],
                    b["cpu_client_ns_per_msg"], None) for b in rows]


def test_commit_option(tmp_path):
    db = tmp_path / "h.sqlite"
    res = report("history", "add", R9A, "--commit", "6b97fc91", "--db", db)
    assert res.returncode == 0, res.stderr
    full = "6b97fc91788e" + "0" * 28                  # agrees with the context's 12 digits
    doc = load(R9A)
    doc["context"]["date"] = "2026-12-04T00:00:00+00:00"
    res = report("history", "add", save(doc, tmp_path / "r9a-derived-date.json"),
                 "--commit", full, "--db", db)
    assert res.returncode == 0, res.stderr
    doc["context"].update(date="2026-12-05T00:00:00+00:00", ipcbench_git_commit="unknown")
    res = report("history", "add", save(doc, tmp_path / "r9a-derived-unknown.json"),
                 "--commit", "abc123", "--branch", "feature", "--db", db)
    assert res.returncode == 0, res.stderr
    assert _rows(db, "SELECT git_commit, branch FROM runs ORDER BY id") == [
        ("6b97fc91788e", None), (full, None), ("abc123", "feature")]
    before = _sha(db)
    doc["context"].update(date="2026-12-06T00:00:00+00:00",
                          ipcbench_git_commit="6b97fc91788e-dirty")
    _one_line(report("history", "add", save(doc, tmp_path / "r9a-derived-dirty.json"),
                     "--commit", "deadbeef", "--db", db),
              "--commit deadbeef contradicts the run's ipcbench_git_commit "
              "6b97fc91788e-dirty")
    assert _sha(db) == before


# --- list ---------------------------------------------------------------------------


def test_list(hist):
    res = report("history", "list", "--db", hist)
    assert res.returncode == 0, res.stderr
    lines = [line.split("\t") for line in res.stdout.splitlines()]
    assert lines[0] == ["id", "time", "machine", "commit", "branch", "cells"]
    assert lines[1:] == [       # oldest first: quick-reps-a ran on 23 November
        ["4", "2026-11-23T14:12:39Z", AMD, "476f582e92e7-dirty", "—", "95"],
        ["1", "2026-12-02T04:22:52Z", INTEL, "6b97fc91788e", "main", "21"],
        ["2", "2026-12-02T04:23:13Z", INTEL, "6b97fc91788e", "main", "21"],
        ["3", "2026-12-03T04:22:52Z", INTEL, "6b97fc91788e", "main", "21"]]


# --- trend --------------------------------------------------------------------------


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_trend(hist, tmp_path):
    out = tmp_path / "uds64.png"
    res = report("trend", "--transport", "uds", "--size", "64", "--out", out, "--db", hist)
    assert res.returncode == 0, res.stderr
    assert out.stat().st_size > 10_000
    width, height = _png_size(out)
    assert width > 400 and height > 300
    header, rows = table(res.stdout)
    assert header == ["run", "time", "machine", "commit", "branch", "reps", "median", "min",
                      "max"]
    assert [r[0] for r in rows] == ["#4", "#1", "#2", "#3"]
    assert [r[2] for r in rows] == [AMD, INTEL, INTEL, INTEL]
    assert [r[5] for r in rows] == ["3/3", "9/9", "9/9", "9/9"]
    for row, path in zip(rows, (A, R9A, R9B)):
        values = [b["rtt_p50_ns"] / 1e3 for b in iterations(load(path), UDS64)]
        assert row[6].endswith(" µs")
        assert_shown(row[6], statistics.median(values))
        assert_shown(row[7], min(values))
        assert_shown(row[8], max(values))
    assert_shown(rows[3][6], statistics.median(
        b["rtt_p50_ns"] * 1.02 / 1e3 for b in iterations(load(R9A), UDS64)))


def test_trend_metric_and_machine(hist, tmp_path):
    out = tmp_path / "p99.png"
    res = report("trend", "--transport", "tcp", "--size", "1048576", "--workload",
                 "throughput", "--metric", "bytes_per_second", "--machine", INTEL,
                 "--out", out, "--db", hist)
    assert res.returncode == 0, res.stderr
    rows = table(res.stdout)[1]
    assert [r[0] for r in rows] == ["#1", "#2", "#3"]
    values = [b["bytes_per_second"] / 1e9
              for b in iterations(load(R9B), "throughput/tcp/1048576/manual_time")]
    assert rows[1][6].endswith(" GB/s")
    assert_shown(rows[1][6], statistics.median(values))
    res = report("trend", "--transport", "uds", "--size", "64", "--metric", "p99",
                 "--machine", "vm", "--out", out, "--db", hist)
    assert res.returncode == 0, res.stderr
    rows = table(res.stdout)[1]
    assert len(rows) == 4                       # the host name names both machines
    assert "rtt_p99_ns" in res.stdout.splitlines()[0]
    assert_shown(rows[0][6], statistics.median(
        b["rtt_p99_ns"] / 1e3 for b in iterations(load(A), UDS64)))


def test_trend_with_a_run_that_failed_in_every_repetition(tmp_path):
    """DERIVED: partial-fail-base a week later with every pingpong/pipe/64 repetition
    failed. The newest run has no counter, so the metric comes from the newest run where
    the cell ran; the failed run is a row with no figures."""
    doc = load(PARTIAL_BASE)
    doc["context"]["date"] = "2026-12-09T00:00:00+00:00"
    for b in iterations(doc, "pingpong/pipe/64/manual_time"):
        b.update(error_occurred=True, error_message="watchdog")
    failed = save(doc, tmp_path / "partial-fail-base-derived-all-failed.json")
    db, out = tmp_path / "h.sqlite", tmp_path / "pipe64.png"
    assert report("history", "add", PARTIAL_BASE, failed, "--db", db).returncode == 0
    res = report("trend", "--transport", "pipe", "--size", "64", "--out", out, "--db", db)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("pingpong/pipe/64, rtt_p50_ns: ")
    rows = table(res.stdout)[1]
    assert [r[5:] for r in rows][1] == ["0/9", "—", "—", "—"]
    assert_shown(rows[0][6], statistics.median(
        b["rtt_p50_ns"] / 1e3 for b in iterations(load(PARTIAL_BASE),
                                                  "pingpong/pipe/64/manual_time")))
    assert _png_size(out)[0] > 400


@pytest.mark.parametrize("args, expect", [
    (("--transport", "uds", "--size", "99"), "no recorded run in"),
    (("--transport", "uds", "--size", "64", "--machine", "other"),
     "has no run of a machine named 'other'"),
    (("--transport", "uds", "--size", "64", "--metric", "nosuch"),
     "no recorded repetition of pingpong/uds/64 has nosuch (it has: "),
])
def test_trend_refuses(hist, tmp_path, args, expect):
    out = tmp_path / "t.png"
    _one_line(report("trend", *args, "--out", out, "--db", hist), expect)
    assert not out.exists() and list(tmp_path.iterdir()) == []


# --- compare --baseline-history -------------------------------------------------------


def _cells(stdout: str) -> dict[str, list[str]]:
    """Rows of the transport cells' table (the machine floors' table follows it)."""
    return {r[0]: r for r in table(stdout.split("\n## Machine floors\n")[0])[1]}


def test_compare_against_history_passes_for_the_same_build(hist):
    """reps9-b against the runs of its branch and machine: #2 is reps9-b itself (left
    out), so the baseline pools #3 (derived) and #1 (reps9-a): 18 repetitions a cell."""
    res = report("compare", "--baseline-history", "--branch", "main", "--db", hist, R9B)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "**0 regression(s)**" in res.stdout
    assert "pooled per cell (newest first): #3 2026-12-03T04:22:52Z" in res.stdout
    assert "; #1 2026-12-02T04:22:52Z commit 6b97fc91788e branch main." in res.stdout
    assert "Left out of the baseline: run(s) #2, recorded from the candidate's own file." \
        in res.stdout
    rows = _cells(res.stdout)
    assert len(rows) == 16 and all(r[7] == "18/9" for r in rows.values())
    res = report("compare", "--baseline-history", "--last", "1", "--db", hist, R9B)
    assert res.returncode == 0, res.stdout + res.stderr
    assert all(r[7] == "9/9" for r in _cells(res.stdout).values())


def test_compare_against_history_fails_for_a_slower_candidate(hist, tmp_path):
    """DERIVED: reps9-b with pingpong/uds/64's latencies 1.5 times as long."""
    cand = save(scaled(load(R9B), 1.5, {UDS64}),
                tmp_path / "reps9-b-derived-uds-slower.json")
    res = report("compare", "--baseline-history", "--branch", "main", "--db", hist, cand)
    assert res.returncode == 1, res.stdout + res.stderr
    rows = _cells(res.stdout)
    assert [c for c, r in rows.items() if "REGRESSION" in r[8]] == ["pingpong/uds/64"]
    assert rows["pingpong/uds/64"][7] == "27/9"       # #3, #2 and #1 pooled
    assert float(rows["pingpong/uds/64"][6]) < 0.05


@pytest.mark.parametrize("extra, expect", [
    (("--branch", "nosuch"), f"has no recorded run of {INTEL} on branch nosuch: nothing "
                             "to compare against"),
    (("--machine", "vm"), "--machine 'vm' names 2 machines"),
    (("--machine", "other"), "has no run of a machine named 'other'"),
])
def test_compare_against_history_without_a_match(hist, extra, expect):
    _one_line(report("compare", "--baseline-history", *extra, "--db", hist, R9B), expect)


def test_compare_against_history_of_another_machine(hist, tmp_path):
    doc = load(R9B)
    doc["context"]["host_name"] = "ci-runner"
    cand = save(doc, tmp_path / "reps9-b-derived-other-host.json")
    _one_line(report("compare", "--baseline-history", "--db", hist, cand),
              "has no recorded run of the candidate's machine, ci-runner (Intel(R) Xeon(R) "
              "Processor, 2 CPUs): nothing to compare against")
    res = report("compare", "--baseline-history", "--machine", INTEL, "--db", hist, cand)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "host_name differs (baseline vm, candidate ci-runner)" in res.stdout


def test_compare_against_only_itself(tmp_path):
    db = tmp_path / "h.sqlite"
    assert report("history", "add", R9A, "--db", db).returncode == 0
    _one_line(report("compare", "--baseline-history", "--db", db, R9A),
              "other than the candidate itself (run #1)")


@pytest.mark.parametrize("args, expect", [
    (("--last", "2", R9A, R9B), "--last: only with --baseline-history"),
    (("--baseline-history", R9A, R9B),
     "give BASELINE.json or --baseline-history, not both"),
    ((R9A,), "compare needs BASELINE.json and CANDIDATE.json"),
])
def test_compare_options_misused(args, expect):
    _one_line(report("compare", *args), expect)


# --- bad input: exit 2, one line, the database as it was -------------------------------


def _corrupt(db):
    """Damage every page after the second (the tables' contents)."""
    data = bytearray(db.read_bytes())
    for i in range(8192, len(data), 7):
        data[i] = 0x5A
    db.write_bytes(data)


def _foreign(db):
    db.unlink()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO notes (text) VALUES ('keep me')")
    conn.close()


def _newer(db):
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()


DB_CASES = {
    "not-sqlite": (lambda db: db.write_text(A.read_text()[:3000]),
                   "is not a SQLite database"),
    "corrupt": (_corrupt, "damaged run history"),
    "foreign": (_foreign, "is a SQLite database of another program (tables: notes)"),
    "newer": (_newer, f"has history schema version {SCHEMA_VERSION + 1}, newer than this "
                      f"report knows ({SCHEMA_VERSION})"),
}


@pytest.fixture(params=sorted(DB_CASES))
def bad_db(request, hist, tmp_path):
    db = tmp_path / "history.sqlite"
    shutil.copy(hist, db)
    make, expect = DB_CASES[request.param]
    make(db)
    return request.param, db, expect


def test_add_refuses_a_bad_database(bad_db):
    case, db, expect = bad_db
    before = _sha(db)
    _one_line(report("history", "add", LAYERS, "--db", db), expect)
    assert _sha(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["history.sqlite"]


def test_reading_refuses_a_bad_database(bad_db, tmp_path):
    case, db, expect = bad_db
    before = _sha(db)
    out = tmp_path / "t.png"
    for args in (("history", "list"),
                 ("trend", "--transport", "uds", "--size", "64", "--out", out),
                 ("compare", "--baseline-history", R9B)):
        _one_line(report(*args, "--db", db), expect)
    assert _sha(db) == before and not out.exists()


def _other_tool(path):
    save({"context": {"date": "2026-12-01T10:00:00+00:00", "host_name": "ci"},
          "benchmarks": [{"name": "BM_Foo/8", "run_name": "BM_Foo/8",
                          "run_type": "iteration", "iterations": 1, "real_time": 1.0,
                          "cpu_time": 1.0, "time_unit": "ns"}]}, path)


@pytest.mark.parametrize("case, expect", [
    ("duplicate", "is already recorded as run #1 ("),
    ("duplicate-in-one-add", "are the same results file"),
    ("good-then-duplicate", "is already recorded as run #1 ("),
    ("not-ipcbench", "is not an ipcbench result: its context has no 'ipcbench_version'"),
    ("not-json", "is not valid JSON"),
    ("good-then-bad", "is not an ipcbench result"),
])
def test_add_refuses_bad_results(hist, tmp_path, case, expect):
    db = tmp_path / "history.sqlite"
    shutil.copy(hist, db)
    before, runs = _sha(db), _rows(db, "SELECT count(*) FROM runs")
    bad = tmp_path / "bad.json"
    _other_tool(bad)
    if case == "not-json":
        bad.write_text(R9A.read_text()[:4000])
    files = {"duplicate": [R9A], "duplicate-in-one-add": [LAYERS, LAYERS],
             "not-ipcbench": [bad], "not-json": [bad],
             "good-then-bad": [LAYERS, bad],
             # LAYERS is written in the transaction, then rolled back
             "good-then-duplicate": [LAYERS, R9A]}[case]
    _one_line(report("history", "add", *files, "--db", db), expect)
    assert _sha(db) == before and _rows(db, "SELECT count(*) FROM runs") == runs


def test_a_failed_add_creates_nothing(tmp_path):
    bad = tmp_path / "bad.json"
    _other_tool(bad)
    db = tmp_path / "results" / "history.sqlite"
    _one_line(report("history", "add", bad, "--db", db), "is not an ipcbench result")
    _one_line(report("history", "add", LAYERS, LAYERS, "--db", db),
              "are the same results file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_a_failed_add_into_a_new_database_leaves_nothing(tmp_path):
    """The failure comes inside the transaction, after this call created the schema (the
    run contradicts --commit): the new file and its new directory are removed again."""
    db = tmp_path / "results" / "history.sqlite"
    _one_line(report("history", "add", R9A, "--commit", "deadbeef", "--db", db),
              "--commit deadbeef contradicts the run's ipcbench_git_commit")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_add_keeps_what_another_add_committed(tmp_path, monkeypatch):
    """Two ``history add`` race to create one database. When this call looks, there is
    no file; before it takes the write lock another ``add`` creates the database and
    commits R9A; this call then fails (R9A is recorded already). The other call's run
    must survive.

    Made deterministic in one process: ``sqlite3.connect`` is wrapped so that, at this
    call's connect (after its look at the file, before its lock), a complete ``add`` of
    R9A runs first. The old code decided "I created the file" from that look and
    unlinked the database on failure, losing run #1; now only a call that created the
    schema under the lock, on a file that still holds nothing, removes it."""
    from ipcbench_report import ReportError, history

    db = tmp_path / "results" / "history.sqlite"
    real_connect = sqlite3.connect

    def connect(*args, **kwargs):
        monkeypatch.setattr(sqlite3, "connect", real_connect)     # only once
        history.add(db, [R9A])                         # the other process's add
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    with pytest.raises(ReportError, match="is already recorded as run #1"):
        history.add(db, [R9A])
    assert [r.sha256 for r in history.runs(db)] == [_sha(R9A)]


def test_a_failed_add_that_created_the_schema_keeps_what_came_after(tmp_path,
                                                                   monkeypatch):
    """This call creates the schema and then fails (the run contradicts --commit); after
    its rollback, before it removes the file, another ``add`` creates the schema and
    commits R9B. The check for emptiness, under the lock, sees that run and keeps the
    file (simulated: the other add runs just before the removal)."""
    from ipcbench_report import ReportError, history

    db = tmp_path / "history.sqlite"
    real_remove = history._remove_if_empty

    def remove(path):
        history.add(db, [R9B])                         # the other process's add
        real_remove(path)

    monkeypatch.setattr(history, "_remove_if_empty", remove)
    with pytest.raises(ReportError, match="--commit deadbeef contradicts"):
        history.add(db, [R9A], commit="deadbeef")
    assert [r.sha256 for r in history.runs(db)] == [_sha(R9B)]


def test_an_add_whose_database_was_removed_while_it_waited_refuses(tmp_path,
                                                                    monkeypatch):
    """This call opens the new file; before it takes the write lock, a failed ``add``
    that had created the file removes it, and a third ``add`` creates a new, still empty
    file at the path (simulated: right after this call's connect the file is unlinked
    and an empty one made). SQLite lets this call write to the unlinked file, so its
    commit reaches nothing at the path: it says so instead of reporting success, and
    running it again records the file. (With no file at the path SQLite itself refuses
    the write: a disk I/O error, as it cannot create the journal; nothing is recorded
    either way.)"""
    from ipcbench_report import ReportError, history

    db = tmp_path / "history.sqlite"
    real_connect = sqlite3.connect

    def connect(*args, **kwargs):
        monkeypatch.setattr(sqlite3, "connect", real_connect)     # only once
        conn = real_connect(*args, **kwargs)
        conn.execute("PRAGMA schema_version").fetchone()          # the file is open
        db.unlink()
        db.touch()
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    with pytest.raises(ReportError, match="was removed while this 'history add' waited"):
        history.add(db, [R9A])
    assert db.stat().st_size == 0
    res = report("history", "add", R9A, "--db", db)                # run it again
    assert res.returncode == 0, res.stderr
    assert _rows(db, "SELECT sha256 FROM runs") == [(_sha(R9A),)]


def test_reading_a_missing_database_creates_nothing(tmp_path):
    db = tmp_path / "history.sqlite"
    _one_line(report("history", "list", "--db", db), "does not exist: no run is recorded")
    _one_line(report("compare", "--baseline-history", "--db", db, R9A), "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_default_database_is_under_results(tmp_path):
    res = report("history", "add", LAYERS, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "results" / "history.sqlite").is_file()
    res = report("history", "list", cwd=tmp_path)
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 2
