#!/bin/sh
# Smoke check of a live Valkey against its manifest, run by the `<name>-smoke` Job after each
# sync (an Argo CD PostSync hook; a post-deploy Kustomization under Flux). `sh smoke.sh`.
#
# Checks, in this order; the first that fails prints ONE line `smoke: FAIL <check>: <reason>`
# (the last line of the log, which the pod's termination message repeats) and exits 1:
#   ping         PONG, waiting up to SMOKE_WAIT_SECONDS: right after a sync the pod may still be
#                starting or loading its AOF (-LOADING). AUTH errors fail at once: waiting
#                cannot fix a wrong password.
#   auth         with REDISCLI_AUTH: a client without the password is refused (NOAUTH).
#   maxmemory    CONFIG GET maxmemory equals SMOKE_EXPECTED_MAXMEMORY_BYTES, the bytes the
#                entrypoint derives from the container's memory limit (computed at synth).
#   policy       maxmemory-policy noeviction (BullMQ loses jobs under eviction).
#   appendonly   appendonly yes.
#   appendfsync  appendfsync everysec (ADR 0005's 1 s durability window).
#   write        SET smoke:<random> <random> EX 60, GET returns it, DEL removes it. The TTL
#                removes the key even if this script dies in between.
#
# The password, if any, comes from REDISCLI_AUTH (valkey-cli reads it itself): never on argv,
# never printed.
# Environment:
#   VALKEY_HOST                      required: the client Service (or an address)
#   VALKEY_PORT                      default 6379
#   SMOKE_EXPECTED_MAXMEMORY_BYTES   required: whole bytes
#   SMOKE_WAIT_SECONDS               default 60: how long to wait for PONG
#   SMOKE_TIMEOUT_SECONDS            default 5: bound of each valkey-cli call (connect + reply)
#   REDISCLI_AUTH                    the password, when the Valkey requires one
# Exit codes: 0 every check passed, 1 a check failed, 64 invalid environment.
set -u

KEY_TTL_SECONDS=60

log() {
    printf 'smoke: %s\n' "$*"
}

fail() {
    log "FAIL $1: $2"
    exit 1
}

invalid_env() {
    log "invalid $1='$2': allowed is $3"
    exit 64
}

# True when $1 is a whole number of 1..18 digits (fits the 64-bit $(( )) of any sh).
is_uint() {
    case $1 in
        '' | *[!0-9]*) return 1 ;;
    esac
    [ "${#1}" -le 18 ]
}

host=${VALKEY_HOST-}
port=${VALKEY_PORT:-6379}
expected=${SMOKE_EXPECTED_MAXMEMORY_BYTES-}
wait_seconds=${SMOKE_WAIT_SECONDS:-60}
timeout_seconds=${SMOKE_TIMEOUT_SECONDS:-5}

[ -n "$host" ] || invalid_env VALKEY_HOST "$host" "a host name or address"
if ! is_uint "$port" || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    invalid_env VALKEY_PORT "$port" "a port number 1..65535"
fi
is_uint "$expected" || invalid_env SMOKE_EXPECTED_MAXMEMORY_BYTES "$expected" "a whole number of bytes"
is_uint "$wait_seconds" || invalid_env SMOKE_WAIT_SECONDS "$wait_seconds" "whole seconds"
if ! is_uint "$timeout_seconds" || [ "$timeout_seconds" -lt 1 ]; then
    invalid_env SMOKE_TIMEOUT_SECONDS "$timeout_seconds" "whole seconds, at least 1"
fi
target="$host:$port"

# cli ARGS...: run valkey-cli against the target, bounded by SMOKE_TIMEOUT_SECONDS. Sets `out`
# to its output (stderr too, on one line: "AUTH failed: ..." arrives there) and `status` to its
# exit code: 1 on an error reply (-e), 124 when it ran out of time.
cli() {
    out=$(timeout "$timeout_seconds" valkey-cli -h "$host" -p "$port" -t "$timeout_seconds" -e "$@" 2>&1)
    status=$?
    out=$(printf '%s' "$out" | tr '\n' ' ')
    out=${out% }
    if [ "$status" -eq 124 ]; then
        out="no reply within ${timeout_seconds}s"
    fi
}

