"""Exports for CI benchmark trackers: the statistics of every successful cell, each the
median of its repetitions, under the benchmark name ``<cell> [pin=<mode>]`` so that
placements never mix.
Machine floors (``floor/*``) are exported too, for context beside the transports, and
named ``floor/<name> [pin=<mode>] (machine floor)`` so that no tracker shows them as a
transport; their ``extra`` says so as well.

* ``github-action-benchmark``: the ``customSmallerIsBetter`` and
  ``customBiggerIsBetter`` tools' input, a JSON array of
  ``{"name", "unit", "value", "range"?, "extra"?}`` (``range`` and ``extra`` strings).
  One entry per statistic of a cell, named ``<cell> [pin=<mode>] <statistic>``, so that
  a tracker draws, and alerts on, one series per statistic. Smaller is better (ns):
  round-trip p50/p99/p99.9 (``p50 round trip`` …, ``p99.9 round trip``), one-way
  p50/p99/p99.9 of fan-out cells (``p99.9 one way``), ns per call (``per call``) and the
  CPU time per message of each process with a ``cpu_<process>_ns_per_msg`` counter
  (``<process> CPU per message``): client and peer, daemon where the link runs through
  one (dbus, iceoryx), server and client (all clients together) of a many-clients cell,
  publisher and subscriber (all subscribers together) of a fan-out cell; a cell without
  a counter has no entry for it. Bigger is better: GB/s, messages/s, round trips/s of
  all clients (``rtt_per_s``, many-clients cells) and deliveries/s to all subscribers
  (``delivered_per_s``, fan-out cells).
* ``bmf``: Bencher Metric Format, ``{"<benchmark>": {"<measure>": {"value",
  "lower_value"?, "upper_value"?}}}``, one measure per statistic: the built-in measures
  ``latency`` (ns: p50 round trip, or one-way p50 of a fan-out cell, or ns per call) and
  ``throughput`` (operations/s: messages/s, or round trips/s of all clients of a
  many-clients cell, or deliveries/s of a fan-out cell), unchanged so that thresholds
  set on them keep working, and the custom measures, all in ns, ``latency-p99`` and
  ``latency-p99-9`` (p99 and p99.9 round trip, or one way of a fan-out cell) and
  ``cpu-<process>-per-msg`` (CPU per message of each process above: ``cpu-client-``,
  ``cpu-peer-``, ``cpu-daemon-``, ``cpu-server-``, ``cpu-publisher-``,
  ``cpu-subscriber-per-msg``), which Bencher creates on the first upload that names
  them. A cell has only the measures it has a counter for; value is the median,
  lower/upper the smallest and largest repetition (with two or more). Cells with no
  such counter (``floor/memcpy/*``, ``floor/shm_stream/*``: bytes/s only) have no BMF
  entry.

Failed cells are left out and named in the returned list of skipped cells. Cells of the
latency-under-load workload (``rate/*``) have no entry in either format: their tail
latency and CPU per message (the client's includes the sender's pacing) mean something
only beside the offered rate and whether that rate was met (``saturated``), which a
tracker entry would not show.
"""

from __future__ import annotations

import json
import statistics

from ipcbench_report.layout import fmt
from ipcbench_report.model import Cell, Run

FORMATS = {
    "github-action-benchmark": ("smaller-is-better.json", "bigger-is-better.json"),
    "bmf": ("bmf.json",),
}

# Processes whose CPU time per message the runner writes as ``cpu_<process>_ns_per_msg``:
# client and peer (every pingpong and throughput cell), daemon (only links through a
# daemon the suite started: dbus, iceoryx), server and client (all clients together) of
# a many-clients cell, publisher and subscriber (all subscribers together) of a fan-out
# cell.
_PROCESSES = ("client", "peer", "daemon", "server", "publisher", "subscriber")

