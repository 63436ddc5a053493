"""Run-to-run comparison: per-cell change of the median of the primary metric, a
two-sided Mann–Whitney U test over the repetitions, corrected for the number of cells
compared (Holm), and a verdict.

Decision rule (``decide``): a cell is a **regression** when its median is worse by more
than the threshold AND either its Holm-adjusted p < alpha (both sides have ≥ 2
repetitions) or a side has no repetitions (then the threshold alone decides, and the
table says so). A cell with **new failed repetitions** is a regression whatever its
surviving repetitions say (``_new_failures``): a larger share of the candidate's
repetitions failed than of the baseline's (any failed repetition when none failed in the
baseline). A cell that failed in every repetition of both runs was measured in neither:
it is reported as failing and skipped, not a regression of the change. The Holm
correction runs over every transport cell that was tested, so ``alpha`` bounds the
chance that two runs of the same build raise any false alarm at all — with ~150 cells
tested at 0.05 each, about 4 would otherwise "regress" by chance. When the repetitions
are too few for even one cell to reach alpha, a worse cell is reported as untestable and
does not fail the comparison; the notes say how many repetitions the comparison needs.

The gate (``Comparison.failed``) also fails when cells of the baseline are missing from
the candidate, unless ``allow_missing``; and ``compare`` refuses (``ReportError``, exit 2)
when no transport cell was compared at all: a gate that compared nothing must not pass.

Machine floors (``floor/*`` cells) are compared in a table of their own for context but
never regress by being slower: they measure the machine, not the code, and a floor that
moved says the runs were not on equal machines. A floor with new failed repetitions
still regresses (the suite's own floor code broke).

Normalized (``normalized``, ``compare --normalized``): a cell whose repetitions carry
``floor_ratio`` in both runs (the floor probed beside the cell) is compared on it instead
of its primary metric — the cell's cost ÷ that floor's cost, lower is better, one value
per repetition, by the same test, correction and rule. Repetitions marked
``host_changed`` on either side are left out (the cell's row says which); a cell left
with no repetition on a side is skipped, with a note. Every other cell (machine floors,
cells of other workloads, cells of results written before the probe) is compared on its
primary metric as without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ipcbench_report import ReportError
from ipcbench_report.layout import fmt_metric, fmt_pct, marked_positions
from ipcbench_report.model import FLOOR_RATIO, Cell, Run
from ipcbench_report.render_md import table
from ipcbench_report.stats import holm, mann_whitney_u, min_p_value

REGRESSION = "REGRESSION"
METHOD = ("Two-sided Mann–Whitney U test over the repetition values of each side (exact "
          "permutation distribution of the rank sum, ties included, up to 40 values; "
          "normal approximation beyond), p-values adjusted by Holm's method over all "
          "tested cells, so alpha bounds the chance of any false alarm in the whole "
          "comparison.")

NORMALIZED = ("--normalized: a cell whose repetitions carry floor_ratio in both runs (the "
              "floor probed just before and just after each repetition on the cell's "
              "CPUs) is compared on it — its cost ÷ that floor's cost, lower is better, "
              "one value per repetition — instead of its primary metric; repetitions "
              "marked host_changed on either side (the machine changed during them) are "
              "left out, and a cell left with no repetition on a side is skipped. Other "
              "cells (machine floors, other workloads, results written before the probe) "
              "are compared on their primary metric. raw change is the change of the "
              "median of the primary metric over every successful repetition.")


@dataclass
class Change:
    """Outcome for one cell present on both sides."""

    cell: str
    metric: str
    lower_is_better: bool
    base: float | None = None
    cand: float | None = None
    n_base: int = 0
    n_cand: int = 0
    change: float | None = None          # (cand - base) / base
    p: float | None = None               # Mann–Whitney, this cell alone
    p_adj: float | None = None           # Holm-adjusted over the tested transport cells
    verdict: str = ""
    why: str = ""
    skipped: str = ""                    # why the cell was not compared ("" = compared)
    failures: str = ""                   # failed repetitions that are not new
    saturated: str = ""                  # sides where a rate cell missed its offered rate
    shared_cpu: bool = False             # a rate cell's sender shared a CPU (either side)
    normalized: bool = False             # compared on floor_ratio (``normalized``)
    raw_change: float | None = None      # change of the primary metric's median
    left_out: str = ""                   # repetitions marked host_changed, left out


@dataclass
class Comparison:
    baseline: Run
    candidate: Run
    threshold: float                     # fraction, 0.05 = 5 %
    alpha: float
    allow_missing: bool = False          # cells only in the baseline do not fail the gate
    normalized: bool = False             # cells with a floor beside them on floor_ratio
    changes: list[Change] = field(default_factory=list)       # transport cells
    floors: list[Change] = field(default_factory=list)        # floor/* cells
    only_baseline: list[str] = field(default_factory=list)
    only_candidate: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes + self.floors if c.verdict == REGRESSION]

    @property
    def compared(self) -> list[Change]:
        """Cells of both runs that were compared (transport cells and floors)."""
        return [c for c in self.changes + self.floors if not c.skipped]

    @property
    def missing(self) -> list[str]:
        """Cells of the baseline missing from the candidate that fail the gate."""
        return [] if self.allow_missing else self.only_baseline

    @property
    def failed(self) -> bool:
        """The gate's verdict: a regression, or baseline cells missing (not allowed)."""
        return bool(self.regressions or self.missing)

    def skipped(self) -> dict[str, int]:
        """Why cells were not compared -> how many, in a fixed order, zero counts left out."""
        reasons = {"only in the baseline": len(self.only_baseline),
                   "only in the candidate": len(self.only_candidate)}
        for c in self.changes + self.floors:
            if c.skipped:
                reasons[c.skipped] = reasons.get(c.skipped, 0) + 1
        return {why: n for why, n in reasons.items() if n}


