#!/bin/sh
# Smoke check of a live Sentinel topology (a primary, its replicas, a Sentinel in every pod)
# against its manifest, run by the `<name>-smoke` Job after each sync, beside smoke.sh (the
# same ConfigMap): `sh smoke-sentinel.sh`. The client Service has no endpoints in this topology,
# so the Job asks the Sentinels and reaches every pod by its host name.
#
# First, until all of these hold or SMOKE_WAIT_SECONDS pass (pods may still be starting,
# replicas still syncing), the last that failed being the verdict:
#   sentinels    every Sentinel that answers names the same primary of VALKEY_MASTER_NAME
#                (SENTINEL GET-MASTER-ADDR-BY-NAME), and it is one of VALKEY_NODES;
#   ping         every node answers PONG;
#   replication  the primary says role:master; every other node is its replica with
#                master_link_status:up, and the primary's INFO lists it online, at most
#                SMOKE_MAX_LAG_BYTES behind its replication offset and acknowledged within
#                SMOKE_MAX_LAG_SECONDS;
#   quorum       a majority of the Sentinels answer (one of three may be down), and each that
#                answers says OK to SENTINEL CKQUORUM.
# Then, at once: with SENTINEL_AUTH, every Sentinel that answered refuses a client without it
# (auth); on every replica, auth (with REDISCLI_AUTH), maxmemory, policy, appendonly and
# appendfsync as smoke.sh checks them (any replica may be promoted); and last smoke.sh itself
# against the primary, which checks the same there and writes and reads a scratch key.
# The first failure prints ONE line `smoke: FAIL <check>: <reason>` and exits 1.
#
# Passwords: REDISCLI_AUTH (the Valkeys') and SENTINEL_AUTH (the Sentinels'), which valkey-cli
# reads from its environment: never on argv, never printed. A Sentinel is asked without a
# password unless SENTINEL_AUTH is set.
# Environment (besides smoke.sh's SMOKE_EXPECTED_MAXMEMORY_BYTES, SMOKE_WAIT_SECONDS,
# SMOKE_TIMEOUT_SECONDS and REDISCLI_AUTH; VALKEY_HOST and VALKEY_PORT are set here):
#   VALKEY_SENTINELS        required: every Sentinel as host:port, separated by spaces
#   VALKEY_MASTER_NAME      required: the name the Sentinels know the primary by
#   VALKEY_NODES            required: every pod's Valkey as host:port, separated by spaces
#   SMOKE_MAX_LAG_BYTES     default 1048576
#   SMOKE_MAX_LAG_SECONDS   default 10
#   SENTINEL_AUTH           the Sentinels' password, when they require one
# Exit codes: 0 every check passed, 1 a check failed, 64 invalid environment.
set -u

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

# check_addrs NAME VALUE: VALUE is one or more host:port, separated by spaces.
check_addrs() {
    allowed="host:port of each, separated by spaces"
    [ -n "$2" ] || invalid_env "$1" "$2" "$allowed"
    for addr in $2; do
        case $addr in
            *[!A-Za-z0-9.:-]* | :* | *:*:* | *:) invalid_env "$1" "$2" "$allowed" ;;
            *:*) ;;
            *) invalid_env "$1" "$2" "$allowed" ;;
        esac
        port=${addr##*:}
        if ! is_uint "$port" || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
            invalid_env "$1" "$2" "$allowed"
        fi
    done
}

sentinels=${VALKEY_SENTINELS-}
check_addrs VALKEY_SENTINELS "$sentinels"
master=${VALKEY_MASTER_NAME-}
case $master in
    '' | *[!A-Za-z0-9._-]*) invalid_env VALKEY_MASTER_NAME "$master" "letters, digits, '.', '_' and '-'" ;;
