"""smoke.sh and smoke-sentinel.sh, the SmokeCheck Job's scripts, run for real against real servers.

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
import threading
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

from cdk8s_valkey import SecretKeyRef, SentinelOptions, SmokeCheckOptions, Valkey, ValkeyStatefulSet
from cdk8s_valkey.smoke_check import SmokeCheck
from harness.paths import REPO, free_port, require_binary
from harness.podrunner import IMAGE_PATH, MemoryCgroup, PodRunner, parse_quantity
from harness.servers import write_config
from harness.synth import find, new_chart, objects

pytestmark = pytest.mark.root

SCRIPT = REPO / "constructs/cdk8s_valkey/scripts/smoke.sh"
SENTINEL_SCRIPT = REPO / "constructs/cdk8s_valkey/scripts/smoke-sentinel.sh"
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


@pytest.mark.parametrize("script", [SCRIPT, SENTINEL_SCRIPT], ids=lambda path: path.name)
def test_shellcheck_clean(script: Path) -> None:
    result = subprocess.run(
        [require_binary("shellcheck"), "-s", "sh", str(script)], capture_output=True, text=True, timeout=60, check=False
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


# -- Sentinel: a primary, two replicas and three Sentinels -------------------------------------
#
# Real valkey-server and valkey-sentinel 8.1 processes on 127.0.0.1, configured here as the
# rendered topology runs them (noeviction, AOF everysec, the expected maxmemory, the replicas
# announcing the address the Sentinels report), without the pod scripts: the drills of
# test_sentinel_scripts.py and test_composition.py cover those. One healthy topology is shared:
# each fault is made on it and undone, and the next test starts from a healthy topology again.
# The script is the rendered Job's, with the rendered env; only the pods' host names and ports
# become 127.0.0.1 and free ports.

MASTER = "valkey"
SENTINEL_PASSWORD = "smoke-sentinel-password"
# Long enough that no fault made here (a replica down, two Sentinels stopped) ever starts a
# failover while the tests run.
DOWN_AFTER_MS = 60_000


def render_sentinel(*, auth: bool) -> Rendered:
    chart = new_chart()
    cache = Valkey(
        chart,
        "valkey",
        memory_limit=MEMORY_LIMIT,
        auth_secret=SECRET if auth else None,
        sentinel=SentinelOptions(),
        smoke_check=SmokeCheckOptions(),
    )
    assert cache.smoke_check is not None
    return Rendered(objects(chart), cache.smoke_check)


class Topology:
    """Three nodes, each a Valkey and a Sentinel; node 0 starts as the primary."""

    def __init__(self, root: Path, bin_dir: Path, password: str | None) -> None:
        self.root = root
        self.password = password
        self.env = {"PATH": f"{bin_dir}:{IMAGE_PATH}", "HOME": "/"}
        self.ports = [free_port() for _ in range(3)]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.valkeys: list[subprocess.Popen[bytes] | None] = [None] * 3
        self.sentinels: list[subprocess.Popen[bytes] | None] = [None] * 3

    @property
    def nodes(self) -> str:
        return " ".join(f"127.0.0.1:{port}" for port in self.ports)

    @property
    def sentinel_addrs(self) -> str:
        return " ".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def addr(self, index: int) -> str:
        return f"127.0.0.1:{self.ports[index]}"

    def client(self, index: int) -> valkey.Valkey:
        return valkey.Valkey(
            host="127.0.0.1", port=self.ports[index], password=self.password, decode_responses=True, socket_timeout=5
        )

    def sentinel_client(self, index: int) -> valkey.Valkey:
        password = SENTINEL_PASSWORD if self.password else None
        return valkey.Valkey(
            host="127.0.0.1",
            port=self.sentinel_ports[index],
            password=password,
            decode_responses=True,
            socket_timeout=5,
        )

    def start_valkey(self, index: int) -> None:
        data = self.root / f"node{index}"
        data.mkdir(exist_ok=True)
        extra = [f"maxmemory {EXPECTED_MAXMEMORY}", "replica-announce-ip 127.0.0.1"]
        if index:
            extra.append(f"replicaof 127.0.0.1 {self.ports[0]}")
        if self.password:
            extra += [f"requirepass {self.password}", f"masterauth {self.password}"]
        config = write_config(self.root / f"valkey{index}.conf", port=self.ports[index], data_dir=data, extra=extra)
        with (self.root / f"valkey{index}.log").open("ab") as log:
            self.valkeys[index] = subprocess.Popen(
                ["valkey-server", str(config)], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def start_sentinel(self, index: int) -> None:
        config = self.root / f"sentinel{index}.conf"
        if not config.exists():  # a restarted Sentinel keeps what it rewrote into its file
            lines = [
                f"port {self.sentinel_ports[index]}",
                "bind 127.0.0.1",
                f"dir {self.root}",
                f"sentinel monitor {MASTER} 127.0.0.1 {self.ports[0]} 2",
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
            ]
            if self.password:
                lines += [f"sentinel auth-pass {MASTER} {self.password}", f"requirepass {SENTINEL_PASSWORD}"]
            config.write_text("\n".join(lines) + "\n")
        with (self.root / f"sentinel{index}.log").open("ab") as log:
            self.sentinels[index] = subprocess.Popen(
                ["valkey-server", str(config), "--sentinel"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def start(self) -> None:
        for index in range(3):
            self.start_valkey(index)
        for index in range(3):
            self.start_sentinel(index)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 40) -> None:
        """Every replica linked and caught up, every Sentinel knowing both replicas and the other
        two Sentinels: what a fault must be undone to before the next test."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = self._health()
                if last is True:
                    return
            except (valkey.ConnectionError, valkey.TimeoutError, valkey.ResponseError) as error:
                last = error
            time.sleep(0.1)
        raise AssertionError(f"the topology is not healthy within {timeout}s: {last}")

    def _health(self) -> bool | str:
        with self.client(0) as primary:
            info = primary.info("replication")
            offset = info["master_repl_offset"]
            replicas = [info.get(f"slave{i}", {}) for i in range(2)]
        # The Sentinels' hello messages move the offset every second: close, not equal.
        if [r.get("state") for r in replicas] != ["online", "online"] or any(
            offset - r["offset"] > 64 << 10 or r["lag"] > 3 for r in replicas
        ):
            return f"replicas: {replicas}, primary offset {offset}"
        for index in range(3):
            with self.sentinel_client(index) as sentinel:
                fields = sentinel.execute_command("SENTINEL", "MASTER", MASTER)
                master = fields if isinstance(fields, dict) else dict(zip(fields[::2], fields[1::2], strict=True))
                seen = (str(master["ip"]), str(master["port"]), str(master["num-slaves"]))
                if seen != ("127.0.0.1", str(self.ports[0]), "2") or str(master["num-other-sentinels"]) != "2":
                    return f"Sentinel {index}: {master}"
                if "s_down" in str(master["flags"]):
                    return f"Sentinel {index}: {master['flags']}"
                for replica in _pairs_list(sentinel.execute_command("SENTINEL", "REPLICAS", MASTER)):
                    if "down" in str(replica["flags"]):
                        return f"Sentinel {index} sees replica {replica['name']} {replica['flags']}"
                for other in _pairs_list(sentinel.execute_command("SENTINEL", "SENTINELS", MASTER)):
                    if "down" in str(other["flags"]):
                        return f"Sentinel {index} sees Sentinel {other['name']} {other['flags']}"
        return True

    def kill_valkey(self, index: int) -> None:
        proc = self.valkeys[index]
        assert proc is not None
        proc.kill()
        proc.wait(timeout=10)

    def signal_sentinel(self, index: int, sig: signal.Signals) -> None:
        proc = self.sentinels[index]
        assert proc is not None and proc.poll() is None
        proc.send_signal(sig)

    def close(self) -> None:
        for proc in (*self.valkeys, *self.sentinels):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(timeout=10)


