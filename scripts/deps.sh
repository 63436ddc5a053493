#!/usr/bin/env bash
# Installs the Debian 12 packages ipcbench needs, and only those that are missing.
# Sourced by bench.sh and test.sh; safe to run any number of times.
# As root it runs apt-get; otherwise it prints the exact apt-get line and stops.
set -euo pipefail

IPCBENCH_PACKAGES=(
  g++ make cmake pkg-config git
  libbenchmark-dev
  googletest libgtest-dev
  nlohmann-json3-dev
  libssl-dev
  libboost-dev
  libzmq3-dev cppzmq-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  librabbitmq-dev
  libsystemd-dev dbus-daemon
  libiceoryx-posh-dev iceoryx
  python3 python3-matplotlib
)

ipcbench_missing_packages() {
  local p missing=()
  for p in "${IPCBENCH_PACKAGES[@]}" "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  echo "${missing[@]:-}"
}

# ipcbench_install_deps [extra packages…]
ipcbench_install_deps() {
  local missing
  missing=$(ipcbench_missing_packages "$@")
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "ipcbench: missing packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends $missing" >&2
    exit 1
  fi
  echo "ipcbench: installing $missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  ipcbench_install_deps "$@"
fi