esac
nodes=${VALKEY_NODES-}
check_addrs VALKEY_NODES "$nodes"
max_lag_bytes=${SMOKE_MAX_LAG_BYTES:-1048576}
is_uint "$max_lag_bytes" || invalid_env SMOKE_MAX_LAG_BYTES "$max_lag_bytes" "a whole number of bytes"
max_lag_seconds=${SMOKE_MAX_LAG_SECONDS:-10}
is_uint "$max_lag_seconds" || invalid_env SMOKE_MAX_LAG_SECONDS "$max_lag_seconds" "whole seconds"
# smoke.sh checks these again (it runs last, against the primary); here they are needed first.
expected=${SMOKE_EXPECTED_MAXMEMORY_BYTES-}
wait_seconds=${SMOKE_WAIT_SECONDS:-60}
timeout_seconds=${SMOKE_TIMEOUT_SECONDS:-5}
is_uint "$expected" || invalid_env SMOKE_EXPECTED_MAXMEMORY_BYTES "$expected" "a whole number of bytes"
is_uint "$wait_seconds" || invalid_env SMOKE_WAIT_SECONDS "$wait_seconds" "whole seconds"
if ! is_uint "$timeout_seconds" || [ "$timeout_seconds" -lt 1 ]; then
    invalid_env SMOKE_TIMEOUT_SECONDS "$timeout_seconds" "whole seconds, at least 1"
