"""Google Benchmark JSON -> ``model.Run``.

Contract: ``load_runs(paths)`` returns one ``Run`` per path, labelled uniquely, or raises
``ReportError`` with a one-line reason (unreadable file, not JSON, not Google Benchmark
output, not an ipcbench result, no benchmarks, a non-finite value in a repetition row).
Aggregate rows (``run_type: aggregate``) are skipped: medians and CVs come from the
repetition rows.

What makes Google Benchmark output an ipcbench result (``_check_ipcbench``): the context
key ``ipcbench_version``, which the runner always writes (bench/main.cpp), and every
benchmark named as the runner names its cells, ``<workload>/<transport>/<bytes>``
(followed by ipcbench's ``key:value`` parameters for the many-clients and fan-out
workloads: ``clients/uds/64/clients:4/server:event-loop``,
``fanout/uds/64/subscribers:8``) or ``floor/<name>[/<bytes>]`` (a name may hold dashes:
``floor/encoding-framing/64``; Google Benchmark's ``/manual_time``-style suffixes and its
own ``key:value`` segments such as ``/iterations:1`` aside),
each transport listed in the context's ``ipcbench_transports`` when the file has that key.
Another tool's output (``BM_Foo/8``) is refused rather than read as a transport "8".
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from ipcbench_report import ReportError
from ipcbench_report.model import HOST_CHANGED_TOKEN, Cell, Run, cell_id

_TIME_UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# Fields of a benchmark row that are Google Benchmark's own, not user counters.
_GB_FIELDS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type",
    "repetitions", "repetition_index", "threads", "iterations", "real_time", "cpu_time",
    "time_unit", "label", "error_occurred", "error_message", "aggregate_name",
    "aggregate_unit", "big_o", "rms", "complexity_n",
}


def _read_json(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ReportError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path} is not UTF-8 text") from None
    try:
        # NaN is accepted here: older results have it in Google Benchmark's own "cv"
        # aggregate rows (stddev / mean of a counter whose mean is 0; ipcbench now
        # writes 0 there); those rows are skipped, repetition rows are checked.
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportError(f"{path} is not valid JSON ({e.msg} at line {e.lineno} "
                          f"column {e.colno})") from None


def _number(row: dict, key: str, where: str) -> float:
    value = row.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ReportError(f"{where}: '{key}' is not a finite number")
    return float(value)


def _repetition(row: dict, where: str) -> dict[str, float]:
    """Counters of one successful repetition, times converted to ns."""
    unit = row.get("time_unit", "ns")
    if unit not in _TIME_UNIT_NS:
        raise ReportError(f"{where}: unknown time_unit '{unit}'")
    rep = {
        "real_time_ns": _number(row, "real_time", where) * _TIME_UNIT_NS[unit],
        "cpu_time_ns": _number(row, "cpu_time", where) * _TIME_UNIT_NS[unit],
        "iterations": _number(row, "iterations", where),
    }
    for key, value in row.items():
        if key not in _GB_FIELDS and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            rep[key] = _number(row, key, where)
    return rep


def _cell_label(row: dict) -> str:
    """The row's label without the token ``host-changed``, which marks that repetition
    alone (its counter ``host_changed`` says the same), not the cell."""
    return " ".join(t for t in str(row.get("label", "")).split() if t != HOST_CHANGED_TOKEN)


def _run_name(row: dict) -> str:
    """The benchmark's name without Google Benchmark's aggregate suffix."""
    run_name = row.get("run_name")
    return run_name if isinstance(run_name, str) and run_name else row["name"]


# A cell as the runner names it (after ``cell_id``): a matrix cell or a machine floor.
_MATRIX_CELL = re.compile(r"[a-z][a-z0-9_]*/[a-z0-9][a-z0-9_.+-]*/[0-9]+"
                          r"(/[a-z][a-z0-9_]*:[a-z0-9][a-z0-9_.+-]*)*")
_FLOOR_CELL = re.compile(r"floor/[a-z0-9_]+(-[a-z0-9_]+)*(/[0-9]+)?")  # encoding-<name>
_CELL_FORMS = ("<workload>/<transport>/<bytes>[/<key>:<value>…] or "
               "floor/<name>[/<bytes>]")


def _check_ipcbench(path: Path, context: dict, rows: list) -> list[dict]:
    """The context's transport descriptions (``ipcbench_transports``), or ``ReportError``
    when the file is not an ipcbench result (see the module contract)."""
    def refuse(why: str):
        raise ReportError(f"{path} is not an ipcbench result: {why}")

    version = context.get("ipcbench_version")
    if not isinstance(version, str) or not version:
        refuse("its context has no 'ipcbench_version', which every ipcbench run writes")
    info = _transports_info(path, context)
    listed = {str(t.get("name")) for t in info}
    for row in rows:
        if not isinstance(row, dict) or row.get("run_type") == "aggregate" \
                or not isinstance(row.get("name"), str):
            continue                     # aggregates are skipped; bad rows named later
        cid = cell_id(_run_name(row))
        if cid.startswith("floor/"):
            if not _FLOOR_CELL.fullmatch(cid):
                refuse(f"benchmark '{row['name']}' is not named {_CELL_FORMS}")
        elif not _MATRIX_CELL.fullmatch(cid):
            refuse(f"benchmark '{row['name']}' is not named {_CELL_FORMS}")
        elif info and cid.split("/")[1] not in listed:
            refuse(f"benchmark '{row['name']}' names transport '{cid.split('/')[1]}', "
                   "which the context's 'ipcbench_transports' does not list")
    return info


def _transports_info(path: Path, context: dict) -> list[dict]:
    raw = context.get("ipcbench_transports")
    if raw is None:
        return []
    try:
        info = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        info = None
    if not isinstance(info, list) or not all(isinstance(t, dict) for t in info):
        raise ReportError(f"{path}: context 'ipcbench_transports' is not a JSON array "
                          "of objects")
    return info


def load_run(path: Path) -> Run:
    """Parse one Google Benchmark JSON file (see the module contract)."""
    doc = _read_json(path)
    if not (isinstance(doc, dict) and isinstance(doc.get("context"), dict)
            and isinstance(doc.get("benchmarks"), list)):
        raise ReportError(f"{path} is not Google Benchmark JSON output (expected an "
                          "object with 'context' and a 'benchmarks' list)")
    info = _check_ipcbench(path, doc["context"], doc["benchmarks"])
    if not doc["benchmarks"]:
        raise ReportError(f"{path} has an empty 'benchmarks' list: no cell was run")
    cells: dict[str, Cell] = {}
    for i, row in enumerate(doc["benchmarks"]):
        where = f"{path}: benchmark #{i}"
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise ReportError(f"{where} is not an object with a 'name'")
        if row.get("run_type") == "aggregate":
            continue
        name = _run_name(row)
        cell = cells.setdefault(cell_id(name), Cell(id=cell_id(name), name=name))
        cell.label = cell.label or _cell_label(row)
        if row.get("error_occurred"):
            cell.errors.append(str(row.get("error_message") or "error (no message)"))
        else:
            cell.reps.append(_repetition(row, f"{where} ({name})"))
    if not cells:
        raise ReportError(f"{path} has only aggregate rows; rerun without "
                          "--benchmark_report_aggregates_only")
    return Run(path=path, context=doc["context"], cells=cells, transports_info=info)


def _unique(labels: list[str]) -> bool:
    return len(set(labels)) == len(labels)


def assign_labels(runs: list[Run]) -> None:
    """Label each run by host; by host + date when hosts collide; by file name when
    those collide too. When the inputs differ in CPU placement, append ``pin=<mode>``
    so no figure is read across placements unawares."""
    labels = [r.ctx("host_name") for r in runs]
    if not _unique(labels):
        labels = [f"{r.ctx('host_name')} {r.ctx('date')}" for r in runs]
    if not _unique(labels):
        labels = [r.path.name for r in runs]
    if not _unique(labels):
        labels = [f"{label} #{i + 1}" for i, label in enumerate(labels)]
    if len({r.pin_mode for r in runs}) > 1:
        labels = [f"{label} pin={r.pin_mode}" for label, r in zip(labels, runs)]
    for run, label in zip(runs, labels):
        run.label = label


def load_runs(paths: list[Path]) -> list[Run]:
    """Load every path (``ReportError`` on the first bad one) and label the runs."""
    runs = [load_run(Path(p)) for p in paths]
    assign_labels(runs)
    return runs
