#!/bin/sh
# Valkey container of the Sentinel topology: start this node as the primary or as a replica of
# the node the Sentinels name, never as a stale primary. Runs as
# `sh valkey-role.sh <command...>` (the entrypoint): it ends with
# `exec <command...> --replica-announce-ip <host> --replica-announce-port <port> [--replicaof <host> <port>]`.
#
# The rule, in order (docs/operations.md, "How a node picks its role"):
#   1. Ask every Sentinel (SENTINEL MASTER), once a second, up to VALKEY_SENTINEL_WAIT_SECONDS.
#      The answer with the highest config-epoch wins (the latest failover); at that epoch, the
#      address most Sentinels give, and between two with as many votes, not this node.
#   2. It names another node: start as its replica, at once. Starting as a replica is always
#      safe: a replica accepts no writes, and the Sentinels re-point it if needed.
#   3. It names this node with config-epoch > 0 (a failover made it primary), or every Sentinel
#      answered, and no Sentinel is in the middle of a failover: start as the primary. Epoch 0
#      naming this node is only what a Sentinel was seeded with, and a failover in progress may
#      be about to promote another node: ask again a second later, up to the deadline.
#   4. No Sentinel answered by the deadline: this pod's own Sentinel state file (the primary its
#      Sentinel last knew) decides as in 2 and 3; without one (first install, new claim), the
#      bootstrap primary (ordinal 0) starts as the primary and every other node as its replica.
#   Guard: named primary while VALKEY_DATA_DIR holds no AOF directory although the Sentinels know
#   replicas or a failover happened: the volume was replaced, and replicas would copy its empty
#   dataset. Exit 1 instead; the Sentinels fail over to a replica, and the next start joins it.
# A primary started by mistake (stale Sentinel state) has no replica, so min-replicas-to-write
# refuses every write until the Sentinels turn it into a replica.
#
# Environment: that of sentinel-lib.sh, and
#   VALKEY_SENTINEL_WAIT_SECONDS  how long to wait for the Sentinels (default 20)
#   VALKEY_DATA_DIR               the data directory (default /data)
# Exit codes: 64 usage or invalid environment, 1 refused (the guard); otherwise the command's.
set -eu

script_name=valkey-role
case $0 in
    */*) here=${0%/*} ;;
    *) here=. ;;
esac
# shellcheck source=sentinel-lib.sh
. "$here/sentinel-lib.sh"

if [ "$#" -eq 0 ]; then
    echo "usage: sh valkey-role.sh <command...>" >&2
    exit 64
fi
lib_init
wait_seconds=${VALKEY_SENTINEL_WAIT_SECONDS:-20}
is_uint "$wait_seconds" || invalid_env VALKEY_SENTINEL_WAIT_SECONDS "$wait_seconds" "whole seconds"
data_dir=${VALKEY_DATA_DIR:-/data}

role='' primary='' why='' epoch=0 slaves=0
# Rounds of one second apart, not a clock deadline: the wait is at least wait_seconds, plus the
# time the questions take (milliseconds, or VALKEY_SENTINEL_TIMEOUT per Sentinel that hangs).
waited=0
while :; do
    ask_sentinels
    if [ "$answers" -gt 0 ]; then
        epoch=$best_epoch slaves=$best_slaves
        said="$best_votes of $total Sentinels, config-epoch $best_epoch"
        if [ "$best" != "$me" ]; then
            role=replica primary=$best why=$said
            break
        fi
        # A failover in progress may be about to promote another node: ask again.
        if [ "$busy" -eq 0 ] && { [ "$best_epoch" -gt 0 ] || [ "$answers" -eq "$total" ]; }; then
            role=primary why=$said
            break
        fi
    fi
    if [ "$waited" -ge "$wait_seconds" ]; then
        break
    fi
    sleep 1
    waited=$((waited + 1))
done

if [ -z "$role" ]; then
    if [ "$answers" -gt 0 ]; then
        role=primary why="only $answers of $total Sentinels answered in ${wait_seconds}s, config-epoch 0 (bootstrap)"
    elif read_state; then
        epoch=$state_epoch
        why="no Sentinel answered in ${wait_seconds}s; this pod's Sentinel state $state_file, config-epoch $state_epoch"
        if [ "$state_host:$state_port" = "$me" ]; then
            role=primary
        else
            role=replica primary=$state_host:$state_port
        fi
    elif [ "$bootstrap" = "$me" ]; then
        role=primary why="no Sentinel answered in ${wait_seconds}s and no Sentinel state: the bootstrap primary"
    else
        role=replica primary=$bootstrap why="no Sentinel answered in ${wait_seconds}s and no Sentinel state: bootstrap"
    fi
fi

if [ "$role" = primary ] && [ ! -d "$data_dir/appendonlydir" ] && { [ "$epoch" -gt 0 ] || [ "$slaves" -gt 0 ]; }; then
    log "refusing to start as the primary ($why): $data_dir holds no AOF, but the Sentinels know" \
        "$slaves replica(s) at config-epoch $epoch, which would copy this empty dataset. The Sentinels" \
        "fail over to a replica once this node has been down for down-after-milliseconds; the next" \
        "start then joins the new primary as a replica"
    exit 1
fi

set -- "$@" --replica-announce-ip "$announce_host" --replica-announce-port "$announce_port"
if [ "$role" = replica ]; then
    log "replica of $primary ($why)"
    set -- "$@" --replicaof "${primary%:*}" "${primary##*:}"
else
    log "primary ($why)"
fi
exec "$@"
