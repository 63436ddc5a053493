"""Everything the report states, computed once from the runs: the comparison table,
the machine floors and multiples of them (of the floor probed beside each cell where the
cell has one, else of the run's floor/* cells), the local-performance rating against the
classic qualitative table, noise (CV) warnings, errors and comparability notes.

Nothing here formats text for a particular output; ``layout`` does that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ipcbench_report import ReportError
from ipcbench_report.fleet import Fleet, build as build_fleet
from ipcbench_report.many import Many, build as build_many
from ipcbench_report.model import FLOOR, FLOOR_RATIO, Cell, Run
from ipcbench_report.rate import Rate, build as build_rate

SMALL, PAGE, LARGE = 64, 4096, 1 << 20
CV_WARN = 0.10            # pyperf warns above 10 %


@dataclass(frozen=True)
class Column:
    """One measured column of the comparison table: ``counter`` of the ``kind``/``size``
    cell, shown as ``value * scale`` in ``unit``; ``floor`` names the multiple rule of the
    run-wide floors, ``beside`` the rule of the floor beside the cell (``FLOOR_RULES``),
    which takes precedence where the cell has one."""

    key: str
    title: str
    unit: str
    kind: str
    size: int
    counter: str
    scale: float = 1.0
    floor: str = ""
    beside: str = ""


BASE_COLUMNS = (
    Column("rtt50_64", "RTT p50 64 B", "µs", "pingpong", SMALL, "rtt_p50_ns", 1e-3, "rtt",
           "beside_ratio"),
    Column("rtt99_64", "RTT p99 64 B", "µs", "pingpong", SMALL, "rtt_p99_ns", 1e-3, "rtt",
           "beside_p99"),
    Column("rtt50_4k", "RTT p50 4 KiB", "µs", "pingpong", PAGE, "rtt_p50_ns", 1e-3, "rtt",
           "beside_ratio"),
    Column("rtt99_4k", "RTT p99 4 KiB", "µs", "pingpong", PAGE, "rtt_p99_ns", 1e-3, "rtt",
           "beside_p99"),
    Column("msgs_64", "throughput 64 B", "k msg/s", "throughput", SMALL, "items_per_second",
           1e-3, "syscall_time", "beside_ratio"),
    Column("gbps_1m", "throughput 1 MiB", "GB/s", "throughput", LARGE, "bytes_per_second",
           1e-9, "memcpy", "beside_ratio"),
)
# CPU cost per message, taken from the 64 B throughput cell (per-message overhead
# dominates there); shown only when some input has the counter.
CPU_COLUMNS = (
    Column("cpu_client", "client CPU/msg 64 B", "ns", "throughput", SMALL,
           "cpu_client_ns_per_msg", 1.0, "syscall"),
    Column("cpu_peer", "peer CPU/msg 64 B", "ns", "throughput", SMALL,
           "cpu_peer_ns_per_msg", 1.0, "syscall"),
    Column("ctxsw", "ctx switches/msg 64 B", "", "throughput", SMALL,
           "ctx_switches_per_msg"),
    # The daemon a link passes through, where the suite started it (the dbus bus daemon):
    # apart from the two processes'; empty for every other transport.
    Column("cpu_daemon", "daemon CPU/msg 64 B", "ns", "throughput", SMALL,
           "cpu_daemon_ns_per_msg"),
)

# How a (×N) is worked out, by rule. The "beside_*" rules (the floor probed beside the
# cell) apply where the cell carries one, the others (the run's floor/* cells) elsewhere.
FLOOR_RULES = {
    "beside_ratio": "the median of floor_ratio over the cell's repetitions, its cost ÷ the "
                    "cost of the floor probed just before and just after each repetition "
                    "on the cell's CPUs: RTT p50 ÷ the probe's p50 round trip (per-cell "
                    "pair_rtt, a spinning round trip over one cache line per direction, "
                    "for cells that may spin; per-cell futex_rtt, a futex-woken round "
                    "trip, for cells that block or whose two spinning sides would share a "
                    "CPU), or the probe's bytes/s ÷ the cell's (per-cell copy_stream, a "
                    "channel of two shared slots copying messages of the cell's size in "
                    "and out; one ratio for messages/s and GB/s, which a cell's "
                    "messages share)",
    "beside_p99": "the median of RTT p99 ÷ the median of floor (the mean of the probe "
                  "before and the probe after), both over the cell's repetitions",
    "rtt": "RTT ÷ p50 round trip of the floor that bounds the cell's hand-off: "
           "floor/futex_rtt for cells that block (wait=blocking), floor/cacheline_rtt for "
           "cells that spin (wait=spin), the lower of the two for the others "
           "(spin-then-futex can hand off either way)",
    "syscall_time": "time per message (1/msg/s) ÷ floor/syscall ns_per_call, for cells "
                    "that block (a spinning transport need not make a system call per "
                    "message, so the syscall floor does not bound it)",
    "memcpy": "floor/memcpy bytes/s (nearest size) ÷ measured bytes/s",
    "syscall": "CPU ns per message ÷ floor/syscall ns_per_call, for cells that block",
}

BESIDE_RULES = ("beside_ratio", "beside_p99")

# Round-trip floors that bound a cell, by its wait strategy (the lowest present is used);
# any other strategy (spin-then-futex, unknown) may use either hand-off.
RTT_FLOORS = {"blocking": ("futex_rtt",), "spin": ("cacheline_rtt",)}
ANY_RTT_FLOOR = ("futex_rtt", "cacheline_rtt")
# Floors shown for context (floors table, plots) but never a cell's multiple: the round
# trip over one line per direction (what any pair of one-way channels pays) here, and
# floor/shm_stream (bytes/s the placement's two CPUs move through shared memory), kept
# in Floors.shm_stream.
CONTEXT_RTT_FLOORS = ("cacheline_pair_rtt",)


@dataclass
class Floors:
    """Machine floors of one run (absent ones stay empty)."""

    rtt: dict[str, float] = field(default_factory=dict)      # floor name -> p50 ns
    syscall_ns: float | None = None
    memcpy: dict[int, float] = field(default_factory=dict)   # bytes -> bytes/s
    shm_stream: dict[int, float] = field(default_factory=dict)  # bytes -> bytes/s
    cells: list[tuple[Cell, str, float]] = field(default_factory=list)

    def multiple(self, rule: str, value: float, cell: Cell, size: int):
        """(cost ÷ floor cost, floor name), or (None, "") when the floor is absent or
        does not bound this cell (see ``FLOOR_RULES``)."""
        if rule == "rtt":
            names = [n for n in RTT_FLOORS.get(cell.wait, ANY_RTT_FLOOR) if n in self.rtt]
            if names:
                name = min(names, key=self.rtt.__getitem__)
                return value / self.rtt[name], f"floor/{name}"
        if rule in ("syscall_time", "syscall") and self.syscall_ns \
                and cell.wait == "blocking":
            cost = 1e9 / value if rule == "syscall_time" else value
            return cost / self.syscall_ns, "floor/syscall"
        if rule == "memcpy" and self.memcpy:
            near = min(self.memcpy, key=lambda s: abs(math.log(s / size)))
            return self.memcpy[near] / value, f"floor/memcpy/{near}"
        return None, ""


def floors_of(run: Run) -> Floors:
    f = Floors()
    for cell in run.floors():
        metric, _ = cell.primary()
        value = cell.median(metric)
        if value is None or value <= 0:
            continue
        f.cells.append((cell, metric, value))
        if cell.floor in ANY_RTT_FLOOR + CONTEXT_RTT_FLOORS and metric == "rtt_p50_ns":
            f.rtt[cell.floor] = value
        elif cell.floor == "syscall" and metric == "ns_per_call":
            f.syscall_ns = value
        elif cell.floor in ("memcpy", "shm_stream") and metric == "bytes_per_second" \
                and cell.size:
            getattr(f, cell.floor)[cell.size] = value
    return f


@dataclass
class Entry:
    """One table cell: median of the repetitions (``value``), or an error, or missing;
    ``multiple`` of the floor ``floor_name`` by the rule ``rule`` (``FLOOR_RULES``), or
    ``no_multiple``: why a cell with a floor beside it has none."""

    cell: Cell | None
    value: float | None = None
    cv: float | None = None
    multiple: float | None = None
    floor_name: str = ""
    rule: str = ""
    no_multiple: str = ""

    @property
    def error(self) -> str:
        return "; ".join(dict.fromkeys(self.cell.errors)) \
            if self.cell and not self.cell.ok else ""


@dataclass
class Row:
    run: Run
    transport: str
    wait: str                  # wait strategies of the transport's cells ("" unknown)
    entries: dict[str, Entry]


def _wait(run: Run, transport: str) -> str:
    """Wait strategies in the labels of the transport's cells (authoritative); failed
    cells carry no label, so then the run's ``ipcbench_transports`` entry."""
    waits = dict.fromkeys(c.wait for c in run.cells.values()
                          if c.transport == transport and c.wait)
    info = next((str(t["wait"]) for t in run.transports_info
                 if t.get("name") == transport and t.get("wait")), "")
    return ", ".join(waits) or info


