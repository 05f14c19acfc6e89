#!/bin/sh
# With AUTH (Sentinel topology): keep the Sentinel's state on the data claim without its secrets.
# Runs as `sh sentinel-persist.sh <config> <pid>`, started in the background by sentinel-start.sh.
#
# With AUTH, Sentinel's configuration holds the passwords, and Sentinel rewrites it (CONFIG
# REWRITE, at every failover and discovery) with them in plain text, whatever file they came from
# (an `include` is inlined too; measured with Valkey 8.1). So that file lives on a memory volume
# (emptyDir medium Memory, mode 0600), and this loop copies what a restart needs (state_lines:
# the primary, the epochs, the known replicas and Sentinels) to VALKEY_SENTINEL_STATE on the data
# claim, once a second when it changed, for as long as process <pid> (the Sentinel) runs.
# A pod that is deleted loses at most the last second of state; the next start asks the other
# Sentinels first anyway (sentinel-start.sh).
#
# Environment: that of sentinel-lib.sh (no password: sentinel-start.sh unsets it first).
# Exit codes: 0 once the Sentinel is gone, 64 usage or invalid environment.
set -u

script_name=sentinel-persist
case $0 in
    */*) here=${0%/*} ;;
    *) here=. ;;
esac
# shellcheck source=sentinel-lib.sh
. "$here/sentinel-lib.sh"

if [ "$#" -ne 2 ]; then
    echo "usage: sh sentinel-persist.sh <config> <pid>" >&2
    exit 64
fi
lib_init
config=$1 pid=$2
saved=
while kill -0 "$pid" 2>/dev/null; do
    if lines=$(state_lines "$config" 2>/dev/null) && [ -n "$lines" ] && [ "$lines" != "$saved" ]; then
        if save_state "$lines"; then
            saved=$lines
        else
            log "cannot write $state_file: the state on the claim is behind (retrying)"
        fi
    fi
    sleep 1
done
