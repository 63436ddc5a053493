"""``ReportModel`` -> a neutral ``Document`` (sections of paragraphs, lists, tables,
figures) that ``render_html`` and ``render_md`` print. All number formatting lives here,
so both outputs show the same figures."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ipcbench_report.compute import (ALL_MARKED, BESIDE_RULES, CLASSIC_NOTE, CPU_COLUMNS,
                                     CV_WARN, ENCODING_FLOOR, ENCODING_SHARE_RULE,
                                     FLOOR_RULES, RELATIVE_CHOSEN_WHY, RELATIVE_DEFAULT_WHY,
                                     RELATIVE_FAMILY, STAR_RULE, Layer, ReportModel,
                                     classic_for, stars_text)
from ipcbench_report.fleet import UNKNOWN, Machine, Placement
from ipcbench_report.fleet import Row as FleetRow
from ipcbench_report.many import CLIENTS, FANOUT, Series
from ipcbench_report.model import FLOOR_RATIO, HOST_CHANGED, Cell
from ipcbench_report.rate import (CORRECTED, LAG, P99, SATURATED_SHARE, UNCORRECTED,
                                  Budget, Point, counter)


@dataclass
class Text:
    """A table cell: visible text, an optional tooltip and a style (error/warn/missing)."""

    text: str
    tooltip: str = ""
    style: str = ""


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Text]]
    optional: bool = False     # may be dropped where space is short (Markdown summary)


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Figures:
    items: list[tuple[Path, str]]      # (PNG path, caption)


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)


@dataclass
class Document:
    title: str
    sections: list[Section]


def fmt(x: float | None) -> str:
    """3–4 significant digits, never an exponent; ``—`` for None."""
    if x is None:
        return "—"
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    text = f"{x:.3g}"          # exponent below 1e-4 (context switches per message)
    return text if "e" not in text else f"{x:.{2 - math.floor(math.log10(a))}f}"


def fmt_size(n: int | None) -> str:
    if n is None:
        return "—"
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} B"


def fmt_metric(metric: str, x: float | None) -> str:
    """A cell's value with its unit: ``*_ns`` in µs, ``ns_per_call`` in ns, bytes/s in
    GB/s, ``floor_ratio`` as ×N, anything else as a plain number."""
    if x is None:
        return "—"
    if metric == FLOOR_RATIO:
        return f"×{fmt(x)}"
    if metric.endswith("_ns"):
        return f"{fmt(x / 1e3)} µs"
    if metric == "ns_per_call":
        return f"{fmt(x)} ns"
    if metric == "bytes_per_second":
        return f"{fmt(x / 1e9)} GB/s"
    return fmt(x)


def fmt_pct(x: float | None, signed: bool = False) -> str:
    return "—" if x is None else f"{x * 100:{'+' if signed else ''}.1f} %"


def _t(text) -> Text:
    return text if isinstance(text, Text) else Text(str(text))


def _measured_section(model: ReportModel) -> Section:
    keys = ["file", "host_name", "date", "pin_mode", "pin_client_cpu", "pin_peer_cpu",
            "wait_strategy", "verify_payload", "repetitions", "ipcbench_version",
            "ipcbench_git_commit", "ipcbench_build_type", "benchmark_library_version",
            "library_build_type", "kernel", "cpu_model", "cpus_online", "clocksource",
            "run_dir_fs", "cell labels"]
    rows = []
    for key in keys:
        row = [Text(key)]
        for r in model.runs:
            if key == "file":
                row.append(Text(r.path.name))
            elif key == "repetitions":
                row.append(Text(str(r.max_repetitions())))
            elif key == "cell labels":
                row.append(Text("; ".join(dict.fromkeys(
                    c.label for c in r.cells.values() if c.label)) or "—"))
            else:
                row.append(Text(r.ctx(key)))
        rows.append(row)
    notes = ["RTT is the full round trip of a ping-pong (client sends N bytes, the peer "
             "returns them); one-way latency is about half. Sizes are whole messages, "
             "header included (message_header_bytes: "
             f"{', '.join(dict.fromkeys(r.ctx('message_header_bytes') for r in model.runs))})."]
    notes += [f"{r.label}: latency_metric = {r.ctx('latency_metric')}"
              for r in model.runs if r.ctx("latency_metric") != "—"]
    notes += [f"{r.label}: {r.ctx('pin_note')}" for r in model.runs if r.ctx("pin_note") != "—"]
    if any(r.ctx("library_build_type") == "debug" for r in model.runs):
        notes.append("Google Benchmark reports library_build_type: debug — that is "
                     "Debian's build of the benchmark library itself; ipcbench's own code "
                     "was built as ipcbench_build_type says.")
    notes += model.comparability
    return Section(MEASURED, [
        Table(["key"] + [r.label for r in model.runs], rows), Bullets(notes)])


# Marks a table entry whose cell had a repetition marked host_changed.
HOST_CHANGED_MARK = "†"


def marked_positions(cell: Cell) -> str:
    """``repetition(s) 3, 7 of 9``: the cell's repetitions marked host_changed, numbered
    among its successful ones in file order."""
    return f"repetition(s) {', '.join(map(str, cell.marked()))} of {len(cell.reps)}"


def _entry_text(entry, col) -> Text:
    if entry.error:
        return Text("error", entry.error, "error")
    if entry.value is None:
        return Text("—", "not measured", "missing")
    text = fmt(entry.value * col.scale)
    tip = [f"{col.counter}, median of {len(entry.cell.values(col.counter))} repetition(s)"]
    if entry.cv is not None:
        tip.append(f"CV {fmt_pct(entry.cv)}")
    if entry.multiple is not None:
        text += f" (×{fmt(entry.multiple)})"
        tip.append(f"×{fmt(entry.multiple)} of {entry.floor_name}")
    elif entry.no_multiple:
        tip.append(f"no × of {entry.floor_name}: {entry.no_multiple}")
    marked = bool(entry.cell.marked())
    if marked:
        tip.append(f"{HOST_CHANGED_MARK} the machine changed during "
                   f"{marked_positions(entry.cell)} (host_changed)"
                   + (": left out of the ×" if entry.rule in BESIDE_RULES
                      or entry.no_multiple else ""))
    tip.append(entry.cell.label)
    warn = entry.cv is not None and entry.cv > CV_WARN
    return Text(text + (" ⚠" if warn else "") + (f" {HOST_CHANGED_MARK}" if marked else ""),
                "; ".join(t for t in tip if t), "warn" if warn or marked else "")


def _host_changed(model: ReportModel) -> list[str]:
    """The notes on cells with repetitions marked host_changed: the rule, then each
    cell with those repetitions and the probes before and after them."""
    if not model.marked:
        return []
    multi = len(model.runs) > 1
    margins = ", ".join(dict.fromkeys(r.ctx("host_change_margin") for r, _ in model.marked))
    items = [f"{HOST_CHANGED_MARK} The machine changed during a repetition of "
             f"{len(model.marked)} cell(s) (host_changed = 1: the floor probed beside the "
             "cell just before and just after that repetition differed by more than the "
             "runner's margin, the larger over the smaller minus 1 above "
             f"host_change_margin = {margins}). Those repetitions are left out of the "
             "medians behind the per-cell (×N) and of compare --normalized; the figures "
             "themselves, and the run-wide (×N), use every repetition. Marked "
             "repetitions, with the probes before and after each:"]
    for r, c in model.marked:
        metric = "bytes_per_second" if c.kind == "throughput" else "rtt_p50_ns"
        probes = "; ".join(
            f"repetition {i}: {fmt_metric(metric, c.reps[i - 1].get('floor_before'))} → "
            f"{fmt_metric(metric, c.reps[i - 1].get('floor_after'))}" for i in c.marked())
        items.append(f"{r.label + ': ' if multi else ''}{c.id} ({c.floor_kind or 'floor'}, "
                     f"{marked_positions(c)}): {probes}"
                     + ("; every repetition marked, so no per-cell (×N)" if not c.values(
                         FLOOR_RATIO, unmarked=True) else ""))
    return items


def _below_floor(model: ReportModel) -> list[str]:
    """The comparison table's figures shown under 1× their floor, lowest first, named as
    the table names them (with the run when there are several)."""
    multi = len(model.runs) > 1
    found = []
    for row in model.rows:
        for c in model.columns:
            m = row.entries[c.key].multiple
            if m is not None and float(fmt(m)) < 1:   # as shown: 0.9996 reads ×1
                run = f" ({row.run.label})" if multi else ""
                found.append((m, f"{row.transport}{run} {c.title} (×{fmt(m)})"))
    return [name for _, name in sorted(found, key=lambda f: f[0])]


def _comparison_section(model: ReportModel) -> Section:
    multi = len(model.runs) > 1
    headers = ["transport"] + (["run"] if multi else []) + ["wait"] + [
        f"{c.title} ({c.unit})" if c.unit else c.title for c in model.columns]
    rows = []
    for row in model.rows:
        cells = [Text(row.transport)] + ([Text(row.run.label)] if multi else [])
        cells += [Text(row.wait or "—")] + [_entry_text(row.entries[c.key], c)
                                     for c in model.columns]
        rows.append(cells)
    entries = [(row, c, row.entries[c.key]) for row in model.rows for c in model.columns]
    rules = {e.rule for _, _, e in entries if e.multiple is not None}
    beside = [r for r in BESIDE_RULES if r in rules]
    wide = sorted(rules - set(BESIDE_RULES))
    notes = ["Each figure is the median of the cell's repetition rows (Google Benchmark's "
             "aggregate rows are not used); ⚠ marks a CV above "
             f"{CV_WARN * 100:.0f} % across repetitions, {HOST_CHANGED_MARK} a cell "
             "during a repetition of which the machine changed (see below). Missing "
             "cells show —, failed cells show error (see Errors)."]
    if rules:
        notes.append(
            "(×N) is the cost relative to a machine floor (1 = as fast as the floor). "
            + ("Per cell, where the cell carries the floor probed beside it (its label's "
               "floor=, counters floor_*): " + "; ".join(FLOOR_RULES[r] for r in beside)
               + "; repetitions marked host_changed are left out of these medians. "
               if beside else "")
            + ((("Otherwise run-wide" if beside else "Run-wide")
                + ", from the machine floors measured in the same run (floor/* cells; "
                "CPU per message, and cells without a floor beside them: results written "
                "before ipcbench probed one, cells of a split run): "
                + "; ".join(FLOOR_RULES[r] for r in wide) + ".") if wide else ""))
    else:
        none = ("No floor/* cells in these inputs, so no multiples of the machine floor "
                "are shown." if not any(r.floors() for r in model.runs) else
                "No multiples of the machine floor are shown: no floor/* cell of these "
                "inputs that succeeded bounds a figure of this table.")
        notes.append(none + (" The cells with a floor probed beside them had every "
                             "repetition marked host_changed (see below)."
                             if any(e.no_multiple for _, _, e in entries) else ""))
    multi = len(model.runs) > 1
    bare = [f"{row.transport}{f' ({row.run.label})' if multi else ''} {c.title}"
            for row, c, e in entries if e.no_multiple]
    if bare:
        notes.append(f"No (×N) for {', '.join(bare)}: {ALL_MARKED}.")
    below = _below_floor(model)
    if below:
        notes.append(f"Below the floor (×N under 1, lowest first): {', '.join(below[:6])}"
                     + (f" and {len(below) - 6} more" if len(below) > 6 else "")
                     + ". Such a cell ran faster than the floor meant to bound it. Either "
                     "the two were measured in different host states (run-wide floors run "
                     "before the matrix, or among its cells when repetitions are "
                     "interleaved, and on a virtual machine the host can move the CPUs in "
                     "between; see the floors' CV), or the floor does not bound that cell "
                     "(a receiver that drains several queued messages per system call "
                     "spends less CPU per message than one call; a ring transport that "
                     "reads messages in place copies less than the two-slot copying "
                     "channel probed beside a throughput cell). Read a multiple near 1 as "
                     "at the floor.")
    if not any(c in CPU_COLUMNS for c in model.columns):
        notes.append("CPU per message: not measured in these inputs "
                     "(counters cpu_client_ns_per_msg, cpu_peer_ns_per_msg, "
                     "ctx_switches_per_msg).")
    return Section(COMPARISON, [Table(headers, rows), Bullets(notes + _host_changed(model))])


def _transports_info(model: ReportModel) -> dict[str, dict]:
    info: dict[str, dict] = {}
    for r in model.runs:
        for t in r.transports_info:
            info.setdefault(str(t.get("name")), t)
    return info


def _transports_section(model: ReportModel) -> Section:
    multi = len(model.runs) > 1
    headers = ["transport", "classic category", "classic"] + \
        [f"local performance ({r.label})" if multi else "local performance"
         for r in model.runs] + ["wait", "paradigm"]
    info = _transports_info(model)
    rows = []
    for t in model.transports():
        family = model.family(t)
        c = classic_for(family)
        row = [Text(t), Text(c.title if c else "— (no family stated)" if not family
                             else f"— (family {family}: no classic rating)"),
               Text(stars_text(c.stars) if c else "—")]
        for r in model.runs:
            s = model.stars[r.label].get(t)
            row.append(Text(stars_text(s) if s else "—"))
        row += [_t(", ".join(model.waits(t)) or "—"),
                _t(info.get(t, {}).get("paradigm", "—"))]
        rows.append(row)
    notes = list(model.disagreements)
    for r in model.runs:
        pairs = model.classic_agree.get(r.label)
        if pairs:
            notes.append(f"{r.label}: the measured order agrees with the classic ratings: "
                         "no transport rates higher here than one with a higher classic "
                         f"rating ({pairs} pair(s) of rated transports in classic categories "
                         "of different rating).")
        elif pairs == 0:
            notes.append(f"{r.label}: not set against the classic ratings: no two transports "
                         "with a local rating fall in classic categories of different "
                         "rating.")
    classic = CLASSIC_NOTE + "".join(
        f" {(r.label + ': ') if multi else ''}{len(ts)} transport(s) carry no family "
        f"({', '.join(ts)}): their descriptions state none, as in result files written "
        "before ipcbench recorded each transport's family, so they are not rated against "
        "the classic table." for r in model.runs if (ts := model.no_family.get(r.label)))
    return Section(STARS, [
        Table(headers, rows), Para(STAR_RULE), Para(classic),
        Para("The measured order against the classic ratings:"), Bullets(notes)])


def _criteria_section(model: ReportModel) -> Section:
    info = _transports_info(model)
    rows = []
    for t in model.transports():
        d = info.get(t, {})
        kb = d.get("kernel_boundaries")
        mm = d.get("max_message")
        rows.append([Text(t), _t(model.family(t) or "—"), _t(d.get("paradigm", "—")),
                     _t(", ".join(model.waits(t)) or "—"),
                     Text("—" if kb is None else ("yes" if kb else "no")),
                     _t(d.get("reach", "—")), _t(d.get("coupling", "—")),
                     Text(fmt_size(mm) if isinstance(mm, int) else "—"),
                     _t(d.get("summary", "—"))])
    return Section(CRITERIA, [Table(
        ["transport", "family", "paradigm", "wait", "kernel keeps boundaries", "reach",
         "coupling", "max message", "summary"], rows), Para(
        "From the run's transport descriptions (context key ipcbench_transports); "
        "wait as in the comparison table above.")])


# Why an encoding cell of the layer table shows "—", by footnote mark.
NO_ENCODING_FIELD, NO_ENCODING_FLOOR, NOT_SLOWER = "¹", "²", "³"
ENCODING_FOOTNOTES = {
    NO_ENCODING_FIELD: "the run's description of the transport states no encoding (result "
                       "files written before ipcbench recorded it), so its codec is unknown.",
    NO_ENCODING_FLOOR: "the run has no successful floor for the encoding at this size "
                       f"({ENCODING_FLOOR.format(name='<name>', size='<bytes>')}: run with "
                       "--floors, or the floor failed), so no figure is given.",
    NOT_SLOWER: "the layer's round trip is not longer than its base's here: no extra time "
                "for the codecs to explain.",
}


def _encoding_cells(x: Layer, marks: set[str]) -> list[Text]:
    """Extra RTT, the two encoding floors and the share they explain, for one layer;
    adds the footnote marks it uses to ``marks``."""
    def floor(i: int) -> tuple[Text, str]:
        name, ns = x.encodings[i], x.encoding_ns[i]
        if name is None:
            return Text("—" + NO_ENCODING_FIELD), NO_ENCODING_FIELD
        if ns is None:
            return Text(f"{name} —{NO_ENCODING_FLOOR}"), NO_ENCODING_FLOOR
        return Text(f"{name or 'none'} {fmt(ns)}"), ""
    (layer, why_l), (base, why_b) = floor(0), floor(1)
    extra = x.extra_rtt
    share, why = x.encoding_share, why_l or why_b
    if share is not None:
        shown = Text(f"{share * 100:.1f} %")
    elif extra is None:
        shown, why = Text("—"), ""
    else:
        why = why or NOT_SLOWER
        shown = Text("—" + why)
    marks.update(m for m in (why_l, why_b, why) if m)
    return [Text(fmt(extra)), layer, base, shown]


def _pairs_table(model: ReportModel, pairs: list, encodings: set[str] | None = None) -> Table:
    """The pairs side by side; with ``encodings`` (a set collecting the footnote marks
    used) also the encoding columns of the layer table."""
    multi = len(model.runs) > 1
    headers = ["transport", "against"] + (["run"] if multi else []) + [
        "size", "RTT p50 (µs)", "base RTT p50 (µs)", "RTT ×", "throughput (k msg/s)",
        "base throughput (k msg/s)", "throughput ÷"]
    if encodings is not None:
        headers += ["extra RTT p50 (ns)", "encoding floor (ns)", "base encoding floor (ns)",
                    "encoding share"]
    rows = []
    for x in pairs:
        def milli(v):  # ns -> µs, msg/s -> k msg/s
            return Text(fmt(v * 1e-3) if v else "—")
        rows.append([Text(x.transport), Text(x.base)] + ([Text(x.run.label)] if multi else [])
                    + [Text(fmt_size(x.size)), milli(x.rtt[0]), milli(x.rtt[1]),
                       Text(fmt(x.rtt_ratio) if x.rtt_ratio else "—"),
                       milli(x.msgs[0]), milli(x.msgs[1]),
                       Text(fmt(x.msgs_ratio) if x.msgs_ratio else "—")]
                    + (_encoding_cells(x, encodings) if encodings is not None else []))
    return Table(headers, rows)


RATIO_NOTE = ("RTT × is the transport's round trip ÷ the other's (p50 medians); throughput ÷ "
              "is the other's messages/s ÷ the transport's: above 1 the transport is slower, "
              "below 1 faster.")


def _layers_section(model: ReportModel) -> Section:
    if not model.layers:
        return Section(LAYERS, [Para(
            "No transport of these inputs is built on another transport that was also "
            "measured in the same run at 64 B or 64 KiB (a transport whose description "
            "names a built_on, measured together with that transport).")])
    marks: set[str] = set()
    table = _pairs_table(model, model.layers, marks)
    return Section(LAYERS, [table, Para(
        "A transport built on another (its built_on in --list-transports=json) against "
        "that mechanism measured in the same run. " + RATIO_NOTE + " The encoding floors "
        "name the codec each transport runs per message (its encoding in "
        "--list-transports=json, e.g. framing, the suite's length prefix, or protobuf, "
        "gRPC's messages without HTTP/2 framing and HPACK) and its cost per round trip; "
        + ENCODING_SHARE_RULE)] + ([Bullets([f"{m} {ENCODING_FOOTNOTES[m]}"
                                           for m in ENCODING_FOOTNOTES if m in marks])] if marks else []))


def relative_title(model: ReportModel) -> str:
    """Heading of the section that sets every transport against one base: names the
    base(s) chosen (``ReportModel.relative_bases``)."""
    bases = [b for b in dict.fromkeys(model.relative_bases.values()) if b]
    return f"Every transport against {' / '.join(bases) or 'one base'}"


def _relative_section(model: ReportModel) -> Section:
    why = RELATIVE_CHOSEN_WHY if model.relative_chosen else RELATIVE_DEFAULT_WHY
    bases = [b for b in dict.fromkeys(model.relative_bases.values()) if b]
    notes = [f"{r.label}: no base: no transport of family {RELATIVE_FAMILY} was measured "
             "(or the run's descriptions state no family); choose one with "
             "--relative-to NAME." for r in model.runs if not model.relative_bases[r.label]]
    if not bases:
        return Section(relative_title(model), [Para(
            f"No run of these inputs has a base to set the others against: no transport of "
            f"family {RELATIVE_FAMILY} was measured (or the descriptions state no family), "
            f"and by default the base is {why}.")])
    named = " / ".join(bases)
    if not model.relative:
        return Section(relative_title(model), [Para(
            f"No run of these inputs measured {named} and another transport at 64 B or "
            f"64 KiB, so there is nothing to set against {named}. The base is {why}.")]
            + ([Bullets(notes)] if notes else []))
    text = (f"Each transport against {named} of the same run (the against column), at 64 B "
            f"and 64 KiB: shared memory, pipes, queues, brokers and frameworks on one "
            f"scale. The base is {why}")
    text += "." if model.relative_chosen else \
        ": a socket is the local mechanism every architect knows."
    return Section(relative_title(model), [_pairs_table(model, model.relative),
                                           Para(text + " " + RATIO_NOTE)]
                   + ([Bullets(notes)] if notes else []))


def _floors_section(model: ReportModel) -> Section:
    rows = [[Text(r.label), Text(cell.id), Text(metric), Text(fmt_metric(metric, value)),
             Text(fmt_pct(cell.cv(metric)))]
            for r in model.runs for cell, metric, value in model.floors[r.label].cells]
    if not rows:
        return Section(FLOORS, [Para(
            "No floor/* cells in these inputs (floor/cacheline_rtt, "
            "floor/cacheline_pair_rtt, floor/futex_rtt, floor/syscall, floor/memcpy/<bytes>, "
            "floor/shm_stream/<bytes>, floor/encoding-<name>/<bytes>).")])
    return Section(FLOORS, [
        Table(["run", "floor", "metric", "median", "CV"], rows),
        Para("Floors are limits of the machine measured in the same run and placement, "
             "not transports: they appear here, as (×N) in the comparison where one "
             "bounds a figure, and as grey dashed lines in the plots (one shade per "
             "run). Two are context only, never a (×N): floor/cacheline_pair_rtt, the "
             "round trip over one line per "
             "direction, each written by one side (what any pair of one-way channels "
             "pays; floor/cacheline_rtt bounces a single line), and "
             "floor/shm_stream/<bytes>, what the placement's two CPUs move between them "
             "through shared memory (floor/memcpy is one core copying within its own "
             "caches). floor/shm_stream is a mark for bulk streaming: it publishes each "
             "message through a shared counter whose line crosses once per message, so "
             "for small messages that crossing sets it, and rings that signal inside "
             "their records can beat it. floor/encoding-<name>/<bytes> is a transport's "
             "codec, one round trip of it on one thread (its time per iteration, ns per "
             "round trip, is what the layer table uses; bytes/s here is the message size "
             "over that time).")])


def _noise_section(model: ReportModel) -> Section:
    items = [f"{n.run.label}: {n.cell.id}: the standard deviation of {n.metric} is "
             f"{fmt_pct(n.cv)} of the mean over {len(n.cell.values(n.metric))} "
             "repetitions — the result may be unstable; rerun with more repetitions or "
             "on a quieter machine." for n in model.noise]
    limit = f"{CV_WARN * 100:.0f} %"
    without = model.cells - model.cv_cells
    why = "fewer than two successful repetitions, or a zero mean"
    if not model.cv_cells:
        items.append(f"No cell has a CV ({why}), so the noise is unknown.")
    elif not items and not without:
        items.append(f"Every cell's primary metric has a CV at or below {limit} "
                     f"({model.cells} cells).")
    elif not items:
        items.append(f"Every cell with a CV ({model.cv_cells} of {model.cells}) has it at "
                     f"or below {limit}; {without} other cell(s) have none ({why}).")
    elif without:
        items.append(f"{without} of {model.cells} cells have no CV ({why}).")
    items += [f"{r.label}: no repetitions (1 run per cell), so the CV is unknown; use "
              "--benchmark_repetitions=5 or more." for r in model.runs
              if r.max_repetitions() < 2]
    return Section(NOISE, [Bullets(items)])


def _errors_section(model: ReportModel) -> Section:
    items = [f"{r.label}: {c.id}: {len(c.errors)} of {c.repetitions} repetition(s) "
             f"failed: {'; '.join(dict.fromkeys(c.errors))}" for r, c in model.errors]
    return Section(ERRORS, [Bullets(items or ["No cell failed."])])


def _cells_section(model: ReportModel) -> Section:
    rows = []
    for r in model.runs:
        for c in r.cells.values():
            metric, lower = c.primary()
            value = c.median(metric)
            marks = [m for m, k in (("saturated", "saturated"), ("shared CPU", "shared_cpu"),
                                    ("host changed", HOST_CHANGED))
                     if any(v >= 1 for v in c.values(k))]
            rows.append([Text(r.label), Text(c.id), Text(f"{len(c.reps)}/{c.repetitions}"),
                         Text(metric + (" ↓" if lower else " ↑")),
                         (Text(" ".join([fmt_metric(metric, value)] + marks),
                               SATURATED_TIP if "saturated" in marks else "", "warn")
                          if marks else Text(fmt_metric(metric, value)))
                         if c.ok else Text("error", "; ".join(c.errors), "error"),
                         Text(fmt_pct(c.cv(metric))), Text(c.label or "—")])
    return Section(CELLS, [Table(
        ["run", "cell", "ok/reps", "primary metric", "median", "CV", "label"], rows,
        optional=True)])


def _oversubscribed(model: ReportModel, kind: str) -> Bullets:
    """The cells of ``kind`` that ran oversubscribed, each named with its busy processes
    and CPUs (medians of the counters)."""
    multi = len(model.runs) > 1
    items = []
    for r, c in model.many.oversubscribed:
        if c.kind != kind:
            continue
        busy, cpus = c.median("busy_processes"), c.median("cpus")
        how = f" ({busy:.0f} busy processes on {cpus:.0f} CPUs)" \
            if busy is not None and cpus is not None else ""
        items.append(f"{r.label + ': ' if multi else ''}{c.id}{how}")
    if not items:
        return Bullets(["No cell of this workload ran oversubscribed (counter "
                        "oversubscribed = 0 in every repetition)."])
    return Bullets([f"Oversubscribed (counter oversubscribed = 1: more busy processes "
                    f"than CPUs: a process could wait for a CPU, and the figures include "
                    f"any such wait), {len(items)} cell(s): " + "; ".join(items) + "."])


def _ns_text(s: Series) -> str:
    return ", ".join(str(n) for n, _ in s.points) or "—"


def _many_rows(model: ReportModel, series: list[Series], columns) -> list[list[Text]]:
    """One row per series: its identity, the N measured, the peak and ``columns``
    ((title, metric, scale) of the peak cell), oversubscription and failed N."""
    multi = len(model.runs) > 1
    rows = []
    for s in series:
        row = [Text(s.transport)] + ([Text(s.server or "—")] if s.workload is CLIENTS
                                      else []) + ([Text(s.run.label)] if multi else [])
        row += [Text(fmt_size(s.size)), Text(_ns_text(s))]
        peak = s.peak
        if peak is None:
            row += [Text("—", "no N succeeded", "missing")] * (2 + len(columns))
        else:
            n, cell = peak
            row.append(Text(str(n), cell.id))
            for _, metric, scale in columns:
                v = cell.median(metric)
                cv = cell.cv(metric)
                row.append(Text("—", f"{metric} not measured", "missing") if v is None
                           else Text(fmt(v * scale),
                                     f"{metric}, median of {len(cell.values(metric))} "
                                     "repetition(s)" + (f"; CV {fmt_pct(cv)}" if cv
                                                        is not None else "")))
            row.append(Text("yes", cell.label, "warn") if cell.oversubscribed
                       else Text("no"))
        failed = ", ".join(str(n) for n, _ in s.failed)
        row.append(Text(failed, "; ".join(dict.fromkeys(
            e for _, c in s.failed for e in c.errors)), "error") if failed else Text("—"))
        rows.append(row)
    return rows


PEAK_RULE = ("peak N is the N whose {rate}, as the median over the cell's repetition "
             "rows, is the highest of the series, the smallest N on a tie; the other "
             "figures of the row are that cell's medians. Failed N: cells that failed in every "
             "repetition (see Cells that failed), left out of the peak.")


def _size_note(model: ReportModel, w) -> str:
    sizes = model.many.sizes(w)
    plot = model.many.plot_size(w)
    if len(sizes) <= 1:
        return f"The plot shows {fmt_size(plot)}, the only message size measured."
    return (f"The plot shows {fmt_size(plot)}, the smallest message size measured; the "
            f"table has every size ({', '.join(fmt_size(x) for x in sizes)}).")


def _unplaced(model: ReportModel, kind: str) -> list[Bullets]:
    cells = [f"{r.label}: {c.id}" for r, c in model.many.unplaced if c.kind == kind]
    return [Bullets([f"Left out (no N in the name): {', '.join(cells)}."])] if cells else []


def _clients_section(model: ReportModel, figure: tuple[Path, str] | None) -> Section:
    multi = len(model.runs) > 1
    columns = (("round trips/s at peak (k/s)", "rtt_per_s", 1e-3),
               ("RTT p99 at peak (µs)", "rtt_p99_ns", 1e-3),
               ("worst client's p99 (µs)", "worst_client_p99_ns", 1e-3),
               ("fairness (Jain)", "fairness_jain", 1.0),
               ("share min", "share_min", 1.0), ("share max", "share_max", 1.0))
    headers = ["transport", "server"] + (["run"] if multi else []) + [
        "size", "N measured", "peak N"] + [c[0] for c in columns] + [
        "oversubscribed at peak", "failed N"]
    blocks = [Figures([figure])] if figure else []
    blocks += [Table(headers, _many_rows(model, model.many.of(CLIENTS), columns)), Para(
        "N clients each run round trips against one server of the named model; one "
        "repetition row is one timed window. Per transport, server model and message size "
        "(and run): " + PEAK_RULE.format(rate="rtt_per_s (round trips per second of all "
        "clients together)") + " RTT p99 is over one histogram merging every client's "
        "round trips; the worst client's p99 is the highest of the clients' own. Fairness "
        "is Jain's index over the clients' completed round trips (1 = every client "
        "completed as many, 1/N = one client got everything); share min/max are the "
        "fewest/most round trips a client completed ÷ the mean per client. "
        + _size_note(model, CLIENTS)), _oversubscribed(model, "clients")]
    return Section(MANY_CLIENTS, blocks + _unplaced(model, "clients"))


def _fanout_section(model: ReportModel, figure: tuple[Path, str] | None) -> Section:
    multi = len(model.runs) > 1
    columns = (("delivered/s at peak (k/s)", "delivered_per_s", 1e-3),
               ("slowest subscriber's rate (k/s)", "delivered_per_s_min", 1e-3),
               ("slowest subscriber's p99 (µs)", "slowest_subscriber_p99_ns", 1e-3),
               ("one-way p99, all deliveries (µs)", "oneway_p99_ns", 1e-3),
               ("lost messages", "lost_msgs", 1.0),
               ("drops by design", "drops_by_design", 1.0))
    headers = ["transport"] + (["run"] if multi else []) + [
        "size", "N measured", "peak N"] + [c[0] for c in columns] + [
        "oversubscribed at peak", "failed N"]
    blocks = [Figures([figure])] if figure else []
    blocks += [Table(headers, _many_rows(model, model.many.of(FANOUT), columns)), Para(
        "One publisher sends every message to N subscribers; one repetition row is one "
        "timed window. Per transport and message size (and run): " + PEAK_RULE.format(
            rate="delivered_per_s (deliveries per second to all subscribers together)")
        + " The slowest subscriber's rate is the lowest of the subscribers' delivery "
        "rates; latencies are one way, publish to receipt. Drops by design = 1 marks a "
        "transport that drops messages by design (e.g. ZeroMQ's high-water mark), where "
        "lost messages are expected. " + _size_note(model, FANOUT)),
        _oversubscribed(model, "fanout")]
    return Section(FANOUT_TITLE, blocks + _unplaced(model, "fanout"))


SATURATED_TIP = (f"saturated: achieved_rate below {SATURATED_SHARE * 100:.0f} % of "
                 "scheduled_rate in at least one repetition (counter saturated = 1); the "
                 "latency is not a latency at the offered rate")
NONE_WITHIN = "none within budget"


def fmt_budget(b: Budget) -> str:
    where = {"option": "set with --slo-p99",
             "context": "the run's context key ipcbench_slo_p99_ns",
             "default": "the default: the run's context has no ipcbench_slo_p99_ns"}
    return f"{fmt(b.ns / 1e3)} µs ({where[b.source]})"


def _rate_value(p: Point, metric: str, scale: float = 1e-3) -> Text:
    v = p.median(metric)
    if v is None:
        return Text("—", f"{metric} not measured", "missing")
    cv = p.cell.cv(metric)
    return Text(fmt(v * scale), f"{metric}, median of {len(p.cell.values(metric))} "
                "repetition(s)" + (f"; CV {fmt_pct(cv)}" if cv is not None else ""))


def _sustainable_rows(model: ReportModel) -> list[list[Text]]:
    multi = len(model.runs) > 1
    rows = []
    for s in model.rate.series:
        row = [Text(s.transport)] + ([Text(s.run.label)] if multi else []) + \
            [Text(fmt_size(s.size))]
        best = s.sustainable
        idle = s.idle
        idle_p99 = idle.median("rtt_p99_ns") if idle else None
        if best is None:
            why = ("no cell succeeded" if not s.points else
                   f"no cell is both unsaturated and at a corrected p99 of at most "
                   f"{fmt(s.budget.ns / 1e3)} µs")
            row += [Text(NONE_WITHIN, why, "warn"), Text("—")]
        else:
            row += [Text(fmt(best.offered), best.cell.id), _rate_value(best, P99)]
        row.append(Text("—", "no successful pingpong cell of this transport and size "
                        "in the run", "missing") if idle_p99 is None
                   else Text(fmt(idle_p99 * 1e-3), idle.id))
        p99 = best.median(P99) if best else None
        row.append(Text(f"×{fmt(p99 / idle_p99)}") if p99 is not None and idle_p99
                   else Text("—"))
        cpu = best.cpu_per_msg if best else None
        row.append(Text("—") if cpu is None else
                   Text(fmt(cpu), "cpu_client_ns_per_msg + cpu_peer_ns_per_msg - "
                        "cpu_pacing_ns_per_msg, medians"))
        row.append(Text("—") if best is None else
                   Text("yes (shared CPU)", best.cell.label, "warn") if best.shared_cpu
                   else Text("no"))
        sat = [p for p in s.points if p.saturated]
        row.append(Text(", ".join(fmt(p.offered) for p in sat) or "—"))
        failed = ", ".join(_rate_point(c) for c in s.failed)
        row.append(Text(failed, "; ".join(dict.fromkeys(
            e for c in s.failed for e in c.errors)), "error") if failed else Text("—"))
        rows.append(row)
    return rows


def _rate_point(cell) -> str:
    """A rate cell's point, ``rate:<msgs/s>`` or ``load:<pct>``, whatever follows it
    (``link:cross-host`` in a split run)."""
    for key in ("rate", "load"):
        if key in cell.params:
            return f"{key}:{cell.params[key]}"
    return cell.id.split("/")[-1]


def _rate_cell_rows(model: ReportModel) -> list[list[Text]]:
    multi = len(model.runs) > 1
    rows = []
    for s in model.rate.series:
        for p in s.points:
            row = [Text(s.transport)] + ([Text(s.run.label)] if multi else []) + [
                Text(fmt_size(s.size)), Text(_rate_point(p.cell), p.cell.id),
                Text(fmt(p.offered)), _rate_value(p, "achieved_rate", 1.0)]
            row += [_rate_value(p, counter(CORRECTED, pct)) for pct in ("50", "99", "999")]
            row += [_rate_value(p, counter(UNCORRECTED, "99")),
                    _rate_value(p, counter(LAG, "99"))]
            row.append(Text("saturated", SATURATED_TIP, "warn") if p.saturated
                       else Text("no"))
            row.append(Text("shared CPU", p.cell.label, "warn") if p.shared_cpu
                       else Text("no"))
            row.append(Text("yes" if s.within(p) else "no"))
            rows.append(row)
    return rows


RATE_TEXT = (
    "Latency under load (rate/<transport>/<bytes>/rate:<msgs/s> cells, offered rate "
    "given by the user, and rate/<transport>/<bytes>/load:<pct> cells, pct % of "
    "max_rate, the transport's unpaced maximum measured in the same run): the sender "
    "sends on a schedule at the offered rate, open loop, whatever the replies do. "
    "Corrected latency (lat_*) is receipt − intended send time: it includes the time a "
    "message waited because the sender was behind its schedule. Uncorrected latency "
    "(unc_*) is receipt − actual send time: what a timer started at each send sees, "
    "which leaves that wait out (coordinated omission). Sender lag (lag_*) is actual − "
    "intended send time. The achieved rate counts replies: (k − 1) ÷ (receipt of reply "
    "k − receipt of reply 1), k = ⌈0.99 n⌉ of the n requests. A cell is saturated when "
    "its achieved rate was below "
    f"{SATURATED_SHARE * 100:.0f} % of its schedule's own rate (scheduled_rate; the "
    "offered rate for uniform arrivals) (counter saturated = 1) in any of "
    "its repetitions: the transport did not carry the offered rate, so its latency is "
    "not a latency at that rate; saturated cells are drawn hollow in the plots, marked "
    "saturated in the tables, and never count toward the sustainable rate.")
SUSTAINABLE_RULE = (
    "Sustainable rate: per transport and message size (and run), the highest offered "
    "rate among the cells that are not saturated and whose corrected p99 is at most the "
    "p99 budget (on a tie of offered rates, the cell with the higher corrected p99 is "
    "shown); none within budget when no cell qualifies. Every figure is the median over "
    "the cell's repetition rows (offered rate included). Idle p99 is rtt_p99_ns of the "
    "run's pingpong cell of the same transport and size (one message in flight; — when "
    "the run has none), and p99 ÷ idle p99 sets the corrected p99 at the sustainable "
    "rate against it. CPU/msg is cpu_client_ns_per_msg + cpu_peer_ns_per_msg − "
    "cpu_pacing_ns_per_msg at that rate: both processes, less the time the sender spun "
    "to its send times (the load generator's, not the transport's). Shared CPU: counter "
    "shared_cpu = 1 in any repetition: a busy thread (a busy-polling receiver, a "
    "spin-then-futex one spinning before it sleeps, or a sender spinning through every "
    "gap) shared a CPU with another busy one, so replies "
    "or sends could wait for that CPU; the cell's label says which. Saturated at lists the "
    "offered rates of the saturated cells; failed: the cells that failed in every "
    "repetition (see Cells that failed).")


def _rate_budgets(model: ReportModel) -> str:
    budgets = model.rate.budgets
    if len(set(budgets.values())) == 1:
        return "p99 budget: " + fmt_budget(next(iter(budgets.values()))) + "."
    return "p99 budget: " + "; ".join(f"{label}: {fmt_budget(b)}"
                                      for label, b in budgets.items()) + "."


def _rate_section(model: ReportModel, figures: list[tuple[Path, str]]) -> Section:
    multi = len(model.runs) > 1
    run = ["run"] if multi else []
    blocks = [Para(RATE_TEXT)]
    blocks += [Figures(figures)] if figures else []
    blocks += [Para(_rate_budgets(model)), Table(
        ["transport"] + run + ["size", "sustainable rate (msgs/s)",
                               "corrected p99 there (µs)", "idle p99 (µs)",
                               "p99 ÷ idle p99", "CPU/msg there (ns)", "shared CPU",
                               "saturated at (msgs/s)", "failed"],
        _sustainable_rows(model)), Para(SUSTAINABLE_RULE), Table(
        ["transport"] + run + ["size", "cell", "offered (msgs/s)", "achieved (msgs/s)",
                               "corrected p50 (µs)", "corrected p99 (µs)",
                               "corrected p99.9 (µs)", "uncorrected p99 (µs)",
                               "sender lag p99 (µs)", "saturated", "shared CPU",
                               "within budget"],
        _rate_cell_rows(model), optional=True)]
    shared = [p.cell.id for s in model.rate.series for p in s.points if p.shared_cpu]
    if shared:
        blocks.append(Bullets([f"Shared CPU (a busy thread shared a CPU with another "
                               f"busy one; the label says which) in {len(shared)} cell(s): "
                               + ", ".join(shared) + "."]))
    left = [f"{r.label}: {c.id}" for r, c in model.rate.unplaced]
    if left:
        blocks.append(Bullets([f"Left out (no size in the name, or no offered_rate "
                               f"counter): {', '.join(left)}."]))
    return Section(RATE, blocks)


def _ranking_section(model: ReportModel, ranking: tuple[Path, str]) -> Section:
    return Section(RANKING, [Figures([ranking])])


# --- several machines (the fleet view) ------------------------------------------------

# (row title, what it shows) of the machines table, one column per machine.
FLEET_CONTEXT = (("host", lambda m: m.ctx("host_name")),
                 ("CPU model", lambda m: m.ctx("cpu_model")),
                 ("CPUs online", lambda m: m.cpus),
                 ("kernel", lambda m: m.ctx("kernel")),
                 ("clocksource", lambda m: m.ctx("clocksource")),
                 ("virtualised", lambda m: m.virtualised),
                 ("ipcbench commit", lambda m: m.ctx("ipcbench_git_commit")))
FASTEST = " (fastest)"
FLEET_TEXT = (
    "The same cells on each machine, one column per machine. A machine is the host_name "
    "and cpu_model of a run's context (a run without either is a machine of its own, "
    "named by its file); runs of two machines are never pooled. Cells are set against "
    "each other only within one placement (pin_mode and verify_payload). Runs of one "
    "machine are not pooled either: each cell comes from the machine's latest run that "
    "has it (context date; input order, the last file latest, when a run has no "
    "readable date). Each figure is the median of the cell's primary metric over its "
    "repetitions (↓ lower is better, ↑ higher is better); (fastest) marks the best "
    "median of the row, every machine on a tie, and the last column says how many "
    "times the fastest machine's figure beats the slowest's. No machine is marked where "
    "fewer than two have a figure, or where the cells' wait strategies differ. A "
    "difference within the figures' spread (see their CV; ⚠ above "
    f"{CV_WARN * 100:.0f} %) is not a difference between the machines.")


def _machine_tip(m: Machine) -> str:
    return "; ".join(f"{title}: {get(m)}" for title, get in FLEET_CONTEXT[1:])


def _machines_table(machines: list[Machine]) -> Table:
    rows = [[Text(title)] + [Text(get(m), style="missing" if get(m) == UNKNOWN else "")
                             for m in machines] for title, get in FLEET_CONTEXT]
    rows.append([Text("files (latest first)")] + [
        Text(", ".join(r.path.name for r in m.runs),
             "ordered by the context's date" if m.dated else
             "a run has no readable date: ordered by input order, the last file latest")
        for m in machines])
    return Table(["machine"] + [m.label for m in machines], rows)


def _fleet_entry(row: FleetRow, i: int) -> Text:
    e = row.entries[i]
    if e is None:
        return Text("—", "not measured on this machine", "missing")
    if e.value is None:
        if not e.cell.ok:
            return Text("error", "; ".join(dict.fromkeys(e.cell.errors)), "error")
        return Text("—", f"{row.metric} not measured", "missing")
    tip = [f"{row.metric}, median of {len(e.cell.values(row.metric))} repetition(s)"]
    if e.cv is not None:
        tip.append(f"CV {fmt_pct(e.cv)}")
    tip += [e.run.path.name, e.cell.label]
    warn = e.cv is not None and e.cv > CV_WARN
    best = i in row.fastest
    return Text(fmt_metric(row.metric, e.value) + (FASTEST if best else "")
                + (" ⚠" if warn else ""), "; ".join(t for t in tip if t),
                "best" if best else "warn" if warn else "")


def _fleet_fastest(row: FleetRow, machines: list[Machine]) -> list[Text]:
    if row.waits:
        return [Text("not compared", "the cells' wait strategies differ: "
                     + ", ".join(row.waits), "missing"), Text("—")]
    if not row.fastest:
        return [Text("—", "fewer than two machines have a figure", "missing"), Text("—")]
    return [Text(", ".join(machines[i].label for i in row.fastest)),
            Text(f"×{fmt(row.ratio)}" if row.ratio is not None else "—")]


def _fleet_table(p: Placement) -> Table:
    headers = ["cell", "metric"] + [Text(m.label, _machine_tip(m)) for m in p.machines] \
        + ["fastest", "fastest vs slowest"]
    rows = [[Text(row.cell_id), Text(row.metric + (" ↓" if row.lower else " ↑"))]
            + [_fleet_entry(row, i) for i in range(len(p.machines))]
            + _fleet_fastest(row, p.machines) for row in p.rows]
    return Table(headers, rows)


def _fleet_section(model: ReportModel, figures: list[tuple[Path, str]]) -> Section:
    """``figures``: ``plots.fleet``'s, one per ``fleet.plots`` entry, in its order."""
    fleet = model.fleet
    blocks: list = [Para(FLEET_TEXT), _machines_table(fleet.machines)]
    compared = fleet.compared()
    for p in compared:
        blocks.append(Para(f"Placement {p.name}: "
                           f"{', '.join(m.label for m in p.machines)}."))
        blocks.append(_fleet_table(p) if p.rows else Para(
            "No cell was measured on two or more of these machines"
            + (", rate/* cells aside (left out: see below)." if p.left_out else ".")))
        mine = [f for (q, _), f in zip(fleet.plots, figures) if q is p]
        if mine:
            blocks.append(Figures(mine))
    notes = []
    if not compared:
        notes.append("No placement was run by two or more machines, so no cell is "
                     "compared: "
                     + "; ".join(f"{p.name}: {p.machines[0].label}"
                                 for p in fleet.placements) + ".")
    notes += [f"Placement {p.name} was run by {p.machines[0].label} alone: not compared."
              for p in fleet.placements if len(p.machines) == 1 and compared]
    for p in compared:
        if p.alone:
            shown = ", ".join(f"{m.label}: {cid}" for m, cid in p.alone[:6])
            more = f" and {len(p.alone) - 6} more" if len(p.alone) > 6 else ""
            notes.append(f"{p.name}: {len(p.alone)} cell(s) measured on one machine only "
                         f"are left out of the table: {shown}{more}.")
    if fleet.left_out:
        notes.append(f"{fleet.left_out} latency-under-load cell(s) (rate/*) are left "
                     "out: a tail latency at an offered rate says which machine is faster "
                     "only beside whether each carried that rate; see each run's "
                     "sustainable rate under 'Latency under load'.")
    commits = {m.ctx("ipcbench_git_commit") for m in fleet.machines}
    if len(commits) > 1:
        notes.append("The machines ran different ipcbench builds (ipcbench_git_commit: "
                     f"{', '.join(sorted(commits))}): a difference may come from the "
                     "code, not the machine.")
    if fleet.plots:
        notes.append("The plots show one transport each, every pingpong and throughput "
                     "size each machine measured (--fleet-transport NAME chooses which "
                     "transports; default: every transport two machines measured).")
    return Section(FLEET, blocks + ([Bullets(notes)] if notes else []))