def decide(ch: Change, threshold: float, alpha: float, tested: int = 1) -> None:
    """Fill ``ch.verdict`` and ``ch.why`` from change, adjusted p-value and repetition
    counts; ``tested`` is the number of cells the p-values were adjusted over."""
    worse = ch.change > threshold if ch.lower_is_better else ch.change < -threshold
    better = ch.change < -threshold if ch.lower_is_better else ch.change > threshold
    p = ch.p_adj if ch.p_adj is not None else ch.p
    among = f" (Holm, {tested} cells)" if tested > 1 else ""
    best = min_p_value(ch.n_base, ch.n_cand)
    if not (worse or better):
        ch.verdict, ch.why = "unchanged", f"within ±{threshold * 100:g} %"
    elif better:
        ch.verdict = "improved"
        if p is not None and p >= alpha:
            ch.why = f"not significant (p ≥ {alpha:g})"
    elif p is None:
        ch.verdict, ch.why = REGRESSION, "threshold only: a side has no repetitions"
    elif p < alpha:
        ch.verdict, ch.why = REGRESSION, f"p < {alpha:g}{among}"
    elif best * tested >= alpha:
        ch.verdict = "worse (untestable)"
        ch.why = (f"{ch.n_base} vs {ch.n_cand} repetitions cannot reach p < {alpha:g}{among} "
                  f"(smallest p = {best:.2g}); see the notes")
    else:
        ch.verdict, ch.why = "worse (not significant)", f"p ≥ {alpha:g}{among}"


def repetitions_needed(tested: int, alpha: float) -> int:
    """Fewest repetitions per side with which one cell among ``tested`` can reach alpha."""
    n = 2
    while min_p_value(n, n) * tested >= alpha:
        n += 1
    return n


def _failed(cell: Cell) -> str:
    """``k of n repetitions failed (messages)``."""
    return (f"{len(cell.errors)} of {cell.repetitions} repetitions failed "
            f"({'; '.join(dict.fromkeys(cell.errors))})")


def _new_failures(bc: Cell, cc: Cell) -> str:
    """Why the candidate's failed repetitions are new, ``""`` when they are not: new when
    a larger share of the candidate's repetitions failed than of the baseline's, so any
    failed repetition is new when none failed in the baseline. (Repetitions are not
    paired across runs and error messages carry run details, so the share decides.)"""
    if not cc.errors or len(cc.errors) / cc.repetitions <= len(bc.errors) / bc.repetitions:
        return ""
    base = f"{len(bc.errors)} of {bc.repetitions}" if bc.errors else "none"
    return (f"new failure: {'; '.join(dict.fromkeys(cc.errors))} ({len(cc.errors)} of "
            f"{cc.repetitions} repetitions failed; in the baseline {base})")


# Why a cell compared normalized was skipped.
SKIPPED_MARKED = "every repetition of a side marked host_changed"


def _left_out(bc: Cell, cc: Cell) -> str:
    """``left out, host_changed: baseline repetition(s) 3 of 9``, ``""`` when none."""
    sides = [f"{side} {marked_positions(c)}" for side, c in
             (("baseline", bc), ("candidate", cc)) if c.marked()]
    return f"left out, host_changed: {'; '.join(sides)}" if sides else ""


