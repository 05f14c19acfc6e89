#!/bin/sh
# Valkey readiness/liveness probe: `sh probe.sh ready|alive`.
#
#   ready  passes only on PONG: while Valkey loads its AOF it answers -LOADING, and the pod
#          must not receive traffic yet.
#   alive  passes on PONG or LOADING: a large AOF can take a while to replay, and failing
#          liveness then would restart the pod in the middle of the load, forever.
#   both   pass on MISCONF: Valkey answers PING with it while it cannot write its AOF (disk
#          full, volume read-only). It still serves reads and takes writes again by itself once
#          the AOF write succeeds; a restart would not free the disk, and shutting down drops
#          the acknowledged writes still in its AOF buffer (tests/test_reliability_disk.py).
#          ValkeyAofWriteFailing pages instead.
#
# `valkey-cli ping` exits 0 even on an error reply, so the reply text decides, not its exit
# code. A password, if any, comes from REDISCLI_AUTH in the environment (valkey-cli reads it
# itself), never from argv where `ps` would show it.
# Environment: VALKEY_PORT (default 6379), VALKEY_PROBE_CONNECT_TIMEOUT (seconds, default 2).
# Exit codes: 0 pass, 1 fail (the reply is printed on one line for `kubectl describe`), 64 usage.
set -u

usage() {
    echo "usage: sh probe.sh ready|alive" >&2
    exit 64
}

[ "$#" -eq 1 ] || usage
mode=$1
case $mode in
    ready | alive) ;;
    *) usage ;;
esac

port=${VALKEY_PORT:-6379}
timeout=${VALKEY_PROBE_CONNECT_TIMEOUT:-2}

# stderr joins stdout so that "Could not connect ..." or "AUTH failed ..." is what the probe
# reports. The reply is the last line: stderr is unbuffered and written before it.
out=$(valkey-cli -h 127.0.0.1 -p "$port" -t "$timeout" ping 2>&1)
status=$?
reply=${out##*
}

case $mode:$reply in
    ready:PONG | alive:PONG | alive:LOADING*) exit 0 ;;
    ready:MISCONF* | alive:MISCONF*) exit 0 ;;
esac

# One line: kubelet keeps the probe's output as the event message.
out=$(printf '%s' "$out" | tr '\n' ' ')
echo "probe $mode failed (valkey-cli exit $status): ${out:-no reply}"
exit 1