def _pairs_list(reply: Any) -> list[dict[str, Any]]:
    """SENTINEL REPLICAS/SENTINELS as dicts (a flat list of field, value per entry in RESP2)."""
    return [entry if isinstance(entry, dict) else dict(zip(entry[::2], entry[1::2], strict=True)) for entry in reply]


@dataclass
class SentinelSetup:
    topology: Topology
    smoke: Smoke

    def run(self, **overrides: str | None) -> subprocess.CompletedProcess[str]:
        env = {**self.smoke.env, "VALKEY_SENTINELS": self.topology.sentinel_addrs, "VALKEY_NODES": self.topology.nodes}
        for name, value in overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        proc = subprocess.Popen(self.smoke.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=60)
        return subprocess.CompletedProcess(self.smoke.argv, proc.returncode, out, err)

    def fail_fast(self, **overrides: str | None) -> subprocess.CompletedProcess[str]:
        """A run that waits 1 s for the topology, each call bounded at 1 s."""
        return self.run(SMOKE_WAIT_SECONDS="1", SMOKE_TIMEOUT_SECONDS="1", **overrides)


@contextmanager
def sentinel_setup(workroot: Path, bin_dir: Path, *, auth: bool) -> Iterator[SentinelSetup]:
    rendered = render_sentinel(auth=auth)
    secrets = {(SECRET.name, SECRET.key): PASSWORD}
    root = workroot / ("sentinel-auth" if auth else "sentinel")
    argv, env = job_argv_and_env(rendered, root / "job", bin_dir, secrets)
    assert env["VALKEY_MASTER_NAME"] == MASTER
    if auth:
        # Rendered from the same Secret key as the Valkeys' password; the Sentinels here have a
        # password of their own, so that a mix-up between the two would show.
        assert (env["REDISCLI_AUTH"], env["SENTINEL_AUTH"]) == (PASSWORD, PASSWORD)
        env["SENTINEL_AUTH"] = SENTINEL_PASSWORD
    topology = Topology(root, bin_dir, PASSWORD if auth else None)
    try:
        topology.start()
        yield SentinelSetup(topology, Smoke(argv, env))
    finally:
        topology.close()


