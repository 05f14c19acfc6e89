# shellcheck shell=sh
# Sourced by valkey-role.sh and sentinel-start.sh (Sentinel topology): read the shared
# environment, and ask the Sentinels who the primary is. Defines functions and variables only.
#
# Environment:
#   VALKEY_MASTER_NAME       required: the name the Sentinels monitor the primary under
#   VALKEY_SENTINELS         required: every Sentinel as host:port, separated by spaces
#   VALKEY_BOOTSTRAP_PRIMARY required: host:port of the primary when nothing is known yet
#   VALKEY_ANNOUNCE_HOST     this pod's host name; default $POD_NAME.$VALKEY_POD_DOMAIN
#   VALKEY_ANNOUNCE_PORT     this pod's Valkey port as others reach it (default 6379)
#   VALKEY_SENTINEL_TIMEOUT  seconds one question to one Sentinel may take (default 1)
#   VALKEY_SENTINEL_STATE    this pod's Sentinel state file (default /data/sentinel/sentinel.conf)
# The caller sets script_name (log prefix) before sourcing. The variables these functions set
# are read by the callers, which shellcheck cannot see from this file alone:
# shellcheck disable=SC2034

log() {
    printf '%s: %s\n' "${script_name:-sentinel}" "$*" >&2
}

# Exit 64 (EX_USAGE) naming the variable, its value and what is allowed.
invalid_env() {
    log "invalid $1='$2': allowed is $3"
    exit 64
}

is_uint() {
    case $1 in
        '' | *[!0-9]*) return 1 ;;
    esac
    [ "${#1}" -le 9 ]
}

# A positive number of seconds, decimals allowed (for timeout(1)).
is_seconds() {
    case $1 in
        '' | .* | *. | *[!0-9.]* | *.*.*) return 1 ;;
    esac
    case $1 in
        *[1-9]*) return 0 ;;
    esac
    return 1
}

# check_addr NAME VALUE: VALUE is host:port with a host of letters, digits, '.', '-' and a port.
check_addr() {
    case $2 in
        *[!A-Za-z0-9.:-]* | :* | *: | *:*:*) invalid_env "$1" "$2" "host:port, e.g. valkey-0.valkey-headless.apps.svc:6379" ;;
        *:*) ;;
        *) invalid_env "$1" "$2" "host:port, e.g. valkey-0.valkey-headless.apps.svc:6379" ;;
    esac
    is_uint "${2##*:}" || invalid_env "$1" "$2" "host:port with a numeric port"
}

# Read and check the shared environment.
lib_init() {
    master_name=${VALKEY_MASTER_NAME-}
    case $master_name in
        '' | *[!A-Za-z0-9._-]*) invalid_env VALKEY_MASTER_NAME "$master_name" "letters, digits, '.', '_' and '-'" ;;
    esac
    sentinels=${VALKEY_SENTINELS-}
    [ -n "$sentinels" ] || invalid_env VALKEY_SENTINELS "" "host:port of every Sentinel, separated by spaces"
    total=0
    for addr in $sentinels; do
        check_addr VALKEY_SENTINELS "$addr"
        total=$((total + 1))
    done
    bootstrap=${VALKEY_BOOTSTRAP_PRIMARY-}
    check_addr VALKEY_BOOTSTRAP_PRIMARY "$bootstrap"
    if [ -n "${VALKEY_ANNOUNCE_HOST-}" ]; then
        announce_host=$VALKEY_ANNOUNCE_HOST
    elif [ -n "${POD_NAME-}" ] && [ -n "${VALKEY_POD_DOMAIN-}" ]; then
        announce_host=$POD_NAME.$VALKEY_POD_DOMAIN
    else
        invalid_env VALKEY_ANNOUNCE_HOST "" "this pod's host name, or POD_NAME and VALKEY_POD_DOMAIN to build it"
    fi
    check_addr VALKEY_ANNOUNCE_HOST "$announce_host:0"
    announce_port=${VALKEY_ANNOUNCE_PORT:-6379}
    is_uint "$announce_port" || invalid_env VALKEY_ANNOUNCE_PORT "$announce_port" "a port number"
    me=$announce_host:$announce_port
    query_timeout=${VALKEY_SENTINEL_TIMEOUT:-1}
    is_seconds "$query_timeout" || invalid_env VALKEY_SENTINEL_TIMEOUT "$query_timeout" "seconds, e.g. 1 or 0.5"
    state_file=${VALKEY_SENTINEL_STATE:-/data/sentinel/sentinel.conf}
}

