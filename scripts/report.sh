#!/usr/bin/env bash
# Renders, compares and exports ipcbench results (Python package in report/).
#   scripts/report.sh render RESULTS.json… [--relative-to NAME] [--slo-p99 DURATION]
#                     [--fleet-transport NAME]… --out DIR
#     inputs from two or more machines (host_name + cpu_model) add a fleet section: the
#     same cells on each machine, the fastest marked, a plot per transport
#   scripts/report.sh compare BASELINE.json CANDIDATE.json [--threshold PCT] [--alpha A]
#                     [--allow-missing] [--out FILE]
#     exit 0: no regression; 1: a regression, or baseline cells missing from the candidate
#     (unless --allow-missing); 2: bad input, or no transport cell compared at all
#   scripts/report.sh export RESULTS.json --format github-action-benchmark|bmf --out DIR
#     one tracker entry (BMF: one measure) per statistic of a cell: latency p50, p99,
#     p99.9 (or ns per call), throughput, CPU per message of each process
#     (report/README.md, "export")
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
