"""smoke.sh, the SmokeCheck Job's script, run for real against real servers.

Servers: the rendered StatefulSet through harness/podrunner.py (entrypoint, config, probes, the
pod's user), in a real memory cgroup of the rendered limit, so that ``maxmemory`` comes from the
cgroup as in a cluster. The script: the rendered Job's container as the kubelet would start it
(the ConfigMap file, the command, the env, the Secret key resolved), except that the Service name
and port become 127.0.0.1 and the runner's port (no cluster DNS here).

One good server is shared: the script passes on it, and each violation is made on it with
CONFIG SET (or REPLICAOF, a write filling memory, SIGSTOP) and undone afterwards. A second
server runs with AUTH for the password cases. Each failure asserts the one-line reason.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cdk8s
import pytest
import valkey
from test_security_auth import resolve_secret_refs

from cdk8s_valkey import SecretKeyRef, ValkeyStatefulSet
from cdk8s_valkey.smoke_check import SmokeCheck
from harness.paths import REPO, free_port, require_binary
from harness.podrunner import IMAGE_PATH, MemoryCgroup, PodRunner, parse_quantity
from harness.synth import find, new_chart, objects

pytestmark = pytest.mark.root

SCRIPT = REPO / "constructs/cdk8s_valkey/scripts/smoke.sh"
SECRET = SecretKeyRef(name="valkey-auth", key="password")
PASSWORD = "smoke-test-password"
# Deliberately not a whole number of 4 KiB pages: the kernel rounds the cgroup limit down to
# pages, and the expected maxmemory must follow (65536 KiB + 1 KiB -> 16384 pages).
MEMORY_LIMIT = cdk8s.Size.kibibytes(64 * 1024 + 1)
EXPECTED_MAXMEMORY = 16384 * 4096 * 70 // 100  # the default maxmemory_ratio, 0.7


# -- running the rendered Job ---------------------------------------------------------------


@dataclass
class Rendered:
    objects: list[dict[str, Any]]
    smoke: SmokeCheck

    @property
    def job_container(self) -> dict[str, Any]:
        pod = find(self.objects, "Job")["spec"]["template"]["spec"]
        (ctr,) = pod["containers"]
        return dict(ctr)


def render(*, auth: bool) -> Rendered:
    chart = new_chart()
    cache = ValkeyStatefulSet(chart, "valkey", memory_limit=MEMORY_LIMIT, auth_secret=SECRET if auth else None)
    smoke = SmokeCheck(chart, "smoke", valkey=cache)
    return Rendered(objects(chart), smoke)


def job_argv_and_env(
    rendered: Rendered, workdir: Path, bin_dir: Path, secrets: Mapping[tuple[str, str], str]
) -> tuple[list[str], dict[str, str]]:
    """The Job container's command and env as the kubelet would give them: ConfigMap volumes
    written under ``workdir`` (and their mount paths rewritten in the command), secretKeyRefs
    resolved from ``secrets``."""
    ctr = rendered.job_container
    pod = find(rendered.objects, "Job")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    argv = list(ctr["command"])
    for mount in ctr["volumeMounts"]:
        config_map = find(rendered.objects, "ConfigMap", volumes[mount["name"]]["configMap"]["name"])
        host = workdir / mount["mountPath"].lstrip("/")
        host.mkdir(parents=True, exist_ok=True)
        for name, content in config_map["data"].items():
            (host / name).write_text(content)
        argv = [str(host) + a[len(mount["mountPath"]) :] if a.startswith(mount["mountPath"] + "/") else a for a in argv]
    # As the pod's user, without new privileges (setpriv, as the pod runner does for Valkey).
    security = {**pod["securityContext"], **ctr["securityContext"]}
    assert security["allowPrivilegeEscalation"] is False
    argv = [
        require_binary("setpriv"),
        f"--reuid={security['runAsUser']}",
        f"--regid={security['runAsGroup']}",
        "--clear-groups",
        "--no-new-privs",
        "--",
        *argv,
    ]
    env = {"PATH": f"{bin_dir}:{IMAGE_PATH}", "HOME": "/"}
    for var in ctr["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[(ref["name"], ref["key"])]
    return argv, env


@dataclass
class Smoke:
    """The rendered Job's script, ready to run against 127.0.0.1:<port>."""

    argv: list[str]
    env: dict[str, str]

    def popen(self, port: int, **overrides: str | None) -> subprocess.Popen[str]:
        env = {**self.env, "VALKEY_HOST": "127.0.0.1", "VALKEY_PORT": str(port)}
        for name, value in overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return subprocess.Popen(self.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, port: int, *, timeout: float = 30, **overrides: str | None) -> subprocess.CompletedProcess[str]:
        proc = self.popen(port, **overrides)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(self.argv, proc.returncode, out, err)


