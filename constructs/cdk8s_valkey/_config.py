"""valkey.conf: the text ValkeyStatefulSet renders, and the checks that keep it a file the server
starts with.

The directive table (``data/valkey-8.1-directives.json``) is generated from a real valkey-server 8.1
by ``python -m cdk8s_valkey._directives_gen``; see that module for how each fact is obtained.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# The Valkey version the directive table, the defaults and the tests are made for (ADR 0005: 8.x).
VALKEY_VERSION = "8.1"
DIRECTIVES_FILE = f"valkey-{VALKEY_VERSION}-directives.json"

# Directives the construct owns. Overriding any of them would silently break an ADR
# guardrail or the manifest around the server, so extra_config refuses them.
GUARDED_DIRECTIVES: Mapping[str, str] = {
    "appendonly": "AOF persistence (ADR 0005)",
    "appendfsync": "the 1 s durability window (ADR 0005)",
    "aof-use-rdb-preamble": "fast restarts after a crash",
    "appenddirname": "the AOF location on the volume",
    "appendfilename": "the AOF location on the volume",
    "maxmemory": "the memory ceiling the entrypoint computes from the cgroup limit (ADR 0005)",
    "maxmemory-policy": "noeviction, which BullMQ requires (ADR 0005)",
    "dir": "the data directory on the persistent volume",
    "port": "the port the Services and probes use",
    "bind": "reachability from the other pods of the namespace",
    "protected-mode": "reachability from the other pods of the namespace",
    "daemonize": "the server running in the foreground as PID 1",
    "supervised": "the server running in the foreground as PID 1",
    "logfile": "logs on stdout for kubectl logs",
    "pidfile": "a read-only root filesystem",
    "unixsocket": "a read-only root filesystem",
    "include": "a configuration that is reviewable in one place",
    "requirepass": "passwords out of ConfigMaps (auth_secret takes it from a Secret)",
    "masterauth": "passwords staying out of ConfigMaps",
    "user": "passwords staying out of ConfigMaps",
    "aclfile": "passwords staying out of ConfigMaps",
}
_DIRECTIVE = re.compile(r"^[a-z][a-z0-9-]*$")

# The defaults we render, in file order; extra_config may replace the values of these.
_TUNABLE_DEFAULTS: tuple[tuple[str, str, str], ...] = (
    ("save", '""', "AOF is the persistence; RDB snapshots would add forks that double memory"),
    ("auto-aof-rewrite-percentage", "100", "rewrite when the AOF has doubled since the last rewrite"),
    ("auto-aof-rewrite-min-size", "64mb", ""),
    ("tcp-keepalive", "60", "drop dead clients (BullMQ workers that vanished) within minutes"),
    ("timeout", "0", "BullMQ keeps blocking connections idle for long periods"),
    ("loglevel", "notice", ""),
)


def render_config(extra_config: Mapping[str, str], *, port: int, data_dir: str, auth: bool = False) -> str:
    """The ``valkey.conf`` text: guardrails first, then tunables, then the caller's extras.

    With ``auth``, ``protected-mode yes``: the password itself is never in this text, the
    container hands it to valkey-server on stdin at start (``requirepass.sh``)."""
    extras = dict(extra_config)
    for key, value in extras.items():
        if not _DIRECTIVE.match(key):
            raise ValueError(
                f"extra_config: {key!r} is not a valkey.conf directive name; "
                "use lower-case letters, digits and '-' (for example 'maxclients')"
            )
        if key in GUARDED_DIRECTIVES:
            raise ValueError(
                f"extra_config: {key!r} is set by ValkeyStatefulSet to keep {GUARDED_DIRECTIVES[key]}; "
                "remove it from extra_config (any other directive is allowed)"
            )
        if "\n" in value or "\r" in value or not value.strip():
            raise ValueError(f"extra_config: {key!r} has value {value!r}; use a single non-empty line")
    if auth:
        network = [
            "# Network: AUTH required. requirepass comes from the Secret at start, on stdin",
            "# (requirepass.sh), never from this file.",
        ]
    else:
        network = ["# Network: no AUTH yet (ADR 0005); any pod that reaches the Service can connect."]
    lines = [
        "# valkey.conf rendered by cdk8s_valkey (ADR 0005). maxmemory is not set here:",
        "# entrypoint.sh computes it at start from the container's cgroup memory limit.",
        "",
        *network,
        "bind * -::*",
        f"protected-mode {'yes' if auth else 'no'}",
        f"port {port}",
        "daemonize no",
        'logfile ""',
        "",
        "# Persistence: AOF fsync every second; restarts load an RDB preamble first.",
        f"dir {data_dir}",
        "appendonly yes",
        "appendfsync everysec",
        "aof-use-rdb-preamble yes",
        'appenddirname "appendonlydir"',
        "",
        "# Memory: refuse writes at maxmemory instead of evicting keys (BullMQ needs it).",
        "maxmemory-policy noeviction",
        "",
    ]
    for key, default, why in _TUNABLE_DEFAULTS:
        if why:
            lines.append(f"# {why}")
        lines.append(f"{key} {extras.pop(key, default)}")
    if extras:
        lines += ["", "# extra_config"]
        lines += [f"{key} {value}" for key, value in sorted(extras.items())]
    return "\n".join(lines) + "\n"