@pytest.fixture(scope="module")
def sentinel(workroot: Path, valkey_bin_dir: Path) -> Iterator[SentinelSetup]:
    with sentinel_setup(workroot, valkey_bin_dir, auth=False) as setup:
        yield setup


@pytest.fixture
def healthy(sentinel: SentinelSetup) -> Iterator[SentinelSetup]:
    """The shared topology, healthy before the test and made healthy again after it."""
    sentinel.topology.wait_healthy()
    yield sentinel
    sentinel.topology.wait_healthy()


def _sentinel_lines(topology: Topology, replicas_line: str = "") -> list[str]:
    primary = topology.addr(0)
    lines = [
        f"smoke: ok sentinels: 3 of 3 name {primary} as the primary of {MASTER}{replicas_line}",
        f"smoke: ok ping: PONG from every node ({topology.nodes})",
        f"smoke: ok replication: 2 replicas of {primary} linked, at most 1048576 bytes and 2s behind",
        "smoke: ok quorum: OK 3 usable Sentinels. Quorum and failover authorization can be reached",
    ]
    return lines


def _guardrails(node: str) -> str:
    return (
        f"smoke: ok guardrails: maxmemory {EXPECTED_MAXMEMORY} bytes, noeviction, appendonly yes, appendfsync "
        f"everysec on {node}"
    )


def _passed(topology: Topology) -> str:
    return f"smoke: all checks passed on {topology.addr(0)}, the primary of {MASTER}, and its 2 replicas"


def test_sentinel_passes_on_a_healthy_topology(healthy: SentinelSetup) -> None:
    topology = healthy.topology
    result = healthy.run()
    assert (result.returncode, result.stderr) == (0, ""), result
    lines = result.stdout.splitlines()
    primary = topology.addr(0)
    assert lines[:6] == [*_sentinel_lines(topology), _guardrails(topology.addr(1)), _guardrails(topology.addr(2))]
    # smoke.sh on the primary: its own checks and the write, then the topology's verdict.
    assert lines[6:11] == [
        f"smoke: ok ping: PONG from {primary}",
        f"smoke: ok maxmemory: {EXPECTED_MAXMEMORY} bytes",
        "smoke: ok policy: noeviction",
        "smoke: ok appendonly: yes",
        "smoke: ok appendfsync: everysec",
    ]
    assert re.fullmatch(r"smoke: ok write: SET, GET and DEL of smoke:[0-9a-f]{16} \(EX 60\)", lines[11])
    assert lines[12:] == [f"smoke: all checks passed on {primary}", _passed(topology)]
    with topology.client(0) as primary:
        assert primary.dbsize() == 0, "the scratch key is gone"


def test_sentinel_tolerates_one_sentinel_down(healthy: SentinelSetup) -> None:
    topology = healthy.topology
    topology.signal_sentinel(2, signal.SIGSTOP)
    try:
        result = healthy.fail_fast()
    finally:
        topology.signal_sentinel(2, signal.SIGCONT)
    assert (result.returncode, result.stderr) == (0, ""), result
    silent = f"127.0.0.1:{topology.sentinel_ports[2]}"
    assert result.stdout.splitlines()[0] == (
        f"smoke: ok sentinels: 2 of 3 name {topology.addr(0)} as the primary of {MASTER} "
        f"(1 of 3 did not answer: {silent}: no reply within 1s)"
    )


