"""valkey.conf: the text ValkeyStatefulSet renders, and the synth-time checks that keep it a file
the real server starts with.

The directive table (``data/valkey-8.1-directives.json``) is generated from a real valkey-server 8.1
by ``python -m cdk8s_valkey._directives_gen``; see that module for how each fact is obtained.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

# The Valkey version the directive table, the defaults and the tests are made for (ADR 0005: 8.x).
VALKEY_VERSION = "8.1"
TESTED_MAJOR = 8
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
    # Valkey 8's own name for masterauth (the directive table lists both).
    "primaryauth": "passwords staying out of ConfigMaps",
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

# How the server parses numbers: string2ll (no sign but '-', no leading zero), memtoull (digits and
# a unit, case-insensitive; k = 1000, kb = 1024), octal through strtoll.
_INTEGER = re.compile(r"^(0|-?[1-9][0-9]*)$")
_MEMORY = re.compile(r"^([0-9]+)(b|k|kb|m|mb|g|gb)?$", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1 << 20, "g": 1000**3, "gb": 1 << 30}
_PERCENT = re.compile(r"^(0|[1-9][0-9]*)%$")
_OCTAL = re.compile(r"^[0-7]+$")
_LLONG_MIN, _LLONG_MAX = -(2**63), 2**63 - 1
_SPACE = " \t\n\v\f\r"  # C isspace()
_UNQUOTED_END = " \n\r\t"  # what ends an unquoted argument in sdssplitargs
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}

# Image references: the official image is valkey/valkey (also as <registry>/valkey/valkey); a release
# tag is <major>.<minor>.<patch>, with a variant suffix such as -alpine or -bookworm.
_RELEASE_TAG = re.compile(r"^([0-9]+)\.([0-9]+)\.([0-9]+)(-[A-Za-z0-9][A-Za-z0-9.-]*)?$")
_EXAMPLE_IMAGE = "valkey/valkey:8.1.11"


@dataclass(frozen=True)
class Directive:
    """One row of the directive table (see its "fields" for what each means)."""

    name: str
    kind: str
    values: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None
    percent_max: int | None = None
    multi_arg: bool = False
    args: tuple[int, int | None] | None = None
    reason: str = ""


@functools.cache
def directives() -> Mapping[str, Directive]:
    """The valkey.conf directives of Valkey 8.1, from the table shipped in the package."""
    text = resources.files(__package__).joinpath("data", DIRECTIVES_FILE).read_text(encoding="utf-8")
    table: dict[str, Directive] = {}
    for name, row in json.loads(text)["directives"].items():
        args = row.get("args")
        table[name] = Directive(
            name=name,
            kind=row["kind"],
            values=tuple(row.get("values", ())),
            min=row.get("min"),
            max=row.get("max"),
            percent_max=row.get("percent_max"),
            multi_arg=row.get("multi_arg", False),
            args=None if args is None else (args[0], args[1]),
            reason=row.get("reason", ""),
        )
    return table


def render_config(
    extra_config: Mapping[str, str], *, port: int, data_dir: str, auth: bool = False, check_directives: bool = True
) -> str:
    """The ``valkey.conf`` text: guardrails first, then tunables, then the caller's extras.

    With ``auth``, ``protected-mode yes``: the password itself is never in this text, the
    container hands it to valkey-server on stdin at start (``requirepass.sh``).
    ``check_directives`` checks ``extra_config`` against the Valkey 8.1 table too
    (:func:`check_extra_config`)."""
    check_extra_config(extra_config, check_directives=check_directives)
    extras = dict(extra_config)
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


def check_extra_config(extra_config: Mapping[str, str], *, check_directives: bool = True) -> None:
    """Refuse, at synth, an ``extra_config`` that would break a guardrail or that valkey-server 8.1
    would refuse at start (a crash-looping pod). With ``check_directives``, names and values are
    checked against the directive table: the name must exist, and yes/no, enumerated and numeric
    values must parse as the server parses them. Values of other kinds are left to the server."""
    for key, value in extra_config.items():
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
        if check_directives:
            _check_directive(key, value)


def _check_directive(key: str, value: str) -> None:
    table = directives()
    directive = table.get(key)
    if directive is None:
        close = difflib.get_close_matches(key, table, n=3, cutoff=0.75)
        hint = (
            f"did you mean {_either(close)}?"
            if close
            else f"use a directive of Valkey {VALKEY_VERSION}'s valkey.conf (for example 'maxclients')"
        )
        raise ValueError(f"extra_config: {key!r} is not a Valkey {VALKEY_VERSION} directive; {hint}")
    prefix = f"extra_config: {key!r} has value {value!r}"
    if directive.kind == "ignored":
        raise ValueError(
            f"extra_config: {key!r} is a deprecated directive that Valkey {VALKEY_VERSION} accepts and ignores; "
            "remove it"
        )
    if directive.kind == "refused":
        raise ValueError(
            f"extra_config: {key!r} is refused by valkey-server {VALKEY_VERSION} ({directive.reason!r}); remove it"
        )
    args = split_args(value)
    if args is None:
        raise ValueError(
            f"{prefix}, which valkey-server refuses (unbalanced quotes); close each quote, and put a space "
            'after a closing quote (for example "a b")'
        )
    if directive.multi_arg and len(args) == 1 and args[0]:
        # The server splits a single argument of a multi-argument directive once more.
        args = split_args(args[0]) or []
    _check_arity(prefix, directive, args)
    if directive.kind == "bool" and args[0].lower() not in ("yes", "no"):
        raise ValueError(f"{prefix}; use 'yes' or 'no'")
    if directive.kind == "enum":
        allowed = [v.lower() for v in directive.values]
        if not args or any(arg.lower() not in allowed for arg in args):
            several = "one or more of" if directive.multi_arg else "one of"
            raise ValueError(f"{prefix}; use {several} {_listed(directive.values)}")
    if directive.kind in ("integer", "memory", "octal") and not _number_ok(directive, args[0]):
        raise ValueError(f"{prefix}; use {_number_rule(directive)}")


def _check_arity(prefix: str, directive: Directive, args: Sequence[str]) -> None:
    if directive.args is not None:
        fewest, most = directive.args
        if len(args) < fewest or (most is not None and len(args) > most):
            count = str(fewest) if fewest == most else f"at least {fewest}"
            raise ValueError(
                f"{prefix}, which is {_arguments(len(args))}; {directive.name!r} takes {count} "
                '(quote an argument that contains spaces: "a b")'
            )
    elif not directive.multi_arg and len(args) != 1:
        raise ValueError(
            f"{prefix}, which is {_arguments(len(args))}; {directive.name!r} takes one "
            '(quote a value that contains spaces: "a b")'
        )


def _number_ok(directive: Directive, arg: str) -> bool:
    low = _LLONG_MIN if directive.min is None else directive.min
    high = _LLONG_MAX if directive.max is None else directive.max
    if directive.kind == "octal":
        return bool(_OCTAL.match(arg)) and low <= int(arg, 8) <= high
    if directive.kind == "memory":
        percent = _PERCENT.match(arg)
        if percent and directive.percent_max is not None:
            return int(percent.group(1)) <= directive.percent_max
        memory = _MEMORY.match(arg)
        if memory is None:
            return False
        return low <= int(memory.group(1)) * _MEMORY_UNITS[(memory.group(2) or "").lower()] <= high
    return bool(_INTEGER.match(arg)) and low <= int(arg) <= high


def _number_rule(directive: Directive) -> str:
    low, high = directive.min, directive.max
    if high is None or high >= _LLONG_MAX:
        span = "" if low is None or low <= _LLONG_MIN else f" of at least {low}"
    else:
        span = f" from {low} to {high}"
    if directive.kind == "octal":
        return f"an octal number from {low or 0:o} to {high or 0:o}"
    if directive.kind == "integer":
        return f"a whole number{span}"
    rule = f"a whole number of bytes{span}, optionally with a unit b, k, kb, m, mb, g or gb (for example 64mb)"
    if directive.percent_max is not None:
        rule += f", or a percentage of maxmemory up to {directive.percent_max}% (for example 10%)"
    return rule


def split_args(text: str) -> list[str] | None:
    """The arguments valkey-server reads from ``text`` on a valkey.conf line, or None for what it
    refuses as "Unbalanced quotes": a port of ``sdssplitargs`` (src/sds.c). Double quotes take
    C escapes (``\\n``, ``\\x41``), single quotes only ``\\'``; a closing quote ends the argument and
    must be followed by a space or the end of the line."""
    args: list[str] = []
    i, end = 0, len(text)
    while True:
        while i < end and text[i] in _SPACE:
            i += 1
        if i >= end:
            return args
        current: list[str] = []
        while i < end and text[i] not in _UNQUOTED_END:
            if text[i] in "\"'":
                quoted = _read_quoted(text, i + 1, text[i])
                if quoted is None:
                    return None
                part, i = quoted
                current.append(part)
                break
            current.append(text[i])
            i += 1
        args.append("".join(current))


def _read_quoted(text: str, i: int, quote: str) -> tuple[str, int] | None:
    """The rest of a quoted argument starting at ``i`` and the index after its closing quote."""
    out: list[str] = []
    while i < len(text):
        char, following = text[i], text[i + 1 : i + 2]
        if char == quote:
            return None if following and following not in _SPACE else ("".join(out), i + 1)
        if char == "\\" and quote == '"' and following == "x" and _is_hex(text[i + 2 : i + 4]):
            out.append(chr(int(text[i + 2 : i + 4], 16)))
            i += 4
        elif char == "\\" and following and (quote == '"' or following == "'"):
            out.append(_ESCAPES.get(following, following) if quote == '"' else following)
            i += 2
        else:
            out.append(char)
            i += 1
    return None


def check_image(prop: str, image: str, *, allow_untested: bool = False) -> None:
    """Refuse, unless ``allow_untested``, an image that is not Valkey 8.x (ADR 0005): the
    repository's last path component must be ``valkey`` (any registry or mirror prefix) and the
    tag a release of major version 8. A digest alone names no version, so it needs the tag too."""
    if allow_untested:
        return
    optin = f"or set allow_untested_image=True to take responsibility for {image!r}"
    name = image.partition("@")[0]
    repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    if repository.rsplit("/", 1)[-1] != "valkey":
        raise ValueError(
            f"{prop}: {image!r} is not a Valkey image; ADR 0005 runs Valkey {TESTED_MAJOR}.x, the version this "
            f"library is tested with. Use a valkey image with an {TESTED_MAJOR}.x tag such as {_EXAMPLE_IMAGE!r} "
            f"(a registry or mirror prefix is fine: 'registry.example.com/valkey/valkey:8.1.11'), {optin}"
        )
    if not tag:
        raise ValueError(
            f"{prop}: {image!r} has a digest but no tag, so its Valkey version cannot be checked against "
            f"ADR 0005's {TESTED_MAJOR}.x; give the tag with the digest, such as "
            f"'{_EXAMPLE_IMAGE}@sha256:<digest>', {optin}"
        )
    release = _RELEASE_TAG.match(tag)
    if release is None:
        raise ValueError(
            f"{prop}: {image!r} has tag {tag!r}, which is not a Valkey release tag (<major>.<minor>.<patch>, "
            f"optionally with a suffix such as '-alpine'), so its version cannot be checked against ADR 0005's "
            f"{TESTED_MAJOR}.x; use an {TESTED_MAJOR}.x release tag such as {_EXAMPLE_IMAGE!r}, {optin}"
        )
    if int(release.group(1)) != TESTED_MAJOR:
        raise ValueError(
            f"{prop}: {image!r} is Valkey {tag}; ADR 0005 runs Valkey {TESTED_MAJOR}.x, the version this library "
            f"is tested with. Use an {TESTED_MAJOR}.x tag such as {_EXAMPLE_IMAGE!r}, or rehearse the upgrade "
            "first (docs/operations.md) and set allow_untested_image=True"
        )


def _arguments(count: int) -> str:
    return "1 argument" if count == 1 else f"{count} arguments"


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789abcdefABCDEF" for c in text)


def _either(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _listed(values: Sequence[str]) -> str:
    return ", ".join(repr(v) for v in values)
