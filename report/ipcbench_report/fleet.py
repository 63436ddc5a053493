"""Several machines side by side (the fleet view): the runs grouped by machine, each cell
once per machine, and the fastest machine per cell.

Contract: ``build(runs, transports)`` returns a ``Fleet``, false (``bool``) when the
inputs come from fewer than two machines; ``ReportError`` when ``transports`` (the
``--fleet-transport`` names) is given and the inputs come from one machine, or names a
transport no two machines measured in one placement.

- A machine is the context's ``host_name`` and ``cpu_model`` together. A run whose
  context lacks either is a machine of its own, labelled by its file: runs of two
  machines are never pooled.
- Cells are set against each other only within one placement: the runs' ``pin_mode``
  and ``verify_payload``. Each placement that two or more machines ran is compared on
  its own; a placement only one machine ran is named, not compared.
- Runs of one machine are not pooled either: in each placement, each cell comes from the
  machine's latest run that has the cell (context ``date``; input order, the last file
  latest, when a run of that machine has no readable date). A machine measured in two
  files, say one per transport, shows the cells of both; a cell in both shows the later.
- A row is one cell (workload, transport, size and ipcbench's ``key:value`` parameters,
  or a machine floor) that two or more machines measured. Its figure is the median of
  the cell's primary metric (``Cell.primary``) over its repetitions. The fastest machine
  has the best median (lowest for a time, highest for a rate), every machine on a tie;
  none is marked when fewer than two machines have a figure, or when their cells' wait
  strategies (``wait=`` in the labels) differ.
- Latency-under-load cells (``rate/*``) are left out: a tail latency at an offered rate
  says which machine is faster only beside whether each carried that rate.

Nothing here formats text; ``layout`` does that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ipcbench_report import ReportError
from ipcbench_report.model import Cell, Run

LEFT_OUT = ("rate",)                       # workloads not compared across machines
PLOTTED = ("pingpong", "throughput")       # workloads of the per-transport plots
_KIND_ORDER = ("pingpong", "throughput", "clients", "fanout")
# Clock sources only a guest of a hypervisor has (Linux's names): the one sign of
# virtualisation the context carries. Others (tsc, arch_sys_counter) do not tell.
GUEST_CLOCKSOURCES = {"kvm-clock": "KVM", "xen": "Xen",
                      "hyperv_clocksource_tsc_page": "Hyper-V",
                      "hyperv_clocksource_msr": "Hyper-V"}
UNKNOWN = "unknown"


def _date(run: Run) -> datetime | None:
    text = run.context.get("date")
    if not isinstance(text, str):
        return None
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def latest_first(runs: list[Run], order: list[Run]) -> tuple[list[Run], bool]:
    """``runs`` latest first by context ``date`` (``order``, the inputs, breaks ties:
    the later file first), and whether the dates decided; when a run has no readable
    date, by input order alone, the last file first."""
    dates = [_date(r) for r in runs]
    if all(dates):
        return sorted(runs, key=lambda r: (_date(r), order.index(r)), reverse=True), True
    return sorted(runs, key=order.index, reverse=True), False


@dataclass
class Machine:
    label: str
    runs: list[Run]                   # latest first
    identified: bool                  # the context has host_name and cpu_model
    dated: bool                       # runs ordered by date (else by input order)

    def ctx(self, key: str) -> str:
        """The context value of ``key`` over the machine's runs, latest first, distinct
        values joined by " / "; ``unknown`` when no run has it."""
        values = dict.fromkeys(r.ctx(key) for r in self.runs if r.ctx(key) != "—")
        return " / ".join(values) or UNKNOWN

    @property
    def cpus(self) -> str:
        return self.ctx("cpus_online")

    @property
    def virtualised(self) -> str:
        """``yes (<hypervisor> guest: clocksource <name>)`` when the latest run's clock
        source is one only a guest has; otherwise ``unknown`` and why."""
        cs = self.runs[0].ctx("clocksource")
        if cs in GUEST_CLOCKSOURCES:
            return f"yes ({GUEST_CLOCKSOURCES[cs]} guest: clocksource {cs})"
        tell = f"; clocksource {cs} does not tell" if cs != "—" else ""
        return f"{UNKNOWN} (the context does not record it{tell})"


@dataclass
class Entry:
    """One machine's copy of a row's cell: the run it comes from, and the median of the
    row's metric (None when the cell failed in every repetition or lacks the metric)."""

    run: Run
    cell: Cell
    value: float | None
    cv: float | None


