"""The Valkey entrypoint script, run with dash against the real valkey-server.

Each case writes fake cgroup files, runs `sh entrypoint.sh` on a loopback port, and checks
the one log line, the live server's config and that the server is the process we started
(the script exec'd it).
"""

from __future__ import annotations

import enum
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.paths import free_port, require_binary
from harness.servers import client, stop_server, wait_for_pong, write_config

pytestmark = pytest.mark.root

SCRIPT = Path(__file__).parents[1] / "constructs/cdk8s_valkey/scripts/entrypoint.sh"
NOBODY = 65534  # uid/gid of `nobody` on Debian
MIB = 1024 * 1024
FALLBACK = 100 * MIB
CGROUP_V1_UNLIMITED = "9223372036854771712"  # what cgroup v1 reports without a limit
INT64_MAX = str(2**63 - 1)


class File(enum.Enum):
    MISSING = "missing"
    DIRECTORY = "directory"  # a directory where the file should be: reading it fails


CgroupFile = str | File


@dataclass(frozen=True)
class Case:
    id: str
    v2: CgroupFile
    v1: CgroupFile
    bytes: int
    explain: str  # the log line's parenthesis; {v2} and {v1} stand for the fake files' paths
    percent: str = "80"
    fallback: int = FALLBACK
    as_nobody: bool = False  # run as uid 65534 with the v2 file chmod 000


