"""Run history: a local SQLite database (Python's ``sqlite3``, no server) of recorded
runs, with every repetition of every cell, not only medians.

Contract: ``add(db, paths, commit, branch)`` records each results file as one run, all
files in one transaction (a failure leaves the database as it was); ``runs(db)`` lists
them; ``trend(db, cell, metric, machine)`` gives one point per run of a cell;
``baseline(db, candidate, …)`` pools the repetitions of the last recorded runs into one
``Run`` for ``compare``. Every refusal is a ``ReportError`` with a one-line reason: a
file that is not SQLite or is damaged, a SQLite database of another program, a schema
newer than ``SCHEMA_VERSION``, a results file recorded before (same SHA-256 of its
bytes), a results file the loader refuses, no recorded run matching a query.

Schema (version 1, in ``PRAGMA user_version``; ``PRAGMA application_id`` marks the file
as ours): ``machines`` (host name, CPU model, CPU count: a machine's identity), ``runs``
(the file's SHA-256, path as given, time added, the run's time from its context, machine,
commit, branch, ipcbench version, pin mode, the whole context as JSON), ``cells`` (one per
cell of a run: id, Google Benchmark name, label, workload, transport, size),
``repetitions`` (one per repetition of a cell, with the error message of a failed one)
and ``rep_values`` (every counter of a successful repetition, times in ns, as the
loader reads it). The view ``figures`` puts a repetition's main figures side by side.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import sqlite3
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ipcbench_report import ReportError
from ipcbench_report.load import load_run
from ipcbench_report.model import Cell, Run

SCHEMA_VERSION = 1
APPLICATION_ID = 0x69706362          # "ipcb": this file is an ipcbench run history
DEFAULT_DB = Path("results/history.sqlite")
_SQLITE_MAGIC = b"SQLite format 3\0"
_TABLES = ("machines", "runs", "cells", "repetitions", "rep_values")

_SCHEMA = """
CREATE TABLE machines (
  id INTEGER PRIMARY KEY,
  host_name TEXT NOT NULL,
  cpu_model TEXT NOT NULL,
  num_cpus TEXT NOT NULL,
  UNIQUE (host_name, cpu_model, num_cpus)
);
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  sha256 TEXT NOT NULL UNIQUE,          -- of the results file's bytes
  file TEXT NOT NULL,                   -- as given to 'history add'
  added TEXT NOT NULL,                  -- UTC, when it was added
  run_time TEXT NOT NULL,               -- the context's date, in UTC when it has a zone
  machine_id INTEGER NOT NULL REFERENCES machines (id),
  git_commit TEXT,                      -- --commit, else ipcbench_git_commit
  branch TEXT,                          -- --branch
  ipcbench_version TEXT NOT NULL,
  pin_mode TEXT NOT NULL,
  context TEXT NOT NULL                 -- the whole context object, JSON
);
CREATE INDEX runs_by_machine ON runs (machine_id, run_time);
CREATE TABLE cells (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs (id),
  cell TEXT NOT NULL,                   -- pingpong/uds/64, clients/uds/64/clients:4/...
  name TEXT NOT NULL,                   -- Google Benchmark's name
  label TEXT NOT NULL,
  workload TEXT NOT NULL,               -- or 'floor'
  transport TEXT NOT NULL,              -- '' for a floor
  size INTEGER,
  UNIQUE (run_id, cell)
);
CREATE INDEX cells_by_cell ON cells (cell);
CREATE TABLE repetitions (
  id INTEGER PRIMARY KEY,
  cell_id INTEGER NOT NULL REFERENCES cells (id),
  ordinal INTEGER NOT NULL,             -- successful ones in file order, then failed ones
  error TEXT,                           -- NULL when the repetition succeeded
  UNIQUE (cell_id, ordinal)
);
CREATE TABLE rep_values (
  repetition_id INTEGER NOT NULL REFERENCES repetitions (id),
  metric TEXT NOT NULL,                 -- rtt_p50_ns, bytes_per_second, real_time_ns, ...
  value REAL NOT NULL,
  PRIMARY KEY (repetition_id, metric)
) WITHOUT ROWID;
CREATE VIEW figures AS
SELECT c.run_id, c.cell, c.workload, c.transport, c.size, p.ordinal, p.error,
  (SELECT value FROM rep_values v WHERE v.repetition_id = p.id AND v.metric =
     CASE c.workload WHEN 'rate' THEN 'lat_p50_ns' WHEN 'fanout' THEN 'oneway_p50_ns'
                     ELSE 'rtt_p50_ns' END) AS p50_ns,
  (SELECT value FROM rep_values v WHERE v.repetition_id = p.id AND v.metric =
     CASE c.workload WHEN 'rate' THEN 'lat_p99_ns' WHEN 'fanout' THEN 'oneway_p99_ns'
                     ELSE 'rtt_p99_ns' END) AS p99_ns,
  (SELECT value FROM rep_values v WHERE v.repetition_id = p.id AND v.metric =
     CASE c.workload WHEN 'rate' THEN 'lat_p999_ns' WHEN 'fanout' THEN 'oneway_p999_ns'
                     ELSE 'rtt_p999_ns' END) AS p999_ns,
  (SELECT value FROM rep_values v WHERE v.repetition_id = p.id
     AND v.metric = 'bytes_per_second') AS bytes_per_second,
  (SELECT value FROM rep_values v WHERE v.repetition_id = p.id
     AND v.metric = 'items_per_second') AS items_per_second,
  (SELECT value FROM rep_values v WHERE v.repetition_id = p.id
     AND v.metric = 'cpu_client_ns_per_msg') AS cpu_client_ns_per_msg,
  (SELECT value FROM rep_values v WHERE v.repetition_id = p.id
     AND v.metric = 'cpu_peer_ns_per_msg') AS cpu_peer_ns_per_msg
