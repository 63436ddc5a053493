#!/usr/bin/env bash
# Installs what is missing, builds (Release) and runs the default matrix.
# Results: results/<UTC-timestamp>-<host>.json (Google Benchmark JSON) and the report
# beside it in results/<UTC-timestamp>-<host>-report/ (index.html, report.md, CSV, plots).
# Extra arguments go to ipcbench, e.g. ./scripts/bench.sh --quick --transports=uds,tcp
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/deps.sh
ipcbench_install_deps

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target ipcbench >/dev/null

mkdir -p results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
host=$(hostname -s 2>/dev/null || hostname)
out="results/${stamp}-${host}.json"
partial="results/.${stamp}-${host}.json.partial"
trap 'rm -f "$partial"' EXIT

status=0
# The machine's floors first, in the same run and placement, so every figure can be
# read as a multiple of them.
build/ipcbench --floors --benchmark_out="$partial" --benchmark_out_format=json "$@" || status=$?
# Exit 1 means some cells failed: their errors are in the file, which is still kept.
if [ -s "$partial" ] && { [ "$status" -eq 0 ] || [ "$status" -eq 1 ]; }; then
  mv "$partial" "$out"
  echo "ipcbench: results written to $out" >&2
  if scripts/report.sh render "$out" --out "results/${stamp}-${host}-report"; then
    echo "ipcbench: report written to results/${stamp}-${host}-report/index.html" >&2
  else
    echo "ipcbench: the report failed (the results are kept in $out)" >&2
  fi
fi
exit "$status"