def test_sentinel_fails_on_a_replica_down(healthy: SentinelSetup) -> None:
    topology = healthy.topology
    topology.kill_valkey(2)
    try:
        result = healthy.fail_fast()
    finally:
        topology.start_valkey(2)
    down = topology.addr(2)
    assert verdict(result) == (
        f"smoke: FAIL ping: no PONG from {down}; last reply: Could not connect to Valkey at {down}: "
        "Connection refused; still so after 1s"
    )


def test_sentinel_fails_on_a_replica_pointed_elsewhere(healthy: SentinelSetup) -> None:
    topology = healthy.topology
    elsewhere = free_port()
    with topology.client(1) as replica:
        replica.replicaof("127.0.0.1", str(elsewhere))
        try:
            result = healthy.fail_fast()
        finally:
            replica.replicaof("127.0.0.1", str(topology.ports[0]))
    assert verdict(result) == (
        f"smoke: FAIL replication: {topology.addr(1)} replicates from 127.0.0.1:{elsewhere}, not from the primary "
        f"{topology.addr(0)} that the Sentinels name; still so after 1s"
    )


def test_sentinel_fails_on_a_replication_link_down(healthy: SentinelSetup) -> None:
    """The replica still points at the primary, but the primary refuses it: PSYNC and SYNC are
    taken away from the user it replicates as, and its connection is cut."""
    topology = healthy.topology
    with topology.client(0) as primary:
        primary.acl_setuser("default", enabled=True, commands=["-psync", "-sync"])
        try:
            primary.client_kill_filter(_type="slave")
            result = healthy.fail_fast()
        finally:
            primary.acl_setuser("default", enabled=True, commands=["+@all"])
            # Valkey 8.1: a replica that was refused PSYNC and SYNC can stay "online" with offset
            # 0, never acknowledging, once they are allowed again; a new connection resyncs it.
            primary.client_kill_filter(_type="slave")
    assert re.fullmatch(
        rf"smoke: FAIL replication: 127\.0\.0\.1:({topology.ports[1]}|{topology.ports[2]})'s link to the primary "
        rf"{re.escape(topology.addr(0))} is down \(master_link_status:down\); still so after 1s",
        verdict(result),
    )


def test_sentinel_fails_on_a_replica_behind(healthy: SentinelSetup) -> None:
    """A writer keeps the primary's offset ahead of what the replicas acknowledged (once a
    second): with no lag allowed, the replicas are behind. The writer is bounded (count and
    time) and stops with the check."""
    topology = healthy.topology
    done = threading.Event()

    def write() -> None:
        with topology.client(0) as primary:
            for i in range(20_000):
                if done.is_set():
                    break
                primary.set(f"smoke-test:behind:{i % 10}", "x" * 256)
                time.sleep(0.002)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        result = healthy.fail_fast(SMOKE_MAX_LAG_BYTES="0")
    finally:
        done.set()
        writer.join(timeout=30)
    with topology.client(0) as primary:
        primary.delete(*(f"smoke-test:behind:{i}" for i in range(10)))
    assert re.fullmatch(
        rf"smoke: FAIL replication: 127\.0\.0\.1:({topology.ports[1]}|{topology.ports[2]}) is [1-9]\d* bytes behind "
        rf"the primary {re.escape(topology.addr(0))} \(at most 0 allowed\); still so after 1s",
        verdict(result),
    )