# An error that waiting cannot fix: the password is wrong, missing or not allowed to run this.
is_auth_error() {
    case $1 in
        *NOAUTH* | *WRONGPASS* | *"AUTH failed"* | *NOPERM*) return 0 ;;
    esac
    return 1
}

auth_hint() {
    if [ -n "${REDISCLI_AUTH-}" ]; then
        printf '%s' "check that REDISCLI_AUTH comes from the same Secret key as the Valkey's password"
    else
        printf '%s' "the server requires a password but the Job has none: give the Valkey's auth_secret to the SmokeCheck's Valkey"
    fi
}

# --- ping: wait for PONG ---------------------------------------------------------------
deadline=$(($(date +%s) + wait_seconds))
while :; do
    cli ping
    if [ "$status" -eq 0 ] && [ "$out" = PONG ]; then
        break
    fi
    case $out in
        *"without any password configured"*)
            fail auth "$target requires no password, but the manifest sets one (auth_secret): $out"
            ;;
    esac
    if is_auth_error "$out"; then
        fail ping "$target refused the client: $out; $(auth_hint)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        fail ping "no PONG from $target within ${wait_seconds}s; last reply: ${out:-none}"
    fi
    sleep 1
done
log "ok ping: PONG from $target"

# --- auth: a client without the password is refused -------------------------------------
if [ -n "${REDISCLI_AUTH-}" ]; then
    # A subshell, so that only this one call runs without the password.
    unauthenticated=$(
        unset REDISCLI_AUTH
        cli ping
        printf '%s' "$out"
    )
    case $unauthenticated in
        *NOAUTH*) log "ok auth: a client without the password is refused" ;;
        *) fail auth "$target answers without a password ('$unauthenticated'), but the manifest requires one" ;;
    esac
fi

# --- configuration ------------------------------------------------------------------------
# config_get NAME: the value of a directive, in `value`.
config_get() {
    cli config get "$1"
    if [ "$status" -ne 0 ]; then
        fail "$2" "CONFIG GET $1 failed on $target: $out"
    fi
    # Raw output is "NAME VALUE" once joined; an unknown name gives nothing.
    case $out in
        "$1 "*) value=${out#"$1 "} ;;
        *) fail "$2" "CONFIG GET $1 on $target returned '$out'" ;;
    esac
}

config_get maxmemory maxmemory
if [ "$value" != "$expected" ]; then
    fail maxmemory "$target has maxmemory $value bytes, the manifest expects $expected\
 (maxmemory_percent of the container memory limit); compare the Valkey pod's memory limit\
 and its log line 'entrypoint: maxmemory ...'"
fi
log "ok maxmemory: $value bytes"

config_get maxmemory-policy policy
[ "$value" = noeviction ] ||
    fail policy "$target has maxmemory-policy $value, the manifest renders noeviction (BullMQ requires it)"
log "ok policy: noeviction"

config_get appendonly appendonly
[ "$value" = yes ] || fail appendonly "$target has appendonly $value, the manifest renders yes (AOF persistence)"
log "ok appendonly: yes"

config_get appendfsync appendfsync
[ "$value" = everysec ] ||
    fail appendfsync "$target has appendfsync $value, the manifest renders everysec (ADR 0005's 1 s window)"
log "ok appendfsync: everysec"

# --- write: a scratch key with a TTL ------------------------------------------------------
token=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
[ -n "$token" ] || token="$$-$(date +%s)"
key="smoke:$token"
cli set "$key" "$token" ex "$KEY_TTL_SECONDS"
if [ "$status" -ne 0 ] || [ "$out" != OK ]; then
    fail write "SET $key on $target was refused: ${out:-no reply}"
fi
cli get "$key"
if [ "$status" -ne 0 ] || [ "$out" != "$token" ]; then
    fail write "GET $key on $target returned '$out', not the value just written"
fi
cli del "$key"
if [ "$status" -ne 0 ] || [ "$out" != 1 ]; then
    fail write "DEL $key on $target returned '$out', expected 1"
fi
log "ok write: SET, GET and DEL of $key (EX $KEY_TTL_SECONDS)"

log "all checks passed on $target"