FROM repetitions p JOIN cells c ON c.id = p.cell_id;
"""

# Short metric names of ``trend`` (and the view's columns): the latency percentile of
# the cell's workload, corrected latency for rate cells, one way for fan-out cells.
_PERCENTILES = {"p50": "p50", "p99": "p99", "p99.9": "p999"}
_LATENCY_PREFIX = {"rate": "lat_", "fanout": "oneway_"}


def metric_counter(metric: str, workload: str) -> str:
    """``p50``/``p99``/``p99.9`` -> the counter that holds it for ``workload``
    (``rtt_p50_ns``; ``lat_p50_ns`` for rate cells; ``oneway_p50_ns`` for fan-out);
    any other name is a counter already."""
    if metric in _PERCENTILES:
        return f"{_LATENCY_PREFIX.get(workload, 'rtt_')}{_PERCENTILES[metric]}_ns"
    return metric


# --- opening -------------------------------------------------------------------------


def _refuse_file(path: Path) -> None:
    """``ReportError`` unless ``path`` is absent, empty, or starts as a SQLite file."""
    if path.is_dir():
        raise ReportError(f"{path} is a directory, not a history database")
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as e:
        raise ReportError(f"cannot read {path}: {e.strerror or e}") from None
    if head and head != _SQLITE_MAGIC:
        raise ReportError(f"{path} is not a SQLite database, so not a run history")


def _check(conn: sqlite3.Connection, path: Path) -> bool:
    """True when the database is ours at a known schema, False when it is empty (no
    table, no marks); ``ReportError`` otherwise."""
    app = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    if app != APPLICATION_ID:
        if app == 0 and version == 0 and not tables:
            return False
        raise ReportError(f"{path} is a SQLite database of another program (tables: "
                          f"{', '.join(tables[:5]) or 'none'}), not an ipcbench run "
                          "history")
    if version > SCHEMA_VERSION:
        raise ReportError(f"{path} has history schema version {version}, newer than this "
                          f"report knows ({SCHEMA_VERSION}): use a newer ipcbench report")
    missing = [t for t in _TABLES if t not in tables]
    if version < 1 or missing:
        raise ReportError(f"{path} is a damaged run history (schema version {version}"
                          + (f", tables missing: {', '.join(missing)}" if missing else "")
                          + ")")
    return True


@contextlib.contextmanager
def _database_errors(path: Path):
    """sqlite3's errors (a damaged or locked file) as one-line ``ReportError``s."""
    try:
        yield
    except sqlite3.Error as e:
        raise ReportError(f"{path} is not a usable run history: {e}") from None


