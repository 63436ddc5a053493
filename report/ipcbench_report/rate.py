"""The latency-under-load workload (``rate``): its cells grouped into series over the
offered rate, the p99 budget of each run, and the sustainable rate of each series.

A cell is ``rate/<transport>/<bytes>/rate:<msgs_per_s>`` (the offered rate given by the
user) or ``rate/<transport>/<bytes>/load:<pct>`` (pct % of ``max_rate``, the transport's
unpaced maximum measured in the same run). A series is one (run, transport, message
size); its points are its cells that succeeded in at least one repetition and carry
``offered_rate``, ordered by it. Every figure is the median of the cell's repetition rows
(``Cell.median``), as in the rest of the report; the two flags, ``saturated`` and
``shared_cpu``, hold for a cell when any of its successful repetitions set them (as
``Cell.oversubscribed``), so a rate missed in one repetition is never shown as met.
Nothing here formats text; ``layout`` does that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ipcbench_report import ReportError
from ipcbench_report.model import Cell, Run

KIND = "rate"
SATURATED_SHARE = 0.95          # the runner's rule: achieved_rate < 0.95 × scheduled_rate
SLO_KEY = "ipcbench_slo_p99_ns"
DEFAULT_SLO_P99_NS = 100_000.0  # 100 µs, for results written before the key existed
PERCENTILES = (("p50", "50"), ("p90", "90"), ("p99", "99"), ("p99.9", "999"),
               ("max", "max"))
CORRECTED, UNCORRECTED, LAG = "lat", "unc", "lag"


def counter(family: str, pct: str) -> str:
    """``counter("lat", "99")`` -> ``lat_p99_ns``; ``counter("lat", "max")`` ->
    ``lat_max_ns``."""
    return f"{family}_{'max' if pct == 'max' else 'p' + pct}_ns"


P99 = counter(CORRECTED, "99")

_UNITS_NS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s)")


def parse_duration(text: str, what: str = "--slo-p99") -> float:
    """``100us`` -> 100000.0 ns; a positive number and a unit (ns, us, µs, ms, s), or
    ``ReportError`` naming ``what``."""
    m = _DURATION.fullmatch(text.strip())
    value = float(m.group(1)) * _UNITS_NS[m.group(2)] if m else 0.0
    if value <= 0:
        raise ReportError(f"{what} {text!r}: not a positive duration; give a number and "
                          "a unit, e.g. 100us, 2ms or 50000ns (units: ns, us, µs, ms, s)")
    return value


@dataclass(frozen=True)
class Budget:
    """The p99 budget a run's sustainable rate is judged by, and where it came from:
    ``option`` (--slo-p99), ``context`` (the run's ``ipcbench_slo_p99_ns``) or
    ``default`` (the run's context has no such key)."""

    ns: float
    source: str


def budget_of(run: Run, override_ns: float | None = None) -> Budget:
    """``override_ns`` when given, else the run's context value, else the default;
    ``ReportError`` when the context value is not a positive whole number of ns."""
    if override_ns is not None:
        return Budget(override_ns, "option")
    raw = run.context.get(SLO_KEY)
    if raw is None:
        return Budget(DEFAULT_SLO_P99_NS, "default")
    text = str(raw).strip()
    if isinstance(raw, bool) or not text.isdigit() or int(text) <= 0:
        raise ReportError(f"{run.path}: context '{SLO_KEY}' is {raw!r}, not a positive "
                          "whole number of ns (--slo-p99 overrides it)")
    return Budget(float(int(text)), "context")


@dataclass
class Point:
    """One successful rate cell and its offered rate (median over its repetitions)."""

    cell: Cell
    offered: float

    def median(self, metric: str) -> float | None:
        return self.cell.median(metric)

    @property
    def saturated(self) -> bool:
        """Some repetition achieved less than 95 % of its schedule's rate (counter
        ``saturated`` = 1): its latency is not a latency at the offered rate."""
        return any(v >= 1 for v in self.cell.values("saturated"))

    @property
    def shared_cpu(self) -> bool:
        """Some repetition ran a busy thread on a CPU shared with another busy one
        (``shared_cpu``; the label says which)."""
        return any(v >= 1 for v in self.cell.values("shared_cpu"))

    @property
    def cpu_per_msg(self) -> float | None:
        """Client + peer CPU ns per message less the sender's pacing (medians), None
        unless both were measured. cpu_pacing_ns_per_msg (the sender's spinning to its
        send times) is the load generator's cost, not the transport's; a file without it
        keeps the pacing in."""
        a, b = self.median("cpu_client_ns_per_msg"), self.median("cpu_peer_ns_per_msg")
        pacing = self.median("cpu_pacing_ns_per_msg") or 0.0
        return max(a + b - pacing, 0.0) if a is not None and b is not None else None


@dataclass
class Series:
    run: Run
    transport: str
    size: int
    budget: Budget
    points: list[Point] = field(default_factory=list)    # by offered rate
    failed: list[Cell] = field(default_factory=list)     # every repetition failed

    def within(self, p: Point) -> bool:
        """Not saturated and corrected p99 (median) at most the budget."""
        p99 = p.median(P99)
        return not p.saturated and p99 is not None and p99 <= self.budget.ns

    @property
    def sustainable(self) -> Point | None:
        """The point with the highest offered rate among those ``within`` the budget; on
        a tie of offered rates the one with the higher corrected p99 (the first in file
        order on a tie of both); None when no point is within."""
        ok = [p for p in self.points if self.within(p)]
        if not ok:
            return None
        top = max(p.offered for p in ok)
        return max((p for p in ok if p.offered == top), key=lambda p: p.median(P99))

    @property
    def idle(self) -> Cell | None:
        """The run's ``pingpong/<transport>/<size>`` cell when it succeeded."""
        cell = self.run.cell("pingpong", self.transport, self.size)
        return cell if cell is not None and cell.ok else None


@dataclass
class Rate:
    """Series of the rate workload over all runs, and what does not fit one."""

    series: list[Series] = field(default_factory=list)
    budgets: dict[str, Budget] = field(default_factory=dict)   # run label -> budget
    # (run, cell) of the workload with no size in the name, or that succeeded without
    # an offered_rate counter: in no series
    unplaced: list[tuple[Run, Cell]] = field(default_factory=list)

    def sizes(self) -> list[int]:
        return sorted({s.size for s in self.series})

    def transports(self, size: int | None = None) -> list[str]:
        """Transports with a series (at ``size``), sorted by name."""
        return sorted({s.transport for s in self.series if size in (None, s.size)})

    def __bool__(self) -> bool:
        return bool(self.series or self.unplaced)


def build(runs: list[Run], slo_p99_ns: float | None = None) -> Rate:
    """Group every rate cell of ``runs`` into series, ordered by transport (first seen),
    size, then run; each run's budget per ``budget_of`` (checked only for runs with rate
    cells)."""
    out = Rate()
    by_key: dict[tuple, Series] = {}
    for run in runs:
        cells = [c for c in run.cells.values() if c.kind == KIND]
        if not cells:
            continue
        budget = out.budgets[run.label] = budget_of(run, slo_p99_ns)
        for cell in cells:
            offered = cell.median("offered_rate")
            if cell.size is None or (cell.ok and offered is None):
                out.unplaced.append((run, cell))
                continue
            key = (id(run), cell.transport, cell.size)
            s = by_key.get(key)
            if s is None:
                s = by_key[key] = Series(run, cell.transport, cell.size, budget)
                out.series.append(s)
            if cell.ok:
                s.points.append(Point(cell, offered))
            else:
                s.failed.append(cell)
    for s in out.series:
        s.points.sort(key=lambda p: p.offered)
    first: dict[str, int] = {}
    for s in out.series:
        first.setdefault(s.transport, len(first))
    out.series.sort(key=lambda s: (first[s.transport], s.size, runs.index(s.run)))
    return out
