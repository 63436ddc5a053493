"""``ReportModel`` -> PNG plots (matplotlib, Agg, no pyplot state).

Contract: ``render(model, outdir)`` writes the plots over message size into ``outdir``
and returns (path, caption) pairs; ``ranking(model, outdir)`` writes the picture that
ranks the transports (horizontal bars, best on top) and returns its (path, caption).
``FILES`` names all of them; ``trend(points, …)`` draws one cell over the runs of the
history (``history.trend``). One series per (run, transport): colour = transport, line
style = run; the legend names each transport once and each run once. Failed cells are
drawn as × on the bottom edge (named under the panel in the ranking), floors as grey
dashed lines (one shade per run). With ``model.normalized`` (render --normalized) the
round trip and throughput over message size are drawn × the floor beside each cell
instead, the floor itself (× 1) as a grey dashed line. ``fleet(model, outdir)`` draws
the fleet view's plots (``FLEET_FILE``, one per placement and transport): one line per
machine, colour = machine.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib import colormaps  # noqa: E402  (after choosing the backend)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator  # noqa: E402

from ipcbench_report.compute import SMALL, ReportModel  # noqa: E402
from ipcbench_report.many import CLIENTS, FANOUT, Workload  # noqa: E402
from ipcbench_report.layout import fmt, fmt_size  # noqa: E402
from ipcbench_report.model import FLOOR_RATIO  # noqa: E402
from ipcbench_report.outdir import atomic_file  # noqa: E402
from ipcbench_report import rate as rate_mod  # noqa: E402

# 15 distinguishable colours: tab10, then the dark shades of tab20b.
_PALETTE = [*colormaps["tab10"].colors, *colormaps["tab20b"].colors[::4]]
_RUN_STYLES = ["-", ":", "-.", (0, (3, 1, 1, 1, 1, 1))]
_FLOOR_GREYS = ["#333333", "#777777", "#aaaaaa", "#cccccc"]     # one shade per run
_RTT_FLOOR_DASHES = {"cacheline_rtt": (0, (6, 3)), "cacheline_pair_rtt": (0, (6, 1, 1, 1)),
                     "futex_rtt": (0, (2, 2))}
_BANDWIDTH_FLOOR_DASHES = {"memcpy": "--", "shm_stream": (0, (1, 1))}
_SPECTRUM = [("p50", "rtt_p50_ns"), ("p90", "rtt_p90_ns"), ("p99", "rtt_p99_ns"),
             ("p99.9", "rtt_p999_ns"), ("max", "rtt_max_ns")]
FILES = ("rtt_vs_size.png", "throughput_vs_size.png", "rtt_spectrum_64B.png", "ranking.png")
# Drawn only when the inputs have cells of the many-clients / fan-out workloads.
MANY_FILES = {"clients": "clients_vs_n.png", "fanout": "fanout_vs_n.png"}
RANK_RTT_SIZE, RANK_THROUGHPUT_SIZE = SMALL, 64 * 1024
_ERROR_PROXY = Line2D([], [], marker="x", ls="", color="#444444", markersize=8,
                      label="× failed cell (see Errors)")


class _Series:
    """Colour and line style of each (run, transport) series, and the legend entries
    that explain them."""

    def __init__(self, model: ReportModel):
        self.model = model
        self.colours = {t: _PALETTE[i % len(_PALETTE)]
                        for i, t in enumerate(model.transports())}

    def __iter__(self):
        for row in self.model.rows:
            i = self.model.runs.index(row.run)
            yield row.run, row.transport, dict(color=self.colours[row.transport],
                                               ls=_RUN_STYLES[i % len(_RUN_STYLES)])

    def handles(self) -> list[Line2D]:
        """One entry per transport (with its wait strategy when the transports differ
        in it), then one per run when there are several."""
        show_wait = len(self.model.waits()) > 1
        out = [Line2D([], [], color=c, marker="o", label=t + (
                   f" ({', '.join(self.model.waits(t))})"
                   if show_wait and self.model.waits(t) else ""))
               for t, c in self.colours.items()]
        if len(self.model.runs) > 1:
            out += [Line2D([], [], color="#444444", ls=_RUN_STYLES[i % len(_RUN_STYLES)],
                           label=r.label) for i, r in enumerate(self.model.runs)]
        return out


def _tick(x: float, _pos) -> str:
    """Plain tick labels; k/M/G from 100 000 on."""
    if x >= 1e5:
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if x >= div:
                return f"{x / div:g}{suffix}"
    return f"{x:g}"


def _subtitle(model: ReportModel) -> str:
    pins = ", ".join(dict.fromkeys(f"pin={r.pin_mode}" for r in model.runs))
    waits = ", ".join(model.waits()) or "—"
    return f"{pins}; wait: {waits}"


def _points(run, kind, transport, counter, scale):
    """Sorted (size, value) of successful cells and sizes of failed ones; the value is
    the median of ``counter``, for ``floor_ratio`` over the repetitions not marked
    host_changed (a cell with none left, or without the counter, is left out)."""
    ok, failed = [], []
    for c in run.cells.values():
        if c.kind != kind or c.transport != transport or c.size is None:
            continue
        value = c.median(counter, unmarked=counter == FLOOR_RATIO)
        if not c.ok:
            failed.append(c.size)
        elif value is not None:
            ok.append((c.size, value * scale))
    return sorted(ok), failed


def _size_axis(ax, sizes):
    ax.set_xscale("log", base=2)
    if sizes:
        ticks = sorted(set(sizes))
        ax.set_xticks(ticks, [fmt_size(s) for s in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("message size (header included)")
    ax.grid(True, which="major", alpha=0.3)


def _mark_failed(ax, sizes, style) -> bool:
    """× on the bottom edge, in the transport's colour, at each failed size."""
    if sizes:
        ax.plot(sizes, [0.03] * len(sizes), marker="x", ls="", markersize=9,
                color=style["color"], transform=ax.get_xaxis_transform(), clip_on=False)
    return bool(sizes)