@contextlib.contextmanager
def _read(path: Path):
    """A read-only connection to an existing history."""
    path = Path(path)
    _refuse_file(path)
    if not path.exists():
        raise ReportError(f"{path} does not exist: no run is recorded there "
                          "('history add' creates it)")
    with _database_errors(path):
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True,
                               isolation_level=None, timeout=30)
        try:
            if not _check(conn, path):
                raise ReportError(f"{path} is an empty SQLite database: no run is recorded "
                                  "there")
            _refuse_damaged(conn, path)    # damaged pages could read as "no such run"
            yield conn
        finally:
            conn.close()


# --- recording -----------------------------------------------------------------------


def identity(run: Run) -> tuple[str, str, str]:
    """A machine's identity: host name, CPU model, number of CPUs (``—`` when absent).
    Two VMs named alike on different CPUs are different machines."""
    return run.ctx("host_name"), run.ctx("cpu_model"), run.ctx("num_cpus")


def machine_label(host: str, cpu: str, cpus: str) -> str:
    return f"{host} ({cpu}, {cpus} CPUs)"


def _utc(date: str) -> str:
    """The context's date in UTC (``2026-12-02T04:22:52Z``) when it names its zone; as
    written otherwise."""
    try:
        when = datetime.datetime.fromisoformat(date)
    except ValueError:
        return date
    if when.tzinfo is None:
        return date
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _commit(path: Path, run: Run, given: str | None) -> str | None:
    """``given`` (``--commit``), else the context's ``ipcbench_git_commit`` (``None``
    when it is absent or ``unknown``). A ``given`` that contradicts the context is
    refused; of two that agree the longer is kept, with the context's ``-dirty`` mark."""
    ctx = run.context.get("ipcbench_git_commit")
    known = ctx if isinstance(ctx, str) and ctx not in ("", "unknown") else None
    if given is None or not known:
        return given or known
    a, b = known.removesuffix("-dirty"), given.removesuffix("-dirty")
    if not (a.lower().startswith(b.lower()) or b.lower().startswith(a.lower())):
        raise ReportError(f"{path}: --commit {given} contradicts the run's "
                          f"ipcbench_git_commit {known}")
    dirty = known.endswith("-dirty") or given.endswith("-dirty")
    return max(a, b, key=len) + ("-dirty" if dirty else "")


def _refuse_damaged(conn: sqlite3.Connection, path: Path) -> None:
    """``ReportError`` naming the first problem SQLite's quick_check finds, if any."""
    found = [line for (row,) in conn.execute("PRAGMA quick_check")
             for line in str(row).splitlines() if line and not line.startswith("***")]
    if found != ["ok"]:
        raise ReportError(f"{path} is a damaged run history (SQLite quick_check: "
                          f"{found[0]}" + ("; and more" if len(found) > 1 else "") + ")")


@dataclass
class Recorded:
    id: int
    path: Path
    cells: int
    repetitions: int


def _insert(conn: sqlite3.Connection, path: Path, sha: str, run: Run,
            commit: str | None, branch: str | None) -> Recorded:
    dup = conn.execute("SELECT id, file, added FROM runs WHERE sha256 = ?",
                       (sha,)).fetchone()
    if dup:
        raise ReportError(f"{path} is already recorded as run #{dup[0]} ({dup[1]}, added "
                          f"{dup[2]}): a results file is recorded once")
    conn.execute("INSERT OR IGNORE INTO machines (host_name, cpu_model, num_cpus) "
                 "VALUES (?, ?, ?)", identity(run))
    (machine,) = conn.execute("SELECT id FROM machines WHERE host_name = ? AND "
                              "cpu_model = ? AND num_cpus = ?", identity(run)).fetchone()
    added = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    run_id = conn.execute(
        "INSERT INTO runs (sha256, file, added, run_time, machine_id, git_commit, branch, "
        "ipcbench_version, pin_mode, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (sha, str(path), added, _utc(run.ctx("date")), machine, _commit(path, run, commit),
         branch, run.ctx("ipcbench_version"), run.pin_mode,
         json.dumps(run.context, ensure_ascii=False, allow_nan=True))).lastrowid
    reps = 0
    for cell in run.cells.values():
        cell_row = conn.execute(
            "INSERT INTO cells (run_id, cell, name, label, workload, transport, size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, cell.id, cell.name, cell.label, cell.kind, cell.transport,
             cell.size)).lastrowid
        for ordinal, rep in enumerate([*cell.reps, *cell.errors]):
            error = rep if isinstance(rep, str) else None
            rep_row = conn.execute(
                "INSERT INTO repetitions (cell_id, ordinal, error) VALUES (?, ?, ?)",
                (cell_row, ordinal, error)).lastrowid
            if error is None:
                conn.executemany("INSERT INTO rep_values (repetition_id, metric, value) "
                                 "VALUES (?, ?, ?)",
                                 [(rep_row, k, v) for k, v in rep.items()])
            reps += 1
    return Recorded(run_id, path, len(run.cells), reps)