def _change(bc: Cell, cc: Cell, normalized: bool = False) -> Change:
    """The cell's change (its p-value, not yet its verdict); on ``floor_ratio`` when
    ``normalized`` and both cells carry it (see the module's rule)."""
    metric, lower = bc.primary()
    ch = Change(bc.id, metric, lower)
    if not bc.ok and not cc.ok:
        ch.verdict, ch.skipped = "failing", "failed in every repetition of both runs"
        eb, ec = "; ".join(dict.fromkeys(bc.errors)), "; ".join(dict.fromkeys(cc.errors))
        ch.why = ("failed in every repetition of both runs, so measured in neither: not a "
                  "regression of the change (" + (eb if eb == ec else
                                                  f"baseline: {eb}; candidate: {ec}") + ")")
        return ch
    xb, xc = bc.values(metric), cc.values(metric)
    ch.base, ch.cand, ch.n_base, ch.n_cand = bc.median(metric), cc.median(metric), \
        len(xb), len(xc)
    ch.saturated = " and ".join(side for side, c in (("baseline", bc), ("candidate", cc))
                                if any(v >= 1 for v in c.values("saturated")))
    ch.shared_cpu = any(v >= 1 for c in (bc, cc) for v in c.values("shared_cpu"))
    if ch.base and ch.cand is not None:
        ch.change = (ch.cand - ch.base) / ch.base    # shown; the verdict may not use it
    ch.raw_change = ch.change
    if normalized and bc.has_floor_beside and cc.has_floor_beside:
        xb, xc = bc.values(FLOOR_RATIO, unmarked=True), cc.values(FLOOR_RATIO, unmarked=True)
        ch.normalized, ch.metric, ch.lower_is_better = True, FLOOR_RATIO, True
        ch.base, ch.cand = (bc.median(FLOOR_RATIO, unmarked=True),
                            cc.median(FLOOR_RATIO, unmarked=True))
        ch.n_base, ch.n_cand = len(xb), len(xc)
        ch.change = (ch.cand - ch.base) / ch.base if ch.base and ch.cand is not None \
            else None
        ch.left_out = _left_out(bc, cc)
    new = _new_failures(bc, cc)
    if new:                              # whatever the surviving repetitions say
        ch.verdict, ch.why = REGRESSION, new
        return ch
    ch.failures = "; ".join(f"{side}: {_failed(c)}" for side, c in
                            (("baseline", bc), ("candidate", cc)) if c.errors)
    if not bc.ok:
        ch.verdict, ch.why = "fixed", "failed in every repetition of the baseline"
        return ch
    if ch.normalized and not (xb and xc):
        sides = " and ".join(side for side, x in (("baseline", xb), ("candidate", xc))
                             if not x)
        ch.verdict, ch.skipped = "skipped (host changed)", SKIPPED_MARKED
        ch.why = (f"the machine changed during every repetition of the {sides} "
                  "(host_changed = 1): no repetition left to compare on floor_ratio")
        return ch
    if ch.change is None:
        ch.verdict, ch.why = "not comparable", f"{ch.metric} missing or zero"
        ch.skipped = f"{ch.metric} missing or zero"
        return ch
    if len(xb) >= 2 and len(xc) >= 2:
        ch.p = mann_whitney_u(xb, xc)[1]
    return ch                            # decided once every cell has its p-value


