#!/usr/bin/env bash
# Run the gateway and a local Prometheus together, without Docker or PM2.
# Ctrl-C (or SIGTERM) stops both; if either exits, the other is stopped too.
#
#   monitoring/run-local.sh                    gateway + Prometheus
#   monitoring/run-local.sh --prometheus-only  Prometheus for a gateway started elsewhere
#
# Prometheus must be installed (Debian/Ubuntu: apt-get install prometheus;
# macOS: brew install prometheus), or PROMETHEUS_BIN must point at it.
# Environment: as for monitoring/ecosystem.config.js (METRICS_PORT,
# METRICS_TOKEN, GATEWAY_METRICS_TARGET, PROMETHEUS_LISTEN_ADDRESS,
# PROMETHEUS_DATA_DIR, PROMETHEUS_RUNTIME_DIR, PROMETHEUS_BIN, GUNICORN_BIN)
# plus what the gateway itself reads.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/.." && pwd)

run_gateway=1
case "${1:-}" in
    "") ;;
    --prometheus-only) run_gateway=0 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

prometheus_bin=${PROMETHEUS_BIN:-prometheus}
if ! command -v "$prometheus_bin" >/dev/null 2>&1; then
    echo "run-local.sh: '$prometheus_bin' not found; install Prometheus or set PROMETHEUS_BIN" >&2
    exit 1
fi
gunicorn_bin=${GUNICORN_BIN:-}
if [ -z "$gunicorn_bin" ]; then
    # The README's virtualenv when there is one, else gunicorn on PATH.
    if [ -x "$repo_root/.venv/bin/gunicorn" ]; then gunicorn_bin=$repo_root/.venv/bin/gunicorn; else gunicorn_bin=gunicorn; fi
fi
if [ "$run_gateway" = 1 ] && ! command -v "$gunicorn_bin" >/dev/null 2>&1; then
    echo "run-local.sh: '$gunicorn_bin' not found; install the project's requirements or set GUNICORN_BIN" >&2
    exit 1
fi

gateway_pid=
prometheus_pid=
stopping=0

stop_all() {
    [ "$stopping" = 1 ] && return
    stopping=1
    trap - INT TERM
    local pid
    for pid in $gateway_pid $prometheus_pid; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # Give both a graceful shutdown (gunicorn drains its workers), then insist.
    local waited=0
    while [ "$waited" -lt 40 ]; do
        local alive=0
        for pid in $gateway_pid $prometheus_pid; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 1
        waited=$((waited + 1))
    done
    for pid in $gateway_pid $prometheus_pid; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

# Job control puts each child in its own process group, so a terminal's Ctrl-C
# reaches this script only and the children get the graceful SIGTERM below
# (gunicorn treats SIGINT as "quit now", cutting open streams).
set -m
if [ "$run_gateway" = 1 ]; then
    (cd "$repo_root" && exec "$gunicorn_bin" -c gunicorn.conf.py wsgi:app) &
    gateway_pid=$!
fi
PROMETHEUS_BIN=$prometheus_bin "$here/prometheus/start-prometheus.sh" &
prometheus_pid=$!

listen=${PROMETHEUS_LISTEN_ADDRESS:-127.0.0.1:9090}
target=${GATEWAY_METRICS_TARGET:-127.0.0.1:${METRICS_PORT:-4001}}
echo "run-local.sh: Prometheus at http://$listen (targets: http://$listen/targets), scraping http://$target/metrics"
[ "$run_gateway" = 1 ] && echo "run-local.sh: gateway started from $repo_root (gunicorn -c gunicorn.conf.py wsgi:app)"
echo "run-local.sh: Ctrl-C stops everything"

# bash 3.2 (macOS) has no `wait -n`: poll until one of them exits.
while :; do
    for pid in $gateway_pid $prometheus_pid; do
        if ! kill -0 "$pid" 2>/dev/null; then
            status=0
            wait "$pid" || status=$?
            echo "run-local.sh: process $pid exited with status $status; stopping the rest" >&2
            stop_all
            exit "$status"
        fi
    done
    sleep 1
done
