#!/bin/sh
# Valkey container entrypoint when AUTH is on: hand the password to valkey-server as
# `requirepass` and `masterauth` lines on its stdin, then run entrypoint.sh (maxmemory from the cgroup), which
# execs valkey-server with our arguments and a final `-`: "read more config from stdin".
# Runs as `sh /scripts/requirepass.sh [extra valkey-server args]`.
#
# Why stdin: the password must never be in a command line (/proc/<pid>/cmdline is readable by
# every user of the node), in a ConfigMap, or in a file. A here-document is a pipe in dash (the
# image's /bin/sh; busybox ash too), never a temporary file, and valkey-server reads its stdin to
# the end after the config file and before the command-line options. The pid does not change:
# this shell execs entrypoint.sh's shell, which execs valkey-server, so SIGTERM still reaches it.
#
# Environment:
#   VALKEY_PASSWORD  required, non-empty: the password (the kubelet sets it from the Secret)
#   REDISCLI_AUTH    the same password for valkey-cli in the probes (the kubelet gives exec
#                    probes the container's env, not this process's)
# Both are unset before the exec, so valkey-server's /proc/<pid>/environ holds neither.
# The password is never printed, not even in an error message.
# Exit codes: 64 invalid environment; otherwise entrypoint.sh's.
set -eu

log() {
    printf 'requirepass: %s\n' "$*" >&2
}

if [ -z "${VALKEY_PASSWORD+set}" ]; then
    log "VALKEY_PASSWORD is not set: the pod must take it from the Secret (secretKeyRef)"
    exit 64
fi
password=$VALKEY_PASSWORD
unset VALKEY_PASSWORD REDISCLI_AUTH
if [ -z "$password" ]; then
    # `requirepass ""` would mean "no password": refuse rather than run without one.
    log "VALKEY_PASSWORD is empty: put a non-empty password in the Secret key"
    exit 64
fi

case $0 in
    */*) here=${0%/*} ;;
    *) here=. ;;
esac
# shellcheck source=auth-lib.sh
. "$here/auth-lib.sh"
conf_quote "$password"

# masterauth: the same password, which a replica (Sentinel topology) gives its primary. Unused
# while this node replicates from nobody.
log "AUTH required (requirepass and masterauth from VALKEY_PASSWORD, on stdin)"
exec sh "$here/entrypoint.sh" "$@" - <<EOF
requirepass "$quoted"
masterauth "$quoted"
EOF