def _finish(ax, any_data: bool):
    if any_data:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(_tick))
        ax.yaxis.set_minor_locator(NullLocator())
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no successful cells", transform=ax.transAxes, ha="center")


def _legend(target, series: _Series, axes, failed: bool):
    """Transports and runs, then the floors drawn on ``axes``, then the failure mark:
    right of ``target`` (an axes, or the figure when panels share one legend)."""
    handles = series.handles() + [h for ax in axes
                                  for h in ax.get_legend_handles_labels()[0]]
    if failed:
        handles.append(_ERROR_PROXY)
    target.legend(handles=handles, loc="center left", fontsize=8,
                  bbox_to_anchor=(1.01, 0.5) if target in axes else (1.0, 0.5))


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _rtt_floor_lines(ax, model, scale, vertical=False):
    for i, r in enumerate(model.runs):
        for name, ns in model.floors[r.label].rtt.items():
            suffix = f" ({r.label})" if len(model.runs) > 1 else ""
            line = ax.axvline if vertical else ax.axhline
            line(ns * scale, ls=_RTT_FLOOR_DASHES[name], lw=1.2,
                       color=_FLOOR_GREYS[i % len(_FLOOR_GREYS)],
                       label=f"floor/{name}{suffix}")


# Axis labels of the plots over message size drawn ``× floor`` (render --normalized).
NORMALIZED_RTT_LABEL = ("round trip p50 × floor (median floor_ratio; repetitions marked "
                        "host_changed left out)")
NORMALIZED_THROUGHPUT_LABEL = ("throughput × floor (floor bytes/s ÷ cell bytes/s: median "
                               "floor_ratio; repetitions marked host_changed left out)")


def _unit_floor(ax):
    """The floor itself (× 1) as a grey dashed line."""
    ax.axhline(1.0, ls="--", lw=1.2, color=_FLOOR_GREYS[0],
               label="×1 = the floor probed beside the cell")


def _rtt_vs_size(model, outdir) -> Path:
    """Round trip p50 with a band up to p99 against message size, or (``normalized``)
    the p50 × the floor beside each cell."""
    fig = Figure(figsize=(10, 5.5))
    ax = fig.add_subplot()
    series = _Series(model)
    sizes, any_data, failed = [], False, False
    for run, t, style in series:
        if model.normalized:
            p50, bad = _points(run, "pingpong", t, FLOOR_RATIO, 1.0)
        else:
            p50, bad = _points(run, "pingpong", t, "rtt_p50_ns", 1e-3)
            p99 = dict(_points(run, "pingpong", t, "rtt_p99_ns", 1e-3)[0])
        failed |= _mark_failed(ax, bad, style)
        sizes += [s for s, _ in p50] + bad
        if p50:
            any_data = True
            xs, ys = zip(*p50)
            ax.plot(xs, ys, marker="o", **style)
            if not model.normalized:
                tail = [p99.get(x, y) for x, y in p50]
                ax.plot(xs, tail, lw=0.8, alpha=0.5, **style)
                ax.fill_between(xs, ys, tail, alpha=0.08, color=style["color"], lw=0)
    if model.normalized:
        _unit_floor(ax)
        ax.set_ylabel(NORMALIZED_RTT_LABEL)
        ax.set_title(f"Round trip × floor vs message size — {_subtitle(model)}",
                     fontsize=10)
    else:
        _rtt_floor_lines(ax, model, 1e-3)
        ax.set_ylabel("round-trip time, µs (line p50, band up to p99)")
        ax.set_title(f"Round trip vs message size — {_subtitle(model)}", fontsize=10)
    _size_axis(ax, sizes)
    _finish(ax, any_data)
    _legend(ax, series, [ax], failed)
    return _save(fig, outdir / FILES[0])


