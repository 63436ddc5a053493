#!/usr/bin/env bash
# A private RabbitMQ node for the AMQP transports: its own node name, data, logs, Erlang
# cookie and ports under $IPCBENCH_BROKER_DIR (default build/broker), listening on
# 127.0.0.1 only. No system service is touched.
#   ./scripts/broker.sh start    start it (if not running) and wait until it answers
#   ./scripts/broker.sh stop     stop it cleanly
#   ./scripts/broker.sh status   exit 0 when it answers
#   ./scripts/broker.sh url      print the AMQP URL without credentials
# IPCBENCH_BROKER_PORT (default 5673) sets the AMQP port; the Erlang distribution port is
# that + 20000 and epmd runs on that + 10000, so it never meets a system broker.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${IPCBENCH_BROKER_DIR:-$root/build/broker}
port=${IPCBENCH_BROKER_PORT:-5673}
bin=/usr/lib/rabbitmq/bin

mkdir -p "$dir"
chmod 700 "$dir"
export HOME=$dir                      # the Erlang cookie lives here, private
export RABBITMQ_NODENAME=ipcbench-$port@localhost
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$port
export RABBITMQ_DIST_PORT=$((port + 20000))
export ERL_EPMD_PORT=$((port + 10000))
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_MNESIA_BASE=$dir/mnesia
export RABBITMQ_LOG_BASE=$dir/log
export RABBITMQ_PID_FILE=$dir/rabbitmq.pid
export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
export RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
export RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
# Erlang distribution on loopback too
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"

answers() { "$bin/rabbitmq-diagnostics" -q ping >/dev/null 2>&1; }

case "${1:-}" in
  start)
    if [ ! -x "$bin/rabbitmq-server" ]; then
      echo "broker.sh: rabbitmq-server is not installed (scripts/deps.sh installs it)" >&2
      exit 1
    fi
    if answers; then exit 0; fi
    [ -f "$dir/enabled_plugins" ] || echo "[]." > "$dir/enabled_plugins"
    : > "$dir/rabbitmq-env.conf"
    cat > "$dir/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$port
loopback_users.guest = true
max_message_size = 134217728
vm_memory_high_watermark.relative = 0.2
disk_free_limit.absolute = 200MB
CONF
    "$bin/rabbitmq-server" -detached >"$dir/start.log" 2>&1
    for _ in $(seq 1 120); do
      if answers; then
        "$bin/rabbitmqctl" -q await_startup >/dev/null 2>&1 && exit 0
      fi
      sleep 0.5
    done
    echo "broker.sh: the broker did not answer within 60 s; see $dir/log" >&2
    exit 1
    ;;
  stop)
    if answers; then "$bin/rabbitmqctl" -q stop "$dir/rabbitmq.pid" >/dev/null 2>&1 || true; fi
    # our private epmd (it answers on ERL_EPMD_PORT only)
    if command -v epmd >/dev/null; then epmd -kill >/dev/null 2>&1 || true; fi
    ;;
  status)
    answers
    ;;
  url)
    echo "amqp://127.0.0.1:$port"
    ;;
  *)
    echo "usage: $0 start|stop|status|url" >&2
    exit 2
    ;;
esac
