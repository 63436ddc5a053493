"""The one result model every renderer reads: a ``Run`` (one input file) of ``Cell``s.

A cell is one benchmark of the matrix (``pingpong/pipe/64``) or one machine floor
(``floor/futex_rtt``); it holds the per-repetition values of every counter, never
Google Benchmark's aggregate rows, so every median and CV is computed here.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

# Name segments Google Benchmark appends to a family name; they are not part of a cell:
# the timing suffixes, and its own ``key:value`` segments (``iterations:1`` with
# Iterations(1), ``repeats:N``, ``threads:N``, ``min_time:X``, ``min_warmup_time:X``).
# Every other ``key:value`` segment is ipcbench's and stays in the cell's identity:
# ``clients:4``, ``server:event-loop`` and ``subscribers:8`` tell apart cells of the
# many-clients and fan-out workloads that share workload, transport and size.
_GB_SUFFIXES = {"manual_time", "real_time", "process_time"}
_GB_KEYS = {"iterations", "repeats", "threads", "min_time", "min_warmup_time"}

# Workloads with several clients or subscribers per cell (issue 23), named
# ``clients/<transport>/<bytes>/clients:<N>/server:<model>`` and
# ``fanout/<transport>/<bytes>/subscribers:<N>``: the parameter that sets N.
MANY = {"clients": "clients", "fanout": "subscribers"}

# Primary metric of a cell, chosen by which counter it carries (first match wins):
# (counter, lower_is_better). Used by compare, exports and the noise check.
_PRIMARY = (
    ("rtt_p50_ns", True),
    ("bytes_per_second", False),
    ("ns_per_call", True),
)
_FALLBACK_PRIMARY = ("real_time_ns", True)
# Primary metric by workload, whatever counters the cell carries (clients cells also
# carry rtt_p50_ns, which must not stand for them): aggregate rates, higher is better.
_PRIMARY_BY_KIND = {
    "clients": ("rtt_per_s", False),      # round trips per second of all clients
    "fanout": ("delivered_per_s", False),  # deliveries per second to all subscribers
    # latency under load: the corrected p99 at the offered rate (receipt - intended send
    # time), the figure the sustainable rate is judged by; lower is better
    "rate": ("lat_p99_ns", True),
}

# The floor beside a cell (pingpong and throughput cells of runs that probe it; not
# cells of a split run, nor files written before): counters of each repetition, the
# probe's figure just before and just after it on the cell's CPUs (p50 ns per round trip,
# or bytes/s), ``floor`` their mean, ``floor_ratio`` the cell's cost ÷ the floor's (1 =
# the floor itself, larger = further from it) and ``host_changed`` 1 when the two probes
# differ by more than the runner's margin (context ``host_change_margin``): the machine
# changed during that repetition.
FLOOR_RATIO, FLOOR, HOST_CHANGED = "floor_ratio", "floor", "host_changed"
# Label token of one repetition marked host_changed (its label only: not the cell's).
HOST_CHANGED_TOKEN = "host-changed"


def _gb_segment(part: str) -> bool:
    return part in _GB_SUFFIXES or part.split(":", 1)[0] in _GB_KEYS and ":" in part


def cell_id(name: str) -> str:
    """``pingpong/pipe/64/manual_time`` -> ``pingpong/pipe/64``; drops Google Benchmark's
    own segments (``/iterations:1`` …) but keeps ipcbench's ``key:value`` parameters:
    ``clients/uds/64/clients:4/server:event-loop/manual_time`` ->
    ``clients/uds/64/clients:4/server:event-loop``."""
    parts = [p for p in name.split("/") if not _gb_segment(p)]
    return "/".join(parts) or name


@dataclass
class Cell:
    """One cell of one run.

    ``reps`` holds one dict per successful repetition (counters plus ``real_time_ns``,
    ``cpu_time_ns`` and ``iterations``); ``errors`` one message per failed repetition.
    """

    id: str
    name: str
    label: str = ""
    reps: list[dict[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """First name segment: the workload (``pingpong``, ``throughput``) or ``floor``."""
        return self.id.split("/")[0]

    @property
    def transport(self) -> str:
        """Second segment of a workload cell; ``""`` for a floor (a limit of the machine,
        not a transport)."""
        parts = self.id.split("/")
        return parts[1] if len(parts) > 1 and self.kind != "floor" else ""

    @property
    def floor(self) -> str:
        """Second segment of a ``floor/...`` cell (``futex_rtt``, ``memcpy``), else ``""``."""
        parts = self.id.split("/")
        return parts[1] if len(parts) > 1 and self.kind == "floor" else ""

    @property
    def size(self) -> int | None:
        """Message size in bytes (third segment), ``None`` when the cell has none."""
        parts = self.id.split("/")
        return int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None

    @property
    def params(self) -> dict[str, str]:
        """ipcbench's ``key:value`` segments of the id (``{"clients": "4", "server":
        "event-loop"}``); empty for cells without any."""
        return dict(p.split(":", 1) for p in self.id.split("/")[3:] if ":" in p)

    @property
    def n(self) -> int | None:
        """Clients of a ``clients`` cell, subscribers of a ``fanout`` cell; ``None`` for
        other cells or when the segment is absent or not a whole number."""
        value = self.params.get(MANY.get(self.kind, ""), "")
        return int(value) if value.isdigit() else None

    @property
    def server(self) -> str:
        """Server model of a ``clients`` cell (``server:<model>``, opaque text), else
        ``""``."""
        return self.params.get("server", "") if self.kind == "clients" else ""

    @property
    def oversubscribed(self) -> bool:
        """Some repetition ran more busy processes than CPUs (counter ``oversubscribed``)."""
        return any(v >= 1 for v in self.values("oversubscribed"))

    @property
    def ok(self) -> bool:
        """At least one repetition succeeded."""
        return bool(self.reps)

    @property
    def repetitions(self) -> int:
        return len(self.reps) + len(self.errors)

    def _token(self, key: str) -> str:
        """Value of the label's ``key=value`` token, ``""`` when absent."""
        for token in self.label.split():
            if token.startswith(key + "="):
                return token[len(key) + 1:]
        return ""

    @property
    def wait(self) -> str:
        """Wait strategy from the label (``wait=blocking``), ``""`` when absent."""
        return self._token("wait")

    @property
    def floor_kind(self) -> str:
        """The floor probed beside the cell, from the label (``floor=pair_rtt``,
        ``futex_rtt`` or ``copy_stream``), ``""`` when absent."""
        return self._token("floor")

    @property
    def has_floor_beside(self) -> bool:
        """Some repetition carries ``floor_ratio`` (the floor beside the cell)."""
        return bool(self.values(FLOOR_RATIO))

    def marked(self) -> list[int]:
        """Repetitions marked ``host_changed`` = 1, as positions 1…n among the
        successful repetitions in file order (``history``'s ordinal + 1)."""
        return [i + 1 for i, rep in enumerate(self.reps) if rep.get(HOST_CHANGED, 0) >= 1]

    def counters(self) -> set[str]:
        return {k for rep in self.reps for k in rep}

    def values(self, metric: str, unmarked: bool = False) -> list[float]:
        """Per-repetition values of ``metric`` (repetitions without it are skipped);
        ``unmarked``: only of the repetitions not marked ``host_changed``."""
        return [rep[metric] for rep in self.reps
                if metric in rep and not (unmarked and rep.get(HOST_CHANGED, 0) >= 1)]

    def median(self, metric: str, unmarked: bool = False) -> float | None:
        """Median of ``values(metric, unmarked)``; ``None`` when there is none."""
        v = self.values(metric, unmarked)
        return statistics.median(v) if v else None

    def cv(self, metric: str) -> float | None:
        """Coefficient of variation (sample stdev / mean, as Google Benchmark's ``cv``);
        ``None`` with fewer than two repetitions or a zero mean."""
        v = self.values(metric)
        if len(v) < 2 or statistics.fmean(v) == 0:
            return None
        return statistics.stdev(v) / statistics.fmean(v)

    def primary(self) -> tuple[str, bool]:
        """(metric, lower_is_better) that stands for this cell in compare and exports."""
        if self.kind in _PRIMARY_BY_KIND:
            return _PRIMARY_BY_KIND[self.kind]
        have = self.counters()
        for metric, lower in _PRIMARY:
            if metric in have:
                return metric, lower
        return _FALLBACK_PRIMARY