# Why a cell with a floor beside it shows no (×N).
ALL_MARKED = ("the machine changed during every repetition (host_changed = 1), so no "
              "repetition is left to set against its floor")


def _beside(cell: Cell, col: Column) -> tuple[float | None, str]:
    """(multiple, why none) from the floor beside ``cell`` by ``FLOOR_RULES[col.beside]``;
    repetitions marked ``host_changed`` are left out of the medians."""
    if col.beside == "beside_p99":  # numerator and floor from the same repetitions
        floor, p99 = cell.median(FLOOR, unmarked=True), cell.median(col.counter, unmarked=True)
        return (p99 / floor, "") if floor and p99 is not None else (None, ALL_MARKED)
    ratio = cell.median(FLOOR_RATIO, unmarked=True)
    return (ratio, "") if ratio is not None else (None, ALL_MARKED)


def _entry(run: Run, floors: Floors, transport: str, col: Column) -> Entry:
    """The median of ``col.counter`` and its (×N): from the floor beside the cell where
    the cell has one (``Cell.has_floor_beside``), else from the run's floors."""
    cell = run.cell(col.kind, transport, col.size)
    if cell is None or not cell.ok:
        return Entry(cell)
    value = cell.median(col.counter)
    if value is None:
        return Entry(cell)
    cv = cell.cv(col.counter)
    if col.beside and cell.has_floor_beside and value > 0:
        multiple, why = _beside(cell, col)
        return Entry(cell, value, cv, multiple, f"per-cell {cell.floor_kind or 'floor'}",
                     col.beside, why)
    multiple, name = floors.multiple(col.floor, value, cell, col.size) \
        if col.floor and value > 0 else (None, "")
    return Entry(cell, value, cv, multiple, name, col.floor if name else "")


