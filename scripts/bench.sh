#!/usr/bin/env bash
# Installs what is missing, builds (Release) and runs the default matrix.
# Results: results/<UTC-timestamp>-<host>.json (Google Benchmark JSON) and the report
# beside it in results/<UTC-timestamp>-<host>-report/ (index.html, report.md, CSV, plots).
# Extra arguments go to ipcbench, e.g. ./scripts/bench.sh --quick --transports=uds,tcp
#   --with-broker   also run the AMQP transports (amqp, amqp-durable) against a private
#                   RabbitMQ node (scripts/broker.sh), started and stopped here. Naming an
#                   AMQP transport in --transports does the same. IPCBENCH_AMQP_URL: use
#                   that broker instead of starting one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/deps.sh

broker=0
args=()
for a in "$@"; do
  case "$a" in
    --with-broker) broker=1 ;;
    --transports=*amqp*) broker=1; args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
if [ "$broker" = 1 ] && ! printf '%s\n' "${args[@]+"${args[@]}"}" | grep -q '^--transports='; then
  args+=("--transports=all")
fi
set -- "${args[@]+"${args[@]}"}"

partial=""
stop_broker=0
cleanup() {
  [ -n "$partial" ] && rm -f "$partial"
  if [ "$stop_broker" = 1 ]; then
    scripts/broker.sh stop || true
    rm -rf "$IPCBENCH_BROKER_DIR"
  fi
}
trap cleanup EXIT

if [ "$broker" = 1 ] && [ -z "${IPCBENCH_AMQP_URL:-}" ]; then
  ipcbench_install_deps rabbitmq-server
  # A broker of this run's own (AMQP 9000-10999, epmd +10000, distribution +20000), so
  # runs side by side never share one.
  export IPCBENCH_BROKER_PORT=${IPCBENCH_BROKER_PORT:-$((9000 + $$ % 2000))}
  export IPCBENCH_BROKER_DIR=${IPCBENCH_BROKER_DIR:-$root/build/broker-$IPCBENCH_BROKER_PORT}
  stop_broker=1
  scripts/broker.sh start
  export IPCBENCH_AMQP_URL="amqp://guest:guest@127.0.0.1:$IPCBENCH_BROKER_PORT"
else
  ipcbench_install_deps
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target ipcbench >/dev/null

mkdir -p results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
host=$(hostname -s 2>/dev/null || hostname)
out="results/${stamp}-${host}.json"
partial="results/.${stamp}-${host}.json.partial"

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