def verdict(result: subprocess.CompletedProcess[str]) -> str:
    """The one FAIL line, which must also be the last line of the log."""
    lines = result.stdout.splitlines()
    fails = [line for line in lines if line.startswith("smoke: FAIL")]
    assert (result.returncode, len(fails), result.stderr) == (1, 1, ""), result
    assert lines[-1] == fails[0]
    return fails[0]


@contextmanager
def pod_for(
    rendered: Rendered, workdir: Path, bin_dir: Path, secrets: Mapping[tuple[str, str], str], *, port: int | None = None
) -> Iterator[PodRunner]:
    """The rendered Valkey container, in a memory cgroup of its rendered limit."""
    resolved = resolve_secret_refs(rendered.objects, secrets)
    (ctr,) = find(resolved, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    with (
        MemoryCgroup(parse_quantity(ctr["resources"]["limits"]["memory"])) as group,
        PodRunner(resolved, workdir=workdir, bin_dir=bin_dir, port=port, memory_cgroup=group) as runner,
    ):
        yield runner


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workroot() -> Iterator[Path]:
    """Where the pods and the Job's files live: a directory of our own under the system temp dir,
    which the pod user (uid 999) can traverse. Not pytest's base temp dir: every pytest session
    that starts on the machine resets ``pytest-of-<user>`` to 0700, which would lock the pod
    user out of a run in progress."""
    with tempfile.TemporaryDirectory(prefix="smoke-script-") as name:
        root = Path(name)
        root.chmod(0o711)
        yield root


@dataclass
class Server:
    runner: PodRunner
    client: valkey.Valkey
    smoke: Smoke


@pytest.fixture(scope="module")
def good(workroot: Path, valkey_bin_dir: Path) -> Iterator[Server]:
    rendered = render(auth=False)
    assert rendered.smoke.expected_maxmemory_bytes == EXPECTED_MAXMEMORY
    root = workroot / "good"
    argv, env = job_argv_and_env(rendered, root / "job", valkey_bin_dir, {})
    with pod_for(rendered, root / "pod", valkey_bin_dir, {}) as runner:
        runner.start()
        runner.wait_ready(timeout=15)
        with runner.client(decode_responses=True) as client:
            yield Server(runner, client, Smoke(argv, env))


@pytest.fixture(scope="module")
def authed(workroot: Path, valkey_bin_dir: Path) -> Iterator[Server]:
    rendered = render(auth=True)
    secrets = {(SECRET.name, SECRET.key): PASSWORD}
    root = workroot / "auth"
    argv, env = job_argv_and_env(rendered, root / "job", valkey_bin_dir, secrets)
    assert env["REDISCLI_AUTH"] == PASSWORD
    with pod_for(rendered, root / "pod", valkey_bin_dir, secrets) as runner:
        runner.start()
        runner.wait_ready(timeout=15)
        with runner.client(decode_responses=True, password=PASSWORD) as client:
            yield Server(runner, client, Smoke(argv, env))


@pytest.fixture(scope="module")
def auth_smoke(workroot: Path, valkey_bin_dir: Path) -> Smoke:
    """The Job of a Valkey with auth_secret, to run against a server without a password."""
    argv, env = job_argv_and_env(
        render(auth=True), workroot / "auth-job", valkey_bin_dir, {(SECRET.name, SECRET.key): "x"}
    )
    return Smoke(argv, env)


# -- the script ------------------------------------------------------------------------------


def test_shellcheck_clean() -> None:
    result = subprocess.run(
        [require_binary("shellcheck"), "-s", "sh", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_passes_on_a_good_server(good: Server) -> None:
    assert "cgroup" in good.runner.logs(), "maxmemory must come from the cgroup limit, as in a cluster"
    assert good.client.config_get("maxmemory")["maxmemory"] == str(EXPECTED_MAXMEMORY)
    keys_before = good.client.dbsize()
    result = good.smoke.run(good.runner.port)
    target = f"127.0.0.1:{good.runner.port}"
    lines = result.stdout.splitlines()
    assert (result.returncode, result.stderr) == (0, ""), result
    assert lines[:5] == [
        f"smoke: ok ping: PONG from {target}",
        f"smoke: ok maxmemory: {EXPECTED_MAXMEMORY} bytes",
        "smoke: ok policy: noeviction",
        "smoke: ok appendonly: yes",
        "smoke: ok appendfsync: everysec",
    ]
    assert re.fullmatch(r"smoke: ok write: SET, GET and DEL of smoke:[0-9a-f]{16} \(EX 60\)", lines[5])
    assert lines[6:] == [f"smoke: all checks passed on {target}"]
    assert good.client.dbsize() == keys_before, "the scratch key is gone"


@pytest.mark.parametrize(
    ("setting", "value", "reason"),
    [
        pytest.param(
            "maxmemory",
            "100mb",
            "smoke: FAIL maxmemory: {target} has maxmemory 104857600 bytes, the manifest expects "
            f"{EXPECTED_MAXMEMORY} (maxmemory_percent of the container memory limit); compare the Valkey "
            "pod's memory limit and its log line 'entrypoint: maxmemory ...'",
            id="maxmemory",
        ),
        pytest.param(
            "maxmemory-policy",
            "allkeys-lru",
            "smoke: FAIL policy: {target} has maxmemory-policy allkeys-lru, the manifest renders noeviction "
            "(BullMQ requires it)",
            id="policy-allkeys-lru",
        ),
        pytest.param(
            "appendonly",
            "no",
            "smoke: FAIL appendonly: {target} has appendonly no, the manifest renders yes (AOF persistence)",
            id="appendonly-no",
        ),
        pytest.param(
            "appendfsync",
            "always",
            "smoke: FAIL appendfsync: {target} has appendfsync always, the manifest renders everysec "
            "(ADR 0005's 1 s window)",
            id="appendfsync-always",
        ),
    ],
)
def test_fails_on_a_config_that_differs(good: Server, setting: str, value: str, reason: str) -> None:
    before = good.client.config_get(setting)[setting]
    good.client.config_set(setting, value)
    try:
        result = good.smoke.run(good.runner.port)
    finally:
        good.client.config_set(setting, before)
    assert verdict(result) == reason.format(target=f"127.0.0.1:{good.runner.port}")


def _replica_of_nothing(client: valkey.Valkey) -> Callable[[], None]:
    """A read-only replica (of a primary that is not there): every write is refused."""
    client.replicaof("127.0.0.1", str(free_port()))
    return lambda: client.replicaof("NO", "ONE")


def _memory_full(client: valkey.Valkey) -> Callable[[], None]:
    """used_memory just above maxmemory (one string): noeviction refuses every write with OOM."""
    room = int(client.info("memory")["maxmemory"]) - int(client.info("memory")["used_memory"])
    client.setrange("smoke-test:filler", room + (1 << 20), "x")
    return lambda: client.delete("smoke-test:filler")


@pytest.mark.parametrize(
    ("make", "refusal"),
    [
        pytest.param(_replica_of_nothing, "READONLY You can't write against a read only replica.", id="read-only"),
        pytest.param(_memory_full, "OOM command not allowed when used memory > 'maxmemory'.", id="oom"),
    ],
)
def test_fails_when_writes_are_refused(
    good: Server, make: Callable[[valkey.Valkey], Callable[[], None]], refusal: str
) -> None:
    undo = make(good.client)
    try:
        result = good.smoke.run(good.runner.port)
    finally:
        undo()
    target = f"127.0.0.1:{good.runner.port}"
    assert re.fullmatch(
        rf"smoke: FAIL write: SET smoke:[0-9a-f]{{16}} on {target} was refused: {re.escape(refusal)}", verdict(result)
    )
    assert good.smoke.run(good.runner.port).returncode == 0, "undone: the server is good again"


def test_fails_when_nothing_answers_within_the_wait(good: Server) -> None:
    port = free_port()
    started = time.monotonic()
    result = good.smoke.run(port, SMOKE_WAIT_SECONDS="1")
    elapsed = time.monotonic() - started
    assert verdict(result) == (
        f"smoke: FAIL ping: no PONG from 127.0.0.1:{port} within 1s; last reply: "
        f"Could not connect to Valkey at 127.0.0.1:{port}: Connection refused"
    )
    assert 1 <= elapsed < 5, "it waits, and only as long as it was told"


def test_fails_on_a_hung_server_within_its_bounds(good: Server) -> None:
    """A frozen server accepts the connection and never answers: each call is cut at its timeout."""
    good.runner.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = good.smoke.run(good.runner.port, SMOKE_WAIT_SECONDS="1", SMOKE_TIMEOUT_SECONDS="1")
        elapsed = time.monotonic() - started
    finally:
        good.runner.signal(signal.SIGCONT)
    assert verdict(result) == (
        f"smoke: FAIL ping: no PONG from 127.0.0.1:{good.runner.port} within 1s; last reply: no reply within 1s"
    )
    assert elapsed < 5


def test_waits_for_a_server_that_is_still_starting(workroot: Path, valkey_bin_dir: Path, good: Server) -> None:
    """After a sync the pod may not be ready yet: the check waits for PONG instead of failing."""
    port = free_port()
    with socket.create_server(("127.0.0.1", port)) as listener:
        listener.settimeout(10)
        proc = good.smoke.popen(port)
        try:
            # Its first try meets a port that closes the connection, as a pod that is not up yet.
            conn, _ = listener.accept()
            conn.close()
        except BaseException:
            proc.kill()
            raise
    try:
        with pod_for(render(auth=False), workroot / "late", valkey_bin_dir, {}, port=port) as runner:
            runner.start()
            out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, err) == (0, ""), out
    assert out.splitlines()[-1] == f"smoke: all checks passed on 127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param(
            {"VALKEY_HOST": ""}, "smoke: invalid VALKEY_HOST='': allowed is a host name or address", id="host"
        ),
        pytest.param(
            {"VALKEY_PORT": "0"}, "smoke: invalid VALKEY_PORT='0': allowed is a port number 1..65535", id="port"
        ),
        pytest.param(
            {"SMOKE_EXPECTED_MAXMEMORY_BYTES": "512Mi"},
            "smoke: invalid SMOKE_EXPECTED_MAXMEMORY_BYTES='512Mi': allowed is a whole number of bytes",
            id="expected",
        ),
        pytest.param(
            {"SMOKE_WAIT_SECONDS": "1m"}, "smoke: invalid SMOKE_WAIT_SECONDS='1m': allowed is whole seconds", id="wait"
        ),
        pytest.param(
            {"SMOKE_TIMEOUT_SECONDS": "0"},
            "smoke: invalid SMOKE_TIMEOUT_SECONDS='0': allowed is whole seconds, at least 1",
            id="timeout",
        ),
    ],
)
def test_invalid_environment_exits_64(good: Server, env: dict[str, str], message: str) -> None:
    result = good.smoke.run(good.runner.port, **env)
    assert (result.returncode, result.stdout, result.stderr) == (64, message + "\n", "")