def compare(baseline: Run, candidate: Run, threshold: float, alpha: float,
            allow_missing: bool = False, normalized: bool = False) -> Comparison:
    """Compare every cell by id (cells with a floor beside them on ``floor_ratio`` when
    ``normalized``); one-sided cells are listed (those only in the baseline fail the
    gate unless ``allow_missing``). ``ReportError`` when no transport cell could be
    compared."""
    cmp = Comparison(baseline, candidate, threshold, alpha, allow_missing, normalized)
    # run_dir_fs: socket files, FIFOs and mapped files live there (tmpfs or a disk);
    # latency_metric: how round trips were timed.
    for key in ("pin_mode", "wait_strategy", "host_name", "verify_payload", "cpu_model",
                "run_dir_fs", "latency_metric"):
        b, c = baseline.ctx(key), candidate.ctx(key)
        if b != c:
            cmp.notes.append(f"{key} differs (baseline {b}, candidate {c}): the runs are "
                             "not like for like; changes may come from that.")
    for cid, bc in baseline.cells.items():
        cc = candidate.cells.get(cid)
        if cc is None:
            cmp.only_baseline.append(cid)
        else:
            (cmp.floors if bc.kind == "floor" else cmp.changes).append(
                _change(bc, cc, normalized))
    cmp.only_candidate = [cid for cid in candidate.cells if cid not in baseline.cells]
    common = [(bc, candidate.cells[cid]) for cid, bc in baseline.cells.items()
              if cid in candidate.cells]
    marked = sum(1 for bc, cc in common if bc.marked() or cc.marked())
    if marked and not normalized:
        cmp.notes.append(f"{marked} cell(s) have repetitions marked host_changed (the "
                         "machine changed during them: the floor probed beside the cell "
                         "moved by more than the runner's margin): compared here on every "
                         "repetition; compare --normalized compares floor_ratio and "
                         "leaves them out.")
    one_sided = sum(1 for bc, cc in common if bc.has_floor_beside != cc.has_floor_beside)
    if one_sided and normalized:
        cmp.notes.append(f"{one_sided} cell(s) carry floor_ratio in one run only (the "
                         "other was written before ipcbench probed the floor beside each "
                         "cell): compared raw.")
    _refuse_if_nothing_compared(cmp)
    tested = [c for c in cmp.changes if c.p is not None]
    for c, p_adj in zip(tested, holm([c.p for c in tested])):
        c.p_adj = p_adj
    for c in cmp.changes:
        if c.change is not None and not c.verdict:
            decide(c, threshold, alpha, len(tested))
    for c in cmp.floors:                 # not gated on speed: no correction, no verdict
        if c.change is None or c.verdict:
            continue
        decide(c, threshold, alpha)
        if c.verdict == REGRESSION or c.verdict.startswith("worse"):
            c.verdict, c.why = "worse (floor, not gated)", "a floor measures the machine"
    moved = [f"{c.cell} {c.change * 100:+.0f} %" for c in cmp.floors
             if c.change is not None and abs(c.change) > threshold]
    if moved:
        cmp.notes.append(f"Machine floors moved by more than {threshold * 100:g} % "
                         f"({', '.join(moved)}): the machine or its load differed between "
                         "the runs, so cell changes of that order may come from the "
                         "machine, not from the code.")
    if tested:
        need = repetitions_needed(len(tested), alpha)
        fewest = min(min(c.n_base, c.n_cand) for c in tested)
        if fewest < need:
            cmp.notes.append(
                f"{len(tested)} cells were tested, so a lone regressed cell needs p < "
                f"{alpha:g} / {len(tested)} = {alpha / len(tested):.2g} before Holm's "
                f"correction; with {fewest} repetitions on a side the smallest possible p "
                f"is {min_p_value(fewest, fewest):.2g}, so worse cells are reported as "
                f"untestable and do not fail. Use --benchmark_repetitions={need} or more "
                "on both sides (or compare fewer cells, or a larger --alpha).")
    for side, run in (("baseline", cmp.baseline), ("candidate", cmp.candidate)):
        if run.ctx("random_interleaving") == "false" and any(
                (c.n_base if side == "baseline" else c.n_cand) >= 2 for c in tested):
            cmp.notes.append(
                f"The {side} ran each cell's repetitions back to back (random_interleaving "
                "false): they share one moment of the machine, so the test sees less "
                "noise than there is between runs and may flag the machine's drift.")
    if any(c.why.startswith("threshold only") for c in cmp.changes):
        cmp.notes.append("Cells without repetitions on a side are decided by the "
                         "threshold alone (no statistical test).")
    return cmp


def _refuse_if_nothing_compared(cmp: Comparison) -> None:
    if any(not c.skipped for c in cmp.changes):
        return
    b, c = cmp.baseline, cmp.candidate
    common = len(cmp.changes) + len(cmp.floors)
    if not common:
        why = (f"{b.path} and {c.path} have no cell in common ({len(b.cells)} and "
               f"{len(c.cells)} cells)")
    else:
        skipped = sorted({ch.skipped for ch in cmp.changes})
        why = (f"of the {common} cells in both {b.path} and {c.path}, "
               + (f"{len(cmp.floors)} are machine floors (not gated) and " if cmp.floors
                  else "")
               + (f"the {len(cmp.changes)} transport cells were skipped "
                  f"({', '.join(skipped)})" if cmp.changes else "none is a transport cell"))
    raise ReportError(f"nothing to gate on: no transport cell was compared; {why}")


