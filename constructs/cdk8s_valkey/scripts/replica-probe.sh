#!/bin/sh
# Readiness of a Valkey node in the Sentinel topology: `sh replica-probe.sh <probe command...>`,
# e.g. `sh replica-probe.sh sh /scripts/probe.sh ready`.
#
# The probe command runs first and decides for the primary (probe.sh: PONG, or MISCONF). On a
# replica, readiness also needs the link to its primary up and no full sync in progress: a
# replica that has not caught up must not count as ready, or a rolling update would restart
# the next pod (the primary, last) while this one still holds no data.
# Environment: VALKEY_PORT (default 6379), VALKEY_PROBE_CONNECT_TIMEOUT (seconds, default 2);
# the password, if any, from REDISCLI_AUTH as for probe.sh.
# Exit codes: 0 ready, 1 not ready (one line for `kubectl describe`), 64 usage; else the probe's.
set -u

if [ "$#" -eq 0 ]; then
    echo "usage: sh replica-probe.sh <probe command...>" >&2
    exit 64
fi
"$@" || exit

port=${VALKEY_PORT:-6379}
timeout=${VALKEY_PROBE_CONNECT_TIMEOUT:-2}
out=$(valkey-cli -h 127.0.0.1 -p "$port" -t "$timeout" info replication 2>&1)
status=$?
role='' link='' sync='' primary_host='' primary_port=''
# INFO lines end in \r\n.
cr=$(printf '\r')
while IFS= read -r line; do
    line=${line%"$cr"}
    case $line in
        role:*) role=${line#role:} ;;
        master_host:*) primary_host=${line#master_host:} ;;
        master_port:*) primary_port=${line#master_port:} ;;
        master_link_status:*) link=${line#master_link_status:} ;;
        master_sync_in_progress:*) sync=${line#master_sync_in_progress:} ;;
    esac
done <<EOF
$out
EOF

case $role:$link:$sync in
    master::) exit 0 ;;
    slave:up:0) exit 0 ;;
    slave:*) reason="replica of $primary_host:$primary_port, master_link_status:$link, master_sync_in_progress:$sync" ;;
    *) reason="INFO replication (valkey-cli exit $status): $(printf '%s' "$out" | tr '\r\n' '  ')" ;;
esac
echo "probe ready failed: $reason"
exit 1
