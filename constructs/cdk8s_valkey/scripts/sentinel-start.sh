#!/bin/sh
# Sentinel container of the Sentinel topology: write this pod's Sentinel configuration, then
# exec `valkey-server <state file> --sentinel`. Runs as `sh sentinel-start.sh [extra args]`.
#
# Sentinel rewrites its configuration file at runtime with what it learns (the current primary,
# the epochs, the other Sentinels and replicas), so that file lives on the pod's data claim
# (VALKEY_SENTINEL_STATE) and a restart, even of every pod, starts from the last known primary.
# Each start merges it with the template that the manifest ships (VALKEY_SENTINEL_TEMPLATE):
# - from the template: every setting (quorum, down-after-milliseconds, failover-timeout, ...),
#   so that a change of the manifest applies at the next restart;
# - from the state file, when it monitors VALKEY_MASTER_NAME: the monitored primary and the
#   runtime state (myid, current-epoch, config-epoch, leader-epoch, known-replica, known-sentinel);
# - otherwise (first start, new claim, another master name): the primary that the other
#   Sentinels name (highest config-epoch, which is kept), asked for up to
#   VALKEY_SENTINEL_SEED_WAIT_SECONDS, else VALKEY_BOOTSTRAP_PRIMARY;
# - this pod's identity: port, announce-ip (its host name) and announce-port.
#
# With AUTH (VALKEY_PASSWORD set, from the Secret): the same password is this Sentinel's
# `requirepass`, the `auth-pass` it gives the nodes it monitors and the `sentinel-pass` it gives
# the other Sentinels. Sentinel rewrites its file with them in plain text, so with AUTH that file
# is VALKEY_SENTINEL_CONFIG, on a memory volume, written with umask 077 (mode 0600, which the
# rewrites keep); sentinel-persist.sh copies the state, without the secrets, to
# VALKEY_SENTINEL_STATE on the claim. The password is never on a command line or printed:
# VALKEY_PASSWORD and REDISCLI_AUTH (which valkey-cli reads to ask the other Sentinels) are unset
# before the exec, so neither is in the environment of valkey-server or of the copy loop.
#
# Environment: that of sentinel-lib.sh, and
#   VALKEY_SENTINEL_TEMPLATE           the template (default /sentinel/sentinel.conf)
#   VALKEY_SENTINEL_PORT               Sentinel's port (default 26379)
#   VALKEY_SENTINEL_SEED_WAIT_SECONDS  how long a first start asks the others (default 5)
#   VALKEY_PASSWORD                    AUTH: the password (optional; when set, also REDISCLI_AUTH)
#   VALKEY_SENTINEL_CONFIG             AUTH: Sentinel's own file, on a memory volume (required then)
#   VALKEY_AUTH_LIB                    AUTH: auth-lib.sh (default /scripts/auth-lib.sh)
# Exit codes: 64 usage or invalid environment, 1 cannot write the state; otherwise valkey-server's.
set -eu

