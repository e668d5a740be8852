#!/usr/bin/env bash
# `make demo`: starts a webhook receiver and the daemon on a temporary socket, feeds one sample
# call with socat, shows the deliveries as the receiver printed them and the daemon's status, and
# stops both. From a terminal it waits for Enter first, so that the status page it prints can be
# opened in a browser (DEMO_WAIT=0 never waits, DEMO_WAIT=1 always does).
set -euo pipefail

bin=$(realpath "${1:-build/avr-webhookd}")
tmp=$(mktemp -d /tmp/avr-webhookd-demo.XXXXXX)
receiver_pid="" daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  [ -n "$receiver_pid" ] && kill -TERM "$receiver_pid" 2>/dev/null && wait "$receiver_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_for() {  # wait_for SECONDS COMMAND...: polls COMMAND until it succeeds or time runs out
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "demo: timed out waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}

echo "== starting a webhook receiver (avr-webhookd receive) on a free loopback port"
"$bin" receive --listen 127.0.0.1:0 --secret demo-secret >"$tmp/receiver.out" 2>&1 &
receiver_pid=$!
wait_for 10 grep -q "listening on" "$tmp/receiver.out"
url="$(grep -o 'http://[^ ]*' "$tmp/receiver.out" | head -n1)/webhooks/avr"

echo "== starting avr-webhookd: socket $tmp/events.sock -> $url"
WEBHOOK_SECRET=demo-secret "$bin" --config "" --url "$url" --socket "$tmp/events.sock" --log-level debug \
  --dead-letter "$tmp/dead-letter.ndjson" --spool-dir "$tmp/spool" --ack all --admin 127.0.0.1:0 2>"$tmp/daemon.log" &
daemon_pid=$!
wait_for 10 test -S "$tmp/events.sock"
wait_for 10 grep -q "status page on http://" "$tmp/daemon.log"
page=$(grep -o 'status page on http://[^ ]*' "$tmp/daemon.log" | head -n1 | sed 's/^status page on //')
admin=${page#http://}; admin=${admin%/}

uuid=$(cat /proc/sys/kernel/random/uuid)
echo "== feeding call $uuid with socat"
{
  echo "{\"uuid\":\"$uuid\",\"type\":\"call_started\",\"payload\":{}}"
  echo "{\"uuid\":\"$uuid\",\"type\":\"transcription\",\"payload\":{\"role\":\"agent\",\"text\":\"Hello, how can I help you today?\"}}"
  echo "{\"uuid\":\"$uuid\",\"type\":\"transcription\",\"payload\":{\"role\":\"user\",\"text\":\"Hello, I need help with my account\"}}"
  echo "{\"uuid\":\"$uuid\",\"type\":\"interruption\"}"
  echo "{\"uuid\":\"$uuid\",\"type\":\"dtmf_digit\",\"payload\":{\"digit\":\"5\"}}"
  echo "{\"uuid\":\"$uuid\",\"type\":\"call_ended\"}"
} | socat -t 2 - "UNIX-CONNECT:$tmp/events.sock" | sed 's/^/   reply: /'

wait_for 15 test "$(grep -c '^Received webhook' "$tmp/receiver.out")" -ge 6
echo "== what the receiver got, in order"
sed 's/^/   /' "$tmp/receiver.out"
echo "== daemon log"
sed 's/^/   /' "$tmp/daemon.log"
echo "== avr-webhookd status --admin $admin"
"$bin" status --admin "$admin" | sed 's/^/   /'
echo "== status page: $page"
if [ "${DEMO_WAIT:-}" = 1 ] || { [ "${DEMO_WAIT:-}" != 0 ] && [ -t 0 ]; }; then
  echo "   open it in a browser on this machine (from elsewhere: ssh -L ${admin##*:}:$admin <this host>);"
  echo "   the daemon keeps running until you press Enter"
  read -r _ || true
fi
kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""
echo "== done: 6 events of one call delivered in order"
