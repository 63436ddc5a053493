"""The many-clients (``clients``) and fan-out (``fanout``) workloads (issue 23): their
cells grouped into series over N, the N at which each series peaks, and the cells that
ran oversubscribed.

A series is one (run, workload, transport, server model, message size); its points are
its cells that succeeded in at least one repetition, by N (``clients:<N>`` or
``subscribers:<N>`` in the cell's name). Every figure is the median of the cell's
repetition rows (``Cell.median``), as in the rest of the report. Nothing here formats
text; ``layout`` does that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ipcbench_report.model import MANY, Cell, Run


@dataclass(frozen=True)
class Workload:
    """What stands for a workload: ``rate`` (higher is better, the peak's criterion and
    the compare primary) and ``tail`` (a latency in ns, lower is better)."""

    kind: str
    rate: str
    tail: str


CLIENTS = Workload("clients", "rtt_per_s", "rtt_p99_ns")
FANOUT = Workload("fanout", "delivered_per_s", "slowest_subscriber_p99_ns")
WORKLOADS = (CLIENTS, FANOUT)


@dataclass
class Series:
    run: Run
    workload: Workload
    transport: str
    server: str                      # server model of clients cells; "" for fanout
    size: int
    points: list[tuple[int, Cell]] = field(default_factory=list)   # (N, cell), by N
    failed: list[tuple[int, Cell]] = field(default_factory=list)   # every rep failed

    def values(self, metric: str) -> list[tuple[int, float]]:
        """(N, median of ``metric``) of the points that have it, by N."""
        return [(n, v) for n, c in self.points if (v := c.median(metric)) is not None]

    @property
    def peak(self) -> tuple[int, Cell] | None:
        """The point with the highest median rate (the smallest N on a tie); None when
        no point has the rate."""
        rated = [(c.median(self.workload.rate), -n, n, c) for n, c in self.points
                 if c.median(self.workload.rate) is not None]
        if not rated:
            return None
        _, _, n, cell = max(rated, key=lambda r: (r[0], r[1]))
        return n, cell


@dataclass
class Many:
    """Series of both workloads over all runs, and what does not fit one."""

    series: list[Series] = field(default_factory=list)
    # (run, cell) that ran more busy processes than CPUs (counter oversubscribed = 1)
    oversubscribed: list[tuple[Run, Cell]] = field(default_factory=list)
    # (run, cell) of these workloads whose name has no N (or no size): in no series
    unplaced: list[tuple[Run, Cell]] = field(default_factory=list)

    def of(self, workload: Workload) -> list[Series]:
        return [s for s in self.series if s.workload is workload]

    def plot_size(self, workload: Workload) -> int | None:
        """The message size the plot of ``workload`` shows: the smallest measured."""
        return min((s.size for s in self.of(workload)), default=None)

    def sizes(self, workload: Workload) -> list[int]:
        return sorted({s.size for s in self.of(workload)})

    def __bool__(self) -> bool:
        return bool(self.series or self.unplaced)


def build(runs: list[Run]) -> Many:
    """Group every clients/fanout cell of ``runs`` into series, ordered by transport and
    server model (first seen), then size, then run."""
    many = Many()
    by_key: dict[tuple, Series] = {}
    kinds = {w.kind: w for w in WORKLOADS}
    for run in runs:
        for cell in run.cells.values():
            if cell.kind not in MANY:
                continue
            if cell.oversubscribed:
                many.oversubscribed.append((run, cell))
            if cell.n is None or cell.size is None:
                many.unplaced.append((run, cell))
                continue
            key = (id(run), cell.kind, cell.transport, cell.server, cell.size)
            s = by_key.get(key)
            if s is None:
                s = by_key[key] = Series(run, kinds[cell.kind], cell.transport,
                                         cell.server, cell.size)
                many.series.append(s)
            (s.points if cell.ok else s.failed).append((cell.n, cell))
    for s in many.series:
        s.points.sort(key=lambda p: p[0])
        s.failed.sort(key=lambda p: p[0])
    # Runs side by side: by transport, server model (first seen), size, then run.
    first = {}
    for s in many.series:
        first.setdefault((s.transport, s.server), len(first))
    many.series.sort(key=lambda s: (first[(s.transport, s.server)], s.size,
                                    runs.index(s.run)))
    return many