CASES = [
    Case("v2-bytes", "268435456\n", File.MISSING, 268435456 * 80 // 100, "80% of 268435456, cgroup v2 {v2}"),
    Case(
        "v2-bytes-trailing-blank",
        "268435456 \n",
        File.MISSING,
        268435456 * 80 // 100,
        "80% of 268435456, cgroup v2 {v2}",
    ),
    Case(
        "v2-leading-zero-not-octal",
        "0268435456\n",
        File.MISSING,
        268435456 * 80 // 100,
        "80% of 268435456, cgroup v2 {v2}",
    ),
    Case(
        "v2-max-then-v1-bytes",
        "max\n",
        "536870912\n",
        536870912 * 80 // 100,
        "80% of 536870912, cgroup v1 {v1}; cgroup v2 {v2}: max",
    ),
    Case(
        "v2-missing-v1-bytes",
        File.MISSING,
        "1073741824\n",
        1073741824 * 80 // 100,
        "80% of 1073741824, cgroup v1 {v1}; cgroup v2 {v2}: missing",
    ),
    Case(
        "v2-missing-v1-unlimited-fallback",
        File.MISSING,
        CGROUP_V1_UNLIMITED + "\n",
        429496729,
        "fallback VALKEY_MAXMEMORY_FALLBACK_BYTES; cgroup v2 {v2}: missing; "
        f"cgroup v1 {{v1}}: no limit ({CGROUP_V1_UNLIMITED})",
        fallback=429496729,
    ),
    Case(
        "both-missing-fallback",
        File.MISSING,
        File.MISSING,
        FALLBACK,
        "fallback VALKEY_MAXMEMORY_FALLBACK_BYTES; cgroup v2 {v2}: missing; cgroup v1 {v1}: missing",
    ),
    Case(
        "v2-max-v1-max-fallback",
        "max\n",
        "max\n",
        FALLBACK,
        "fallback VALKEY_MAXMEMORY_FALLBACK_BYTES; cgroup v2 {v2}: max; cgroup v1 {v1}: max",
    ),
    # Tests run as root, and root reads a chmod 000 file. Two ways that really fail the read:
    # a directory at the path (cat fails with EISDIR), and running the script as `nobody`
    # (via setpriv) with the v2 file chmod 000 (cat fails with EACCES, as in a pod).
    Case(
        "v2-unreadable-directory-v1-bytes",
        File.DIRECTORY,
        "536870912\n",
        536870912 * 80 // 100,
        "80% of 536870912, cgroup v1 {v1}; cgroup v2 {v2}: unreadable",
    ),
    Case(
        "v2-unreadable-chmod000-as-nobody-v1-bytes",
        "268435456\n",
        "536870912\n",
        536870912 * 80 // 100,
        "80% of 536870912, cgroup v1 {v1}; cgroup v2 {v2}: unreadable",
        as_nobody=True,
    ),
    Case(
        "v2-garbage-12abc-v1-bytes",
        "12abc\n",
        "536870912\n",
        536870912 * 80 // 100,
        "80% of 536870912, cgroup v1 {v1}; cgroup v2 {v2}: not a number ('12abc')",
    ),
    Case(
        "v2-garbage-empty-v1-bytes",
        "",
        "536870912\n",
        536870912 * 80 // 100,
        "80% of 536870912, cgroup v1 {v1}; cgroup v2 {v2}: empty",
    ),
    Case(
        "v2-garbage-minus-1-v1-bytes",
        "-1\n",
        "536870912\n",
        536870912 * 80 // 100,
        "80% of 536870912, cgroup v1 {v1}; cgroup v2 {v2}: not a number ('-1')",
    ),
    Case(
        "v2-garbage-25-digits-v1-bytes",
        "1234567890123456789012345\n",
        "536870912\n",
        536870912 * 80 // 100,
        "80% of 536870912, cgroup v1 {v1}; cgroup v2 {v2}: no limit (1234567890123456789012345)",
    ),
    # 2^63-1 is never put into $(( )): 19+ digits means "no limit".
    Case(
        "v2-int64-max-v1-bytes",
        INT64_MAX + "\n",
        "536870912\n",
        536870912 * 80 // 100,
        f"80% of 536870912, cgroup v1 {{v1}}; cgroup v2 {{v2}}: no limit ({INT64_MAX})",
    ),
    # The largest limit taken as bytes (18 digits): limit * 99 overflows int64, the script's
    # split arithmetic must not.
    Case(
        "v2-18-digits-99pct-no-overflow",
        "999999999999999999\n",
        File.MISSING,
        999999999999999999 * 99 // 100,
        "99% of 999999999999999999, cgroup v2 {v2}",
        percent="99",
    ),
    Case(
        "v1-bytes-50pct",
        File.MISSING,
        "536870913\n",
        536870913 * 50 // 100,
        "50% of 536870913, cgroup v1 {v1}; cgroup v2 {v2}: missing",
        percent="50",
    ),
    Case(
        "v2-bytes-7pct-rounds-down",
        "1073741827\n",
        File.MISSING,
        1073741827 * 7 // 100,
        "7% of 1073741827, cgroup v2 {v2}",
        percent="7",
    ),
]


@dataclass(frozen=True)
class Layout:
    port: int
    root: Path
    data_dir: Path
    config: Path
    v2: Path
    v1: Path
    stdout: Path
    stderr: Path


@pytest.fixture
def layout() -> Iterator[Layout]:
    # Not tmp_path: pytest's base temp dir is 0700 root, and some cases run as `nobody`.
    root = Path(tempfile.mkdtemp(prefix="valkey-entrypoint-"))
    root.chmod(0o755)
    port = free_port()
    data_dir = root / "data"
    data_dir.mkdir()
    cgroup = root / "cgroup"
    cgroup.mkdir()
    config = write_config(
        root / "valkey.conf",
        port=port,
        data_dir=data_dir,
        # The command line's --maxmemory must win over the config file.
        extra=["maxmemory 12345678"],
    )
    try:
        yield Layout(
            port=port,
            root=root,
            data_dir=data_dir,
            config=config,
            v2=cgroup / "memory.max",
            v1=cgroup / "memory.limit_in_bytes",
            stdout=root / "server.log",
            stderr=root / "entrypoint.err",
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def started() -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    """Servers started by a test; each is stopped afterwards, whatever happened."""
    procs: list[tuple[subprocess.Popen[bytes], int]] = []
    yield procs
    for proc, port in procs:
        stop_server(proc, port)


def place(path: Path, content: CgroupFile) -> None:
    if content is File.DIRECTORY:
        path.mkdir()
    elif isinstance(content, str):
        path.write_text(content)


def script_env(valkey_env: Mapping[str, str], layout: Layout, **overrides: str | None) -> dict[str, str]:
    """The script's environment: fake cgroup files, the tmp config and data dir."""
    env = {k: v for k, v in valkey_env.items() if not k.startswith("VALKEY_")}
    env.update(
        VALKEY_CONFIG_FILE=str(layout.config),
        VALKEY_DATA_DIR=str(layout.data_dir),
        VALKEY_CGROUP_V2_FILE=str(layout.v2),
        VALKEY_CGROUP_V1_FILE=str(layout.v1),
        VALKEY_MAXMEMORY_PERCENT="80",
        VALKEY_MAXMEMORY_FALLBACK_BYTES=str(FALLBACK),
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def as_nobody(argv: list[str]) -> list[str]:
    setpriv = require_binary("setpriv")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *argv]


def start(sh: str, env: Mapping[str, str], layout: Layout, *args: str, nobody: bool = False) -> subprocess.Popen[bytes]:
    """Start `sh entrypoint.sh`; its stderr (the log line) and stdout go to files."""
    argv = [sh, str(SCRIPT), *args]
    with layout.stdout.open("wb") as out, layout.stderr.open("wb") as err:
        return subprocess.Popen(
            as_nobody(argv) if nobody else argv,
            env=dict(env),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )


def run_failing(sh: str, env: Mapping[str, str], *, nobody: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the script when it must exit by itself (a timeout means it started a server)."""
    argv = [sh, str(SCRIPT)]
    return subprocess.run(
        as_nobody(argv) if nobody else argv,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_maxmemory_from_cgroup(
    case: Case,
    layout: Layout,
    sh: str,
    valkey_env: dict[str, str],
    started: list[tuple[subprocess.Popen[bytes], int]],
) -> None:
    place(layout.v2, case.v2)
    place(layout.v1, case.v1)
    if case.as_nobody:
        layout.v2.chmod(0o000)
        os.chown(layout.data_dir, NOBODY, NOBODY)
    env = script_env(
        valkey_env,
        layout,
        VALKEY_MAXMEMORY_PERCENT=case.percent,
        VALKEY_MAXMEMORY_FALLBACK_BYTES=str(case.fallback),
    )

    proc = start(sh, env, layout, nobody=case.as_nobody)
    started.append((proc, layout.port))
    wait_for_pong(proc, layout.port, log=layout.stdout)

    explain = case.explain.format(v2=layout.v2, v1=layout.v1)
    assert layout.stderr.read_text() == f"entrypoint: maxmemory {case.bytes} bytes ({explain})\n"
    with client(layout.port) as conn:
        assert conn.config_get("maxmemory") == {"maxmemory": str(case.bytes)}
        assert conn.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert conn.config_get("appendonly") == {"appendonly": "yes"}
        assert conn.config_get("appendfsync") == {"appendfsync": "everysec"}
        server = conn.info("server")
    # The script exec'd valkey-server: same pid as the `sh` (or setpriv) we started.
    assert server["process_id"] == proc.pid
    if case.as_nobody:
        assert (layout.data_dir / "appendonlydir").stat().st_uid == NOBODY


def test_sigterm_reaches_valkey_server(
    layout: Layout,
    sh: str,
    valkey_env: dict[str, str],
    started: list[tuple[subprocess.Popen[bytes], int]],
) -> None:
    place(layout.v2, "268435456\n")
    # Extra arguments reach valkey-server after the computed --maxmemory.
    proc = start(sh, script_env(valkey_env, layout), layout, "--hz", "25")
    started.append((proc, layout.port))
    wait_for_pong(proc, layout.port, log=layout.stdout)
    with client(layout.port) as conn:
        assert conn.config_get("hz") == {"hz": "25"}
        assert conn.info("server")["process_id"] == proc.pid
        conn.set("session:sigterm", "kept")

    # The kubelet signals PID 1: that must be valkey-server itself, not a shell ignoring it.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    log = layout.stdout.read_text()
    assert "Received SIGTERM scheduling shutdown" in log
    assert "bye bye" in log
    aof = b"".join(p.read_bytes() for p in (layout.data_dir / "appendonlydir").glob("*.incr.aof"))
    assert b"session:sigterm" in aof  # the AOF was flushed on the way out


@pytest.mark.parametrize("value", [None, "", "0", "100", "80%", "abc", "08", " 80", "-5", "0.8"])
def test_bad_percent_exits_64(value: str | None, layout: Layout, sh: str, valkey_env: dict[str, str]) -> None:
    place(layout.v2, "268435456\n")
    env = script_env(valkey_env, layout, VALKEY_MAXMEMORY_PERCENT=value)
    result = run_failing(sh, env)
    assert result.returncode == 64
    assert result.stderr == (
        f"entrypoint: invalid VALKEY_MAXMEMORY_PERCENT='{value or ''}': allowed is a whole number 1..99 (no % sign)\n"
    )


@pytest.mark.parametrize("value", [None, "", "0", "000", "-1", "512Mi", "1.5gb", "1gb", "1234567890123456789"])
def test_bad_fallback_exits_64(value: str | None, layout: Layout, sh: str, valkey_env: dict[str, str]) -> None:
    place(layout.v2, "268435456\n")
    env = script_env(valkey_env, layout, VALKEY_MAXMEMORY_FALLBACK_BYTES=value)
    result = run_failing(sh, env)
    assert result.returncode == 64
    assert result.stderr == (
        f"entrypoint: invalid VALKEY_MAXMEMORY_FALLBACK_BYTES='{value or ''}': allowed is a "
        "positive whole number of bytes, at most 18 digits (no units such as 512Mi or 1gb)\n"
    )


def test_bad_minimum_exits_64(layout: Layout, sh: str, valkey_env: dict[str, str]) -> None:
    env = script_env(valkey_env, layout, VALKEY_MIN_MAXMEMORY_BYTES="16M")
    result = run_failing(sh, env)
    assert result.returncode == 64
    assert "VALKEY_MIN_MAXMEMORY_BYTES='16M'" in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("v2", "overrides", "expected"),
    [
        pytest.param(
            "16777216\n",
            {},
            "maxmemory 13421772 bytes (80% of 16777216, cgroup v2 {v2}) is below the minimum "
            "16777216 (VALKEY_MIN_MAXMEMORY_BYTES): raise the container's memory limit",
            id="v2-16MiB-at-80pct",
        ),
        pytest.param(
            "1073741824\n",
            {"VALKEY_MIN_MAXMEMORY_BYTES": "1073741824"},
            "maxmemory 858993459 bytes (80% of 1073741824, cgroup v2 {v2}) is below the minimum "
            "1073741824 (VALKEY_MIN_MAXMEMORY_BYTES): raise the container's memory limit",
            id="custom-minimum",
        ),
        pytest.param(
            File.MISSING,
            {"VALKEY_MAXMEMORY_FALLBACK_BYTES": "1048576"},
            "maxmemory 1048576 bytes (fallback VALKEY_MAXMEMORY_FALLBACK_BYTES; cgroup v2 {v2}: "
            "missing; cgroup v1 {v1}: missing) is below the minimum 16777216 "
            "(VALKEY_MIN_MAXMEMORY_BYTES): raise the container's memory limit "
            "or VALKEY_MAXMEMORY_FALLBACK_BYTES",
            id="fallback-1MiB",
        ),
    ],
)
def test_below_minimum_exits_1(
    v2: CgroupFile,
    overrides: dict[str, str],
    expected: str,
    layout: Layout,
    sh: str,
    valkey_env: dict[str, str],
) -> None:
    place(layout.v2, v2)
    result = run_failing(sh, script_env(valkey_env, layout, **overrides))
    assert result.returncode == 1
    line = expected.format(v2=layout.v2, v1=layout.v1)
    assert result.stderr == f"entrypoint: {line}\n"


@pytest.mark.parametrize("kind", ["a-file", "missing", "root-owned-as-nobody"])
def test_unwritable_data_dir_exits_1(kind: str, layout: Layout, sh: str, valkey_env: dict[str, str]) -> None:
    place(layout.v2, "268435456\n")
    data_dir = layout.root / "not-a-dir"
    uid = 0
    if kind == "a-file":
        data_dir.write_text("")
    elif kind == "root-owned-as-nobody":
        # The pod case: a volume owned by root, Valkey running as another uid (no fsGroup).
        data_dir = layout.data_dir
        uid = NOBODY
    result = run_failing(
        sh,
        script_env(valkey_env, layout, VALKEY_DATA_DIR=str(data_dir)),
        nobody=kind == "root-owned-as-nobody",
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"entrypoint: data dir {data_dir} is not a writable directory for uid {uid}: check the "
        "volume mounted there and the pod's securityContext.fsGroup (the valkey image runs as "
        "uid 999)\n"
    )