# -- AUTH ------------------------------------------------------------------------------------


def test_passes_with_the_password_from_the_secret(authed: Server) -> None:
    result = authed.smoke.run(authed.runner.port)
    assert (result.returncode, result.stderr) == (0, ""), result
    assert "smoke: ok auth: a client without the password is refused" in result.stdout.splitlines()
    assert PASSWORD not in result.stdout


def test_fails_at_once_on_a_wrong_password(authed: Server) -> None:
    started = time.monotonic()
    result = authed.smoke.run(authed.runner.port, REDISCLI_AUTH="not-the-password")
    assert time.monotonic() - started < 5, "a wrong password is not waited on"
    assert verdict(result) == (
        f"smoke: FAIL ping: 127.0.0.1:{authed.runner.port} refused the client: AUTH failed: WRONGPASS invalid "
        "username-password pair or user is disabled. NOAUTH Authentication required.; check that "
        "REDISCLI_AUTH comes from the same Secret key as the Valkey's password"
    )
    assert "not-the-password" not in result.stdout


def test_fails_at_once_without_a_password(authed: Server) -> None:
    """A Job rendered without the Valkey's auth_secret, against a server that requires one."""
    result = authed.smoke.run(authed.runner.port, REDISCLI_AUTH=None)
    assert verdict(result) == (
        f"smoke: FAIL ping: 127.0.0.1:{authed.runner.port} refused the client: NOAUTH Authentication "
        "required.; the server requires a password but the Job has none: give the Valkey's auth_secret "
        "to the SmokeCheck's Valkey"
    )


def test_fails_when_the_server_has_no_password(good: Server, auth_smoke: Smoke) -> None:
    """The manifest requires AUTH but the live server takes anyone: that is a difference too."""
    result = auth_smoke.run(good.runner.port)
    assert verdict(result) == (
        f"smoke: FAIL auth: 127.0.0.1:{good.runner.port} requires no password, but the manifest sets one "
        "(auth_secret): AUTH failed: ERR AUTH <password> called without any password configured for the "
        "default user. Are you sure your configuration is correct? PONG"
    )