def test_sentinel_fails_on_quorum_lost(healthy: SentinelSetup) -> None:
    """Two of the three Sentinels stopped (SIGSTOP: they hold connections and never answer)."""
    topology = healthy.topology
    for index in (1, 2):
        topology.signal_sentinel(index, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = healthy.fail_fast()
        elapsed = time.monotonic() - started
    finally:
        for index in (1, 2):
            topology.signal_sentinel(index, signal.SIGCONT)
    one, two = (f"127.0.0.1:{topology.sentinel_ports[i]}" for i in (1, 2))
    assert verdict(result) == (
        f"smoke: FAIL quorum: only 1 of 3 Sentinels answer ({one}: no reply within 1s; {two}: no reply within 1s); "
        "a failover needs 2 of them; still so after 1s"
    )
    assert elapsed < 15, "each call to a stopped Sentinel is cut at SMOKE_TIMEOUT_SECONDS"


@pytest.mark.parametrize("index", [0, 2], ids=["primary", "replica"])
def test_sentinel_fails_on_a_node_running_allkeys_lru(healthy: SentinelSetup, index: int) -> None:
    topology = healthy.topology
    with topology.client(index) as node:
        node.config_set("maxmemory-policy", "allkeys-lru")
        try:
            result = healthy.fail_fast()
        finally:
            node.config_set("maxmemory-policy", "noeviction")
    assert verdict(result) == (
        f"smoke: FAIL policy: {topology.addr(index)} has maxmemory-policy allkeys-lru, the manifest renders "
        "noeviction (BullMQ requires it)"
    )


def test_sentinel_fails_on_a_primary_the_sentinels_do_not_know(healthy: SentinelSetup) -> None:
    result = healthy.fail_fast(VALKEY_MASTER_NAME="other")
    assert verdict(result) == (
        f"smoke: FAIL sentinels: 127.0.0.1:{healthy.topology.sentinel_ports[0]} knows no primary named other "
        "(it answered ''); still so after 1s"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param(
            {"VALKEY_SENTINELS": "sentinel-0"},
            "smoke: invalid VALKEY_SENTINELS='sentinel-0': allowed is host:port of each, separated by spaces",
            id="sentinels",
        ),
        pytest.param(
            {"VALKEY_MASTER_NAME": "a b"},
            "smoke: invalid VALKEY_MASTER_NAME='a b': allowed is letters, digits, '.', '_' and '-'",
            id="master",
        ),
        pytest.param(
            {"VALKEY_NODES": ""},
            "smoke: invalid VALKEY_NODES='': allowed is host:port of each, separated by spaces",
            id="nodes",
        ),
        pytest.param(
            {"SMOKE_MAX_LAG_BYTES": "1Mi"},
            "smoke: invalid SMOKE_MAX_LAG_BYTES='1Mi': allowed is a whole number of bytes",
            id="lag-bytes",
        ),
        pytest.param(
            {"SMOKE_MAX_LAG_SECONDS": "2s"},
            "smoke: invalid SMOKE_MAX_LAG_SECONDS='2s': allowed is whole seconds",
            id="lag-seconds",
        ),
    ],
)
def test_sentinel_invalid_environment_exits_64(sentinel: SentinelSetup, env: dict[str, str], message: str) -> None:
    result = sentinel.run(**env)
    assert (result.returncode, result.stdout, result.stderr) == (64, message + "\n", "")


# -- Sentinel with passwords: the Valkeys' from the Secret, the Sentinels' their own -----------


@pytest.fixture(scope="module")
def sentinel_authed(workroot: Path, valkey_bin_dir: Path) -> Iterator[SentinelSetup]:
    with sentinel_setup(workroot, valkey_bin_dir, auth=True) as setup:
        yield setup


def test_sentinel_passes_with_passwords(sentinel_authed: SentinelSetup) -> None:
    topology = sentinel_authed.topology
    result = sentinel_authed.run()
    assert (result.returncode, result.stderr) == (0, ""), result
    lines = result.stdout.splitlines()
    assert lines[:4] == _sentinel_lines(topology)
    assert lines[4:7] == [
        f"smoke: ok auth: a client without the password is refused on Sentinel 127.0.0.1:{port}"
        for port in topology.sentinel_ports
    ]
    for index in (1, 2):
        assert f"smoke: ok auth: a client without the password is refused on {topology.addr(index)}" in lines
    assert "smoke: ok auth: a client without the password is refused" in lines, "smoke.sh, on the primary"
    assert lines[-1] == _passed(topology)
    assert PASSWORD not in result.stdout and SENTINEL_PASSWORD not in result.stdout


def test_sentinel_fails_at_once_on_a_wrong_sentinel_password(sentinel_authed: SentinelSetup) -> None:
    result = sentinel_authed.run(SENTINEL_AUTH="not-the-password")
    first = f"127.0.0.1:{sentinel_authed.topology.sentinel_ports[0]}"
    assert verdict(result) == (
        f"smoke: FAIL sentinels: {first} refused the client: AUTH failed: WRONGPASS invalid username-password "
        "pair or user is disabled. NOAUTH Authentication required.; check that SENTINEL_AUTH comes from the "
        "same Secret key as the Sentinels' password"
    )
    assert "not-the-password" not in result.stdout


def test_sentinel_fails_at_once_on_a_wrong_valkey_password(sentinel_authed: SentinelSetup) -> None:
    result = sentinel_authed.run(REDISCLI_AUTH="not-the-password")
    assert verdict(result) == (
        f"smoke: FAIL ping: {sentinel_authed.topology.addr(0)} refused the client: AUTH failed: WRONGPASS invalid "
        "username-password pair or user is disabled. NOAUTH Authentication required.; check that REDISCLI_AUTH "
        "comes from the same Secret key as the Valkey's password"
    )