# --- local performance rating -------------------------------------------------------

# (workload, size, counter, lower_is_better) that the rating combines.
STAR_METRICS = (("pingpong", SMALL, "rtt_p50_ns", True),
                ("throughput", LARGE, "bytes_per_second", False))
STAR_RULE = (
    "Local performance (★ 1–5) is relative to the transports measured in the same run: "
    "for p50 RTT at 64 B and for throughput at 1 MiB, each transport scores "
    "log(x ÷ worst) ÷ log(best ÷ worst) (0 = worst measured, 1 = best; a metric counts "
    "only when at least two transports have distinct values); the scores are averaged "
    "and stars = 1 + round(4 × score). The scale is anchored to the best and worst "
    "transport measured here, so stars are compared with the classic ratings by order, "
    "not by count: a note appears where a transport with a lower classic rating rates "
    "higher here.")


@dataclass(frozen=True)
class Classic:
    """One column of the classic qualitative table (reference article, section VII.E) and
    the transport family (``family`` in the run's transport descriptions) filed under it."""

    title: str
    stars: int
    family: str


CLASSIC = (
    Classic("memory-mapped files / shared memory", 5, "shared memory"),
    Classic("pipes", 4, "pipes"),
    Classic("sockets", 3, "sockets"),
    Classic("RPC (gRPC in the article)", 3, "RPC"),
    Classic("message queues", 1, "message queues"),
)
CLASSIC_NOTE = ("Classic ratings: the 'Local Performance' row of the reference IPC "
                "comparison table; each transport is filed under the column of the family "
                "its description declares (family in ipcbench_transports: pipes → pipes, "
                "sockets → sockets, shared memory → memory-mapped files / shared memory, "
                "RPC → the article's gRPC, message queues → message queues). The article "
                "itself files UDS under 'Pipes (Named/UDS)'.")