@dataclass
class Row:
    cell_id: str
    metric: str
    lower: bool                              # lower is better (a time)
    entries: list[Entry | None]              # per machine of the placement; None: absent
    fastest: list[int] = field(default_factory=list)   # indexes into entries
    # how many times the fastest machine's figure beats the slowest's (≥ 1)
    ratio: float | None = None
    waits: list[str] = field(default_factory=list)     # distinct waits, when they differ

    @property
    def figures(self) -> int:
        return sum(e is not None and e.value is not None for e in self.entries)


@dataclass
class Placement:
    pin_mode: str
    verify_payload: str
    machines: list[Machine]                  # that ran this placement, in machine order
    runs: list[list[Run]]                    # per machine: its runs here, latest first
    chosen: list[dict[str, tuple[Run, Cell]]]  # per machine: cell id -> latest copy
    rows: list[Row] = field(default_factory=list)
    alone: list[tuple[Machine, str]] = field(default_factory=list)  # one machine's cells
    left_out: int = 0                        # its ``LEFT_OUT`` cells (rate/*)

    @property
    def name(self) -> str:
        return f"pin={self.pin_mode}, verify_payload={self.verify_payload}"

    def transports(self) -> list[str]:
        """Transports with a ``PLOTTED`` row (two or more machines measured it), in row
        order."""
        return list(dict.fromkeys(r.cell_id.split("/")[1] for r in self.rows
                                  if r.cell_id.split("/")[0] in PLOTTED))

    def points(self, i: int, kind: str, transport: str, metric: str):
        """Machine ``i``'s sorted (size, median) of its successful ``kind/transport/size``
        cells here, and the sizes of those that failed in every repetition."""
        ok, failed = [], []
        for _, cell in self.chosen[i].values():
            if cell.kind != kind or cell.transport != transport or cell.size is None \
                    or cell.params:
                continue
            if not cell.ok:
                failed.append(cell.size)
            elif (v := cell.median(metric)) is not None:
                ok.append((cell.size, v))
        return sorted(ok), sorted(failed)


@dataclass
class Fleet:
    machines: list[Machine] = field(default_factory=list)     # in input order
    placements: list[Placement] = field(default_factory=list)
    plots: list[tuple[Placement, str]] = field(default_factory=list)  # (placement, transport)

    def __bool__(self) -> bool:
        return len(self.machines) >= 2

    def compared(self) -> list[Placement]:
        return [p for p in self.placements if len(p.machines) >= 2]

    @property
    def left_out(self) -> int:
        """``LEFT_OUT`` cells (rate/*) of the compared placements."""
        return sum(p.left_out for p in self.compared())

    def index(self, machine: Machine) -> int:
        return self.machines.index(machine)


def _machines(runs: list[Run]) -> list[Machine]:
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        host, cpu = r.ctx("host_name"), r.ctx("cpu_model")
        key = ("host", host, cpu) if "—" not in (host, cpu) else ("file", id(r))
        groups.setdefault(key, []).append(r)
    machines = []
    for key, rs in groups.items():
        ordered, dated = latest_first(rs, runs)
        machines.append(Machine("", ordered, key[0] == "host", dated))
    labels = [m.runs[0].ctx("host_name") if m.identified else m.runs[0].path.name
              for m in machines]
    if len(set(labels)) < len(labels):
        labels = [f"{label} ({m.runs[0].ctx('cpu_model')})"
                  if m.identified and labels.count(label) > 1 else label
                  for label, m in zip(labels, machines)]
    if len(set(labels)) < len(labels):
        labels = [f"{label} #{i + 1}" for i, label in enumerate(labels)]
    for m, label in zip(machines, labels):
        m.label = label
    return machines