def _throughput_floors(ax, model, counter, scale):
    for i, r in enumerate(model.runs):
        f = model.floors[r.label]
        suffix = f" ({r.label})" if len(model.runs) > 1 else ""
        grey = _FLOOR_GREYS[i % len(_FLOOR_GREYS)]
        for name, dash in _BANDWIDTH_FLOOR_DASHES.items():
            by_size = getattr(f, name)
            if counter != "bytes_per_second" or not by_size:
                continue
            xs = sorted(by_size)
            ys = [by_size[x] * scale for x in xs]
            if len(xs) == 1:
                ax.axhline(ys[0], ls=dash, color=grey, label=f"floor/{name}{suffix}")
            else:
                ax.plot(xs, ys, ls=dash, color=grey, label=f"floor/{name}{suffix}")
        if counter == "items_per_second" and f.syscall_ns:
            ax.axhline(1e9 / f.syscall_ns, ls="--", color=grey,
                       label=f"1 floor/syscall per message{suffix}")


def _throughput(model, outdir) -> Path:
    """GB/s and messages/s against message size, or (``normalized``) one panel of the
    throughput × the floor beside each cell (one ratio for both: a cell's messages share
    it)."""
    panels = (((FLOOR_RATIO, 1.0, NORMALIZED_THROUGHPUT_LABEL),) if model.normalized else
              (("bytes_per_second", 1e-9, "throughput, GB/s (one way)"),
               ("items_per_second", 1.0, "messages/s (one way)")))
    fig = Figure(figsize=(10 if model.normalized else 14, 5.5))  # one panel, or two
    axes = list(fig.subplots(1, len(panels), squeeze=False)[0])
    series = _Series(model)
    failed = False
    for ax, (counter, scale, ylabel) in zip(axes, panels):
        sizes, any_data = [], False
        for run, t, style in series:
            pts, bad = _points(run, "throughput", t, counter, scale)
            failed |= _mark_failed(ax, bad, style)
            sizes += [s for s, _ in pts] + bad
            if pts:
                any_data = True
                ax.plot(*zip(*pts), marker="o", **style)
        if model.normalized:
            _unit_floor(ax)
        else:
            _throughput_floors(ax, model, counter, scale)
        _size_axis(ax, sizes)
        ax.set_ylabel(ylabel)
        _finish(ax, any_data)
    fig.suptitle(f"Throughput {'× floor ' if model.normalized else ''}vs message size — "
                 f"{_subtitle(model)}", fontsize=10)
    fig.tight_layout()
    _legend(fig, series, axes, failed)
    return _save(fig, outdir / FILES[1])


def _spectrum(model, outdir) -> Path:
    fig = Figure(figsize=(10, 5.5))
    ax = fig.add_subplot()
    series = _Series(model)
    any_data, failed_names = False, []
    for run, t, style in series:
        cell = run.cell("pingpong", t, SMALL)
        if cell is None:
            continue
        if not cell.ok:
            failed_names.append(t + (f" ({run.label})" if len(model.runs) > 1 else ""))
            continue
        pts = [(i, cell.median(k) * 1e-3) for i, (_, k) in enumerate(_SPECTRUM)
               if cell.median(k) is not None]
        if pts:
            any_data = True
            ax.plot(*zip(*pts), marker="o", **style)
    _rtt_floor_lines(ax, model, 1e-3)
    ax.set_xticks(range(len(_SPECTRUM)), [name for name, _ in _SPECTRUM])
    ax.set_xlabel("percentile of round trips (median over repetitions)")
    ax.set_ylabel("round-trip time, µs")
    ax.grid(True, alpha=0.3)
    if failed_names:
        ax.text(0.01, 0.02, "× failed at 64 B: " + ", ".join(failed_names),
                transform=ax.transAxes, color="#a00000", fontsize=8)
    ax.set_title(f"Round-trip percentile spectrum at {fmt_size(SMALL)} — "
                 f"{_subtitle(model)}", fontsize=10)
    _finish(ax, any_data)
    _legend(ax, series, [ax], False)
    return _save(fig, outdir / FILES[2])