# Section headings say what a reader learns there (tests find tables by them).
STARS = "Measured stars beside the classic ratings"
CRITERIA = "What each transport is: qualitative criteria"
RANKING = "Which transport is fastest"
FLEET = "Fleet: the same cells on each machine, the fastest marked"
COMPARISON = "Latency, throughput and CPU per transport, against the machine floors"
LAYERS = "What each layer costs over the transport under it"
FLOORS = "Machine floors: the fastest this machine hands off, calls and copies"
PLOTS = "How the figures change with message size"
MANY_CLIENTS = "Many clients: aggregate throughput, tail latency and fairness against N"
FANOUT_TITLE = "Fan-out: delivery rate and the slowest subscriber against N"
RATE = "Latency under load: corrected tail latency against the offered rate"
NOISE = "How steady the figures are (coefficient of variation)"
ERRORS = "Cells that failed"
CELLS = "Every cell's primary figure"
MEASURED = "The run: machine, build and settings"


def document(model: ReportModel, figures: list[tuple[Path, str]],
             ranking: tuple[Path, str],
             many: dict[str, tuple[Path, str]] | None = None,
             rate: list[tuple[Path, str]] | None = None,
             fleet: list[tuple[Path, str]] | None = None) -> Document:
    """The report as sections, the answer first (measured stars beside the classic
    ratings, then the ranking picture), the run's context last; ``figures`` are the
    detail plots, ``ranking`` the ranking picture and ``many`` the plots over N by
    workload (``plots.many``) and ``rate`` the plots of the latency-under-load
    workload (``plots.rate``) and ``fleet`` the plots of the fleet view (``plots.fleet``),
    as (PNG path, caption) pairs. The many-clients, fan-out and latency-under-load
    sections appear only when the inputs have cells of that workload, the fleet section
    only when they come from two or more machines (``fleet.build``)."""
    many = many or {}
    extra = ([_clients_section(model, many.get("clients"))]
             if model.many.of(CLIENTS) or any(c.kind == "clients"
                                              for _, c in model.many.unplaced) else [])
    extra += ([_fanout_section(model, many.get("fanout"))]
              if model.many.of(FANOUT) or any(c.kind == "fanout"
                                              for _, c in model.many.unplaced) else [])
    extra += [_rate_section(model, rate or [])] if model.rate else []
    return Document("ipcbench report: " + ", ".join(r.label for r in model.runs), [
        _transports_section(model), _ranking_section(model, ranking),
        *([_fleet_section(model, fleet or [])] if model.fleet else []),
        _comparison_section(model), _criteria_section(model), _layers_section(model),
        _relative_section(model), *extra,
        _floors_section(model), Section(PLOTS, [Figures(figures)]), _noise_section(model),
        _errors_section(model), _cells_section(model), _measured_section(model)])
