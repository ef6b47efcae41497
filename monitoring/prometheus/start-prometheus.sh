#!/bin/sh
# Start Prometheus with the gateway's configuration, the same way for every
# setup (docker compose entrypoint, PM2, run-local.sh):
#
#   start-prometheus.sh [extra prometheus flags...]
#
# Environment (besides what render-runtime.sh reads):
#   PROMETHEUS_BIN             prometheus binary (default: prometheus on PATH)
#   PROMETHEUS_RUNTIME_DIR     where the runtime config is laid out
#                              (default: ../.local/prometheus-runtime)
#   PROMETHEUS_DATA_DIR        TSDB directory (default: ../.local/prometheus-data)
#   PROMETHEUS_LISTEN_ADDRESS  web/API listen address (default: 127.0.0.1:9090)
#   PROMETHEUS_RETENTION       retention time (default: 15d)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
runtime_dir=${PROMETHEUS_RUNTIME_DIR:-$here/../.local/prometheus-runtime}
data_dir=${PROMETHEUS_DATA_DIR:-$here/../.local/prometheus-data}

sh "$here/render-runtime.sh" "$runtime_dir"
mkdir -p "$data_dir"

exec "${PROMETHEUS_BIN:-prometheus}" \
    --config.file="$runtime_dir/prometheus.yml" \
    --storage.tsdb.path="$data_dir" \
    --storage.tsdb.retention.time="${PROMETHEUS_RETENTION:-15d}" \
    --web.listen-address="${PROMETHEUS_LISTEN_ADDRESS:-127.0.0.1:9090}" \
    --web.enable-lifecycle \
    "$@"