def _table(changes: list[Change], normalized: bool = False) -> str:
    """The cells' table; ``normalized`` adds the raw change beside the change."""
    rows = [[c.cell, c.metric + (" ↓" if c.lower_is_better else " ↑"),
             fmt_metric(c.metric, c.base), fmt_metric(c.metric, c.cand),
             fmt_pct(c.change, signed=True)]
            + ([fmt_pct(c.raw_change, signed=True)] if normalized else [])
            + ["—" if c.p is None else f"{c.p:.3g}",
             "—" if c.p_adj is None else f"{c.p_adj:.3g}", f"{c.n_base}/{c.n_cand}",
             f"**{c.verdict}**" if c.verdict == REGRESSION else c.verdict,
             c.why + (f"; {c.left_out}" if c.left_out else "")
             + (f"; {c.failures}" if c.failures else "")
             + (f"; saturated in the {c.saturated} (achieved below 95 % of its schedule's "
                "rate): its latency is not a latency at that rate" if c.saturated else "")
             + ("; shared CPU (a busy thread shared a CPU with another busy one)"
                if c.shared_cpu else "")]
            for c in changes]
    return table(["cell", "metric", "baseline", "candidate", "change"]
                 + (["raw change"] if normalized else [])
                 + ["p", "p (Holm)", "reps", "verdict", "why"], rows)


def _counts(cmp: Comparison) -> str:
    """``21 compared (16 transport cells, 5 machine floors), 2 skipped: 2 only in the
    candidate.``; normalized: ``21 compared (16 transport cells, 5 machine floors; 16
    normalized on floor_ratio, 5 raw), …``"""
    floors = sum(1 for c in cmp.floors if not c.skipped)
    cells = len(cmp.compared) - floors
    norm = sum(c.normalized for c in cmp.compared)
    text = f"{len(cmp.compared)} compared ({cells} transport cells" + (
        f", {floors} machine floors" if floors else "") + (
        f"; {norm} normalized on floor_ratio, {len(cmp.compared) - norm} raw)"
        if cmp.normalized else ")")
    skipped = cmp.skipped()
    if skipped:
        allowed = " (accepted: --allow-missing)" if cmp.allow_missing else ""
        text += f", {sum(skipped.values())} skipped: " + ", ".join(
            f"{n} {why}" + (allowed if why == "only in the baseline" else "")
            for why, n in skipped.items())
    return text + "."


def to_markdown(cmp: Comparison) -> str:
    """The comparison as Markdown (summary, rule, notes, the cells' table, the floors'
    table, one-sided cells)."""
    regs = cmp.regressions
    lines = [f"# ipcbench compare: {cmp.baseline.path.name} → {cmp.candidate.path.name}",
             "",
             f"**{len(regs)} regression(s)**" + (": " + ", ".join(c.cell for c in regs)
                                                 if regs else ""),
             ""]
    if cmp.missing:
        lines += [f"**{len(cmp.missing)} cell(s) of the baseline missing from the "
                  "candidate** (this fails the comparison; --allow-missing accepts it): "
                  + ", ".join(cmp.missing), ""]
    lines += [_counts(cmp), "",
              f"Baseline {cmp.baseline.label} (pin={cmp.baseline.pin_mode}), candidate "
              f"{cmp.candidate.label} (pin={cmp.candidate.pin_mode}). A cell regresses "
              f"when its median is worse by more than {cmp.threshold * 100:g} % and its "
              f"Holm-adjusted p < {cmp.alpha:g}, or when a larger share of its "
              "repetitions failed in the candidate than in the baseline (any failed "
              "repetition where none failed before). " + METHOD
              + (" " + NORMALIZED if cmp.normalized else ""), ""]
    lines += [f"- {n}" for n in cmp.notes] + ([""] if cmp.notes else [])
    lines.append(_table(cmp.changes, cmp.normalized))
    if cmp.floors:
        lines += ["", "## Machine floors", "",
                  "Limits of the machine measured in each run (floor/*), not transports: "
                  "compared for context, a slower floor never fails the comparison (only "
                  "one with new failed repetitions does).", "",
                  _table(cmp.floors, cmp.normalized)]
    for what, ids in (("Only in the baseline", cmp.only_baseline),
                      ("Only in the candidate", cmp.only_candidate)):
        if ids:
            lines += ["", f"{what}: " + ", ".join(ids)]
    return "\n".join(lines) + "\n"
