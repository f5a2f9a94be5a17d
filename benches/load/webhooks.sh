#!/usr/bin/env bash
# Webhook receiver load test: accepted webhooks per second and p50/p99 latency through
# HTTP for each queue backend, next to the rate the queue itself takes without HTTP
# (benches/queue_publish.rs), measured in the same run.
#
#   benches/load/webhooks.sh [DURATION_SECS] [CONNECTIONS]
#
# Needs wrk (Debian: apt-get install wrk) and, for the RabbitMQ and PostgreSQL rows,
# those services on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration="${1:-15}"
connections="${2:-32}"
port=18080
token="bench-webhook-token-0123456789"
export BENCH_WEBHOOK_TOKEN="$token"

cargo build --release --quiet
cargo bench --no-run --quiet --bench queue_publish 2>/dev/null
bench_bin=$(ls -t target/release/deps/queue_publish-* | grep -v '\.d$' | head -1)
work=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
# Connected organisations' tokens are encrypted under this key (required on PostgreSQL).
(umask 077 && openssl rand -hex 32 >"$work/kitefix.key")

run_http() { # label queue_kind store_url
  local label="$1" kind="$2" store="$3"
  KITEFIX_SERVER__BIND="127.0.0.1:$port" KITEFIX_WEBHOOK__TOKEN="$token" \
  KITEFIX_QUEUE__KIND="$kind" KITEFIX_QUEUE__PREFIX="kitefix-bench-$RANDOM" \
  KITEFIX_STORE__URL="$store" KITEFIX_STORE__MAX_CONNECTIONS=32 KITEFIX_LOG__LEVEL=warn \
  KITEFIX_SECURITY__ENCRYPTION_KEY_FILE="$work/kitefix.key" KITEFIX_RECONCILER__INTERVAL_SECS=0 \
    target/release/kitefix serve --role receiver >"$work/$label.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { echo "kitefix did not start:" >&2; cat "$work/$label.log" >&2; exit 1; }
    sleep 0.2
  done
  local result
  result=$(wrk -t2 -c"$connections" -d"${duration}s" -s benches/load/webhook.lua \
    "http://127.0.0.1:$port/webhooks/buildkite" | grep '^RESULT')
  accepted=$(curl -s "http://127.0.0.1:$port/metrics" |
    awk '/^kitefix_webhooks_total\{event="build.finished",outcome="accepted"\}/ {print $2}')
  kill "$server"; wait "$server" 2>/dev/null || true
  printf '%-34s %s accepted=%s\n' "HTTP $label" "${result#RESULT }" "${accepted:-0}"
}

run_direct() { # label args...
  local label="$1"; shift
  local result
  result=$("$bench_bin" "$@" --concurrency "$connections" | grep '^RESULT')
  printf '%-34s %s\n' "direct $label" "${result#RESULT }"
}

echo "machine: $(nproc) cores; wrk -t2 -c$connections -d${duration}s; kitefix --role receiver"
run_http "embedded (SQLite)" embedded "sqlite://$work/embedded.db"
run_direct "embedded (SQLite)" --queue embedded --messages 20000 --store "sqlite://$work/direct.db"
run_http "rabbitmq, store SQLite" rabbitmq "sqlite://$work/rabbit.db"
if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  db="kitefix_bench_$RANDOM"
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
  run_http "rabbitmq, store PostgreSQL" rabbitmq "postgres://postgres@127.0.0.1:5432/$db"
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $db"
fi
run_direct "rabbitmq (publish + confirm)" --queue rabbitmq --messages 50000