def _nearest(sizes, want: int) -> int | None:
    """The measured size closest to ``want`` (on a log scale; the larger on a tie)."""
    return min(sorted(set(sizes), reverse=True),
               key=lambda s: abs(math.log(s / want)), default=None)


def _rank_panel(ax, model, series, kind, counter, scale, want, lower):
    """Horizontal bars of ``counter`` at the size nearest ``want``, best on top; failed
    cells named under the bars. Returns the size shown (None: nothing measured)."""
    multi = len(model.runs) > 1
    size = _nearest([c.size for r in model.runs for c in r.cells.values()
                     if c.kind == kind and c.size], want)
    bars, failed = [], []
    for run, t, style in series:
        cell = run.cell(kind, t, size) if size else None
        name = t + (f" #{model.runs.index(run) + 1}" if multi else "")
        if cell is not None and not cell.ok:
            failed.append(name)
        elif cell is not None and cell.median(counter):
            bars.append((cell.median(counter) * scale, name, style["color"]))
    bars.sort(key=lambda b: b[0], reverse=not lower)
    if not bars:
        ax.set_yticks([])
        ax.set_xticks([])
        ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center")
        return size
    ys = range(len(bars))
    ax.barh(ys, [b[0] for b in bars], color=[b[2] for b in bars], height=0.7)
    ax.set_yticks(ys, [b[1] for b in bars])
    ax.invert_yaxis()                       # best on top
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_tick))
    ax.grid(True, axis="x", which="major", alpha=0.3)
    for y, (v, _, _) in zip(ys, bars):
        ax.annotate(fmt(v), (v, y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8,     # readable across a floor line
                    bbox=dict(fc="white", ec="none", pad=0.3, alpha=0.8))
    if failed:
        ax.text(0.5, -0.13, "× failed: " + ", ".join(failed), transform=ax.transAxes,
                ha="center", va="top", color="#a00000", fontsize=9)
    return size


def _ranking(model, outdir) -> Path:
    series = _Series(model)
    n = max(1, len(model.rows))
    fig = Figure(figsize=(12, 1.6 + 0.32 * n))
    rtt_ax, thr_ax = fig.subplots(1, 2)
    rtt_ax.set_xlabel("round-trip time p50, µs (log scale; shorter is better)")
    thr_ax.set_xlabel("throughput, GB/s one way (log scale; longer is better)")
    rtt_size = _rank_panel(rtt_ax, model, series, "pingpong", "rtt_p50_ns", 1e-3,
                           RANK_RTT_SIZE, True)
    thr_size = _rank_panel(thr_ax, model, series, "throughput", "bytes_per_second", 1e-9,
                           RANK_THROUGHPUT_SIZE, False)
    rtt_ax.set_title(f"Round trip at {fmt_size(rtt_size)}", fontsize=10)
    thr_ax.set_title(f"Throughput at {fmt_size(thr_size)}", fontsize=10)
    if rtt_ax.has_data():
        _rtt_floor_lines(rtt_ax, model, 1e-3, vertical=True)
    if thr_ax.has_data() and thr_size:
        for i, r in enumerate(model.runs):
            f = model.floors[r.label]
            suffix = f" ({r.label})" if len(model.runs) > 1 else ""
            for name, dash in _BANDWIDTH_FLOOR_DASHES.items():
                value = getattr(f, name).get(thr_size)
                if value:
                    thr_ax.axvline(value * 1e-9, ls=dash, lw=1.2,
                                   color=_FLOOR_GREYS[i % len(_FLOOR_GREYS)],
                                   label=f"floor/{name}/{thr_size}{suffix}")
    for ax in (rtt_ax, thr_ax):
        xs = [p.get_width() for p in ax.patches] + [
            line.get_xdata()[0] for line in ax.get_lines()]
        if xs:
            ax.set_xlim(min(xs) / 2, max(xs) * 3)   # room for value labels and floors
        if ax.get_legend_handles_labels()[0]:
            # Under the axes, where no bar or value label can be hidden by it.
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=8,
                      title="machine floors", title_fontsize=8, frameon=False)
    runs = "; ".join(f"#{i + 1} = {r.label}" for i, r in enumerate(model.runs)) \
        if len(model.runs) > 1 else ""
    fig.suptitle(f"Transports ranked, best on top — {_subtitle(model)}"
                 + (f"\nruns: {runs}" if runs else ""), fontsize=10)
    fig.tight_layout()
    return _save(fig, outdir / FILES[3])