@dataclass
class Run:
    """One input file: its context, its cells in file order, and a display label."""

    path: Path
    context: dict
    cells: dict[str, Cell]
    transports_info: list[dict]
    label: str = ""

    def ctx(self, key: str) -> str:
        """Context value as text, ``—`` when absent."""
        value = self.context.get(key)
        return "—" if value is None or value == "" else str(value)

    @property
    def pin_mode(self) -> str:
        return self.ctx("pin_mode")

    def cell(self, kind: str, transport: str, size: int | None = None) -> Cell | None:
        """The cell ``kind/transport[/size]`` exactly: never a cell with parameters
        (``clients/uds/64/clients:4/...`` is not ``run.cell("clients", "uds", 64)``)."""
        key = f"{kind}/{transport}" + ("" if size is None else f"/{size}")
        return self.cells.get(key)

    def transports(self) -> list[str]:
        """Transports with at least one workload cell, in first-seen order."""
        seen: dict[str, None] = {}
        for c in self.cells.values():
            if c.transport:
                seen.setdefault(c.transport)
        return list(seen)

    def floors(self) -> list[Cell]:
        return [c for c in self.cells.values() if c.kind == "floor"]

    def max_repetitions(self) -> int:
        return max((c.repetitions for c in self.cells.values()), default=0)
