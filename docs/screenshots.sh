#!/usr/bin/env bash
# Makes README's screenshots: docs/status-page.png (the status page in headless Chromium) and
# docs/status-watch.png (`avr-webhookd status --watch` in a tmux pane, captured with its colours
# and drawn as HTML by Chromium). Needs chromium and tmux; everything runs on loopback.
#   docs/screenshots.sh [build/avr-webhookd]
set -euo pipefail

bin=$(realpath "${1:-build/avr-webhookd}")
docs=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/avr-webhookd-shots.XXXXXX)
pids=()
cleanup() {
  tmux -L avr-shots kill-server 2>/dev/null || true
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_for() {  # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "screenshots: timed out waiting for: $*" >&2; return 1; }
    sleep 0.2
  done
}

chromium_shot() {  # chromium_shot URL PNG WIDTH HEIGHT
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --disable-dev-shm-usage --no-proxy-server \
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1" --user-data-dir="$tmp/chromium" --hide-scrollbars \
    --virtual-time-budget=6000 --window-size="$3,$4" --screenshot="$2" "$1" >/dev/null 2>&1
}

# Two receivers: one healthy, one that answers 503 to everything (the crm destination).
"$bin" receive --listen 127.0.0.1:0 --quiet >"$tmp/ok.out" 2>&1 & pids+=($!)
"$bin" receive --listen 127.0.0.1:0 --quiet --fail-first 1000000 --fail-status 503 >"$tmp/crm.out" 2>&1 & pids+=($!)
wait_for 10 grep -q "listening on" "$tmp/ok.out"
wait_for 10 grep -q "listening on" "$tmp/crm.out"
ok_url="$(grep -o 'http://[^ ]*' "$tmp/ok.out" | head -n1)/webhooks/avr"
crm_url="$(grep -o 'http://[^ ]*' "$tmp/crm.out" | head -n1)/hooks/crm"

"$bin" --config "" --url "$ok_url" --destination-crm-url "$crm_url" --destination-crm-retry 2 \
  --destination-crm-retry-base 2s --socket "$tmp/events.sock" --dead-letter "$tmp/dead-letter.ndjson" \
  --spool-dir "$tmp/spool" --admin 127.0.0.1:0 2>"$tmp/daemon.log" & pids+=($!)
wait_for 10 grep -q "status page on http://" "$tmp/daemon.log"
page=$(grep -o 'status page on http://[^ ]*' "$tmp/daemon.log" | head -n1 | sed 's/^status page on //')
admin=${page#http://}; admin=${admin%/}

# A minute of calls: a call every few seconds, each with a start, transcriptions and an end.
for n in $(seq 1 20); do
  uuid=$(cat /proc/sys/kernel/random/uuid)
  {
    echo "{\"uuid\":\"$uuid\",\"type\":\"call_started\",\"payload\":{}}"
    for i in 1 2 3; do
      echo "{\"uuid\":\"$uuid\",\"type\":\"transcription\",\"payload\":{\"role\":\"user\",\"text\":\"line $i\"}}"
    done
    echo "{\"uuid\":\"$uuid\",\"type\":\"call_ended\"}"
  } | "$bin" send --socket "$tmp/events.sock" >/dev/null
  sleep 3
done

chromium_shot "$page" "$docs/status-page.png" 1280 1400
echo "wrote $docs/status-page.png"

# status --watch in a 118x40 terminal, captured with its colours, drawn as HTML: each SGR sequence
# ends the span before it and starts one classed by its codes (tmux writes 1 and 31 apart).
tmux -L avr-shots new-session -d -x 118 -y 40 "TERM=xterm-256color $bin status --admin $admin --watch --interval 1s"
sleep 3
tmux -L avr-shots capture-pane -e -p >"$tmp/watch.ansi"
{
  echo '<!doctype html><html><head><meta charset="utf-8"><style>'
  echo 'body{margin:0;background:#1e1e1e}pre{margin:0;padding:14px 16px;color:#d4d4d4;'
  echo 'font:14px/1.35 "DejaVu Sans Mono",monospace}.c32{color:#4ac26b}.c33{color:#e3a03c}.c31{color:#ff6b6b;font-weight:bold}'
  echo '.c2{color:#8b949e}</style></head><body><pre><span>'
  sed -e 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g' \
      -e 's/\x1b\[\([0-9]*\)m/<\/span><span class="c\1">/g' \
      -e 's/\x1b\[[0-9;]*[A-Za-z]//g' "$tmp/watch.ansi"
  echo '</span></pre></body></html>'
} >"$tmp/watch.html"
chromium_shot "file://$tmp/watch.html" "$docs/status-watch.png" 1060 540
echo "wrote $docs/status-watch.png"
