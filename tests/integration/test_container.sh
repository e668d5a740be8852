#!/usr/bin/env bash
# The Docker image for real: builds docker/Dockerfile with container-build (buildah; no Docker
# engine needed), then checks inside the image that the daemon runs as non-root, that
# `avr-webhookd --version` works, and that one event written to the socket in a mounted folder
# reaches a webhook receiver on this machine's loopback and the health check passes.
#
#   test_container.sh SOURCE_DIR HOST_BINARY
#
# HOST_BINARY is this machine's build of avr-webhookd; its `receive` subcommand is the receiver.
# Exits 77 (ctest's SKIP_RETURN_CODE) with a SKIP: line when container-build cannot run here.
# Environment: AVR_WEBHOOKD_CONTAINER_BUILD names the container-build tool (default: found in
# PATH, else ../shared/tools/container-build beside the sources); AVR_WEBHOOKD_IMAGE the tag
# to build (default avr-webhookd:test).
set -euo pipefail

readonly SKIP=77
skip() { echo "SKIP: $*"; exit "$SKIP"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $* ($(date +%T))"; }

[ $# -eq 2 ] || { echo "usage: $0 SOURCE_DIR HOST_BINARY" >&2; exit 2; }
source_dir=$(cd "$1" && pwd)
host_binary=$2
image=${AVR_WEBHOOKD_IMAGE:-avr-webhookd:test}
daemon_uid=10001

# --- Can container-build run here?
tool=${AVR_WEBHOOKD_CONTAINER_BUILD:-}
if [ -z "$tool" ]; then
  if command -v container-build >/dev/null 2>&1; then tool=$(command -v container-build)
  else tool=$source_dir/../shared/tools/container-build; fi
fi
[ -x "$tool" ] || skip "container-build not found (set AVR_WEBHOOKD_CONTAINER_BUILD)"
if ! command -v buildah >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || skip "neither buildah nor apt-get (to install it) is available"
  [ "$(id -u)" = 0 ] || skip "buildah is missing and installing it needs root"
fi
command -v socat >/dev/null 2>&1 || skip "socat is not installed (make deps installs it)"
[ -x "$host_binary" ] || fail "host binary $host_binary is missing"

work=$(mktemp -d /tmp/avr-webhookd-container.XXXXXX)
group_pids=()
cleanup() {
  local pid
  for pid in "${group_pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Starts "$@" in its own process group (so it and everything it spawns can be stopped
# together); its pid, which is also the group id, goes into $started.
start_group() {
  local out=$1; shift
  setsid "$@" >"$out" 2>&1 &
  started=$!
  group_pids+=("$started")
}

# The first descendant of PID (through /proc's parent links) whose command name is NAME.
descendant_named() {
  local root=$1 name=$2 stat pid ppid comm rest
  local -A parent_of=() comm_of=()
  for stat in /proc/[0-9]*/stat; do
    read -r pid comm rest <"$stat" 2>/dev/null || continue
    rest=${rest#* }            # drop the state field
    parent_of[$pid]=${rest%% *}
    comm_of[$pid]=${comm//[()]/}
  done
  for pid in "${!comm_of[@]}"; do
    [ "${comm_of[$pid]}" = "$name" ] || continue
    ppid=$pid
    while [ -n "${parent_of[$ppid]:-}" ] && [ "$ppid" -gt 1 ]; do
      ppid=${parent_of[$ppid]}
      if [ "$ppid" = "$root" ]; then echo "$pid"; return 0; fi
    done
  done
  return 1
}

# Sends SIGTERM to PID and waits up to 20 s for the process group LEADER (a child of this shell)
# to end; its exit status goes into $ended_with (124 when it had to be killed).
terminate() {
  local pid=$1 leader=$2 waited=0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$leader" 2>/dev/null && [ $waited -lt 200 ]; do sleep 0.1; waited=$((waited + 1)); done
  if kill -0 "$leader" 2>/dev/null; then
    kill -KILL -- "-$leader" 2>/dev/null || true
    wait "$leader" 2>/dev/null || true
    ended_with=124
  else
    ended_with=0
    wait "$leader" || ended_with=$?
  fi
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s.
wait_for() {
  local seconds=$1 what=$2 tries; shift 2
  tries=$((seconds * 10))
  until "$@"; do
    tries=$((tries - 1))
    [ $tries -gt 0 ] || { echo "timed out after ${seconds}s waiting for $what" >&2; return 1; }
    sleep 0.1
  done
}

step "bootstrapping container-build (base images are cached after the first run)"
if ! "$tool" --run docker.io/library/debian:bookworm-slim -- true >"$work/bootstrap.log" 2>&1; then
  tail -n 20 "$work/bootstrap.log"
  skip "container-build cannot bootstrap its base images here (log above)"
fi

step "building $image from $source_dir (slow: compiles the daemon)"
# Docker format keeps HEALTHCHECK, which the OCI image format has no field for.
if ! BUILDAH_FORMAT=docker "$tool" -f "$source_dir/docker/Dockerfile" -t "$image" "$source_dir" \
     >"$work/build.log" 2>&1; then
  tail -n 60 "$work/build.log"
  fail "the image did not build"
fi
tail -n 3 "$work/build.log"

step "image configuration"
config=$(buildah inspect --type image "$image")
grep -q '"User": "10001:10001"' <<<"$config" || fail "image USER is not 10001:10001"
grep -q '"avr-webhookd",' <<<"$config" || fail "ENTRYPOINT is not avr-webhookd"
grep -q '"healthcheck"' <<<"$config" || fail "the image has no HEALTHCHECK running 'avr-webhookd healthcheck'"

step "runs as non-root"
uid=$("$tool" --run "$image" -- id -u)
echo "uid inside the image: $uid"
[ "$uid" != 0 ] || fail "the image runs as root"

step "avr-webhookd --version"
version=$("$tool" --run "$image" -- avr-webhookd --version) || fail "avr-webhookd --version failed: $version"
echo "$version"
grep -q '[0-9]\+\.[0-9]\+\.[0-9]\+' <<<"$version" || fail "--version printed no version number"

step "one event from the mounted socket to a receiver on the loopback"
start_group "$work/receiver.out" "$host_binary" receive --listen 127.0.0.1:0
receiver=$started
wait_for 20 "the receiver to listen" grep -q '^listening on http://' "$work/receiver.out" \
  || { cat "$work/receiver.out"; fail "the receiver did not start"; }
url=$(sed -n 's/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/receiver.out" | head -n 1)/events
echo "receiver: $url"

# The folder stands in for the shared volume: the daemon's user must be able to create the socket.
run_dir=$work/run
mkdir -m 0770 "$run_dir"
if [ "$(id -u)" = 0 ]; then chown "$daemon_uid:$daemon_uid" "$run_dir"; else chmod 0777 "$run_dir"; fi

# The admin endpoint goes on a Unix socket in the folder: no TCP port to collide with anything.
start_group "$work/daemon.out" "$tool" --run "$image" -v "$run_dir:/run/avr-webhookd" \
  -e WEBHOOK_ADMIN=/run/avr-webhookd/admin.sock -- avr-webhookd --url "$url" --ack all
daemon=$started
wait_for 60 "the daemon's socket" test -S "$run_dir/events.sock" \
  || { cat "$work/daemon.out"; fail "the daemon did not create its socket"; }
owner=$(stat -c %u "$run_dir/events.sock")
mode=$(stat -c %a "$run_dir/events.sock")
echo "socket owner uid $owner, mode $mode"
[ "$owner" = "$daemon_uid" ] || fail "the socket belongs to uid $owner, not the daemon's $daemon_uid"
[ "$mode" = 660 ] || fail "the socket's mode is $mode, not 660"

call_uuid=$(cat /proc/sys/kernel/random/uuid)
event='{"uuid":"'$call_uuid'","type":"call_started","timestamp":"2024-01-01T12:00:00.000Z","payload":{}}'
reply=$(printf '%s\n' "$event" | socat -t 10 - "UNIX-CONNECT:$run_dir/events.sock") \
  || { cat "$work/daemon.out"; fail "could not write to the socket"; }
echo "reply: $reply"
grep -q '"ok":true' <<<"$reply" || { cat "$work/daemon.out"; fail "the event was not accepted"; }
wait_for 30 "the delivery" grep -q "$call_uuid" "$work/receiver.out" \
  || { cat "$work/daemon.out" "$work/receiver.out"; fail "the event did not reach the receiver"; }
grep "$call_uuid" "$work/receiver.out"

step "health check inside the image"
wait_for 20 "the admin socket" test -S "$run_dir/admin.sock" \
  || { cat "$work/daemon.out"; fail "the daemon did not open its admin socket"; }
"$tool" --run "$image" -v "$run_dir:/run/avr-webhookd" -e WEBHOOK_ADMIN=/run/avr-webhookd/admin.sock \
  -- avr-webhookd healthcheck || { cat "$work/daemon.out"; fail "avr-webhookd healthcheck failed"; }

step "SIGTERM stops the daemon cleanly"
daemon_pid=$(descendant_named "$daemon" avr-webhookd) || fail "cannot find the daemon's process"
terminate "$daemon_pid" "$daemon"
[ "$ended_with" = 0 ] || { cat "$work/daemon.out"; fail "the daemon ended with status $ended_with after SIGTERM"; }
terminate "$receiver" "$receiver"
echo "PASS: image $image builds, runs as uid $uid and delivers from a mounted socket"