def family_of(run: Run, transport: str) -> str:
    """The family the run's description of ``transport`` declares; ``""`` when it states
    none (result files written before the field existed)."""
    return next((str(t.get("family") or "") for t in run.transports_info
                 if t.get("name") == transport), "")


def classic_for(family: str) -> Classic | None:
    """The classic column of a transport family, ``None`` for none or an unknown one."""
    return next((c for c in CLASSIC if family and c.family == family), None)


def ratings(run: Run) -> dict[str, int | None]:
    """Stars per transport of one run per ``STAR_RULE`` (``None``: nothing to rank)."""
    scores: dict[str, list[float]] = {t: [] for t in run.transports()}
    for kind, size, counter, lower in STAR_METRICS:
        values = {}
        for t in scores:
            cell = run.cell(kind, t, size)
            v = cell.median(counter) if cell else None
            if v is not None and v > 0:
                values[t] = v
        if len(set(values.values())) < 2:
            continue
        best = min(values.values()) if lower else max(values.values())
        worst = max(values.values()) if lower else min(values.values())
        for t, v in values.items():
            scores[t].append(math.log(v / worst) / math.log(best / worst))
    return {t: 1 + math.floor(4 * sum(s) / len(s) + 0.5) if s else None
            for t, s in scores.items()}


def disagreements(run: Run, stars: dict[str, int | None]) -> list[str]:
    """Where the measured order contradicts the classic one (see ``STAR_RULE``)."""
    notes = []
    rated = [(t, s, c) for t, s in stars.items()
             if s and (c := classic_for(family_of(run, t)))]
    for t, s, c in rated:
        above = [f"{u} {stars_text(su)} ({cu.title}, classic {stars_text(cu.stars)})"
                 for u, su, cu in rated if cu.stars < c.stars and su > s]
        if above:
            notes.append(f"{run.label}: {t} rates {stars_text(s)} here, below "
                         f"{', '.join(above)}, although the classic table rates {c.title} "
                         f"higher ({stars_text(c.stars)}).")
    return notes


def classic_pairs(run: Run, stars: dict[str, int | None]) -> int:
    """Pairs of transports with local stars and classic ratings that differ: the pairs on
    which the measured order can agree or disagree with the classic one."""
    rated = [c.stars for t, s in stars.items() if s and (c := classic_for(family_of(run, t)))]
    return sum(a != b for i, a in enumerate(rated) for b in rated[i + 1:])


def stars_text(n: int) -> str:
    return "★" * n + "☆" * (5 - n)


# --- the whole report -----------------------------------------------------------------

