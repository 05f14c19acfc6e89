#!/bin/sh
# preStop hook of the valkey container (Sentinel topology): when this node is the primary, hand
# the role to a replica before the kubelet stops it. Runs as `sh handover.sh`.
#
# Why: a rolling update (any change of the pod template) restarts every pod, the primary last.
# Without this hook its restart is a failover: clients have no primary for down-after-milliseconds
# plus about 1.3 s. With it:
#   1. writes are paused on this primary (CLIENT PAUSE WRITE): clients wait instead of failing,
#      and nothing is acknowledged here that the new primary would not have;
#   2. it waits until a replica has every byte of the replication stream (its offset is the
#      primary's);
#   3. it asks another pod's Sentinel for a failover (SENTINEL FAILOVER: no agreement needed; the
#      Sentinel of this pod is being stopped at the same time);
#   4. it waits until the Sentinels name another node. Then the kubelet's SIGTERM stops Valkey; the
#      paused clients are disconnected and reconnect through the Sentinels to the new primary.
# Each step is bounded; on a timeout the hook gives up and the pod stops as it would without it
# (the Sentinels then fail over after down-after-milliseconds). On a replica it does nothing.
#
# Environment: that of sentinel-lib.sh, and
#   VALKEY_PORT                 this Valkey's port (default 6379)
#   VALKEY_SENTINEL_PORT        this pod's Sentinel's port (default 26379), asked last
#   VALKEY_HANDOVER_SECONDS     how long each of steps 2 and 4 may take (default 10); writes stay
#                               paused for at most twice this, which the pod's grace period covers
# Exit code: 0 always once the environment is valid (a preStop hook's failure only adds an event),
# 64 for an invalid environment.
set -u

script_name=handover
case $0 in
    */*) here=${0%/*} ;;
    *) here=. ;;
esac
# shellcheck source=sentinel-lib.sh
. "$here/sentinel-lib.sh"

lib_init
port=${VALKEY_PORT:-6379}
is_uint "$port" || invalid_env VALKEY_PORT "$port" "a port number"
limit=${VALKEY_HANDOVER_SECONDS:-10}
is_uint "$limit" || invalid_env VALKEY_HANDOVER_SECONDS "$limit" "whole seconds"

cli() {
    timeout "$query_timeout" valkey-cli -h 127.0.0.1 -p "$port" -t "$query_timeout" "$@" 2>/dev/null
}

# replication FIELD...: the INFO replication fields, one per line (CR removed).
replication() {
    cli info replication | tr -d '\r'
}

# caught_up: a replica is online with the primary's offset.
caught_up() {
    info=$(replication)
    offset=''
    for line in $info; do
        case $line in
            master_repl_offset:*) offset=${line#master_repl_offset:} ;;
        esac
    done
    [ -n "$offset" ] || return 1
    for line in $info; do
        case $line in
            slave[0-9]*:*state=online*",offset=$offset,"*) return 0 ;;
        esac
    done
    return 1
}

case $(replication) in
    *role:master*) ;;
    *)
        log "not the primary: nothing to hand over"
        exit 0
        ;;
esac
case $(replication) in
    *slave0:*state=online*) ;;
    *)
        log "no replica online: nothing to hand over to, stopping as the primary"
        exit 0
        ;;
esac

# Writes stay paused until Valkey stops (or the pause ends): nothing acknowledged here after the
# replica has caught up.
if ! cli client pause $((limit * 2000)) write >/dev/null; then
    log "CLIENT PAUSE failed: stopping without a handover"
    exit 0
fi
waited=0
until caught_up; do
    if [ "$waited" -ge "$((limit * 10))" ]; then
        log "no replica caught up within ${limit}s: stopping without a handover"
        exit 0
    fi
    sleep 0.1
    waited=$((waited + 1))
done

# This pod's own Sentinel last: the kubelet stops it now, in parallel with this hook.
own=$announce_host:${VALKEY_SENTINEL_PORT:-26379}
others=''
for addr in $sentinels; do
    if [ "$addr" != "$own" ]; then
        others="$others $addr"
    fi
done
asked=''
for addr in $others $own; do
    if [ "$(timeout "$query_timeout" valkey-cli -h "${addr%:*}" -p "${addr##*:}" -t "$query_timeout" \
        SENTINEL FAILOVER "$master_name" 2>/dev/null)" = OK ]; then
        asked=$addr
        break
    fi
done
if [ -z "$asked" ]; then
    log "no Sentinel accepted SENTINEL FAILOVER: stopping without a handover"
    exit 0
fi

waited=0
while :; do
    ask_sentinels
    if [ "$answers" -gt 0 ] && [ "$best" != "$me" ]; then
        log "handed over to $best (failover by the Sentinel at $asked, in ${waited}00 ms)"
        exit 0
    fi
    if [ "$waited" -ge "$((limit * 10))" ]; then
        log "the Sentinels still name this node after ${limit}s: stopping anyway"
        exit 0
    fi
    sleep 0.1
    waited=$((waited + 1))
done