def ranking(model: ReportModel, outdir: Path) -> tuple[Path, str]:
    """Write the ranking picture into ``outdir``; return (path, caption)."""
    return (_ranking(model, outdir),
            "Transports ranked by round-trip time p50 at 64 B and by one-way throughput "
            "at 64 KiB (or the measured sizes nearest them, as the panel titles say): "
            "medians, log scale, best on top; grey lines are the machine floors where "
            "the run measured them")


NORMALIZED_CAPTION = ("{} × floor vs message size (render --normalized): the median of "
                      "floor_ratio, the cost ÷ the cost of the floor probed beside the "
                      "cell, over the repetitions not marked host_changed; 1 = the floor "
                      "itself (log-log). Cells without a floor beside them, or whose every "
                      "repetition was marked, are left out")


def render(model: ReportModel, outdir: Path) -> list[tuple[Path, str]]:
    """Write the detail plots into ``outdir``; return (path, caption) pairs (the
    ranking picture is ``ranking``). With ``model.normalized`` the plots over message
    size draw × the floor beside each cell."""
    return [
        (_rtt_vs_size(model, outdir),
         NORMALIZED_CAPTION.format("Round-trip time p50") if model.normalized
         else "Round-trip time p50 vs message size (log-log); shaded band up to p99"),
        (_throughput(model, outdir),
         NORMALIZED_CAPTION.format("One-way throughput") if model.normalized
         else "One-way throughput vs message size, in GB/s and in messages/s"),
        (_spectrum(model, outdir),
         f"Round-trip percentiles (p50 … max) at {fmt_size(SMALL)}"),
    ]


# --- many clients and fan-out (issue 23) ----------------------------------------------

_OVERSUB = Line2D([], [], marker="o", ls="", markersize=11, markerfacecolor="none",
                  markeredgecolor="#c00000", label="oversubscribed (more busy processes "
                  "than CPUs)")


