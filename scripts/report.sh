#!/usr/bin/env bash
# Renders, compares and exports ipcbench results (Python package in report/).
#   scripts/report.sh render RESULTS.json… [--relative-to NAME] [--slo-p99 DURATION]
#                     [--fleet-transport NAME]… [--normalized] --out DIR
#     inputs from two or more machines (host_name + cpu_model) add a fleet section: the
#     same cells on each machine, the fastest marked, a plot per transport;
#     --normalized draws the plots over message size × the floor beside each cell
#   scripts/report.sh compare BASELINE.json CANDIDATE.json [--threshold PCT] [--alpha A]
#                     [--allow-missing] [--normalized] [--out FILE]
#     --normalized: cells with the floor beside them in both runs are gated on
#     floor_ratio, repetitions marked host_changed left out; other cells raw
#   scripts/report.sh compare --baseline-history [--last N] [--branch NAME] [--machine M]
#                     [--db PATH] CANDIDATE.json [--threshold PCT] [--alpha A] …
#     exit 0: no regression; 1: a regression, or baseline cells missing from the candidate
#     (unless --allow-missing); 2: bad input, no transport cell compared at all, or no
#     recorded run to compare against
#   scripts/report.sh export RESULTS.json --format github-action-benchmark|bmf --out DIR
#     one tracker entry (BMF: one measure) per statistic of a cell: latency p50, p99,
#     p99.9 (or ns per call), throughput, CPU per message of each process
#     (report/README.md, "export")
#   scripts/report.sh history add RESULTS.json… [--commit SHA] [--branch NAME] [--db PATH]
#   scripts/report.sh history list [--db PATH]
#   scripts/report.sh trend --transport T --size BYTES [--workload W] [--params K:V/…]
#                     [--metric p50|p99|p99.9|COUNTER] [--machine M] --out FILE.png [--db PATH]
#     the run history is a SQLite file, results/history.sqlite by default (relative to the
#     current directory); exit 2: bad input, a --db this code cannot use (not SQLite,
#     damaged, another program's, a newer schema), a results file recorded before, or no
#     recorded run to draw
# Needs a python3 with matplotlib (Debian: /usr/bin/python3 + python3-matplotlib);
# IPCBENCH_PYTHON picks another interpreter.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

py=""
for candidate in "${IPCBENCH_PYTHON:-}" /usr/bin/python3 python3; do
  [ -n "$candidate" ] || continue
  if command -v "$candidate" >/dev/null 2>&1 &&
    "$candidate" -c 'import matplotlib' >/dev/null 2>&1; then
    py=$candidate
    break
  fi
done
if [ -z "$py" ]; then
  echo "report.sh: no python3 with matplotlib found; install it: apt-get install python3-matplotlib" >&2
  exit 2
fi

export MPLBACKEND=Agg
PYTHONPATH="$root/report${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m ipcbench_report "$@"
