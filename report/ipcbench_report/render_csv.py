"""Runs -> CSV: one row per cell per input file, every counter as a column (the
median of the successful repetitions, full precision), plus run and error columns.
``n`` and ``server_model`` come from the cell's name: the clients of a many-clients cell
(``clients:<N>``) or the subscribers of a fan-out cell (``subscribers:<N>``), and the
many-clients cell's ``server:<model>``; empty for other cells. The flags of the
latency-under-load workload, ``saturated`` and ``shared_cpu``, and ``host_changed`` (the
machine changed during a repetition of a pingpong or throughput cell) are the largest
value of the repetitions, not the median: 1 when any repetition set them, as the report
marks the cell."""

from __future__ import annotations

import csv
import io

from ipcbench_report.model import HOST_CHANGED, Run

# Flags that hold for the cell when any repetition set them (rate cells: see
# ``rate.Point``; host_changed: ``model.Cell.marked``).
_ANY_FLAGS = {"saturated", "shared_cpu", HOST_CHANGED}
_TIMES = ["real_time_ns", "cpu_time_ns", "iterations"]
_FIXED = ["file", "run", "host_name", "date", "pin_mode", "cell", "name", "workload",
          "transport", "msg_size_bytes", "n", "server_model", "label", "repetitions",
          "ok_repetitions", "error", "error_message", "primary_metric", "primary_cv"]


def render(runs: list[Run]) -> str:
    """The CSV text (header + rows); empty counters stay empty."""
    counters = sorted({k for r in runs for c in r.cells.values() for k in c.counters()}
                      - set(_TIMES))
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(_FIXED + _TIMES + counters)
    for r in runs:
        for c in r.cells.values():
            metric, _ = c.primary()
            cv = c.cv(metric)
            fixed = [r.path.name, r.label, r.ctx("host_name"), r.ctx("date"), r.pin_mode,
                     c.id, c.name, c.kind, c.transport,
                     "" if c.size is None else c.size, "" if c.n is None else c.n, c.server,
                     c.label, c.repetitions, len(c.reps),
                     "true" if c.errors else "false", "; ".join(dict.fromkeys(c.errors)),
                     metric, "" if cv is None else cv]
            medians = [max(c.values(k), default=None) if k in _ANY_FLAGS else c.median(k)
                       for k in _TIMES + counters]
            w.writerow(fixed + ["" if m is None else m for m in medians])
    return out.getvalue()