def _n_axis(ax, ns, what):
    ax.set_xscale("log", base=2)
    if ns:
        ticks = sorted(set(ns))
        ax.set_xticks(ticks, [str(n) for n in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(f"number of {what}")
    ax.grid(True, which="major", alpha=0.3)


def _many_figure(model: ReportModel, outdir: Path, w: Workload, panels, what: str,
                 title: str) -> Path:
    """One figure of ``w`` at its plot size: a panel per (metric, scale, ylabel); one
    line per series (colour = transport and server model, line style = run)."""
    size = model.many.plot_size(w)
    series = [s for s in model.many.of(w) if s.size == size]
    keys = list(dict.fromkeys((s.transport, s.server) for s in series))
    colours = {k: _PALETTE[i % len(_PALETTE)] for i, k in enumerate(keys)}
    fig = Figure(figsize=(14, 5.5))
    axes = list(fig.subplots(1, len(panels)))
    flags = {"failed": False, "oversub": False}
    for ax, (metric, scale, ylabel) in zip(axes, panels):
        ns, any_data = [], False
        for s in series:
            style = dict(color=colours[(s.transport, s.server)],
                         ls=_RUN_STYLES[model.runs.index(s.run) % len(_RUN_STYLES)])
            pts = [(n, v * scale) for n, v in s.values(metric)]
            bad = [n for n, _ in s.failed]
            flags["failed"] |= _mark_failed(ax, bad, style)
            ns += [n for n, _ in pts] + bad
            if pts:
                any_data = True
                ax.plot(*zip(*pts), marker="o", **style)
                hot = [(n, v * scale) for n, c in s.points if c.oversubscribed
                       and (v := c.median(metric)) is not None]
                if hot:
                    flags["oversub"] = True
                    ax.plot(*zip(*hot), marker="o", ls="", markersize=11,
                            markerfacecolor="none", markeredgecolor="#c00000")
        _n_axis(ax, ns, what)
        ax.set_ylabel(ylabel)
        _finish(ax, any_data)
    handles = [Line2D([], [], color=colours[k], marker="o",
                      label=k[0] + (f" (server {k[1]})" if k[1] else "")) for k in keys]
    if len(model.runs) > 1:
        handles += [Line2D([], [], color="#444444", ls=_RUN_STYLES[i % len(_RUN_STYLES)],
                           label=r.label) for i, r in enumerate(model.runs)]
    if flags["oversub"]:
        handles.append(_OVERSUB)
    if flags["failed"]:
        handles.append(_ERROR_PROXY)
    fig.suptitle(f"{title} at {fmt_size(size)} — {_subtitle(model)}", fontsize=10)
    fig.tight_layout()
    fig.legend(handles=handles, loc="center left", fontsize=8, bbox_to_anchor=(1.0, 0.5))
    return _save(fig, outdir / MANY_FILES[w.kind])


def many(model: ReportModel, outdir: Path) -> dict[str, tuple[Path, str]]:
    """Write the plots over N of the workloads the inputs measured (none, one or both)
    into ``outdir``; return {workload: (path, caption)}."""
    out = {}
    if model.many.of(CLIENTS):
        size = fmt_size(model.many.plot_size(CLIENTS))
        out["clients"] = (_many_figure(
            model, outdir, CLIENTS,
            (("rtt_per_s", 1.0, "round trips/s, all clients together"),
             ("rtt_p99_ns", 1e-3, "round-trip time p99, µs (all clients' round trips)")),
            "clients", "Many clients: aggregate round trips/s and p99 vs clients"),
            f"Aggregate round trips per second and round-trip p99 against the number of "
            f"clients at {size}, one line per transport and server model (medians of the "
            f"repetitions; log scales)")
    if model.many.of(FANOUT):
        size = fmt_size(model.many.plot_size(FANOUT))
        out["fanout"] = (_many_figure(
            model, outdir, FANOUT,
            (("delivered_per_s", 1.0, "deliveries/s, all subscribers together"),
             ("slowest_subscriber_p99_ns", 1e-3,
              "slowest subscriber's one-way p99, µs")),
            "subscribers", "Fan-out: delivery rate and slowest subscriber vs subscribers"),
            f"Fan-out delivery rate (all subscribers together) and the slowest "
            f"subscriber's one-way p99 against the number of subscribers at {size}, one "
            f"line per transport (medians of the repetitions; log scales)")
    return out


# --- latency under load (rate/*) ------------------------------------------------------

RATE_FILE = "rate_latency_{size}B.png"       # one per message size with rate cells
RATE_PATTERN = "rate_latency_*B.png"
_RATE_PCTS = (("p50", "50", ":"), ("p99", "99", "-"), ("p99.9", "999", "--"))
_RUN_MARKERS = ["o", "s", "^", "D"]
_SATURATED = Line2D([], [], marker="o", ls="", markersize=8, markerfacecolor="white",
                    markeredgecolor="#444444", label="hollow: saturated (achieved < 95 % "
                    "of scheduled): not a latency at that rate")
_SHARED = Line2D([], [], marker="s", ls="", markersize=13, markerfacecolor="none",
                 markeredgecolor="#c00000", label="red square: shared CPU (a busy "
                 "thread shares a CPU with another)")


def _rate_curve(ax, s, metric, style, marker, flags) -> bool:
    """One line of ``metric`` (µs) over the offered rate; saturated points hollow,
    shared-CPU points boxed in red. Returns whether anything was drawn."""
    pts = [(p.offered, v * 1e-3, p) for p in s.points
           if (v := p.median(metric)) is not None and p.offered > 0]
    if not pts:
        return False
    ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], marker=marker, **style)
    hollow = [(x, y) for x, y, p in pts if p.saturated]
    if hollow:
        flags["saturated"] = True
        ax.plot(*zip(*hollow), marker=marker, ls="", markersize=8,
                markerfacecolor="white", markeredgecolor=style["color"], zorder=3)
    shared = [(x, y) for x, y, p in pts if p.shared_cpu]
    if shared:
        flags["shared"] = True
        ax.plot(*zip(*shared), marker="s", ls="", markersize=13, markerfacecolor="none",
                markeredgecolor="#c00000", zorder=3)
    return True


def _rate_axes(ax, any_data):
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_tick))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("offered rate, messages/s (log scale)")
    ax.grid(True, which="major", alpha=0.3)
    _finish(ax, any_data)