fi
smoke_sh=${0%/*}/smoke.sh
[ -f "$smoke_sh" ] || invalid_env 0 "$0" "a path beside smoke.sh (run as sh /scripts/smoke-sentinel.sh)"

# run_cli valkey|sentinel ADDR ARGS...: valkey-cli against ADDR (host:port), bounded by
# SMOKE_TIMEOUT_SECONDS. Sets `raw` to its output (stderr too: "AUTH failed: ..." arrives
# there), `out` to the same on one line, and `status` to its exit code: 1 on an error reply
# (-e), 124 when it ran out of time. A Sentinel gets SENTINEL_AUTH or no password at all; the
# command substitution's subshell keeps that change.
run_cli() {
    cli_kind=$1
    cli_addr=$2
    shift 2
    raw=$(
        if [ "$cli_kind" = sentinel ]; then
            if [ -n "${SENTINEL_AUTH-}" ]; then
                # Meant to stay in this subshell: the Valkey calls keep the Valkey's password.
                # shellcheck disable=SC2030
                REDISCLI_AUTH=$SENTINEL_AUTH
                export REDISCLI_AUTH
            else
                unset REDISCLI_AUTH
            fi
        fi
        timeout "$timeout_seconds" valkey-cli -h "${cli_addr%:*}" -p "${cli_addr##*:}" -t "$timeout_seconds" \
            -e "$@" 2>&1
    )
    status=$?
    if [ "$status" -eq 124 ]; then
        raw="no reply within ${timeout_seconds}s"
    fi
    out=$(printf '%s' "$raw" | tr '\r\n' '  ')
    out=${out% }
}

# An error that waiting cannot fix: the password is wrong, missing or not allowed to run this.
is_auth_error() {
    case $1 in
        *NOAUTH* | *WRONGPASS* | *"AUTH failed"* | *NOPERM*) return 0 ;;
    esac
    return 1
}

# auth_hint VAR VALUE WHOSE: what to check when a password was refused.
auth_hint() {
    if [ -n "$2" ]; then
        printf '%s' "check that $1 comes from the same Secret key as the $3 password"
    else
        printf '%s' "it requires a password but the Job has none: give the Valkey's auth_secret to the SmokeCheck's Valkey"
    fi
}

# problem CHECK REASON: what keeps the topology from passing now; returns 1 for `|| return`.
problem() {
    problem_check=$1
    problem_reason=$2
    return 1
}

# info_field NAME: the value of NAME (a sed pattern) in `info`, an INFO reply.
info_field() {
    printf '%s\n' "$info" | tr -d '\r' | sed -n "s/^$1://p"
}

# ask_sentinels: sets `primary` as the answering Sentinels name it, `answering` (those that
# answered), `answered`, `total` and `sentinel_note` (who did not answer).
ask_sentinels() {
    primary=""
    answering=""
    silent=""
    answered=0
    total=0
    for addr in $sentinels; do
        total=$((total + 1))
        run_cli sentinel "$addr" sentinel get-master-addr-by-name "$master"
        if [ "$status" -ne 0 ]; then
            if is_auth_error "$out"; then
                fail sentinels "$addr refused the client: $out; $(auth_hint SENTINEL_AUTH "${SENTINEL_AUTH-}" "Sentinels'")"
            fi
            silent="$silent${silent:+; }$addr: ${out:-no reply}"
            continue
        fi
        case $out in
            *?' '?*) named="${out% *}:${out##* }" ;;
            *) problem sentinels "$addr knows no primary named $master (it answered '$out')" || return ;;
        esac
        if [ -z "$primary" ]; then
            primary=$named
            primary_source=$addr
        elif [ "$named" != "$primary" ]; then
            problem sentinels "the Sentinels disagree on the primary of $master: $primary_source names $primary,\
 $addr names $named" || return
        fi
        answering="$answering $addr"
        answered=$((answered + 1))
    done
    majority=$((total / 2 + 1))
    if [ "$answered" -lt "$majority" ]; then
        problem quorum "only $answered of $total Sentinels answer ($silent); a failover needs $majority of them" ||
            return
    fi
    sentinel_note=""
    if [ -n "$silent" ]; then
        sentinel_note=" ($((total - answered)) of $total did not answer: $silent)"
    fi
    case " $nodes " in
        *" $primary "*) ;;
        *) problem sentinels "the Sentinels name $primary as the primary of $master, which is none of\
 VALKEY_NODES ($nodes)" || return ;;
    esac
}

# ping_nodes: every node answers PONG; a refused password fails at once.
ping_nodes() {
    for node in $nodes; do
        run_cli valkey "$node" ping
        [ "$status" -eq 0 ] && [ "$out" = PONG ] && continue
        case $out in
            *"without any password configured"*)
                fail auth "$node requires no password, but the manifest sets one (auth_secret): $out"
                ;;
        esac
        if is_auth_error "$out"; then
            # shellcheck disable=SC2031 # run_cli changes REDISCLI_AUTH in its subshell only
            fail ping "$node refused the client: $out; $(auth_hint REDISCLI_AUTH "${REDISCLI_AUTH-}" "Valkey's")"
        fi
        problem ping "no PONG from $node; last reply: ${out:-none}" || return
    done
}

# check_replication: the primary's role; every replica's upstream and link; its state, offset
# and lag as the primary's INFO lists it (slaveN:ip=<host>,port=<port>,state=..,offset=..,lag=..).
check_replication() {
    replicas=""
    count=0
    run_cli valkey "$primary" info replication
    [ "$status" -eq 0 ] || problem replication "INFO replication failed on $primary: $out" || return
    info=$raw
    primary_info=$raw
    role=$(info_field role)
    [ "$role" = master ] ||
        problem replication "$primary, which the Sentinels name as the primary, has role:$role" || return
    primary_offset=$(info_field master_repl_offset)
    for node in $nodes; do
        [ "$node" != "$primary" ] || continue
        run_cli valkey "$node" info replication
        [ "$status" -eq 0 ] || problem replication "INFO replication failed on $node: $out" || return
        info=$raw
        role=$(info_field role)
        [ "$role" = slave ] ||
            problem replication "$node has role:$role beside $primary, which the Sentinels name as the primary" ||
            return
        upstream="$(info_field master_host):$(info_field master_port)"
        [ "$upstream" = "$primary" ] ||
            problem replication "$node replicates from $upstream, not from the primary $primary that the\
 Sentinels name" || return
        link=$(info_field master_link_status)
        [ "$link" = up ] ||
            problem replication "$node's link to the primary $primary is down (master_link_status:$link)" || return
        info=$primary_info
        listed=$(info_field 'slave[0-9]*' | grep -F "ip=${node%:*},port=${node##*:}," | head -n 1)
        [ -n "$listed" ] ||
            problem replication "the primary $primary does not list $node among its replicas" || return
        state=$(printf '%s' "$listed" | sed -n 's/.*state=\([a-z_]*\).*/\1/p')
        offset=$(printf '%s' "$listed" | sed -n 's/.*offset=\([0-9]*\).*/\1/p')
        lag=$(printf '%s' "$listed" | sed -n 's/.*lag=\([0-9]*\).*/\1/p')
        [ "$state" = online ] ||
            problem replication "the primary $primary lists $node in state $state, not online" || return
        if ! is_uint "$offset" || ! is_uint "$lag" || ! is_uint "$primary_offset"; then
            problem replication "the primary $primary lists $node as '$listed'" || return
        fi
        behind=$((primary_offset - offset))
        [ "$behind" -le "$max_lag_bytes" ] ||
            problem replication "$node is $behind bytes behind the primary $primary (at most $max_lag_bytes\
 allowed)" || return
        [ "$lag" -le "$max_lag_seconds" ] ||
            problem replication "$node last acknowledged the primary $primary ${lag}s ago (at most\
 ${max_lag_seconds}s allowed)" || return
        replicas="$replicas $node"
        count=$((count + 1))
    done
}

