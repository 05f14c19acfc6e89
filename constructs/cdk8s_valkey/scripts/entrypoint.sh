#!/bin/sh
# Valkey container entrypoint: derive maxmemory from the container's memory limit, then
# exec valkey-server. Runs as `sh /scripts/entrypoint.sh [extra valkey-server args]`.
#
# Why: with `maxmemory-policy noeviction`, writes must be refused (OOM error to the client)
# before the kernel OOM killer kills the whole pod. A fixed maxmemory drifts away from the
# pod's memory limit, so it is computed here, at start, as a percentage of the cgroup limit.
#
# Environment (defaults below):
#   VALKEY_MAXMEMORY_PERCENT         required, 1..99: share of the cgroup limit
#   VALKEY_MAXMEMORY_FALLBACK_BYTES  required, bytes: maxmemory when no cgroup limit is found
#   VALKEY_MIN_MAXMEMORY_BYTES       refuse to start below this many bytes
#   VALKEY_CONFIG_FILE, VALKEY_DATA_DIR
#   VALKEY_CGROUP_V2_FILE, VALKEY_CGROUP_V1_FILE  (overridable for tests and odd runtimes)
# Exit codes: 64 invalid environment, 1 cannot start safely; otherwise valkey-server's own.
set -eu

config_file=${VALKEY_CONFIG_FILE:-/etc/valkey/valkey.conf}
data_dir=${VALKEY_DATA_DIR:-/data}
percent=${VALKEY_MAXMEMORY_PERCENT-}
fallback=${VALKEY_MAXMEMORY_FALLBACK_BYTES-}
min_bytes=${VALKEY_MIN_MAXMEMORY_BYTES:-16777216}
cgroup_v2_file=${VALKEY_CGROUP_V2_FILE:-/sys/fs/cgroup/memory.max}
cgroup_v1_file=${VALKEY_CGROUP_V1_FILE:-/sys/fs/cgroup/memory/memory.limit_in_bytes}

log() {
    printf 'entrypoint: %s\n' "$*" >&2
}

# Exit 64 (EX_USAGE) naming the variable, its value and what is allowed.
invalid_env() {
    log "invalid $1='$2': allowed is $3"
    exit 64
}

# True when $1 is a whole number of 1..18 digits. 18 digits stay below 2^62, so such a
# number times 99 cannot overflow the 64-bit $(( )) once split as done in percent_of.
is_small_uint() {
    case $1 in
        '' | *[!0-9]*) return 1 ;;
    esac
    [ "${#1}" -le 18 ]
}

# Print $1 without leading zeros: $(( )) reads 010 as octal and rejects 08.
strip_zeros() {
    n=$1
    while :; do
        case $n in
            0?*) n=${n#0} ;;
            *) break ;;
        esac
    done
    printf '%s' "$n"
}

# floor($1 * $2 / 100) without 64-bit overflow ($1 may be close to 10^18, so $1 * $2 may
# not fit): split $1 into hundreds and a remainder, and scale each part on its own.
percent_of() {
    hundreds=$(($1 / 100))
    rest=$(($1 % 100))
    printf '%s' "$((hundreds * $2 + rest * $2 / 100))"
}

# --- validate the environment ---------------------------------------------------------
case $percent in
    [1-9] | [1-9][0-9]) ;;
    *) invalid_env VALKEY_MAXMEMORY_PERCENT "$percent" "a whole number 1..99 (no % sign)" ;;
esac
if ! is_small_uint "$fallback" || [ "$(strip_zeros "$fallback")" = 0 ]; then
    invalid_env VALKEY_MAXMEMORY_FALLBACK_BYTES "$fallback" \
        "a positive whole number of bytes, at most 18 digits (no units such as 512Mi or 1gb)"
fi
if ! is_small_uint "$min_bytes"; then
    invalid_env VALKEY_MIN_MAXMEMORY_BYTES "$min_bytes" "a whole number of bytes, at most 18 digits"
fi
fallback=$(strip_zeros "$fallback")
min_bytes=$(strip_zeros "$min_bytes")

# --- the data directory must be writable (AOF lives there) ----------------------------
if [ ! -d "$data_dir" ] || [ ! -w "$data_dir" ]; then
    log "data dir $data_dir is not a writable directory for uid $(id -u): check the volume" \
        "mounted there and the pod's securityContext.fsGroup (the valkey image runs as uid 999)"
    exit 1
fi

# --- find the memory limit ------------------------------------------------------------
# read_limit FILE: on success set `limit` (digits, no leading zeros) and return 0;
# otherwise set `why` to a short reason and return 1. The value is never put into $(( ))
# unless it has at most 18 digits.
read_limit() {
    limit=
    if [ ! -e "$1" ]; then
        why=missing
        return 1
    fi
    # cat fails on a file we may not read (EACCES) or a non-file (EISDIR): both "unreadable".
    if ! raw=$(cat -- "$1" 2>/dev/null); then
        why=unreadable
        return 1
    fi
    # $( ) already dropped trailing newlines; drop trailing blanks too.
    raw=${raw%"${raw##*[! 	]}"}
    case $raw in
        '')
            why=empty
            return 1
            ;;
        max)
            why=max
            return 1
            ;;
        *[!0-9]*)
            why="not a number ('$raw')"
            return 1
            ;;
    esac
    # 19+ digits is at least 10^18: the "unlimited" sentinel of cgroup v1
    # (9223372036854771712, i.e. 2^63 rounded down to a page) or nonsense. Either way, no limit.
    if [ "${#raw}" -ge 19 ]; then
        why="no limit ($raw)"
        return 1
    fi
    limit=$(strip_zeros "$raw")
}

if read_limit "$cgroup_v2_file"; then
    found_in="cgroup v2 $cgroup_v2_file"
else
    skipped="cgroup v2 $cgroup_v2_file: $why"
    if read_limit "$cgroup_v1_file"; then
        found_in="cgroup v1 $cgroup_v1_file; $skipped"
    else
        skipped="$skipped; cgroup v1 $cgroup_v1_file: $why"
    fi
fi

if [ -n "$limit" ]; then
    bytes=$(percent_of "$limit" "$percent")
    explain="$percent% of $limit, $found_in"
else
    bytes=$fallback
    explain="fallback VALKEY_MAXMEMORY_FALLBACK_BYTES; $skipped"
fi

if [ "$bytes" -lt "$min_bytes" ]; then
    if [ -n "$limit" ]; then
        log "maxmemory $bytes bytes ($explain) is below the minimum $min_bytes" \
            "(VALKEY_MIN_MAXMEMORY_BYTES): raise the container's memory limit"
    else
        log "maxmemory $bytes bytes ($explain) is below the minimum $min_bytes" \
            "(VALKEY_MIN_MAXMEMORY_BYTES): raise the container's memory limit" \
            "or VALKEY_MAXMEMORY_FALLBACK_BYTES"
    fi
    exit 1
fi

log "maxmemory $bytes bytes ($explain)"

# exec: valkey-server replaces this shell and becomes PID 1, so it receives the kubelet's
# SIGTERM directly and can flush the AOF before exiting. The command-line --maxmemory
# overrides any maxmemory line in the config file.
exec valkey-server "$config_file" --maxmemory "$bytes" "$@"
