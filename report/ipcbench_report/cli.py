"""``report.sh``'s subcommands: ``render``, ``compare``, ``export``, ``history``, ``trend``.

Exit status: 0 success; 1 ``compare`` failed the gate (a regression, or cells of the
baseline missing from the candidate without ``--allow-missing``); 2 bad input or output
(one line on stderr, no partial output left behind: input that is not an ipcbench
result, a ``render --relative-to`` naming a transport an input did not measure, a
``render --slo-p99`` that is not a positive duration, a ``render --fleet-transport``
given for inputs from one machine or naming a transport no two machines measured in one
placement, a ``render --normalized`` for inputs without the floor beside any pingpong or
throughput cell, a ``compare`` that compared no transport cell (with ``--normalized``
also when every one was skipped), a ``--db`` that is not a run
history — not SQLite, damaged, another program's, or of a newer schema —, a results file
``history add`` recorded before (it then records none of its files), or a ``trend`` or
``compare --baseline-history`` that finds no recorded run to use) or an internal error.

``render`` adds a fleet section (the same cells on each machine, the fastest marked, a
plot per transport with a line per machine) when its inputs come from two or more
machines (``fleet.py``).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from ipcbench_report import ReportError, compute, export, history, layout, render_csv
from ipcbench_report import render_html, render_md
from ipcbench_report.compare import compare, to_markdown
from ipcbench_report.layout import fmt_metric
from ipcbench_report.load import load_runs
from ipcbench_report.outdir import atomic_dir, write_file
from ipcbench_report.rate import parse_duration


def _render(args) -> int:
    from ipcbench_report import plots     # matplotlib only where plots are drawn

    slo = None if args.slo_p99 is None else parse_duration(args.slo_p99)
    runs = load_runs(args.results)
    model = compute.build(runs, args.relative_to, slo, args.fleet_transport,
                          args.normalized)
    names = {"index.html", "report.md", "results.csv", *plots.FILES,
             *plots.MANY_FILES.values()}
    with atomic_dir(args.out, names, (plots.RATE_PATTERN, plots.FLEET_PATTERN)) as tmp:
        many = plots.many(model, tmp)
        rate = plots.rate(model, tmp)
        fleet = plots.fleet(model, tmp)
        doc = layout.document(model, plots.render(model, tmp), plots.ranking(model, tmp),
                              many, rate, fleet)
        (tmp / "index.html").write_text(render_html.render(doc), encoding="utf-8")
        (tmp / "report.md").write_text(render_md.render(doc), encoding="utf-8")
        (tmp / "results.csv").write_text(render_csv.render(runs), encoding="utf-8")
    print(f"report: wrote {args.out}/index.html, report.md, results.csv and "
          f"{len(plots.FILES) + len(many) + len(rate) + len(fleet)} plots"
          + (f" (fleet of {len(model.fleet.machines)} machines)" if model.fleet else ""),
          file=sys.stderr)
    return 0


def _compare(args) -> int:
    if args.baseline_history:
        if args.baseline is not None:
            raise ReportError("give BASELINE.json or --baseline-history, not both")
        (candidate,) = load_runs([args.candidate])
        base = history.baseline(args.db or history.DEFAULT_DB, candidate, args.last or 3,
                                args.branch, args.machine)
        baseline = base.run
    else:
        used = [o for o, v in (("--last", args.last), ("--branch", args.branch),
                               ("--machine", args.machine), ("--db", args.db))
                if v is not None]
        if used:
            raise ReportError(f"{', '.join(used)}: only with --baseline-history")
        if args.baseline is None:
            raise ReportError("compare needs BASELINE.json and CANDIDATE.json, or "
                              "--baseline-history and CANDIDATE.json")
        baseline, candidate = load_runs([args.baseline, args.candidate])
    result = compare(baseline, candidate, args.threshold / 100, args.alpha,
                     args.allow_missing, args.normalized)
    if args.baseline_history:
        result.notes[:0] = [
            f"Baseline: the repetitions of {len(base.pooled)} recorded run(s) in "
            f"{baseline.path}, pooled per cell (newest first): " + "; ".join(
                f"#{r.id} {r.run_time} commit {r.commit or '—'} branch {r.branch or '—'}"
                for r in base.pooled) + "."]
        if base.left_out:
            result.notes.insert(1, "Left out of the baseline: run(s) " + ", ".join(
                f"#{r.id}" for r in base.left_out) + ", recorded from the candidate's own "
                "file.")
    text = to_markdown(result)
    if args.out:
        write_file(args.out, text)
    sys.stdout.write(text)
    return 1 if result.failed else 0


def _export(args) -> int:
    (run,) = load_runs([args.results])
    files, skipped = export.export(run, args.format)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create {args.out}: {e.strerror or e}") from None
    for name, text in files.items():
        write_file(args.out / name, text)
    if skipped:
        print(f"report: left out {len(skipped)} failed cell(s): {', '.join(skipped)}",
              file=sys.stderr)
    return 0


def _history_add(args) -> int:
    for r in history.add(args.db, args.results, args.commit, args.branch):
        print(f"report: recorded {r.path} as run #{r.id} ({r.cells} cells, "
              f"{r.repetitions} repetitions) in {args.db}", file=sys.stderr)
    return 0


def _history_list(args) -> int:
    rows = [["id", "time", "machine", "commit", "branch", "cells"]]
    rows += [[str(r.id), r.run_time, r.machine, r.commit or "—", r.branch or "—",
              str(r.cells)] for r in history.runs(args.db)]
    sys.stdout.write("".join("\t".join(row) + "\n" for row in rows))
    return 0


def _trend(args) -> int:
    from ipcbench_report import plots     # matplotlib only where plots are drawn

    cell = f"{args.workload}/{args.transport}/{args.size}" + (
        f"/{args.params}" if args.params else "")
    counter, points = history.trend(args.db, cell, args.metric, args.machine)
    plots.trend(points, cell, counter, args.out)
    rows = [[f"#{p.run.id}", p.run.run_time, p.run.machine, p.run.commit or "—",
             p.run.branch or "—", f"{len(p.values)}/{p.repetitions}",
             fmt_metric(counter, p.median),
             fmt_metric(counter, min(p.values) if p.values else None),
             fmt_metric(counter, max(p.values) if p.values else None)] for p in points]
    sys.stdout.write(f"{cell}, {counter}: median, smallest and largest repetition per "
                     "recorded run (reps: with the counter / all)\n\n"
                     + render_md.table(["run", "time", "machine", "commit", "branch",
                                        "reps", "median", "min", "max"], rows) + "\n")
    print(f"report: wrote {args.out}", file=sys.stderr)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _percent(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1000:
        raise argparse.ArgumentTypeError("must be between 0 and 1000 (percent)")
    return value


def _alpha(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError("must be in (0, 1]")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="report.sh", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    r = sub.add_parser("render", help="HTML, Markdown, CSV and PNG plots of result files",
                       description="Render one or more result files (several machines "
                       "or runs side by side) into DIR: index.html (self-contained), "
                       "report.md, results.csv and PNG plots. Inputs from two or more "
                       "machines (host_name and cpu_model of the context) add a fleet "
                       "section: the same cells on each machine, the fastest marked.")
    r.add_argument("results", nargs="+", type=Path, metavar="RESULTS.json")
    r.add_argument("--out", required=True, type=Path, metavar="DIR")
    r.add_argument("--relative-to", metavar="NAME",
                   help="transport every other is set against in 'Every transport against "
                   "…' (every input must have measured it; default: the first transport of "
                   "family sockets in each run's transport descriptions)")
    r.add_argument("--slo-p99", metavar="DURATION",
                   help="p99 budget of the sustainable rate in 'Latency under load' "
                   "(a number and a unit: 100us, 2ms, 50000ns; default: each run's "
                   "context key ipcbench_slo_p99_ns, 100us when the run has none)")
    r.add_argument("--fleet-transport", action="append", metavar="NAME",
                   help="plot only this transport in the fleet section (repeat for "
                   "several; default: every transport two machines measured in one "
                   "placement); needs inputs from two or more machines")
    r.add_argument("--normalized", action="store_true",
                   help="draw rtt_vs_size.png and throughput_vs_size.png as × the floor "
                   "probed beside each cell (median floor_ratio, repetitions marked "
                   "host_changed left out) instead of the raw figures; cells without "
                   "one are left out; exit 2 when no pingpong or throughput cell has one")
    r.set_defaults(func=_render)

    c = sub.add_parser("compare", help="compare a candidate run against a baseline",
                       description="Per-cell change of the median with a two-sided "
                       "Mann-Whitney U test over repetitions, p-values adjusted by Holm's "
                       "method over all tested cells; Markdown on stdout. Exit 1 when a "
                       "cell is worse by more than --threshold with adjusted p < --alpha "
                       "(threshold alone without repetitions), when a larger share of a "
                       "cell's repetitions failed in the candidate than in the baseline, "
                       "or when cells of the baseline are missing from the candidate "
                       "(unless --allow-missing); exit 2 when no transport cell could be "
                       "compared. Gate with --benchmark_repetitions=9 on both sides "
                       "(interleaved, ipcbench's default): the notes say when the "
                       "repetitions are too few for the number of cells. With "
                       "--baseline-history the baseline is recorded runs (history add): the "
                       "last --last N runs' repetitions pooled into one baseline sample per "
                       "cell; exit 2 when no recorded run matches. With --normalized, "
                       "cells that carry floor_ratio in both runs are compared on it (cost "
                       "÷ the floor probed beside the cell), repetitions marked "
                       "host_changed left out.")
    c.add_argument("baseline", type=Path, nargs="?", metavar="BASELINE.json",
                   help="the baseline run (not with --baseline-history)")
    c.add_argument("candidate", type=Path, metavar="CANDIDATE.json")
    c.add_argument("--threshold", type=_percent, default=5.0, metavar="PCT",
                   help="smallest change that counts, percent (default 5)")
    c.add_argument("--alpha", type=_alpha, default=0.05, metavar="A",
                   help="chance of any false alarm over the whole comparison (Holm; "
                   "default 0.05)")
    c.add_argument("--allow-missing", action="store_true",
                   help="cells of the baseline missing from the candidate do not fail the "
                   "comparison (they are still listed)")
    c.add_argument("--out", type=Path, metavar="FILE", help="also write the Markdown here")
    c.add_argument("--normalized", action="store_true",
                   help="compare cells that carry floor_ratio in both runs on it (cost ÷ "
                   "the floor probed beside the cell, lower is better, per repetition; "
                   "repetitions marked host_changed on either side left out, a cell left "
                   "with none on a side skipped) instead of their primary metric; other "
                   "cells raw")
    c.add_argument("--baseline-history", action="store_true",
                   help="baseline: the last --last N recorded runs on the candidate's "
                   "machine, their repetitions pooled into one baseline sample per cell "
                   "(not compared run by run; runs recorded from the candidate's own file "
                   "left out); exit 2 when no run matches")
    c.add_argument("--last", type=_positive, metavar="N",
                   help="with --baseline-history: how many runs, newest by run time "
                   "(default 3: 3 x 9 repetitions and the candidate's 9 stay within the "
                   "exact test's 40 values)")
    c.add_argument("--branch", metavar="NAME",
                   help="with --baseline-history: only runs recorded with --branch NAME "
                   "(default: any branch)")
    c.add_argument("--machine", metavar="M",
                   help="with --baseline-history: runs of machine M (a host name, or the "
                   "machine as 'history list' prints it) instead of the candidate's")
    c.add_argument("--db", type=Path, metavar="PATH",
                   help="with --baseline-history: the history (default "
                   f"{history.DEFAULT_DB})")
    c.set_defaults(func=_compare)

    e = sub.add_parser("export", help="files for CI benchmark trackers",
                       description="Write tracker input into DIR: github-action-benchmark "
                       "(smaller-is-better.json, bigger-is-better.json) or bmf (bmf.json, "
                       "Bencher Metric Format); one entry (BMF: one measure) per "
                       "statistic of a cell: latency p50, p99, p99.9 (or ns per call), "
                       "throughput, CPU per message of each process.")
    e.add_argument("results", type=Path, metavar="RESULTS.json")
    e.add_argument("--format", required=True, choices=sorted(export.FORMATS))
    e.add_argument("--out", required=True, type=Path, metavar="DIR")
    e.set_defaults(func=_export)

    h = sub.add_parser("history", help="record runs in a local history (SQLite), list them",
                       description="A local run history: a SQLite file holding every "
                       "repetition of every cell of each recorded run.")
    hsub = h.add_subparsers(dest="action", required=True, metavar="ACTION")
    ha = hsub.add_parser("add", help="record result files",
                         description="Record each file as one run: its context (machine, "
                         "commit, branch, …) and every repetition's counters per cell. All "
                         "files in one transaction: when one is refused, none is recorded. "
                         "A file already recorded (same SHA-256) is refused.")
    ha.add_argument("results", nargs="+", type=Path, metavar="RESULTS.json")
    ha.add_argument("--commit", metavar="SHA",
                    help="the run's commit (default: the context's "
                    "ipcbench_git_commit; one that contradicts it is refused)")
    ha.add_argument("--branch", metavar="NAME", help="the run's branch (default: none)")
    ha.add_argument("--db", type=Path, default=history.DEFAULT_DB, metavar="PATH",
                    help=f"the history (default {history.DEFAULT_DB}; created when absent)")
    ha.set_defaults(func=_history_add)
    hl = hsub.add_parser("list", help="one line per recorded run",
                         description="A header, then one tab-separated line per recorded "
                         "run, oldest first: id, time (the run's, UTC), machine, commit, "
                         "branch, number of cells.")
    hl.add_argument("--db", type=Path, default=history.DEFAULT_DB, metavar="PATH",
                    help=f"the history (default {history.DEFAULT_DB})")
    hl.set_defaults(func=_history_list)

    t = sub.add_parser("trend", help="one cell over the recorded runs (PNG and a table)",
                       description="Draw the median of one cell's repetitions over the "
                       "recorded runs (in time order), with a bar from the smallest to the "
                       "largest repetition, one line per machine, into FILE.png; print the "
                       "same as a Markdown table.")
    t.add_argument("--transport", required=True, metavar="T")
    t.add_argument("--size", required=True, type=int, metavar="BYTES")
    t.add_argument("--workload", default="pingpong", metavar="W",
                   help="default pingpong")
    t.add_argument("--params", metavar="K:V[/K:V…]",
                   help="ipcbench's key:value segments of the cell, e.g. "
                   "clients:4/server:event-loop")
    t.add_argument("--metric", metavar="NAME",
                   help="p50, p99, p99.9 (round trip; corrected latency of rate cells, one "
                   "way of fan-out cells) or any counter (rtt_p90_ns, bytes_per_second, "
                   "cpu_client_ns_per_msg, …); default: the cell's primary metric, as "
                   "compare")
    t.add_argument("--machine", metavar="M",
                   help="only machine M (a host name, or the machine as 'history list' "
                   "prints it)")
    t.add_argument("--out", required=True, type=Path, metavar="FILE.png")
    t.add_argument("--db", type=Path, default=history.DEFAULT_DB, metavar="PATH",
                   help=f"the history (default {history.DEFAULT_DB})")
    t.set_defaults(func=_trend)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ReportError as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    except Exception:  # a bug must not exit 1, which means "regression" to a CI gate
        traceback.print_exc()
        print("report: internal error (traceback above)", file=sys.stderr)
        return 2
