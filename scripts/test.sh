#!/usr/bin/env bash
# Installs what is missing, builds with -Werror and runs every test (ctest).
#   --sanitizers   also build and run the tests under ASan+UBSan and under TSan
#                  (the default when CI=true)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/deps.sh
# python3-scipy and libbenchmark-tools only serve cross-checks of the report's statistics
# against scipy and of our JSON against Google Benchmark's own compare.py; chromium opens
# the rendered report headless (report/tests/test_browser.py); curl talks to the http
# transports' server as any HTTP client would (transports/http/http_test.cpp); iproute2's
# ip and tc make the network namespaces and the shaped veth link of split mode's test
# (tests/split_test.cpp).
ipcbench_install_deps clang-format python3-pytest python3-scipy libbenchmark-tools \
  rabbitmq-server chromium curl iproute2

sanitizers=0
[ "${CI:-}" = "true" ] && sanitizers=1
for a in "$@"; do
  case "$a" in
    --sanitizers) sanitizers=1 ;;
    --no-sanitizers) sanitizers=0 ;;
    *) echo "test.sh: unknown option '$a'" >&2; exit 2 ;;
  esac
done

echo "== clang-format check"
git ls-files -z '*.cpp' '*.h' | xargs -0 -r clang-format --dry-run --Werror

run_suite() {  # run_suite BUILD_DIR [cmake args…]
  local dir=$1; shift
  echo "== build $dir $*"
  cmake -S . -B "$dir" -DIPCBENCH_WERROR=ON -DIPCBENCH_TESTS=ON "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)" >/dev/null
  echo "== test $dir"
  local rc=0
  (cd "$dir" && ctest -j2 --output-on-failure --timeout 600) || rc=$?
  skip_digest "$dir"
  if [ "$rc" != 0 ]; then failure_digest "$dir"; return "$rc"; fi
}

# Why each skipped test was skipped (GTEST_SKIP's message, its lines joined), with how
# many tests gave that reason, most first: ctest lists skipped tests by name only.
skip_digest() {  # skip_digest BUILD_DIR
  local log=$1/Testing/Temporary/LastTest.log
  [ -f "$log" ] || return 0
  echo "== why tests were skipped in $1"
  awk '/: Skipped$/ { grab = 1; msg = ""; next }
    grab && /^\[  SKIPPED \]/ { print (msg == "" ? "(no reason given)" : msg); grab = 0; next }
    grab && $0 != "" { msg = (msg == "" ? $0 : msg " " $0) }' "$log" |
    cut -c1-240 | sort | uniq -c | sort -rn | head -n 40 || true
}

# The failing tests' assertions once more, last: ctest prints them amid the run and ends with
# the list of skipped tests, so a log's tail would otherwise show no reason.
failure_digest() {  # failure_digest BUILD_DIR
  local log=$1/Testing/Temporary/LastTest.log
  [ -f "$log" ] || return 0
  echo "== failed assertions in $1 (from $log)"
  # Each failure's location and the nine lines after it, each cut to 240 characters.
  awk '/: Failure$/ { n = 10 } n > 0 { print substr($0, 1, 240); n-- }' "$log" | head -n 80 || true
}

# The AMQP transports are tested against a real broker: a private node started here
# (unless IPCBENCH_AMQP_URL names one) and stopped on every exit.
if [ -z "${IPCBENCH_AMQP_URL:-}" ]; then
  # A port of this run's own (AMQP 7000-8999, epmd +10000, distribution +20000), so two
  # test runs on one machine never share a broker.
  export IPCBENCH_BROKER_PORT=${IPCBENCH_BROKER_PORT:-$((7000 + $$ % 2000))}
  export IPCBENCH_BROKER_DIR=${IPCBENCH_BROKER_DIR:-$root/build/broker-$IPCBENCH_BROKER_PORT}
  echo "== broker start (127.0.0.1:$IPCBENCH_BROKER_PORT)"
  start=$(date +%s)
  scripts/broker.sh start
  echo "== broker up after $(($(date +%s) - start)) s"
  trap 'echo "== broker stop"; scripts/broker.sh stop; rm -rf "$IPCBENCH_BROKER_DIR"' EXIT
  export IPCBENCH_AMQP_URL="amqp://guest:guest@127.0.0.1:$IPCBENCH_BROKER_PORT"
fi

run_suite build -DCMAKE_BUILD_TYPE=Release

echo "== report tests"
/usr/bin/python3 -m pytest -q -p no:cacheprovider report/tests tools
if [ "$sanitizers" = 1 ]; then
  run_suite build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DIPCBENCH_SANITIZE=address;undefined"
  TSAN_OPTIONS="halt_on_error=1 suppressions=$root/scripts/tsan.supp" run_suite build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DIPCBENCH_SANITIZE=thread
fi