script_name=sentinel-start
case $0 in
    */*) here=${0%/*} ;;
    *) here=. ;;
esac
# shellcheck source=sentinel-lib.sh
. "$here/sentinel-lib.sh"

lib_init
template=${VALKEY_SENTINEL_TEMPLATE:-/sentinel/sentinel.conf}
sentinel_port=${VALKEY_SENTINEL_PORT:-26379}
is_uint "$sentinel_port" || invalid_env VALKEY_SENTINEL_PORT "$sentinel_port" "a port number"
seed_wait=${VALKEY_SENTINEL_SEED_WAIT_SECONDS:-5}
is_uint "$seed_wait" || invalid_env VALKEY_SENTINEL_SEED_WAIT_SECONDS "$seed_wait" "whole seconds"
if [ ! -r "$template" ]; then
    log "cannot read the template $template (VALKEY_SENTINEL_TEMPLATE)"
    exit 64
fi
quorum=
while read -r word1 word2 word3 _ _ word6 _; do
    if [ "$word1" = sentinel ] && [ "$word2" = monitor ] && [ "$word3" = "$master_name" ]; then
        quorum=$word6
    fi
done <"$template"
if ! is_uint "$quorum"; then
    log "the template $template has no line 'sentinel monitor $master_name <host> <port> <quorum>'"
    exit 64
fi

config=$state_file
password=
if [ -n "${VALKEY_PASSWORD+set}" ]; then
    password=$VALKEY_PASSWORD
    unset VALKEY_PASSWORD
    if [ -z "$password" ]; then
        log "VALKEY_PASSWORD is empty: put a non-empty password in the Secret key"
        exit 64
    fi
    config=${VALKEY_SENTINEL_CONFIG-}
    case $config in
        /*) ;;
        *) invalid_env VALKEY_SENTINEL_CONFIG "$config" "an absolute path on a memory volume (the file holds the password)" ;;
    esac
    # In the Valkey's scripts ConfigMap (/scripts), beside requirepass.sh, which shares it.
    # shellcheck source=/dev/null
    . "${VALKEY_AUTH_LIB:-/scripts/auth-lib.sh}"
    umask 077
    # This container restarted within the pod: its memory volume holds Sentinel's latest state.
    if [ -r "$config" ] && lines=$(state_lines "$config") && [ -n "$lines" ]; then
        save_state "$lines"
    fi
fi

if read_state; then
    host=$state_host port=$state_port epoch=
    why="kept from $state_file (config-epoch $state_epoch)"
else
    epoch=0
    waited=0
    while :; do
        ask_sentinels
        if [ "$answers" -gt 0 ] || [ "$waited" -ge "$seed_wait" ]; then
            break
        fi
        sleep 1
        waited=$((waited + 1))
    done
    if [ "$answers" -gt 0 ]; then
        host=$best_host port=$best_port epoch=$best_epoch
        why="first start: $best_votes of $total Sentinels name it (config-epoch $best_epoch)"
    else
        host=${bootstrap%:*} port=${bootstrap##*:}
        why="first start: no Sentinel answered in ${seed_wait}s, the bootstrap primary"
    fi
fi

state_dir=$(dirname -- "$state_file")
if ! mkdir -p -- "$state_dir" || [ ! -w "$state_dir" ]; then
    log "cannot write $state_dir for uid $(id -u): check the data volume and the pod's fsGroup"
    exit 1
fi
new=$config.new
{
    # The template's lines, with the monitored primary and this pod's port put in.
    while IFS= read -r line; do
        read -r word1 word2 word3 _ <<EOF
$line
EOF
        if [ "$word1" = port ]; then
            echo "port $sentinel_port"
        elif [ "$word1" = sentinel ] && [ "$word2" = monitor ] && [ "$word3" = "$master_name" ]; then
            echo "sentinel monitor $master_name $host $port $quorum"
        elif [ "$word1" = sentinel ] && { [ "$word2" = announce-ip ] || [ "$word2" = announce-port ]; }; then
            :
        else
            printf '%s\n' "$line"
        fi
    done <"$template"
    echo "sentinel announce-ip $announce_host"
    echo "sentinel announce-port $sentinel_port"
    if [ -n "$epoch" ]; then
        # Seeded from the other Sentinels: keep their epoch, so that this one never ranks the
        # primary it was told about below an older one.
        echo "sentinel config-epoch $master_name $epoch"
    else
        # The runtime state Sentinel wrote, for this master only.
        while read -r word1 word2 word3 rest; do
            [ "$word1" = sentinel ] || continue
            case $word2 in
                myid | current-epoch) echo "sentinel $word2 $word3" ;;
                config-epoch | leader-epoch | known-replica | known-sentinel)
                    if [ "$word3" = "$master_name" ]; then
                        echo "sentinel $word2 $word3 $rest"
                    fi
                    ;;
            esac
        done <"$state_file"
    fi
    if [ -n "$password" ]; then
        conf_quote "$password"
        printf 'requirepass "%s"\n' "$quoted"
        printf 'sentinel auth-pass %s "%s"\n' "$master_name" "$quoted"
        printf 'sentinel sentinel-pass "%s"\n' "$quoted"
    fi
} >"$new"
mv -f -- "$new" "$config"

if [ -n "$password" ]; then
    save_state "$(state_lines "$config")"
    unset REDISCLI_AUTH
    password='' quoted=''
    sh "$here/sentinel-persist.sh" "$config" "$$" &
    log "AUTH required (requirepass, auth-pass and sentinel-pass from VALKEY_PASSWORD, in $config)"
fi
log "monitoring $master_name at $host:$port, quorum $quorum ($why)"
exec valkey-server "$config" --sentinel "$@"
