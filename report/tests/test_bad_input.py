"""Bad input: exactly one line on stderr, exit 2, no output (partial or not) left; every
subcommand refuses the same way (the loader refuses)."""

from __future__ import annotations

import copy

import pytest

from conftest import A, load, report, save, table


def _with_nan(run_type: str) -> dict:
    """quick-reps-a with rtt_p50_ns of pingpong/pipe/64's first row of ``run_type``
    (``iteration`` or ``aggregate``) set to NaN, which ``save`` writes as ``NaN``."""
    doc = load(A)
    row = next(b for b in doc["benchmarks"]
               if b["run_name"] == "pingpong/pipe/64/manual_time" and b["run_type"] == run_type)
    row["rtt_p50_ns"] = float("nan")
    return doc


def _other_tool() -> dict:
    """Another program's Google Benchmark JSON: its own context, a benchmark BM_Foo/8
    (what used to be reported as a transport named "8")."""
    row = {"name": "BM_Foo/8", "family_index": 0, "per_family_instance_index": 0,
           "run_name": "BM_Foo/8", "run_type": "iteration", "repetitions": 1,
           "repetition_index": 0, "threads": 1, "iterations": 1000, "real_time": 12.5,
           "cpu_time": 12.4, "time_unit": "ns", "bytes_per_second": 6.4e8}
    return {"context": {"date": "2026-12-01T10:00:00+00:00", "host_name": "ci",
                        "executable": "./foo_benchmark", "num_cpus": 2, "mhz_per_cpu": 2096,
                        "cpu_scaling_enabled": False, "caches": [],
                        "library_build_type": "release"},
            "benchmarks": [row, dict(row, name="BM_Foo/64", run_name="BM_Foo/64")]}


def _with_row(name: str) -> dict:
    """quick-reps-a (an ipcbench result) plus one repetition row named ``name``."""
    doc = load(A)
    row = copy.deepcopy(next(b for b in doc["benchmarks"] if b["run_type"] == "iteration"))
    row["name"] = row["run_name"] = name
    doc["benchmarks"].append(row)
    return doc


CASES = {
    "malformed": lambda p: p.write_text(A.read_text()[:5000]),
    "not-gbench": lambda p: p.write_text('{"foo": 1}'),
    "missing": lambda p: None,
    "empty-benchmarks": lambda p: save(dict(load(A), benchmarks=[]), p),
    "nan-in-repetition": lambda p: save(_with_nan("iteration"), p),
    "other-tool": lambda p: save(_other_tool(), p),
    "other-tool-with-version": lambda p: save(
        dict(_other_tool(), context=dict(_other_tool()["context"], ipcbench_version="0.1.0")),
        p),
    "foreign-benchmark": lambda p: save(_with_row("BM_Foo/8"), p),
    "unlisted-transport": lambda p: save(_with_row("pingpong/foo/64/manual_time"), p),
}
EXPECT = {"malformed": "is not valid JSON", "not-gbench": "not Google Benchmark JSON",
          "missing": "cannot read", "empty-benchmarks": "empty 'benchmarks' list",
          "nan-in-repetition": "'rtt_p50_ns' is not a finite number",
          "other-tool": "is not an ipcbench result: its context has no 'ipcbench_version', "
                        "which every ipcbench run writes",
          "other-tool-with-version": "is not an ipcbench result: benchmark 'BM_Foo/8' is not "
                                     "named <workload>/<transport>/<bytes>"
                                     "[/<key>:<value>…] or floor/<name>[/<bytes>]",
          "foreign-benchmark": "is not an ipcbench result: benchmark 'BM_Foo/8' is not named",
          "unlisted-transport": "is not an ipcbench result: benchmark "
                                "'pingpong/foo/64/manual_time' names transport 'foo', which "
                                "the context's 'ipcbench_transports' does not list"}


@pytest.fixture(params=sorted(CASES))
def bad(request, tmp_path):
    path = tmp_path / f"{request.param}.json"
    CASES[request.param](path)
    return request.param, path


def _one_line(res, expect):
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("report: "), res.stderr
    assert expect in lines[0]


def test_render_bad_input(bad, tmp_path):
    case, path = bad
    out = tmp_path / "out" / "report"
    res = report("render", A, path, "--out", out)
    _one_line(res, EXPECT[case])
    assert not out.exists() and not list((tmp_path / "out").glob("*"))
    assert res.stdout == ""
    res = report("render", path, "--out", out)          # alone, too
    _one_line(res, EXPECT[case])
    assert not out.exists() and not list((tmp_path / "out").glob("*"))


def test_compare_bad_input(bad):
    case, path = bad
    _one_line(report("compare", A, path), EXPECT[case])
    _one_line(report("compare", path, A), EXPECT[case])


def test_export_bad_input(bad, tmp_path):
    case, path = bad
    out = tmp_path / "export"
    _one_line(report("export", path, "--format", "bmf", "--out", out), EXPECT[case])
    assert not out.exists()


def test_nan_in_an_aggregate_row_is_accepted(tmp_path):
    """Older Google Benchmark output has NaN in its own cv rows; aggregates are skipped."""
    path = save(_with_nan("aggregate"), tmp_path / "nan-aggregate.json")
    assert "NaN" in path.read_text()
    res = report("compare", A, path)
    assert res.returncode == 0, res.stderr
    row = next(r for r in table(res.stdout)[1] if r[0] == "pingpong/pipe/64")
    assert row[4] == "+0.0 %" and row[7] == "3/3"          # the repetitions decide


def test_render_refuses_to_replace_a_foreign_directory(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    _one_line(report("render", A, "--out", out), "refusing to replace")
    assert (out / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]


def test_render_replaces_its_previous_output(tmp_path):
    out = tmp_path / "report"
    for _ in range(2):
        res = report("render", A, "--out", out)
        assert res.returncode == 0, res.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_render_relative_to_an_unmeasured_transport(tmp_path):
    """--relative-to must name a transport every input measured: else one line, exit 2,
    nothing written."""
    out = tmp_path / "out" / "report"
    res = report("render", A, "--relative-to", "no-such", "--out", out)
    _one_line(res, "--relative-to no-such: ")
    assert "measured no transport 'no-such' (it has pipe, fifo, uds," in res.stderr
    assert res.stdout == "" and not (tmp_path / "out").exists()
    errors = A.parent / "errors.json"                   # pipe and tcp only: no uds
    res = report("render", A, errors, "--relative-to", "uds", "--out", out)
    _one_line(res, f"{errors} measured no transport 'uds' (it has pipe, tcp)")
    assert not (tmp_path / "out").exists()
