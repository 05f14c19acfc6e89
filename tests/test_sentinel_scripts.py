"""The Sentinel topology's scripts, run for real: valkey-role.sh, sentinel-start.sh and
replica-probe.sh, as the rendered ``<name>-sentinel`` ConfigMap ships them, against real
valkey-server 8.1 processes and real Sentinels (``valkey-server --sentinel``) on 127.0.0.1.

Each node is a Valkey and a Sentinel on ports of their own, on one data directory (the pod's
claim: the AOF, and the Sentinel's state in ``sentinel/``), started with the rendered
``sentinel.conf`` template, the env and the valkey-server arguments the manifest gives, except the
host-specific parts: every host is 127.0.0.1, the ports are free ones, and the template's
``down-after-milliseconds`` is 3 s (SentinelOptions allows 4 s at least) so that a failover takes
about 4.5 s. Host names and network namespaces are the drills' business
(the netns pod runner); the role logic only needs Sentinels that answer.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import valkey

from cdk8s_valkey import SecretKeyRef, ValkeyStatefulSet
from cdk8s_valkey.sentinel import Sentinel, SentinelOptions
from harness.paths import REPO, free_port, require_binary
from harness.secrets import CmdlineScanner, leaks, needles, new_password
from harness.servers import client, write_config
from harness.synth import find, new_chart, objects

pytestmark = pytest.mark.real

MASTER = "valkey"
# Below the 4 s SentinelOptions allows, to keep the failover short; at 1 s a loaded machine saw a
# second failover right after the first (the new primary missed the Sentinels' 1 s deadline).
DOWN_AFTER_MS = 3000
SCRIPTS = (
    "valkey-role.sh",
    "sentinel-start.sh",
    "sentinel-lib.sh",
    "replica-probe.sh",
    "handover.sh",
    "sentinel-persist.sh",
)


@dataclass
class Rendered:
    """The rendered ConfigMap's files and the sentinel container's env."""

    files: dict[str, str]
    env: dict[str, str]
    args: list[str]  # what the valkey container adds to valkey-server's command line


def render(auth: bool = False) -> Rendered:
    chart = new_chart()
    secret = SecretKeyRef(name="valkey-auth", key="password") if auth else None
    valkey_sts = ValkeyStatefulSet(chart, "valkey", auth_secret=secret)
    Sentinel(chart, "sentinel", valkey=valkey_sts, options=SentinelOptions())
    objs = objects(chart)
    files = dict(find(objs, "ConfigMap", "valkey-sentinel")["data"])
    if auth:
        # The Valkey's scripts too (requirepass.sh, auth-lib.sh, entrypoint.sh), as /scripts.
        files.update(find(objs, "ConfigMap", "valkey-scripts")["data"])
    pod = find(objs, "StatefulSet")["spec"]["template"]["spec"]
    (sentinel,) = [c for c in pod["containers"] if c["name"] == "sentinel"]
    (server,) = [c for c in pod["containers"] if c["name"] == "valkey"]
    env = {var["name"]: var["value"] for var in sentinel["env"] if "value" in var}
    return Rendered(files, env, list(server["args"]))


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return render()


@pytest.fixture(scope="module")
def scripts_dir(rendered: Rendered, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ConfigMap's files on disk, the template made loopback-only (bind, dir per node)."""
    directory = tmp_path_factory.mktemp("sentinel-configmap")
    for name, text in rendered.files.items():
        (directory / name).write_text(text)
    return directory