@dataclass
class Layer:
    """One transport built on another of the same run (``built_on`` in its description),
    at one size: what the layer costs over the mechanism under it."""

    run: Run
    transport: str
    base: str
    size: int
    rtt: tuple[float | None, float | None]         # rtt_p50_ns: layer, base
    msgs: tuple[float | None, float | None]        # items_per_second: layer, base
    # Layer, base: the encoding each description names (``encoding`` in
    # ipcbench_transports; "" none, None when the description predates the field) and
    # its floor in ns per round trip (``ENCODING_FLOOR``; 0.0 for no encoding, None when
    # the description states none or the run has no such floor).
    encodings: tuple[str | None, str | None] = (None, None)
    encoding_ns: tuple[float | None, float | None] = (None, None)

    @property
    def rtt_ratio(self) -> float | None:
        a, b = self.rtt
        return a / b if a and b else None

    @property
    def extra_rtt(self) -> float | None:
        """The layer's p50 round trip minus its base's, in ns."""
        a, b = self.rtt
        return a - b if a is not None and b is not None else None

    @property
    def encoding_share(self) -> float | None:
        """(layer's encoding floor - base's) ÷ ``extra_rtt`` (``ENCODING_SHARE_RULE``);
        None when a floor is unknown or the layer is not slower than its base."""
        a, b = self.encoding_ns
        extra = self.extra_rtt
        if a is None or b is None or extra is None or extra <= 0:
            return None
        return (a - b) / extra

    @property
    def msgs_ratio(self) -> float | None:
        """How many times fewer messages per second the layer carries (base ÷ layer)."""
        a, b = self.msgs
        return b / a if a and b else None


LAYER_SIZES = (SMALL, 64 * 1024)

# The in-process floor of an encoding at a size: ns per round trip is its real_time.
ENCODING_FLOOR = "floor/encoding-{name}/{size}"
ENCODING_SHARE_RULE = (
    "encoding share = (the layer's encoding floor - its base's) ÷ (the layer's RTT p50 - "
    "the base's), in %: the part of the extra round trip that the codec work alone, timed "
    "in one process (floor/encoding-<name>/<bytes>, ns per round trip), accounts for. A "
    "transport that runs no codec of its own counts 0. Above 100 % the codecs alone cost "
    "more than the layer adds (it saves elsewhere, or a floor overstates the codec as the "
    "transport runs it); below 0 the layer's codec is the cheaper one.")


def encoding_of(run: Run, transport: str) -> str | None:
    """The encoding the run's description of ``transport`` names ("" none); None when
    the description has no ``encoding`` (written before ipcbench recorded it)."""
    d = next((t for t in run.transports_info if t.get("name") == transport), {})
    e = d.get("encoding")
    return None if e is None else str(e)


def encoding_floor_ns(run: Run, encoding: str | None, size: int) -> float | None:
    """ns per round trip of ``encoding`` at ``size`` in this run: 0.0 for none, None when
    unknown or the run has no successful floor for it."""
    if encoding is None:
        return None
    if encoding == "":
        return 0.0
    cell = run.cells.get(ENCODING_FLOOR.format(name=encoding, size=size))
    return cell.median("real_time_ns") if cell and cell.ok else None


# Family of the default base every other transport is set against: a socket is the local
# mechanism every architect knows.
RELATIVE_FAMILY = "sockets"
RELATIVE_DEFAULT_WHY = (f"the first transport of family {RELATIVE_FAMILY} in the run's "
                        "transport descriptions (ipcbench_transports, in the order of the "
                        "run's --transports, the registry's order by default; --relative-to "
                        "NAME chooses another)")
RELATIVE_CHOSEN_WHY = "chosen with --relative-to"


def layers(run: Run) -> list[Layer]:
    """Every transport of the run whose description names a base transport that the run
    also measured, at the layer sizes both have."""
    built_on = {str(t.get("name")): str(t.get("built_on") or "") for t in run.transports_info}
    return _pairs(run, [(t, built_on.get(t, "")) for t in run.transports()])


def relative_base(run: Run, chosen: str | None = None) -> str:
    """``chosen`` when given (the caller checked that the run measured it), else the first
    transport of family ``RELATIVE_FAMILY`` in the run's descriptions that the run
    measured; ``""`` when there is none (no such family, or no family stated)."""
    if chosen:
        return chosen
    measured = set(run.transports())
    return next((str(t["name"]) for t in run.transports_info
                 if t.get("family") == RELATIVE_FAMILY and t.get("name") in measured), "")