def _rate_figure(model: ReportModel, outdir: Path, size: int) -> tuple[Path, str]:
    """Left: corrected p50/p99/p99.9 of every transport at ``size``; right: corrected
    against uncorrected p99 of the first transport by name."""
    series = [s for s in model.rate.series if s.size == size]
    names = model.rate.transports(size)
    colours = {t: _PALETTE[i % len(_PALETTE)] for i, t in enumerate(model.transports())}
    fig = Figure(figsize=(14, 5.5))
    left, right = fig.subplots(1, 2)
    flags = {"saturated": False, "shared": False}
    multi = len(model.runs) > 1
    any_data = False
    for s in series:
        marker = _RUN_MARKERS[model.runs.index(s.run) % len(_RUN_MARKERS)]
        for _, pct, ls in _RATE_PCTS:
            any_data |= _rate_curve(left, s, rate_mod.counter(rate_mod.CORRECTED, pct),
                                    dict(color=colours[s.transport], ls=ls), marker, flags)
    _rate_axes(left, any_data)
    left.set_ylabel("corrected latency, µs (receipt − intended send)")
    left.set_title("Corrected p50 / p99 / p99.9 per transport", fontsize=10)
    chosen = names[0]
    any_data = False
    for s in series:
        if s.transport != chosen:
            continue
        marker = _RUN_MARKERS[model.runs.index(s.run) % len(_RUN_MARKERS)]
        for fam, ls in ((rate_mod.CORRECTED, "-"), (rate_mod.UNCORRECTED, "--")):
            any_data |= _rate_curve(right, s, rate_mod.counter(fam, "99"),
                                    dict(color=colours[chosen], ls=ls), marker, flags)
    _rate_axes(right, any_data)
    right.set_ylabel("p99 latency, µs")
    right.set_title(f"{chosen}: corrected vs uncorrected p99 (what coordinated omission "
                    "hides)", fontsize=10)
    handles = [Line2D([], [], color=colours[t], marker="o", label=t) for t in names]
    handles += [Line2D([], [], color="#444444", ls=ls, label=f"corrected {name}")
                for name, _, ls in _RATE_PCTS]
    handles.append(Line2D([], [], color="#444444", ls="--",
                          label=f"right panel: dashed = uncorrected p99 ({chosen})"))
    if multi:
        handles += [Line2D([], [], color="#444444", ls="", label=r.label,
                           marker=_RUN_MARKERS[i % len(_RUN_MARKERS)])
                    for i, r in enumerate(model.runs)]
    handles += [h for h, on in ((_SATURATED, flags["saturated"]),
                                (_SHARED, flags["shared"])) if on]
    fig.suptitle(f"Latency under load at {fmt_size(size)} — {_subtitle(model)}",
                 fontsize=10)
    fig.tight_layout()
    fig.legend(handles=handles, loc="center left", fontsize=8, bbox_to_anchor=(1.0, 0.5))
    path = _save(fig, outdir / RATE_FILE.format(size=size))
    return path, (f"Latency under load at {fmt_size(size)}: corrected p50, p99 and "
                  f"p99.9 against the offered rate, one colour per transport (left), and "
                  f"{chosen}'s corrected against its uncorrected p99 (right; {chosen} is "
                  f"the first transport by name with rate cells at this size); medians "
                  f"of the repetitions, log scales, saturated cells hollow, shared-CPU "
                  f"cells boxed in red")


def rate(model: ReportModel, outdir: Path) -> list[tuple[Path, str]]:
    """Write one latency-under-load figure per message size with rate cells into
    ``outdir`` (none without them); return (path, caption) pairs."""
    return [_rate_figure(model, outdir, size) for size in model.rate.sizes()]


# --- several machines (the fleet view) ------------------------------------------------

FLEET_FILE = "fleet_{transport}_pin-{pin}{verify}.png"  # one per (placement, transport)
FLEET_PATTERN = "fleet_*.png"
_FLEET_PANELS = (("pingpong", "rtt_p50_ns", 1e-3, "round-trip time p50, µs"),
                 ("throughput", "bytes_per_second", 1e-9, "throughput, GB/s (one way)"))


def fleet_file(placement, transport: str) -> str:
    """File name of the fleet plot of ``transport`` in ``placement``."""
    pin = "".join(ch if ch.isalnum() or ch in "_.+-" else "-" for ch in placement.pin_mode)
    return FLEET_FILE.format(transport=transport, pin=pin,
                             verify="-verify" if placement.verify_payload == "true" else "")