# check_quorum: SENTINEL CKQUORUM on every Sentinel that answered.
check_quorum() {
    for addr in $answering; do
        run_cli sentinel "$addr" sentinel ckquorum "$master"
        [ "$status" -eq 0 ] || problem quorum "$addr: $out" || return
        quorum_reply=$out
    done
}

topology_holds() {
    ask_sentinels && ping_nodes && check_replication && check_quorum
}

# refuses_without_password KIND ADDR: a client without the password gets NOAUTH.
refuses_without_password() {
    unauthenticated=$(
        unset REDISCLI_AUTH SENTINEL_AUTH
        run_cli "$1" "$2" ping
        printf '%s' "$out"
    )
    case $unauthenticated in
        *NOAUTH*) return 0 ;;
    esac
    return 1
}

# The guardrails of one replica, as smoke.sh checks them on the primary (same reasons).
check_replica() {
    node=$1
    # shellcheck disable=SC2031 # run_cli changes REDISCLI_AUTH in its subshell only
    if [ -n "${REDISCLI_AUTH-}" ]; then
        refuses_without_password valkey "$node" ||
            fail auth "$node answers without a password ('$unauthenticated'), but the manifest requires one"
        log "ok auth: a client without the password is refused on $node"
    fi
    for directive in maxmemory maxmemory-policy appendonly appendfsync; do
        case $directive in
            maxmemory) check=maxmemory want=$expected ;;
            maxmemory-policy) check=policy want=noeviction ;;
            appendonly) check=appendonly want=yes ;;
            *) check=appendfsync want=everysec ;;
        esac
        run_cli valkey "$node" config get "$directive"
        [ "$status" -eq 0 ] || fail "$check" "CONFIG GET $directive failed on $node: $out"
        case $out in
            "$directive "*) value=${out#"$directive "} ;;
            *) fail "$check" "CONFIG GET $directive on $node returned '$out'" ;;
        esac
        [ "$value" = "$want" ] && continue
        case $check in
            maxmemory) fail maxmemory "$node has maxmemory $value bytes, the manifest expects $expected\
 (maxmemory_percent of the container memory limit); compare the Valkey pod's memory limit\
 and its log line 'entrypoint: maxmemory ...'" ;;
            policy) fail policy "$node has maxmemory-policy $value, the manifest renders noeviction\
 (BullMQ requires it)" ;;
            appendonly) fail appendonly "$node has appendonly $value, the manifest renders yes (AOF persistence)" ;;
            *) fail appendfsync "$node has appendfsync $value, the manifest renders everysec (ADR 0005's 1 s window)" ;;
        esac
    done
    log "ok guardrails: maxmemory $expected bytes, noeviction, appendonly yes, appendfsync everysec on $node"
}

deadline=$(($(date +%s) + wait_seconds))
until topology_holds; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        fail "$problem_check" "$problem_reason; still so after ${wait_seconds}s"
    fi
    sleep 1
done
log "ok sentinels: $answered of $total name $primary as the primary of $master$sentinel_note"
log "ok ping: PONG from every node ($nodes)"
log "ok replication: $count replicas of $primary linked, at most $max_lag_bytes bytes and ${max_lag_seconds}s behind"
log "ok quorum: $quorum_reply"
if [ -n "${SENTINEL_AUTH-}" ]; then
    for addr in $answering; do
        refuses_without_password sentinel "$addr" ||
            fail auth "Sentinel $addr answers without a password ('$unauthenticated'), but SENTINEL_AUTH is set"
        log "ok auth: a client without the password is refused on Sentinel $addr"
    done
fi
for node in $replicas; do
    check_replica "$node"
done
# The primary: smoke.sh's own checks, and the write.
VALKEY_HOST=${primary%:*}
VALKEY_PORT=${primary##*:}
export VALKEY_HOST VALKEY_PORT
sh "$smoke_sh" || exit
log "all checks passed on $primary, the primary of $master, and its $count replicas"