def relative(run: Run, base: str) -> list[Layer]:
    """Every other transport of the run against ``base`` (none when ``base`` is "")."""
    return _pairs(run, [(t, base) for t in run.transports() if base and t != base])


def _pairs(run: Run, pairs: list[tuple[str, str]]) -> list[Layer]:
    present = run.transports()
    out = []
    for t, base in pairs:
        if not base or base not in present:
            continue
        for size in LAYER_SIZES:
            def med(kind: str, name: str, counter: str) -> float | None:
                c = run.cell(kind, name, size)
                return c.median(counter) if c and c.ok else None
            rtt = (med("pingpong", t, "rtt_p50_ns"), med("pingpong", base, "rtt_p50_ns"))
            msgs = (med("throughput", t, "items_per_second"),
                    med("throughput", base, "items_per_second"))
            if any(v is not None for v in rtt + msgs):
                enc = (encoding_of(run, t), encoding_of(run, base))
                out.append(Layer(run, t, base, size, rtt, msgs, enc,
                                 (encoding_floor_ns(run, enc[0], size),
                                  encoding_floor_ns(run, enc[1], size))))
    return out


@dataclass
class Noise:
    run: Run
    cell: Cell
    metric: str
    cv: float


@dataclass
class ReportModel:
    runs: list[Run]
    columns: list[Column]
    rows: list[Row]
    floors: dict[str, Floors]                     # by run label
    stars: dict[str, dict[str, int | None]]       # run label -> transport -> stars
    disagreements: list[str]
    noise: list[Noise]
    errors: list[tuple[Run, Cell]]
    comparability: list[str]
    layers: list[Layer] = field(default_factory=list)
    relative: list[Layer] = field(default_factory=list)
    # run label -> pairs checked against the classic order (``classic_pairs``), for runs
    # without a disagreement note
    classic_agree: dict[str, int] = field(default_factory=dict)
    cells: int = 0                                # cells of all runs
    cv_cells: int = 0                             # ... whose primary metric has a CV
    # run label -> the transport its others are set against ("" none; ``relative_base``)
    relative_bases: dict[str, str] = field(default_factory=dict)
    relative_chosen: bool = False                 # the bases came from --relative-to
    # run label -> measured transports whose description states no family (not rated
    # against the classic table); runs where every transport has one are absent
    no_family: dict[str, list[str]] = field(default_factory=dict)
    # the many-clients and fan-out workloads (issue 23), grouped by N
    many: Many = field(default_factory=Many)
    # the latency-under-load workload (rate/*), by transport and size, with each run's
    # p99 budget
    rate: Rate = field(default_factory=Rate)
    # several machines side by side (issue 27); false when the inputs come from one
    fleet: Fleet = field(default_factory=Fleet)
    # cells with a repetition marked host_changed (the machine changed during it)
    marked: list[tuple[Run, Cell]] = field(default_factory=list)
    # the plots over message size draw × the floor beside each cell (render --normalized)
    normalized: bool = False

    def transports(self) -> list[str]:
        return list(dict.fromkeys(t for r in self.runs for t in r.transports()))

    def family(self, transport: str) -> str:
        """The family the first run that describes ``transport`` with one declares."""
        return next((f for r in self.runs if (f := family_of(r, transport))), "")

    def waits(self, transport: str | None = None) -> list[str]:
        """Distinct wait strategies of one transport's rows (or of all rows)."""
        return list(dict.fromkeys(w for row in self.rows
                                  if transport in (None, row.transport)
                                  for w in row.wait.split(", ") if w))


def _comparability(runs: list[Run]) -> list[str]:
    notes = []
    for key, what in (("pin_mode", "CPU placement"), ("wait_strategy", "wait strategy"),
                      ("host_name", "machine"), ("verify_payload", "payload checking")):
        values = {r.ctx(key) for r in runs}
        if len(values) > 1:
            notes.append(f"The inputs differ in {what} ({key}: {', '.join(sorted(values))}); "
                         "rows and series are labelled by run — do not read differences "
                         "between them as differences between transports.")
    return notes