def _fleet_figure(model: ReportModel, outdir: Path, placement, transport: str) -> Path:
    """Round trip p50 (left) and throughput (right) of ``transport`` against message
    size, one line per machine of ``placement`` (colour = machine)."""
    fleet = model.fleet
    fig = Figure(figsize=(14, 5.5))
    axes = list(fig.subplots(1, len(_FLEET_PANELS)))
    colours = {m.label: _PALETTE[fleet.index(m) % len(_PALETTE)] for m in fleet.machines}
    failed = False
    for ax, (kind, metric, scale, ylabel) in zip(axes, _FLEET_PANELS):
        sizes, any_data = [], False
        for i, m in enumerate(placement.machines):
            style = dict(color=colours[m.label], ls="-")
            pts, bad = placement.points(i, kind, transport, metric)
            failed |= _mark_failed(ax, bad, style)
            sizes += [s for s, _ in pts] + bad
            if pts:
                any_data = True
                ax.plot([s for s, _ in pts], [v * scale for _, v in pts], marker="o",
                        **style)
        _size_axis(ax, sizes)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{kind} ({metric})", fontsize=10)
        _finish(ax, any_data)
    handles = [Line2D([], [], color=colours[m.label], marker="o", label=m.label)
               for m in placement.machines]
    if failed:
        handles.append(_ERROR_PROXY)
    fig.suptitle(f"{transport} on each machine — {placement.name}", fontsize=10)
    fig.tight_layout()
    fig.legend(handles=handles, loc="center left", fontsize=8, bbox_to_anchor=(1.0, 0.5))
    return _save(fig, outdir / fleet_file(placement, transport))


def fleet(model: ReportModel, outdir: Path) -> list[tuple[Path, str]]:
    """Write one fleet figure per (placement, transport) of ``model.fleet.plots`` into
    ``outdir`` (none when the inputs come from one machine); return (path, caption)
    pairs."""
    out = []
    for placement, transport in model.fleet.plots:
        path = _fleet_figure(model, outdir, placement, transport)
        out.append((path, f"{transport}: round-trip time p50 and one-way throughput "
                          f"against message size, one line per machine "
                          f"({', '.join(m.label for m in placement.machines)}), "
                          f"{placement.name}; medians of the repetitions of each "
                          f"machine's latest run that has the cell; log scales, × a "
                          f"cell that failed"))
    return out
def _unit(counter: str) -> tuple[float, str]:
    """Scale and unit of a counter's axis, as ``layout.fmt_metric`` shows its values."""
    if counter.endswith("_ns"):
        return 1e-3, "µs"
    if counter == "ns_per_call":
        return 1.0, "ns"
    if counter == "bytes_per_second":
        return 1e-9, "GB/s"
    return 1.0, ""


def trend(points, cell: str, counter: str, dest: Path) -> None:
    """Write ``dest`` (PNG): ``history.trend``'s points, one line per machine through the
    runs' medians, a bar from the smallest to the largest repetition of each run, × on
    the bottom edge for a run whose cell failed in every repetition. x: the runs in time
    order, labelled with run id, date and commit."""
    scale, unit = _unit(counter)
    fig = Figure(figsize=(min(20, max(8, 3 + 0.5 * len(points))), 5.5))
    ax = fig.add_subplot()
    failed = False
    for i, machine in enumerate(dict.fromkeys(p.run.machine for p in points)):
        colour = _PALETTE[i % len(_PALETTE)]
        own = [(x, p) for x, p in enumerate(points) if p.run.machine == machine]
        ok = [(x, p) for x, p in own if p.values]
        if ok:
            xs = [x for x, _ in ok]
            med = [p.median * scale for _, p in ok]
            low = [(p.median - min(p.values)) * scale for _, p in ok]
            high = [(max(p.values) - p.median) * scale for _, p in ok]
            ax.errorbar(xs, med, yerr=[low, high], fmt="o-", capsize=3, color=colour,
                        label=machine)
        gone = [x for x, p in own if p.failed and p.failed == p.repetitions]
        failed |= _mark_failed(ax, gone, {"color": colour})
    def commit(c: str | None) -> str:
        return "—" if not c else c.removesuffix("-dirty")[:12] + c[len(
            c.removesuffix("-dirty")):]

    step = max(1, math.ceil(len(points) / 30))
    ax.set_xticks(range(0, len(points), step), labels=[
        f"#{p.run.id}\n{p.run.run_time[:10]}\n{commit(p.run.commit)}"
        for p in points[::step]], fontsize=7)
    ax.set_xlim(-0.5, len(points) - 0.5)
    ax.set_xlabel("recorded run (id, date, commit), in time order")
    ax.set_ylabel(f"{counter}" + (f", {unit}" if unit else "")
                  + " (median; bar: smallest to largest repetition)")
    ax.set_title(f"{cell}: {counter} over the recorded runs", fontsize=10)
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()[0] + ([Line2D(
        [], [], marker="x", ls="", color="#444444", markersize=8,
        label="× failed in every repetition")] if failed else [])
    ax.legend(handles=handles, fontsize=8, loc="best")
    with atomic_file(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
