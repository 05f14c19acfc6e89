"""TEMPORARY: a hand-made Sentinel topology built from the default rendering, for the drill
harness until the Sentinel construct renders one. 1 primary + 2 replicas, a Sentinel sidecar
per pod, quorum 2, min-replicas-to-write 1, min-replicas-max-lag 10."""

from __future__ import annotations

import copy
from typing import Any

from podrunner import load_manifest

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 5000

VALKEY_START = r"""#!/bin/sh
set -eu
me="$POD_NAME.$HEADLESS.$POD_NAMESPACE.svc.cluster.local"
ordinal=${POD_NAME##*-}
primary=
i=0
while [ "$i" -lt "$REPLICAS" ]; do
    s="$STS-$i.$HEADLESS.$POD_NAMESPACE.svc.cluster.local"
    i=$((i + 1))
    answer=$(valkey-cli -h "$s" -p 26379 -t 1 sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | head -n 1) || answer=
    case $answer in
        '' | ERR* | *error* | *Could*) continue ;;
    esac
    primary=$answer
    break
done
if [ -z "$primary" ]; then
    echo "start: no Sentinel answered; bootstrap rule: ordinal 0 is the primary" >&2
    [ "$ordinal" = 0 ] && primary=$me || primary="$STS-0.$HEADLESS.$POD_NAMESPACE.svc.cluster.local"
fi
if [ "$primary" = "$me" ]; then
    echo "start: primary ($me)" >&2
    exec sh "$SCRIPTS/entrypoint.sh" --replica-announce-ip "$me"
fi
echo "start: replica of $primary" >&2
exec sh "$SCRIPTS/entrypoint.sh" --replica-announce-ip "$me" --replicaof "$primary" 6379
"""

SENTINEL_START = r"""#!/bin/sh
set -eu
me="$POD_NAME.$HEADLESS.$POD_NAMESPACE.svc.cluster.local"
primary=
i=0
while [ "$i" -lt "$REPLICAS" ]; do
    s="$STS-$i.$HEADLESS.$POD_NAMESPACE.svc.cluster.local"
    i=$((i + 1))
    [ "$s" = "$me" ] && continue
    answer=$(valkey-cli -h "$s" -p 26379 -t 1 sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | head -n 1) || answer=
    case $answer in
        '' | ERR* | *error* | *Could*) continue ;;
    esac
    primary=$answer
    break
done
[ -n "$primary" ] || primary="$STS-0.$HEADLESS.$POD_NAMESPACE.svc.cluster.local"
cat > "$SENTINEL_CONF" <<EOF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $me
sentinel monitor $MASTER_NAME $primary 6379 2
sentinel down-after-milliseconds $MASTER_NAME $DOWN_AFTER_MS
sentinel failover-timeout $MASTER_NAME 10000
sentinel parallel-syncs $MASTER_NAME 1
EOF
exec valkey-sentinel "$SENTINEL_CONF"
"""


def objects(replicas: int = 3, max_lag: int = 10) -> list[dict[str, Any]]:
    objs = copy.deepcopy(load_manifest())
    sts = next(o for o in objs if o["kind"] == "StatefulSet")
    name = sts["metadata"]["name"]
    config = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{name}-config")
    config["data"]["valkey.conf"] += (
        f"min-replicas-to-write 1\nmin-replicas-max-lag {max_lag}\nrepl-diskless-sync-delay 0\n"
    )
    scripts = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{name}-scripts")
    scripts["data"]["valkey-start.sh"] = VALKEY_START
    scripts["data"]["sentinel-start.sh"] = SENTINEL_START
    spec = sts["spec"]
    spec["replicas"] = replicas
    pod_spec = spec["template"]["spec"]
    pod_spec["volumes"] = [v for v in pod_spec["volumes"] if v["name"] != "data"]
    pod_spec["volumes"].append({"name": "sentinel", "emptyDir": {}})
    spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]
    common = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "HEADLESS", "value": spec["serviceName"]},
        {"name": "STS", "value": name},
        {"name": "REPLICAS", "value": str(replicas)},
        {"name": "MASTER_NAME", "value": MASTER_NAME},
        {"name": "SCRIPTS", "value": "/scripts"},
    ]
    valkey = next(c for c in pod_spec["containers"] if c["name"] == "valkey")
    valkey["command"] = ["sh", "/scripts/valkey-start.sh"]
    valkey["env"] = common + valkey["env"]
    sentinel = {
        "name": "sentinel",
        "image": valkey["image"],
        "command": ["sh", "/scripts/sentinel-start.sh"],
        "env": [
            *common,
            {"name": "SENTINEL_CONF", "value": "/sentinel/sentinel.conf"},
            {"name": "DOWN_AFTER_MS", "value": str(DOWN_AFTER_MS)},
        ],
        "ports": [{"containerPort": 26379, "name": "sentinel"}],
        "readinessProbe": {"exec": {"command": ["valkey-cli", "-p", "26379", "ping"]}, "timeoutSeconds": 2},
        "securityContext": valkey["securityContext"],
        "volumeMounts": [
            {"name": "scripts", "mountPath": "/scripts", "readOnly": True},
            {"name": "sentinel", "mountPath": "/sentinel"},
        ],
    }
    pod_spec["containers"].insert(1, sentinel)
    return objs