def _remove_if_empty(db: Path) -> None:
    """Unlink ``db`` and its journal if, under an exclusive lock, it holds nothing (no
    table, no mark): what a failed ``add`` that created the schema leaves after its
    rollback. Another process may have created the schema and committed runs since
    then; a database holding anything is left alone, as is one that cannot be opened or
    locked. The unlink happens while the lock is held, so nothing can be committed to
    the file between the check and the unlink."""
    try:
        conn = sqlite3.connect(f"file:{quote(str(db.resolve()))}?mode=rw", uri=True,
                               isolation_level=None, timeout=30)
    except sqlite3.Error:
        return                                         # gone already, or not openable
    try:
        conn.execute("BEGIN EXCLUSIVE")
        if not _check(conn, db):
            for leftover in (db, db.with_name(db.name + "-journal")):
                with contextlib.suppress(OSError):
                    leftover.unlink()
    except (sqlite3.Error, ReportError):
        pass                                           # locked, or not empty: leave it
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def _holds(db: Path, shas: list[str]) -> bool:
    """True when the database at ``db`` (opened anew by its path) records every SHA."""
    try:
        conn = sqlite3.connect(f"file:{quote(str(db.resolve()))}?mode=ro", uri=True,
                               isolation_level=None, timeout=30)
    except sqlite3.Error:
        return False
    try:
        return all(conn.execute("SELECT 1 FROM runs WHERE sha256 = ?", (sha,)).fetchone()
                   for sha in shas)
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def add(db: Path, paths: list[Path], commit: str | None = None,
        branch: str | None = None) -> list[Recorded]:
    """Record every file in one transaction (see the module contract); the database and
    its directory are created when absent.

    A failed ``add`` that created the schema (the file had none when the write lock was
    taken) removes the file again, and the directories it made, unless by then the file
    holds anything another process committed (see ``_remove_if_empty``). An ``add`` that
    had opened the file such a failure removed writes to the unlinked file if SQLite
    lets it (it does when a new file is at the path, not when none is); having created
    the schema, it checks after committing that the path holds its runs and refuses
    when not: nothing was recorded, and running it again records the files."""
    db = Path(db)
    inputs = []
    for p in map(Path, paths):
        run = load_run(p)                              # ReportError when not ipcbench's
        try:
            sha = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError as e:
            raise ReportError(f"cannot read {p}: {e.strerror or e}") from None
        inputs.append((p, sha, run))
    for i, (p, sha, _) in enumerate(inputs):
        same = next((q for q, other, _ in inputs[:i] if other == sha), None)
        if same is not None:
            raise ReportError(f"{same} and {p} are the same results file (SHA-256 "
                              f"{sha[:12]}…): a results file is recorded once")
    _refuse_file(db)
    # Only a hint, taken before the lock: a file that existed then (even empty) is never
    # removed. Whether this call created the schema is decided under the lock.
    existed = db.exists()
    new_dirs = [d for d in (db.parent, *db.parent.parents) if not d.exists()]
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create {db.parent}: {e.strerror or e}") from None
    created_schema = False
    done = False
    try:
        with _database_errors(db):
            conn = sqlite3.connect(db, isolation_level=None, timeout=30)
            try:
                conn.execute("BEGIN IMMEDIATE")
                if _check(conn, db):
                    _refuse_damaged(conn, db)
                else:                                  # new: the schema, same transaction
                    created_schema = True
                    for statement in _SCHEMA.split(";\n"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                out = [_insert(conn, p, sha, run, commit, branch) for p, sha, run in inputs]
                conn.execute("COMMIT")
                done = True
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()
    finally:
        if not done and created_schema and not existed:   # leave nothing behind
            _remove_if_empty(db)
        if not done:
            for d in new_dirs:                           # deepest first; only empty ones
                with contextlib.suppress(OSError):
                    d.rmdir()
    if created_schema and not _holds(db, [sha for _, sha, _ in inputs]):
        raise ReportError(f"{db} was removed while this 'history add' waited for it (a "
                          "failed 'history add' that had created it cleaned up): nothing "
                          "is recorded; run it again")
    return out


# --- reading -------------------------------------------------------------------------


@dataclass
class RunRow:
    """One recorded run, as ``history list`` shows it."""

    id: int
    run_time: str
    machine: str                       # machine_label(...)
    commit: str | None
    branch: str | None
    cells: int
    sha256: str = ""
    context: dict = field(default_factory=dict)


_RUNS = ("SELECT r.id, r.run_time, m.host_name, m.cpu_model, m.num_cpus, r.git_commit, "
         "r.branch, (SELECT count(*) FROM cells c WHERE c.run_id = r.id), r.sha256, "
         "r.context FROM runs r JOIN machines m ON m.id = r.machine_id")


def _run_rows(conn: sqlite3.Connection, where: str = "", args: tuple = (),
              newest_first: bool = False) -> list[RunRow]:
    order = " DESC" if newest_first else ""
    return [RunRow(i, t, machine_label(h, c, n), g, b, k, s, json.loads(ctx))
            for i, t, h, c, n, g, b, k, s, ctx in conn.execute(
                f"{_RUNS} {where} ORDER BY r.run_time{order}, r.id{order}", args)]


def runs(db: Path) -> list[RunRow]:
    """Every recorded run, oldest first (by the run's time, then by id)."""
    with _read(db) as conn:
        return _run_rows(conn)


def _machines(conn: sqlite3.Connection, db: Path, name: str | None) -> dict[int, str]:
    """Machines (id -> label) named ``name`` (a host name, or a label as ``history
    list`` prints it); every machine when ``name`` is None."""
    found = {i: machine_label(h, c, n) for i, h, c, n in conn.execute(
        "SELECT id, host_name, cpu_model, num_cpus FROM machines ORDER BY id")
        if name is None or name in (h, machine_label(h, c, n))}
    if not found:
        raise ReportError(f"{db} has no run of a machine named {name!r}" if name else
                          f"{db} has no recorded run")
    return found


def _cells(conn: sqlite3.Connection, run_id: int, only: str | None = None
           ) -> dict[str, Cell]:
    """A recorded run's cells (or only the cell ``only``) as the loader made them."""
    where = "c.run_id = ?" + (" AND c.cell = ?" if only else "")
    args = (run_id, only) if only else (run_id,)
    values: dict[int, dict[str, float]] = {}
    for rep, metric, value in conn.execute(
            "SELECT v.repetition_id, v.metric, v.value FROM rep_values v JOIN repetitions "
            f"p ON p.id = v.repetition_id JOIN cells c ON c.id = p.cell_id WHERE {where}",
            args):
        values.setdefault(rep, {})[metric] = value
    cells: dict[str, Cell] = {}
    for cid, name, label, rep, error in conn.execute(
            "SELECT c.cell, c.name, c.label, p.id, p.error FROM cells c JOIN repetitions p "
            f"ON p.cell_id = c.id WHERE {where} ORDER BY c.id, p.ordinal", args):
        cell = cells.setdefault(cid, Cell(id=cid, name=name, label=label))
        if error is None:
            cell.reps.append(values.get(rep, {}))
        else:
            cell.errors.append(error)
    return cells


@dataclass
class Point:
    """One run's repetitions of the trended cell."""

    run: RunRow
    values: list[float]                # successful repetitions that have the counter
    failed: int                        # failed repetitions
    repetitions: int

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


def trend(db: Path, cell: str, metric: str | None, machine: str | None
          ) -> tuple[str, list[Point]]:
    """(counter, one point per recorded run that has ``cell``, oldest first) on the
    machines named ``machine`` (all when None). ``metric`` is a counter or ``p50``,
    ``p99``, ``p99.9`` (see ``metric_counter``); None: the cell's primary metric (as
    ``compare``)."""
    with _read(db) as conn:
        machines = _machines(conn, db, machine)
        marks = ", ".join("?" * len(machines))
        rows = _run_rows(conn, f"WHERE r.machine_id IN ({marks}) AND EXISTS (SELECT 1 FROM "
                         "cells c WHERE c.run_id = r.id AND c.cell = ?)",
                         (*machines, cell))
        if not rows:
            raise ReportError(f"no recorded run in {db} has the cell {cell}" + (
                f" on a machine named {machine!r}" if machine else ""))
        cells = [_cells(conn, r.id, cell)[cell] for r in rows]
    newest = next((c for c in reversed(cells) if c.ok), cells[-1])    # one that ran
    counter = metric_counter(metric, newest.kind) if metric else newest.primary()[0]
    points = [Point(r, c.values(counter), len(c.errors), c.repetitions)
              for r, c in zip(rows, cells)]
    if not any(p.values for p in points):
        have = sorted({k for c in cells for k in c.counters()})
        raise ReportError(f"no recorded repetition of {cell} has {counter}" + (
            f" (it has: {', '.join(have)})" if have else
            " (it failed in every repetition of every recorded run)"))
    return counter, points


# --- a baseline for compare ------------------------------------------------------------


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise ReportError(f"cannot read {path}: {e.strerror or e}") from None


def _merged_context(contexts: list[dict]) -> dict:
    """Each key's value when every run agrees on it, else ``mixed: a | b``, so that
    compare's like-for-like notes see a pooled baseline that mixes placements or
    hosts."""
    out = {}
    for key in dict.fromkeys(k for ctx in contexts for k in ctx):
        seen = {json.dumps(ctx.get(key), sort_keys=True): ctx.get(key) for ctx in contexts}
        if len(seen) == 1:
            out[key] = next(iter(seen.values()))
        else:
            out[key] = "mixed: " + " | ".join("—" if v is None else str(v)
                                              for v in seen.values())
    return out


@dataclass
class Baseline:
    run: Run                           # the pooled repetitions, for compare()
    pooled: list[RunRow]               # newest first
    left_out: list[RunRow]             # recorded runs of the candidate's own file


def baseline(db: Path, candidate: Run, last: int, branch: str | None = None,
             machine: str | None = None) -> Baseline:
    """The repetitions of the last ``last`` recorded runs (by run time) of ``branch``
    (any branch when None) on the candidate's machine (or the one machine named
    ``machine``), pooled per cell; runs recorded from the candidate's own file are left
    out. ``ReportError`` when no run matches."""
    sha = file_sha256(candidate.path)
    with _read(db) as conn:
        if machine:
            machines = _machines(conn, db, machine)
            if len(machines) > 1:
                raise ReportError(f"--machine {machine!r} names {len(machines)} machines "
                                  f"in {db} ({'; '.join(machines.values())}): give the "
                                  "whole name as 'history list' prints it")
            (mid, label), = machines.items()
        else:
            label = machine_label(*identity(candidate))
            found = conn.execute("SELECT id FROM machines WHERE host_name = ? AND "
                                 "cpu_model = ? AND num_cpus = ?",
                                 identity(candidate)).fetchone()
            if not found:
                raise ReportError(f"{db} has no recorded run of the candidate's machine, "
                                  f"{label}: nothing to compare against")
            mid = found[0]
        where, args = "WHERE r.machine_id = ?", (mid,)
        if branch is not None:
            where, args = where + " AND r.branch = ?", (mid, branch)
        rows = _run_rows(conn, where, args, newest_first=True)
        left_out = [r for r in rows if r.sha256 == sha]
        rows = [r for r in rows if r.sha256 != sha][:last]
        if not rows:
            raise ReportError(
                f"{db} has no recorded run of {label}"
                + (f" on branch {branch}" if branch is not None else "")
                + (f" other than the candidate itself (run #{left_out[0].id})"
                   if left_out else "") + ": nothing to compare against")
        pooled: dict[str, Cell] = {}
        for r in rows:
            for cid, c in _cells(conn, r.id).items():
                p = pooled.setdefault(cid, Cell(id=cid, name=c.name, label=c.label))
                p.reps += c.reps
                p.errors += c.errors
    where = label + (f", branch {branch}" if branch is not None else "")
    run = Run(path=Path(db), context=_merged_context([r.context for r in rows]),
              cells=pooled, transports_info=[],
              label=f"recorded run(s) {', '.join(f'#{r.id}' for r in rows)} of {where}")
    return Baseline(run, rows, left_out)
