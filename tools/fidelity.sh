#!/usr/bin/env bash
# Measures ipcbench side by side with sockperf, iperf3, perf bench and an lmbench-style
# reference ping-pong on this machine, and prints medians and ratios (Markdown).
# Options go to tools/fidelity.py (--rounds N --seconds S --placements same,cross;
# --zmq: the ZeroMQ transports against the method of libzmq's perf programs; --http:
# http-tcp against h2load and ab; --rate [--rates=R,…]: tcp's rate workload against
# sockperf under-load).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/deps.sh
ipcbench_install_deps sockperf iperf3 linux-perf nghttp2-client apache2-utils
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target ipcbench ipcbench-lat-reference ipcbench-zmq-reference >/dev/null
exec /usr/bin/python3 tools/fidelity.py --build build "$@"