# (counter, unit, scale, what) per direction, for github-action-benchmark: one entry, so
# one tracker series, per statistic of a cell.
_SMALLER = (("rtt_p50_ns", "ns", 1.0, "p50 round trip"),
            ("rtt_p99_ns", "ns", 1.0, "p99 round trip"),
            ("rtt_p999_ns", "ns", 1.0, "p99.9 round trip"),
            ("oneway_p50_ns", "ns", 1.0, "p50 one way"),
            ("oneway_p99_ns", "ns", 1.0, "p99 one way"),
            ("oneway_p999_ns", "ns", 1.0, "p99.9 one way"),
            ("ns_per_call", "ns", 1.0, "per call"),
            *((f"cpu_{p}_ns_per_msg", "ns", 1.0, f"{p} CPU per message")
              for p in _PROCESSES))
_BIGGER = (("bytes_per_second", "GB/s", 1e-9, "throughput"),
           ("items_per_second", "msg/s", 1.0, "messages per second"),
           ("rtt_per_s", "round trips/s", 1.0, "round trips per second, all clients"),
           ("delivered_per_s", "msg/s", 1.0, "deliveries per second, all subscribers"))
# BMF measure slug -> the counters that may stand for it, first one a cell has wins: the
# built-in ``latency`` (ns) and ``throughput`` (operations/s) as they always were, then
# custom measures in ns, one per statistic (Bencher creates a measure the first time a
# slug it does not know is uploaded).
_BMF_MEASURES = (
    ("latency", ("rtt_p50_ns", "oneway_p50_ns", "ns_per_call")),
    ("throughput", ("items_per_second", "rtt_per_s", "delivered_per_s")),
    ("latency-p99", ("rtt_p99_ns", "oneway_p99_ns")),
    ("latency-p99-9", ("rtt_p999_ns", "oneway_p999_ns")),
    *((f"cpu-{p}-per-msg", (f"cpu_{p}_ns_per_msg",)) for p in _PROCESSES),
)


_FLOOR = " (machine floor)"
# Workloads with no entry in either format (see the module docstring).
_LEFT_OUT = {"rate"}


def _name(run: Run, cell: Cell, what: str = "") -> str:
    floor = _FLOOR if cell.kind == "floor" else ""
    return f"{cell.id} [pin={run.pin_mode}]{floor}" + (f" {what}" if what else "")


def _gab_entry(run: Run, cell: Cell, counter: str, unit: str, scale: float,
               what: str) -> dict:
    values = cell.values(counter)
    entry = {"name": _name(run, cell, what), "unit": unit,
             "value": statistics.median(values) * scale}
    if len(values) >= 2:
        entry["range"] = f"± {fmt(statistics.stdev(values) * scale)}"
    floor = "machine floor, not a transport; " if cell.kind == "floor" else ""
    entry["extra"] = f"{floor}median of {len(values)} repetition(s); {cell.label}" \
        .rstrip("; ")
    return entry


def github_action_benchmark(run: Run) -> tuple[list[dict], list[dict]]:
    """(smaller-is-better entries, bigger-is-better entries)."""
    out = ([], [])
    for cell in run.cells.values():
        if cell.kind in _LEFT_OUT:
            continue
        have = cell.counters()
        for side, specs in zip(out, (_SMALLER, _BIGGER)):
            side.extend(_gab_entry(run, cell, *spec) for spec in specs if spec[0] in have)
    return out


def _bmf_metric(values: list[float]) -> dict:
    metric = {"value": statistics.median(values)}
    if len(values) >= 2:
        metric["lower_value"], metric["upper_value"] = min(values), max(values)
    return metric


def bmf(run: Run) -> dict:
    """The Bencher Metric Format object."""
    out = {}
    for cell in run.cells.values():
        if cell.kind in _LEFT_OUT:
            continue
        measures = {}
        for measure, counters in _BMF_MEASURES:
            counter = next((c for c in counters if cell.values(c)), None)
            if counter:
                measures[measure] = _bmf_metric(cell.values(counter))
        if measures:
            out[_name(run, cell)] = measures
    return out


def export(run: Run, fmt_name: str) -> tuple[dict[str, str], list[str]]:
    """({file name: JSON text}, skipped failed cells) for format ``fmt_name``."""
    if fmt_name == "bmf":
        docs = [bmf(run)]
    else:
        docs = list(github_action_benchmark(run))
    files = {name: json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
             for name, doc in zip(FORMATS[fmt_name], docs)}
    return files, [c.id for c in run.cells.values() if not c.ok]