class Node:
    """One pod: a Valkey started through valkey-role.sh and a Sentinel through sentinel-start.sh."""

    def __init__(self, cluster: Cluster, index: int) -> None:
        self.cluster = cluster
        self.index = index
        self.port = free_port()
        self.sentinel_port = free_port()
        self.data = cluster.root / f"node{index}"
        self.data.mkdir()
        self.run_config.parent.mkdir()
        self.valkey: subprocess.Popen[bytes] | None = None
        self.sentinel: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def run_config(self) -> Path:
        """With AUTH: Sentinel's own file, on the pod's memory volume (``sentinel-run``)."""
        return self.data.parent / f"run{self.index}" / "sentinel.conf"

    @property
    def state_file(self) -> Path:
        return self.data / "sentinel" / "sentinel.conf"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **self.cluster.env,
            "VALKEY_ANNOUNCE_PORT": str(self.port),
            "VALKEY_SENTINEL_STATE": str(self.state_file),
            "VALKEY_DATA_DIR": str(self.data),
            **extra,
        }

    def template(self) -> Path:
        """The rendered template, with this node's Sentinel directory and loopback only."""
        text = (self.cluster.scripts / "sentinel.conf").read_text()
        text = text.replace("dir /data/sentinel", f"dir {self.data / 'sentinel'}")
        text = text.replace("bind * -::*", "bind 127.0.0.1")
        text = re.sub(r"(?m)^(sentinel down-after-milliseconds \S+) \d+$", rf"\1 {DOWN_AFTER_MS}", text)
        path = self.data.parent / f"template{self.index}.conf"
        path.write_text(text)
        return path

    def start_sentinel(self, **extra: str) -> None:
        env = self.env(
            VALKEY_SENTINEL_TEMPLATE=str(self.template()),
            VALKEY_SENTINEL_PORT=str(self.sentinel_port),
            VALKEY_SENTINEL_SEED_WAIT_SECONDS="1",
            # With AUTH, Sentinel's own file: the pod's memory volume (a directory of the node here).
            **({"VALKEY_SENTINEL_CONFIG": str(self.run_config)} if self.cluster.password else {}),
            **extra,
        )
        with (self.data.parent / f"sentinel{self.index}.log").open("ab") as log:
            self.sentinel = subprocess.Popen(
                ["sh", str(self.cluster.scripts / "sentinel-start.sh")],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        _wait(
            lambda: _ping(self.sentinel_port, self.cluster.password),
            f"Sentinel {self.index} answers",
            proc=self.sentinel,
        )

    def start_valkey(self, *, wait_ready: bool = True, **extra: str) -> None:
        config = write_config(self.data.parent / f"valkey{self.index}.conf", port=self.port, data_dir=self.data)
        self.starts += 1
        log_path = self.log_path
        with log_path.open("wb") as log:
            self.valkey = subprocess.Popen(
                [
                    "sh",
                    str(self.cluster.scripts / "valkey-role.sh"),
                    *(
                        ["sh", str(self.cluster.scripts / "requirepass.sh")]
                        if self.cluster.password
                        else ["valkey-server"]
                    ),
                    *([] if self.cluster.password else [str(config)]),
                    *self.cluster.args,
                ],
                env=self.env(**self.cluster.valkey_env(config), **extra),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if wait_ready:
            _wait(lambda: _ping(self.port, self.cluster.password), f"Valkey {self.index} answers", proc=self.valkey)

    @property
    def log_path(self) -> Path:
        return self.data.parent / f"valkey{self.index}.{self.starts}.log"

    def role_line(self) -> str:
        """The one line valkey-role.sh logged on the last start."""
        (line,) = [ln for ln in self.log_path.read_text().splitlines() if ln.startswith("valkey-role:")]
        return line

    def info(self) -> dict[str, str]:
        with self.cluster.client(self.port) as conn:
            return {k: str(v) for k, v in conn.info("replication").items()}

    def kill(self, which: str = "valkey") -> None:
        proc = self.valkey if which == "valkey" else self.sentinel
        assert proc is not None
        proc.kill()
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in (self.valkey, self.sentinel):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


class Cluster:
    def __init__(
        self,
        root: Path,
        scripts: Path,
        rendered: Rendered,
        bin_env: Mapping[str, str],
        size: int,
        password: str | None = None,
    ) -> None:
        self.root = root
        self.password = password
        self.scripts = scripts
        self.nodes = [Node(self, i) for i in range(size)]
        sentinels = " ".join(f"127.0.0.1:{node.sentinel_port}" for node in self.nodes)
        self.env = {
            "PATH": bin_env["PATH"],
            **{k: v for k, v in rendered.env.items() if k not in ("VALKEY_PORT", "VALKEY_SENTINEL_TEMPLATE")},
            "VALKEY_SENTINELS": sentinels,
            "VALKEY_BOOTSTRAP_PRIMARY": self.nodes[0].addr,
            "VALKEY_ANNOUNCE_HOST": "127.0.0.1",
            "VALKEY_SENTINEL_TIMEOUT": "1",
            "VALKEY_SENTINEL_WAIT_SECONDS": "10",
        }
        if password is not None:
            # The kubelet's part: both containers get the password from the Secret.
            self.env.update(
                VALKEY_PASSWORD=password, REDISCLI_AUTH=password, VALKEY_AUTH_LIB=str(scripts / "auth-lib.sh")
            )
        self.args = rendered.args

    def client(self, port: int, socket_timeout: float = 5.0) -> valkey.Valkey:
        return valkey.Valkey(
            host="127.0.0.1",
            port=port,
            password=self.password,
            decode_responses=True,
            socket_connect_timeout=1.0,
            socket_timeout=socket_timeout,
        )

    def valkey_env(self, config: Path) -> dict[str, str]:
        """With AUTH the node starts as the pod does: requirepass.sh, then entrypoint.sh (maxmemory
        from its fallback: no cgroup limit here)."""
        if self.password is None:
            return {}
        return {
            "VALKEY_CONFIG_FILE": str(config),
            "VALKEY_MAXMEMORY_PERCENT": "80",
            "VALKEY_MAXMEMORY_FALLBACK_BYTES": str(256 << 20),
            "VALKEY_CGROUP_V2_FILE": str(self.root / "no-cgroup"),
            "VALKEY_CGROUP_V1_FILE": str(self.root / "no-cgroup"),
        }

    def start(self, order: list[int] | None = None) -> None:
        for index in order or range(len(self.nodes)):
            self.nodes[index].start_sentinel()
        for index in order or range(len(self.nodes)):
            self.nodes[index].start_valkey()

    def master(self, via: int = 0) -> str:
        port = self.nodes[via].sentinel_port
        with self.client(port, socket_timeout=2) as conn:
            host, master_port = conn.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
        return f"{host}:{master_port}"

    def node(self, addr: str) -> Node:
        (hit,) = [n for n in self.nodes if n.addr == addr]
        return hit

    def wait_synced(self) -> None:
        """Every replica linked and synced, and the primary sees them all."""

        def synced() -> bool:
            roles = [n.info() for n in self.nodes]
            primaries = [r for r in roles if r["role"] == "master"]
            replicas = [r for r in roles if r["role"] == "slave"]
            return (
                len(primaries) == 1
                and int(primaries[0]["connected_slaves"]) == len(replicas)
                and all(r["master_link_status"] == "up" and r["master_sync_in_progress"] == "0" for r in replicas)
            )

        _wait(synced, "replicas in sync", timeout=30)

    def wait_sentinels_know_all(self) -> None:
        """Every Sentinel knows the replicas and the other Sentinels: before that, a failover finds
        no replica to promote (a fresh Sentinel learns them from the primary's INFO and the
        hello messages within a second or two)."""
        others = len(self.nodes) - 1

        def known() -> bool:
            for node in self.nodes:
                with self.client(node.sentinel_port) as conn:
                    master = conn.execute_command("SENTINEL", "MASTER", MASTER)
                    fields = dict(zip(master[::2], master[1::2], strict=True))
                    if (int(fields["num-slaves"]), int(fields["num-other-sentinels"])) != (others, others):
                        return False
            return True

        _wait(known, "Sentinels know every replica and Sentinel", timeout=30)

    def close(self) -> None:
        for node in self.nodes:
            for proc in (node.valkey, node.sentinel):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)


def _ping(port: int, password: str | None = None) -> bool:
    try:
        with valkey.Valkey(
            host="127.0.0.1", port=port, password=password, socket_connect_timeout=0.5, socket_timeout=1
        ) as conn:
            return bool(conn.ping())
    except (valkey.ConnectionError, valkey.TimeoutError, valkey.ResponseError):
        return False


def _wait(condition: object, what: str, *, timeout: float = 20, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Poll ``condition()`` every 50 ms until true; return the seconds it took."""
    assert callable(condition)
    start = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - start
        except (valkey.ConnectionError, valkey.TimeoutError, KeyError):
            pass
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}")
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def bin_env(valkey_env: dict[str, str]) -> dict[str, str]:
    return {"PATH": valkey_env["PATH"]}


@pytest.fixture
def cluster(tmp_path: Path, scripts_dir: Path, rendered: Rendered, bin_env: dict[str, str]) -> Iterator[Cluster]:
    made = Cluster(tmp_path, scripts_dir, rendered, bin_env, 3)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def auth_scripts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The AUTH rendering's files: the Sentinel ConfigMap's and the Valkey's scripts."""
    directory = tmp_path_factory.mktemp("sentinel-configmap-auth")
    for name, text in render(auth=True).files.items():
        (directory / name).write_text(text)
    return directory


@dataclass
class Secret:
    password: str
    token: str
    scanner: CmdlineScanner

    @property
    def patterns(self) -> list[bytes]:
        return needles(self.password, self.token)


@pytest.fixture
def secret() -> Iterator[Secret]:
    """A password every character class of which needs quoting, and a scan of every command line
    on the machine, round after round, while the test runs."""
    password, token = new_password()
    scanner = CmdlineScanner(needles(password, token))
    scanner.start()
    try:
        yield Secret(password, token, scanner)
    finally:
        scanner.halt()


@pytest.fixture
def auth_cluster(tmp_path: Path, auth_scripts_dir: Path, bin_env: dict[str, str], secret: Secret) -> Iterator[Cluster]:
    """Three pods as rendered with auth_secret: the kubelet's part (the Secret into both
    containers' env) is the Cluster's."""
    made = Cluster(tmp_path, auth_scripts_dir, render(auth=True), bin_env, 3, password=secret.password)
    try:
        yield made
    finally:
        made.close()


def run_role(node: Node, scripts: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """valkey-role.sh with `echo` as the command: prints the arguments it would exec with."""
    return subprocess.run(
        ["sh", str(scripts / "valkey-role.sh"), "echo", "exec"],
        env=node.env(**extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- static ---------------------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS)
def test_shellcheck_clean(script: str, scripts_dir: Path) -> None:
    shellcheck = require_binary("shellcheck")
    result = subprocess.run(
        [shellcheck, "-x", "-s", "sh", script],
        cwd=scripts_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_configmap_ships_the_package_scripts(rendered: Rendered) -> None:
    from cdk8s_valkey import _scripts

    for name in SCRIPTS:
        assert rendered.files[name] == _scripts.script(name)


# -- the environment ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        (
            "VALKEY_SENTINELS",
            "127.0.0.1",
            "valkey-role: invalid VALKEY_SENTINELS='127.0.0.1': allowed is host:port, "
            "e.g. valkey-0.valkey-headless.apps.svc:6379\n",
        ),
        (
            "VALKEY_MASTER_NAME",
            "a b",
            "valkey-role: invalid VALKEY_MASTER_NAME='a b': allowed is letters, digits, '.', '_' and '-'\n",
        ),
        (
            "VALKEY_SENTINEL_WAIT_SECONDS",
            "5s",
            "valkey-role: invalid VALKEY_SENTINEL_WAIT_SECONDS='5s': allowed is whole seconds\n",
        ),
        (
            "VALKEY_SENTINEL_TIMEOUT",
            "0",
            "valkey-role: invalid VALKEY_SENTINEL_TIMEOUT='0': allowed is seconds, e.g. 1 or 0.5\n",
        ),
    ],
)
def test_invalid_env_exits_64(cluster: Cluster, scripts_dir: Path, var: str, value: str, message: str) -> None:
    result = run_role(cluster.nodes[0], scripts_dir, **{var: value})
    assert (result.returncode, result.stdout, result.stderr) == (64, "", message)


def test_announce_host_from_pod_name(cluster: Cluster, scripts_dir: Path) -> None:
    """In the pod, VALKEY_ANNOUNCE_HOST is not set: POD_NAME (downward API) + VALKEY_POD_DOMAIN."""
    node = cluster.nodes[1]
    env = {k: v for k, v in node.env(VALKEY_SENTINEL_WAIT_SECONDS="0").items() if k != "VALKEY_ANNOUNCE_HOST"}
    env.update(POD_NAME="valkey-1")
    result = subprocess.run(
        ["sh", str(scripts_dir / "valkey-role.sh"), "echo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"--replica-announce-ip valkey-1.valkey-headless.apps.svc --replica-announce-port {node.port} "
        f"--replicaof 127.0.0.1 {cluster.nodes[0].port}\n"
    )


# -- no Sentinel answers: the bootstrap rule ---------------------------------------------------


def test_first_start_without_sentinels_follows_the_bootstrap_rule(cluster: Cluster, scripts_dir: Path) -> None:
    first, other = cluster.nodes[0], cluster.nodes[2]
    started = time.monotonic()
    result = run_role(first, scripts_dir, VALKEY_SENTINEL_WAIT_SECONDS="1")
    assert result.stdout == f"exec --replica-announce-ip 127.0.0.1 --replica-announce-port {first.port}\n"
    assert result.stderr == (
        "valkey-role: primary (no Sentinel answered in 1s and no Sentinel state: the bootstrap primary)\n"
    )
    assert time.monotonic() - started < 5
    result = run_role(other, scripts_dir, VALKEY_SENTINEL_WAIT_SECONDS="0")
    assert result.stdout == (
        f"exec --replica-announce-ip 127.0.0.1 --replica-announce-port {other.port} "
        f"--replicaof 127.0.0.1 {first.port}\n"
    )
    assert result.stderr == (
        f"valkey-role: replica of {first.addr} (no Sentinel answered in 0s and no Sentinel state: bootstrap)\n"
    )


def test_without_sentinels_the_own_state_decides(cluster: Cluster, scripts_dir: Path) -> None:
    """The state file a Sentinel left on the claim names the last primary: node 0 follows it
    instead of the bootstrap rule, and node 2, which that state names, starts as the primary."""
    last = cluster.nodes[2]
    for node in (cluster.nodes[0], last):
        node.state_file.parent.mkdir()
        node.state_file.write_text(
            f"port 1\nsentinel monitor {MASTER} 127.0.0.1 {last.port} 2\nsentinel config-epoch {MASTER} 4\n"
        )
    (last.data / "appendonlydir").mkdir()
    result = run_role(cluster.nodes[0], scripts_dir, VALKEY_SENTINEL_WAIT_SECONDS="0")
    assert result.stdout.endswith(f" --replicaof 127.0.0.1 {last.port}\n")
    assert result.stderr == (
        f"valkey-role: replica of {last.addr} (no Sentinel answered in 0s; this pod's Sentinel state "
        f"{cluster.nodes[0].state_file}, config-epoch 4)\n"
    )
    result = run_role(last, scripts_dir, VALKEY_SENTINEL_WAIT_SECONDS="0")
    assert "--replicaof" not in result.stdout
    assert result.stderr.startswith("valkey-role: primary (no Sentinel answered in 0s; this pod's Sentinel state")


# -- Sentinels answer ------------------------------------------------------------------------


def _lone_sentinel(node: Node, monitor: Node, epoch: int) -> None:
    """A Sentinel on ``node`` whose state says ``monitor`` is the primary at ``epoch``. Nothing
    listens on ``monitor``'s port, so it hears no other Sentinel and keeps saying so."""
    node.state_file.parent.mkdir(exist_ok=True)
    node.state_file.write_text(
        f"sentinel monitor {MASTER} 127.0.0.1 {monitor.port} 2\nsentinel config-epoch {MASTER} {epoch}\n"
    )
    node.start_sentinel()


def test_highest_epoch_wins_over_stale_state(cluster: Cluster, scripts_dir: Path) -> None:
    """Two Sentinels disagree: the stale one names node 0 (epoch 1), the other node 1 (epoch 3).
    Node 0 must not start as a primary: it joins node 1."""
    n0, n1, n2 = cluster.nodes
    _lone_sentinel(n0, n0, 1)
    _lone_sentinel(n2, n1, 3)
    result = run_role(n0, scripts_dir)
    assert result.stdout.endswith(f" --replicaof 127.0.0.1 {n1.port}\n")
    assert result.stderr == f"valkey-role: replica of {n1.addr} (1 of 3 Sentinels, config-epoch 3)\n"


def test_epoch_zero_naming_this_node_waits_for_the_other_sentinels(cluster: Cluster, scripts_dir: Path) -> None:
    """Epoch 0 naming this node is only the bootstrap seed: with one Sentinel of three up, the
    node waits for the others until VALKEY_SENTINEL_WAIT_SECONDS, then starts as the primary."""
    n0 = cluster.nodes[0]
    _lone_sentinel(n0, n0, 0)
    started = time.monotonic()
    result = run_role(n0, scripts_dir, VALKEY_SENTINEL_WAIT_SECONDS="2")
    waited = time.monotonic() - started
    assert "--replicaof" not in result.stdout
    assert result.stderr == (
        "valkey-role: primary (only 1 of 3 Sentinels answered in 2s, config-epoch 0 (bootstrap))\n"
    )
    assert 2 <= waited < 5


def test_empty_volume_named_primary_refuses_to_start(cluster: Cluster, scripts_dir: Path) -> None:
    """The Sentinels name this node (after a failover: epoch 2) but its data directory holds no
    AOF: a new, empty claim. Starting would hand an empty dataset to the replicas."""
    n0, n1 = cluster.nodes[0], cluster.nodes[1]
    _lone_sentinel(n1, n0, 2)
    result = run_role(n0, scripts_dir)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "valkey-role: refusing to start as the primary (1 of 3 Sentinels, config-epoch 2): "
        f"{n0.data} holds no AOF, but the Sentinels know 0 replica(s) at config-epoch 2, which would copy "
        "this empty dataset. The Sentinels fail over to a replica once this node has been down for "
        "down-after-milliseconds; the next start then joins the new primary as a replica\n"
    )


def test_a_frozen_sentinel_costs_one_timeout(cluster: Cluster, scripts_dir: Path) -> None:
    """A SIGSTOPped Sentinel accepts connections and never answers: each question to it is cut
    after VALKEY_SENTINEL_TIMEOUT, and the others decide."""
    n0, n1, n2 = cluster.nodes
    _lone_sentinel(n1, n2, 5)
    _lone_sentinel(n2, n2, 5)
    assert n1.sentinel is not None
    n1.sentinel.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = run_role(n0, scripts_dir)
        took = time.monotonic() - started
    finally:
        n1.sentinel.send_signal(signal.SIGCONT)
    assert result.stderr == f"valkey-role: replica of {n2.addr} (1 of 3 Sentinels, config-epoch 5)\n"
    assert took < 3


# -- sentinel-start.sh -------------------------------------------------------------------------


def _sentinel_master(node: Node) -> dict[str, str]:
    with valkey.Valkey(host="127.0.0.1", port=node.sentinel_port, decode_responses=True) as conn:
        reply = conn.execute_command("SENTINEL", "MASTER", MASTER)
    return dict(zip(reply[::2], reply[1::2], strict=True))


def _first_line(path: Path) -> str:
    return path.read_text().splitlines()[0]


def test_sentinel_start_keeps_the_state_and_takes_the_settings_from_the_template(cluster: Cluster) -> None:
    """A restart keeps what the Sentinel learnt (the primary, the epochs, its id, the replicas it
    knew) and applies the manifest's settings (down-after from the template, not the old 30 s)."""
    n0, n1, n2 = cluster.nodes
    myid = "0123456789abcdef0123456789abcdef01234567"
    n0.state_file.parent.mkdir()
    n0.state_file.write_text(
        "port 1\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {n2.port} 2\n"
        f"sentinel down-after-milliseconds {MASTER} 30000\n"
        f"sentinel config-epoch {MASTER} 7\n"
        "sentinel current-epoch 7\n"
        f"sentinel myid {myid}\n"
        f"sentinel known-replica {MASTER} 127.0.0.1 {n1.port}\n"
        "sentinel known-replica another 127.0.0.1 1\n"
    )
    n0.start_sentinel()
    assert _first_line(n0.data.parent / "sentinel0.log") == (
        f"sentinel-start: monitoring {MASTER} at 127.0.0.1:{n2.port}, quorum 2 "
        f"(kept from {n0.state_file} (config-epoch 7))"
    )
    master = _sentinel_master(n0)
    assert (master["ip"], master["port"], master["config-epoch"]) == ("127.0.0.1", str(n2.port), "7")
    assert (master["down-after-milliseconds"], master["quorum"], master["num-slaves"]) == (str(DOWN_AFTER_MS), "2", "1")
    with valkey.Valkey(host="127.0.0.1", port=n0.sentinel_port, decode_responses=True) as conn:
        assert conn.execute_command("SENTINEL", "MYID") == myid
    state = n0.state_file.read_text()
    assert "known-replica another" not in state
    assert f"sentinel announce-ip 127.0.0.1\nsentinel announce-port {n0.sentinel_port}\n" in state


def test_sentinel_first_start_asks_the_other_sentinels(cluster: Cluster) -> None:
    """Without a state (new claim), a Sentinel monitors the primary the others name, at their
    epoch, not the bootstrap one."""
    n0, n1, n2 = cluster.nodes
    _lone_sentinel(n1, n2, 4)
    n0.start_sentinel()
    assert _first_line(n0.data.parent / "sentinel0.log") == (
        f"sentinel-start: monitoring {MASTER} at 127.0.0.1:{n2.port}, quorum 2 "
        "(first start: 1 of 3 Sentinels name it (config-epoch 4))"
    )
    master = _sentinel_master(n0)
    assert (master["port"], master["config-epoch"]) == (str(n2.port), "4")


# -- a cluster: start, failover, restarts ----------------------------------------------------


def test_cluster_lifecycle(cluster: Cluster, scripts_dir: Path) -> None:
    """First start, failover on SIGKILL, the old primary's restart, then every pod stopped and
    started again in another order: one primary, never a stale one, the data kept."""
    n0, n1, n2 = cluster.nodes
    cluster.start()
    assert n0.role_line() == "valkey-role: primary (3 of 3 Sentinels, config-epoch 0)"
    for node in (n1, n2):
        assert node.role_line() == f"valkey-role: replica of {n0.addr} (3 of 3 Sentinels, config-epoch 0)"
    cluster.wait_synced()
    cluster.wait_sentinels_know_all()
    with client(n0.port) as conn:
        assert conn.set("before-failover", "1")
        assert conn.wait(2, 2000) == 2

    # SIGKILL the primary: the Sentinels promote a replica.
    n0.kill()
    killed = time.monotonic()
    _wait(lambda: cluster.master(via=1) != n0.addr, "failover", timeout=30)
    failover_seconds = time.monotonic() - killed
    new_primary = cluster.node(cluster.master(via=1))
    _wait(lambda: new_primary.info()["role"] == "master", "new primary promoted")
    # down-after + the Sentinels' election and promotion (design.md: about D + 1.3 s).
    assert failover_seconds < DOWN_AFTER_MS / 1000 + 5, failover_seconds

    # The old primary restarts: it asks the Sentinels and comes back as a replica, never as a primary.
    n0.start_valkey()
    line = n0.role_line()
    assert line.startswith(f"valkey-role: replica of {new_primary.addr} ("), line
    assert n0.info()["role"] == "slave"
    cluster.wait_synced()
    with client(new_primary.port) as conn:
        assert conn.set("after-failover", "1")
        assert conn.wait(2, 2000) == 2

    # Stop every pod, then start them in another order: the former primary (n0) first.
    _wait(lambda: all(cluster.master(via=i) == new_primary.addr for i in range(3)), "Sentinels agree")
    for node in cluster.nodes:
        node.stop()
    order = [0, *(n.index for n in cluster.nodes if n is not new_primary and n is not n0), new_primary.index]
    for index in order:
        cluster.nodes[index].start_sentinel()
        cluster.nodes[index].start_valkey()
    for node in cluster.nodes:
        expected = "primary" if node is new_primary else f"replica of {new_primary.addr}"
        assert node.role_line().startswith(f"valkey-role: {expected} ("), node.role_line()
    cluster.wait_synced()
    for node in cluster.nodes:
        with client(node.port) as conn:
            assert conn.mget("before-failover", "after-failover") == ["1", "1"], node.index


# -- AUTH: the same topology with auth_secret -----------------------------------------------------


def _refused(port: int) -> str:
    """The error a client without the password gets."""
    with (
        valkey.Valkey(host="127.0.0.1", port=port, socket_timeout=2) as conn,
        pytest.raises(valkey.AuthenticationError) as error,
    ):
        conn.ping()
    return str(error.value)


def _probe(scripts: Path, port: int, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(scripts / "probe.sh"), *args],
        env={**env, "VALKEY_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_auth_cluster_lifecycle(auth_cluster: Cluster, auth_scripts_dir: Path, secret: Secret) -> None:
    """With auth_secret: every Valkey and Sentinel requires the password, replicas authenticate to
    the primary (masterauth), the Sentinels to the nodes (auth-pass) and to each other
    (sentinel-pass), the scripts ask the Sentinels with REDISCLI_AUTH, the probes pass with it and
    fail without. Sentinel's own file, which holds the password, is mode 0600 on the memory
    volume; the state on the claim has none of it and follows a failover. Then no trace of the
    password anywhere else (assert_no_trace)."""
    cluster = auth_cluster
    n0, n1, n2 = cluster.nodes
    cluster.start()
    assert n0.role_line() == "valkey-role: primary (3 of 3 Sentinels, config-epoch 0)"
    cluster.wait_synced()
    cluster.wait_sentinels_know_all()
    for node in cluster.nodes:
        assert _refused(node.port) == "Authentication required."
        assert _refused(node.sentinel_port) == "Authentication required."
        assert node.run_config.stat().st_mode & 0o777 == 0o600
        state = node.state_file.read_text()
        assert f"sentinel monitor {MASTER} 127.0.0.1 {n0.port} 2" in state
        assert "requirepass" not in state and "auth-pass" not in state and "user " not in state
    # The probes: the container's env has REDISCLI_AUTH; without it they fail with the reason.
    with_auth = {"PATH": cluster.env["PATH"], "REDISCLI_AUTH": secret.password}
    without = {"PATH": cluster.env["PATH"]}
    for port in (n1.port, n1.sentinel_port):
        assert _probe(auth_scripts_dir, port, with_auth, "ready").returncode == 0
        failed = _probe(auth_scripts_dir, port, without, "ready")
        assert (failed.returncode, failed.stdout) == (
            1,
            "probe ready failed (valkey-cli exit 0): NOAUTH Authentication required.\n",
        ), failed
    replica = subprocess.run(
        ["sh", str(auth_scripts_dir / "replica-probe.sh"), "sh", str(auth_scripts_dir / "probe.sh"), "ready"],
        env={**with_auth, "VALKEY_PORT": str(n1.port)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert replica.returncode == 0, replica.stdout
    with cluster.client(n0.port) as conn:
        assert conn.set("before-failover", "1")
        assert conn.wait(2, 2000) == 2

    # A Sentinel container restarts within the pod: it starts from its own file in memory.
    ids = [line for line in n2.run_config.read_text().splitlines() if line.startswith("sentinel myid ")]
    n2.kill("sentinel")
    n2.start_sentinel()
    assert [line for line in n2.run_config.read_text().splitlines() if line.startswith("sentinel myid ")] == ids
    assert len(ids) == 1

    # SIGKILL the primary: the Sentinels (authenticated) promote a replica, the other resyncs.
    n0.kill()
    _wait(lambda: cluster.master(via=1) != n0.addr, "failover", timeout=30)
    new_primary = cluster.node(cluster.master(via=1))
    _wait(lambda: new_primary.info()["role"] == "master", "new primary promoted")
    # The state on the claim follows (sentinel-persist.sh, once a second).
    _wait(
        lambda: all(f"monitor {MASTER} 127.0.0.1 {new_primary.port} " in n.state_file.read_text() for n in (n1, n2)),
        "the claim's state names the new primary",
    )
    n0.start_valkey()
    assert n0.role_line().startswith(f"valkey-role: replica of {new_primary.addr} ("), n0.role_line()
    cluster.wait_synced()
    with cluster.client(new_primary.port) as conn:
        assert conn.get("before-failover") == "1"
        assert conn.set("after-failover", "1")
        assert conn.wait(2, 2000) == 2
    assert_no_trace(cluster, secret)


def _pids_of(script: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if script.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def assert_no_trace(cluster: Cluster, secret: Secret) -> None:
    """The password is in no command line (scanned all along), in the environment of no
    valkey-server, Sentinel or state-copy loop, in no log, and in no file of the claims: only in
    Sentinel's own file on the memory volume, mode 0600."""
    secret.scanner.scan_once()
    assert secret.scanner.hits == [], f"password in a command line: {secret.scanner.hits}"
    assert secret.scanner.rounds > 10
    servers = [p.pid for n in cluster.nodes for p in (n.valkey, n.sentinel) if p is not None and p.poll() is None]
    loops = _pids_of("sentinel-persist.sh")
    assert len(loops) >= len([n for n in cluster.nodes if n.sentinel and n.sentinel.poll() is None])
    for pid in [*servers, *loops]:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert not leaks(environ, secret.patterns), f"password in the environment of {pid}"
        assert b"VALKEY_PASSWORD=" not in environ and b"REDISCLI_AUTH=" not in environ, pid
    for pid in servers:
        assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"valkey-server"), pid
    logs = list(cluster.root.glob("*.log"))
    assert logs
    for log in logs:
        assert not leaks(log.read_bytes(), secret.patterns), f"password in {log}"
    claim_files = [p for n in cluster.nodes for p in n.data.rglob("*") if p.is_file()]
    assert any(p.name == "sentinel.conf" for p in claim_files)
    assert any(".aof" in p.name for p in claim_files)
    for path in claim_files:
        assert not leaks(path.read_bytes(), secret.patterns), f"password in {path} (on the claim)"
    for node in cluster.nodes:
        assert node.run_config.stat().st_mode & 0o777 == 0o600
        assert leaks(node.run_config.read_bytes(), secret.patterns), "the memory volume's file holds it"


# -- handover.sh (the preStop hook) ------------------------------------------------------------


def run_handover(node: Node, scripts: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(scripts / "handover.sh")],
        env=node.env(VALKEY_PORT=str(node.port), VALKEY_SENTINEL_PORT=str(node.sentinel_port)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_handover_before_the_primary_stops(cluster: Cluster, scripts_dir: Path) -> None:
    """The preStop hook on the primary: writes paused, a replica caught up and promoted, then the
    old primary stops. No write is acknowledged by it after the pause; the new primary has every
    key and takes writes within a couple of seconds, whatever down-after is."""
    handover_drill(cluster, scripts_dir)


def test_handover_with_auth(auth_cluster: Cluster, auth_scripts_dir: Path, secret: Secret) -> None:
    """The same with AUTH: the hook asks the local Valkey and the Sentinels with REDISCLI_AUTH (the
    container's env), the replica resyncs with masterauth."""
    handover_drill(auth_cluster, auth_scripts_dir)
    assert_no_trace(auth_cluster, secret)


def handover_drill(cluster: Cluster, scripts_dir: Path) -> None:
    n0, n1, n2 = cluster.nodes
    cluster.start()
    cluster.wait_synced()
    cluster.wait_sentinels_know_all()
    assert run_handover(n1, scripts_dir).stderr == "handover: not the primary: nothing to hand over\n"
    with cluster.client(n0.port) as conn:
        for i in range(1000):
            conn.set(f"k{i}", i)

    started = time.monotonic()
    result = run_handover(n0, scripts_dir)
    took = time.monotonic() - started
    assert result.returncode == 0
    line = result.stderr.strip()
    assert re.fullmatch(
        r"handover: handed over to 127\.0\.0\.1:\d+ \(failover by the Sentinel at 127\.0\.0\.1:\d+, in \d+ ms\)", line
    ), line
    new_primary = cluster.node(cluster.master(via=1))
    assert new_primary in (n1, n2)
    # The old primary acknowledges no write any more: paused (the write blocks), refused once its
    # replicas have left (NOREPLICAS: Valkey checks that before the pause), or a replica (READONLY).
    with (
        cluster.client(n0.port, socket_timeout=0.5) as conn,
        pytest.raises((valkey.TimeoutError, valkey.ResponseError), match=r"Timeout|NOREPLICAS|READONLY"),
    ):
        conn.set("late", 1)
    n0.kill()

    def writable() -> bool:
        with cluster.client(new_primary.port) as conn:
            return bool(conn.set("after-handover", 1))

    outage = took + _wait_ok(writable)
    with cluster.client(new_primary.port) as conn:
        assert conn.dbsize() >= 1000 and conn.get("k999") == "999"
    print(f"handover: hook {took:.2f}s, writes accepted again {outage:.2f}s after it started")
    # Measured 1.2-2.2 s here; a failover after a plain stop takes the rendered down-after (5 s) + 1.3 s.
    assert outage < 4, outage
    n0.start_valkey()
    assert n0.role_line().startswith(f"valkey-role: replica of {new_primary.addr} ("), n0.role_line()


def _wait_ok(condition: Callable[[], bool], timeout: float = 20) -> float:
    """Seconds until ``condition()`` is true, counting errors such as NOREPLICAS as not yet."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if condition():
                return time.monotonic() - start
        except valkey.ValkeyError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s")


# -- replica-probe.sh -------------------------------------------------------------------------


PROBE = REPO / "constructs/cdk8s_valkey/scripts/probe.sh"


def replica_probe(scripts: Path, env: Mapping[str, str], port: int) -> subprocess.CompletedProcess[str]:
    """The rendered readiness command: replica-probe.sh wrapping probe.sh ready."""
    return subprocess.run(
        ["sh", str(scripts / "replica-probe.sh"), "sh", str(PROBE), "ready"],
        env={"PATH": env["PATH"], "VALKEY_PORT": str(port), "VALKEY_PROBE_CONNECT_TIMEOUT": "1"},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def test_replica_probe(tmp_path: Path, scripts_dir: Path, valkey_env: dict[str, str]) -> None:
    """Ready: the primary on PONG; a replica only with its link up and no sync in progress."""
    primary_port, replica_port = free_port(), free_port()
    usage = subprocess.run(
        ["sh", str(scripts_dir / "replica-probe.sh")], capture_output=True, text=True, timeout=10, check=False
    )
    assert (usage.returncode, usage.stderr) == (64, "usage: sh replica-probe.sh <probe command...>\n")
    down = replica_probe(scripts_dir, valkey_env, primary_port)
    assert (down.returncode, down.stdout) == (
        1,
        f"probe ready failed (valkey-cli exit 1): Could not connect to Valkey at 127.0.0.1:{primary_port}: "
        "Connection refused\n",
    )
    servers = []
    try:
        for port, extra in ((primary_port, []), (replica_port, [f"replicaof 127.0.0.1 {primary_port}"])):
            data = tmp_path / str(port)
            data.mkdir()
            config = write_config(tmp_path / f"{port}.conf", port=port, data_dir=data, extra=extra)
            servers.append(subprocess.Popen(["valkey-server", str(config)], env=valkey_env, stdout=subprocess.DEVNULL))
            _wait(lambda port=port: _ping(port), f"server on {port}")
        _wait(lambda: replica_probe(scripts_dir, valkey_env, replica_port).returncode == 0, "replica ready")
        for port in (primary_port, replica_port):
            result = replica_probe(scripts_dir, valkey_env, port)
            assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        servers[0].kill()
        servers[0].wait(timeout=10)
        _wait(lambda: replica_probe(scripts_dir, valkey_env, replica_port).returncode == 1, "replica not ready")
        result = replica_probe(scripts_dir, valkey_env, replica_port)
        assert result.stdout == (
            f"probe ready failed: replica of 127.0.0.1:{primary_port}, master_link_status:down, "
            "master_sync_in_progress:0\n"
        )
    finally:
        for proc in servers:
            proc.kill()
            proc.wait(timeout=10)