# ask_one HOST PORT: ask one Sentinel for the primary. On an answer, set a_host, a_port,
# a_epoch, a_slaves and a_busy (1 while it runs a failover) and return 0; return 1 when it does
# not answer or knows no such master. Two commands on one connection: GET-MASTER-ADDR-BY-NAME
# gives the address clients are sent to (during a failover, the promoted replica as soon as
# it is one, where SENTINEL MASTER still shows the old primary beside the new epoch), and
# SENTINEL MASTER the config-epoch, the known replicas and the flags.
# timeout(1) bounds the whole exchange: a frozen Sentinel accepts the connection (the kernel
# does) and never answers, which valkey-cli's own -t (connect only) does not cover.
ask_one() {
    a_host='' a_port='' a_epoch='' a_slaves='' a_busy=0
    reply=$(printf 'SENTINEL GET-MASTER-ADDR-BY-NAME %s\nSENTINEL MASTER %s\n' "$master_name" "$master_name" |
        timeout "$query_timeout" valkey-cli -h "$1" -p "$2" -t "$query_timeout" --raw 2>/dev/null) || return 1
    n=0 key=''
    # --raw prints the address as two lines, then the master's field names and values on
    # alternate lines.
    while IFS= read -r line; do
        n=$((n + 1))
        if [ "$n" -eq 1 ]; then
            a_host=$line
        elif [ "$n" -eq 2 ]; then
            a_port=$line
        elif [ -z "$key" ]; then
            key=$line
        else
            case $key in
                config-epoch) a_epoch=$line ;;
                num-slaves) a_slaves=$line ;;
                flags)
                    case ,$line, in
                        *,failover_in_progress,*) a_busy=1 ;;
                    esac
                    ;;
            esac
            key=''
        fi
    done <<EOF
$reply
EOF
    [ -n "$a_host" ] && is_uint "$a_port" && is_uint "$a_epoch" && is_uint "${a_slaves:-0}"
}

# ask_sentinels: ask every Sentinel once. Sets answers (how many answered), busy (1 when one of
# them runs a failover) and, when at least one answered, best (host:port), best_host, best_port,
# best_epoch, best_votes and best_slaves: the
# address with the highest config-epoch (the latest failover), given by most of the Sentinels
# at that epoch; between two addresses with as many votes, the one that is not $me
# (a replica can always be corrected, a second primary cannot).
ask_sentinels() {
    answers=0 busy=0
    replies=''
    for addr in $sentinels; do
        if ask_one "${addr%:*}" "${addr##*:}"; then
            answers=$((answers + 1))
            if [ "$a_busy" -eq 1 ]; then
                busy=1
            fi
            replies="$replies$a_epoch $a_host:$a_port ${a_slaves:-0}
"
        fi
    done
    best='' best_host='' best_port='' best_epoch=-1 best_votes=0 best_slaves=0
    [ "$answers" -gt 0 ] || return 0
    # `if`, never `a && b` as a loop's last command: under set -e its status would end the script.
    while read -r epoch _ _; do
        if [ -n "$epoch" ] && [ "$epoch" -gt "$best_epoch" ]; then
            best_epoch=$epoch
        fi
    done <<EOF
$replies
EOF
    while read -r epoch candidate slaves; do
        if [ -z "$epoch" ] || [ "$epoch" -ne "$best_epoch" ]; then
            continue
        fi
        votes=0
        while read -r other_epoch other _; do
            if [ "$other_epoch" = "$epoch" ] && [ "$other" = "$candidate" ]; then
                votes=$((votes + 1))
            fi
        done <<EOF
$replies
EOF
        if [ "$votes" -gt "$best_votes" ] || { [ "$votes" -eq "$best_votes" ] && [ "$best" = "$me" ]; }; then
            best=$candidate best_votes=$votes best_slaves=$slaves
        fi
    done <<EOF
$replies
EOF
    best_host=${best%:*} best_port=${best##*:}
}

# read_state: the primary this pod's Sentinel last knew, from its state file (the line
# `sentinel monitor <name> <host> <port> <quorum>` and `sentinel config-epoch <name> <n>`).
# Sets state_host, state_port and state_epoch and returns 0 when the file monitors $master_name.
read_state() {
    state_host='' state_port='' state_epoch=0
    [ -r "$state_file" ] || return 1
    while read -r word1 word2 word3 word4 word5 _; do
        if [ "$word1" != sentinel ] || [ "$word3" != "$master_name" ]; then
            continue
        fi
        case $word2 in
            monitor) state_host=$word4 state_port=$word5 ;;
            config-epoch) if is_uint "$word4"; then state_epoch=$word4; fi ;;
        esac
    done <"$state_file"
    [ -n "$state_host" ] && is_uint "$state_port"
}

# state_lines CONFIG: the lines of a Sentinel configuration that a start reads back (the monitored
# primary, and the runtime state of $master_name: myid, epochs, known replicas and Sentinels), on
# stdout. Nothing else: with AUTH, Sentinel's own file holds the passwords (requirepass,
# auth-pass, sentinel-pass, the ACL hash), which must stay off the data claim.
state_lines() {
    while read -r word1 word2 word3 rest; do
        if [ "$word1" != sentinel ]; then
            continue
        fi
        case $word2 in
            myid | current-epoch) echo "sentinel $word2 $word3" ;;
            monitor | config-epoch | leader-epoch | known-replica | known-sentinel)
                if [ "$word3" = "$master_name" ]; then
                    echo "sentinel $word2 $word3 $rest"
                fi
                ;;
        esac
    done <"$1"
}

# save_state LINES: write LINES to $state_file, atomically (a new file, then a rename).
save_state() {
    mkdir -p -- "${state_file%/*}" && printf '%s\n' "$1" >"$state_file.new" && mv -f -- "$state_file.new" "$state_file"
}