def build(runs: list[Run], relative_to: str | None = None,
          slo_p99_ns: float | None = None,
          fleet_transports: list[str] | None = None,
          normalized: bool = False) -> ReportModel:
    """Compute the report model for one or more runs; ``relative_to`` names the transport
    every other is set against (default: ``relative_base``), ``slo_p99_ns`` the p99
    budget of the sustainable rate (default: each run's context, see ``rate.budget_of``),
    ``fleet_transports`` the transports of the fleet plots (default: see ``fleet.build``),
    ``normalized`` that the plots over message size draw × the floor beside each cell.
    ``ReportError`` when an input did not measure ``relative_to``, states a budget that
    is not a positive whole number of ns (and ``slo_p99_ns`` is not given),
    ``fleet_transports`` cannot be plotted (``fleet.build``), or ``normalized`` is asked
    of inputs none of whose pingpong or throughput cells has a floor beside it."""
    for r in runs:
        if relative_to and relative_to not in r.transports():
            raise ReportError(f"--relative-to {relative_to}: {r.path} measured no transport "
                              f"'{relative_to}' (it has {', '.join(r.transports()) or 'none'})")
    if normalized and not any(c.has_floor_beside for r in runs for c in r.cells.values()
                              if c.kind in ("pingpong", "throughput")):
        raise ReportError("--normalized: no pingpong or throughput cell of "
                          f"{', '.join(str(r.path) for r in runs)} carries floor_ratio (the "
                          "floor probed beside each cell; results written before ipcbench "
                          "probed it, or of a split run, have none)")
    bases = {r.label: relative_base(r, relative_to) for r in runs}
    floors = {r.label: floors_of(r) for r in runs}
    have = {k for r in runs for c in r.cells.values() for k in c.counters()}
    columns = list(BASE_COLUMNS) + [c for c in CPU_COLUMNS if c.counter in have]
    order = list(dict.fromkeys(t for r in runs for t in r.transports()))
    rows = [Row(r, t, _wait(r, t), {c.key: _entry(r, floors[r.label], t, c)
                                    for c in columns})
            for t in order for r in runs if t in r.transports()]     # grouped by transport
    stars = {r.label: ratings(r) for r in runs}
    by_run = {r.label: disagreements(r, stars[r.label]) for r in runs}
    notes = [n for r in runs for n in by_run[r.label]]
    noise, cv_cells = [], 0
    for r in runs:
        for c in r.cells.values():
            metric, _ = c.primary()
            cv = c.cv(metric)
            cv_cells += cv is not None
            if cv is not None and cv > CV_WARN:
                noise.append(Noise(r, c, metric, cv))
    errors = [(r, c) for r in runs for c in r.cells.values() if c.errors]
    model = ReportModel(runs, columns, rows, floors, stars, notes, noise, errors,
                        _comparability(runs), [x for r in runs for x in layers(r)],
                        [x for r in runs for x in relative(r, bases[r.label])],
                        {r.label: classic_pairs(r, stars[r.label]) for r in runs
                         if not by_run[r.label]},
                        sum(len(r.cells) for r in runs), cv_cells, bases, bool(relative_to),
                        {r.label: missing for r in runs
                         if (missing := [t for t in r.transports() if not family_of(r, t)])},
                        build_many(runs), build_rate(runs, slo_p99_ns),
                        build_fleet(runs, fleet_transports),
                        [(r, c) for r in runs for c in r.cells.values() if c.marked()],
                        normalized)
    waits = sorted(model.waits())
    if len(waits) > 1:
        model.comparability.append(
            f"The transports differ in wait strategy ({', '.join(waits)}; see the wait "
            "column): spinning burns a CPU per side and blocking pays for wake-ups, so "
            "part of each difference is the wait strategy, not the mechanism.")
    return model