def _sort_key(cell_id: str, transports: list[str]):
    parts = cell_id.split("/")
    kind = parts[0]
    floor = kind == "floor"
    t = transports.index(parts[1]) if not floor and parts[1] in transports else -1
    size = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else -1
    k = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    return (floor, t, k, kind, size, cell_id)


def _row(cell_id: str, copies: list[tuple[Run, Cell] | None]) -> Row:
    present = [c for c in copies if c is not None]
    ok = [cell for _, cell in present if cell.ok]
    metric, lower = (ok or [present[0][1]])[0].primary()
    entries = [None if c is None else
               Entry(c[0], c[1], c[1].median(metric) if c[1].ok else None,
                     c[1].cv(metric) if c[1].ok else None) for c in copies]
    row = Row(cell_id, metric, lower, entries)
    valued = [(i, e) for i, e in enumerate(entries) if e is not None and e.value is not None]
    if len(valued) < 2:
        return row
    waits = list(dict.fromkeys(e.cell.wait for _, e in valued if e.cell.wait))
    if len(waits) > 1:
        row.waits = waits
        return row
    values = [e.value for _, e in valued]
    best = min(values) if lower else max(values)
    worst = max(values) if lower else min(values)
    row.fastest = [i for i, e in valued if e.value == best]
    if lower and best > 0:
        row.ratio = worst / best
    elif not lower and worst > 0:
        row.ratio = best / worst
    return row


def _placement(key: tuple[str, str], machines: list[Machine], runs: list[Run],
               transports: list[str]) -> Placement:
    members, their_runs, chosen = [], [], []
    for m in machines:
        here = [r for r in m.runs if (r.pin_mode, r.ctx("verify_payload")) == key]
        if not here:
            continue
        here = latest_first(here, runs)[0]
        cells: dict[str, tuple[Run, Cell]] = {}
        for r in here:                               # latest first: first copy wins
            for cell in r.cells.values():
                cells.setdefault(cell.id, (r, cell))
        members.append(m)
        their_runs.append(here)
        chosen.append(cells)
    p = Placement(key[0], key[1], members, their_runs, chosen)
    ids = list(dict.fromkeys(cid for cells in chosen for cid in cells))
    for cid in sorted(ids, key=lambda c: _sort_key(c, transports)):
        copies = [cells.get(cid) for cells in chosen]
        if cid.split("/")[0] in LEFT_OUT:
            p.left_out += 1
        elif sum(c is not None for c in copies) >= 2:
            p.rows.append(_row(cid, copies))
        else:
            i = next(i for i, c in enumerate(copies) if c is not None)
            p.alone.append((members[i], cid))
    return p


def build(runs: list[Run], transports: list[str] | None = None) -> Fleet:
    """The fleet view of ``runs`` (see the module contract); ``transports`` chooses the
    transports plotted (default: every transport two machines measured in one
    placement, pingpong or throughput)."""
    machines = _machines(runs)
    if len(machines) < 2:
        if transports:
            raise ReportError(f"--fleet-transport: the inputs come from one machine "
                              f"({machines[0].label if machines else 'none'}); the fleet "
                              "view needs two or more (host_name and cpu_model of each "
                              "run's context tell machines apart)")
        return Fleet(machines)
    order = list(dict.fromkeys(t for r in runs for t in r.transports()))
    keys = list(dict.fromkeys((r.pin_mode, r.ctx("verify_payload")) for r in runs))
    fleet = Fleet(machines)
    fleet.placements = [_placement(key, machines, runs, order) for key in keys]
    compared = fleet.compared()
    plottable = list(dict.fromkeys(t for p in compared for t in p.transports()))
    for t in transports or []:
        if t not in plottable:
            raise ReportError(f"--fleet-transport {t}: no two machines measured it "
                              f"(pingpong or throughput cells) in one placement; those "
                              f"that did: {', '.join(plottable) or 'none'}")
    chosen = list(dict.fromkeys(transports)) if transports else plottable
    fleet.plots = [(p, t) for t in chosen for p in compared if t in p.transports()]
    return fleet
