"""Pods in their own network namespaces: the rendered StatefulSet's pods, each with every one of
its containers, on a private bridge, with host names resolving as pod DNS would.

Built on :class:`podrunner.PodRunner` (one runner per container; read its docstring for what a
container gets from the manifest). This module adds what a pod and a cluster network give.

- **Network** (:class:`PodNetwork`). One Linux bridge per network, created by the test with a
  session-unique name (``pn<6 hex>-br``), no address on it, so the host takes no part: pods reach
  each other and nothing else. Each pod sandbox (:class:`Sandbox`) is a network namespace
  (``ip netns add pn<hex>-<pod>``) joined to the bridge by a veth pair (``eth0`` inside, an
  address of ``10.244.0.0/24`` that is never handed out twice in a session) and has its own
  loopback: containers of one pod share ``localhost`` and the rendered ports, as in Kubernetes.
- **DNS.** ``ip netns exec`` bind-mounts ``/etc/netns/<ns>/hosts`` over ``/etc/hosts`` for the
  processes it starts. That file holds what pod DNS answers: for every existing pod of a
  StatefulSet ``<pod>.<svc>.<ns>.svc.cluster.local``, ``<pod>.<svc>.<ns>.svc``,
  ``<pod>.<svc>.<ns>`` and ``<pod>.<svc>`` (``svc`` the StatefulSet's ``serviceName``; the short
  forms are what the DNS search path resolves), the pod's own ``<pod>`` name in its own file, and
  each Service of the manifest under ``<svc>``, ``<svc>.<ns>``, ``<svc>.<ns>.svc`` and
  ``<svc>.<ns>.svc.cluster.local``, mapped to the IPs of the existing pods it selects (labels of
  the template plus ``statefulset.kubernetes.io/pod-name`` and ``apps.kubernetes.io/pod-index``).
  The files are rewritten in place (same inode, one write) whenever a pod gets or loses its IP,
  so running processes see the change on their next lookup. Unknown names fail at once
  (``resolv.conf`` points at the namespace's own loopback, where nothing answers DNS).
- **Pods** (:class:`NetPod`, :class:`NetStatefulSet`). Pods ``<sts>-0..N-1``. Starting a pod
  creates a fresh sandbox (a NEW IP, as a re-created pod gets), empties its ``emptyDir``
  volumes, runs the init containers one after the other (each must exit 0), then starts the
  containers. Claims (``persistentVolumeClaim`` volumes and ``volumeClaimTemplates``, as
  ``<template>-<sts>-<ordinal>``) are directories under ``<root>/claims`` kept across restarts.
  ``fieldRef`` env gives ``metadata.name``, ``metadata.namespace`` and ``status.podIP``.
  A container without a ``command`` runs the image entry point given in ``image_commands``
  (e.g. the exporter's image -> Debian's ``prometheus-redis-exporter``); without one it is
  skipped unless named in ``containers``.
- **Faults.** :meth:`NetPod.kill` (SIGKILL to the containers' process groups; the sandbox and its
  IP stay, as after a crash), :meth:`NetPod.freeze`/:meth:`NetPod.thaw` (SIGSTOP/SIGCONT),
  :meth:`NetPod.partition`/:meth:`NetPod.heal` (the bridge side of the veth down/up: no packet in
  or out, connections hang instead of being reset), :meth:`NetPod.stop` (SIGTERM, the grace
  period, then the sandbox is deleted), :meth:`NetPod.restart` (stop, then start with a new IP),
  :meth:`NetPod.restart_container` (one container again in the same sandbox, same IP).
- **Observers.** :meth:`Sandbox.entered` puts the calling thread into the namespace
  (``setns``), so a test talks to a pod through the pod's own loopback, like ``kubectl exec``:
  partitions do not cut the observer off. :meth:`Sandbox.valkey_client` builds a valkey-py client
  whose connections are made that way.
- **Cleanup.** Networks close in fixture finalizers and at interpreter exit; each live network
  is recorded in ``<tmp>/podnet-state/<tag>.json``, and a later :meth:`PodNetwork.create`
  removes what a killed session left behind (its processes, namespaces, veths, bridge, files).

What it does NOT reproduce: Service virtual IPs and load balancing (a Service name resolves to
every selected pod, in ordinal order), readiness gating of DNS records (records exist while the
pod exists, as with ``publishNotReadyAddresses: true``), the API server (labels a pod would
patch on itself, RBAC), kubelet restarts and probe scheduling, NetworkPolicies, a node's other
namespaces (mount, PID, UTS). Everything in :mod:`podrunner`'s list applies too. Needs root
and ``ip`` (iproute2).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import valkey

from harness.podrunner import PodRunner, PodRunnerError

CLUSTER_DOMAIN = "cluster.local"
NETNS_DIR = Path("/run/netns")
NETNS_ETC = Path("/etc/netns")
STATE_DIR = Path(tempfile.gettempdir()) / "podnet-state"
DEFAULT_SUBNET = "10.244.0.0/24"
_CLONE_NEWNET = 0x40000000
_IP_TIMEOUT = 15
_LIVE_NETWORKS: set[PodNetwork] = set()
_libc = ctypes.CDLL(None, use_errno=True)


class PodNetError(RuntimeError):
    """The network could not be created, changed or removed."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_IP_TIMEOUT, check=False)
    if check and result.returncode != 0:
        raise PodNetError(f"ip {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@contextlib.contextmanager
def entered_netns(path: Path) -> Iterator[None]:
    """The calling thread runs the block inside the network namespace at ``path``. Sockets made
    there stay in it after the block; other threads are not affected."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


class NetnsConnection(valkey.Connection):
    """A valkey-py connection whose socket is made inside a network namespace."""

    def __init__(self, *, netns_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.netns_path = netns_path

    def _connect(self) -> socket.socket:
        with entered_netns(Path(self.netns_path)):
            sock: socket.socket = super()._connect()  # type: ignore[no-untyped-call]
            return sock


def _write_in_place(path: Path, text: str) -> None:
    """Replace the file's content keeping its inode: bind mounts of it see the new content."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_netns_processes(netns: str, timeout: float = 10) -> None:
    """SIGKILL every process still in the namespace (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = _ip("netns", "pids", netns, check=False)
        pids = [int(p) for p in result.stdout.split()] if result.returncode == 0 else []
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # a stopped process would not die before SIGCONT
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    raise PodNetError(f"processes still in netns {netns} after {timeout}s of SIGKILL")


def _remove_netns(netns: str) -> None:
    if (NETNS_DIR / netns).exists():
        _kill_netns_processes(netns)
        _ip("netns", "del", netns, check=False)
    shutil.rmtree(NETNS_ETC / netns, ignore_errors=True)


def sweep_leftovers() -> list[str]:
    """Remove the networks of sessions that died without cleaning up; the tags removed."""
    removed: list[str] = []
    if not STATE_DIR.is_dir():
        return removed
    for state_file in STATE_DIR.glob("pn*.json"):
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if _pid_alive(int(state["pid"])):
            continue
        for netns in state.get("netns", []):
            _remove_netns(str(netns))
        _ip("link", "del", str(state["bridge"]), check=False)
        state_file.unlink(missing_ok=True)
        removed.append(str(state["tag"]))
    return removed


@atexit.register
def _close_leftovers() -> None:
    for network in list(_LIVE_NETWORKS):
        with contextlib.suppress(Exception):
            network.close()


class Sandbox:
    """A pod's network namespace: its IP, its veth on the bridge, its hosts file."""

    def __init__(self, network: PodNetwork, name: str, netns: str, ip: str, veth: str, own_names: list[str]) -> None:
        self.network = network
        self.name = name
        self.netns = netns
        self._ip = ip
        self.veth = veth
        self.own_names = own_names
        self.partitioned = False

    @property
    def ip(self) -> str:
        return self._ip

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.netns

    @property
    def hosts_file(self) -> Path:
        return NETNS_ETC / self.netns / "hosts"

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]

    def entered(self) -> contextlib.AbstractContextManager[None]:
        """This thread inside the namespace for the block (see :func:`entered_netns`)."""
        return entered_netns(self.path)

    def connect(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
        """A TCP connection made from inside the namespace (host is an IP: no name lookup here)."""
        with self.entered():
            return socket.create_connection((host, port), timeout=timeout)

    def valkey_client(self, port: int, host: str = "127.0.0.1", **options: Any) -> valkey.Valkey:
        """A valkey-py client to host:port as seen from inside the namespace (default the pod's
        own loopback, like ``kubectl exec``: partitions do not cut it off)."""
        settings: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 5}
        settings.update(options)
        pool = valkey.ConnectionPool(
            connection_class=NetnsConnection, netns_path=str(self.path), host=host, port=port, **settings
        )
        return valkey.Valkey(connection_pool=pool)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start argv inside the namespace (its /etc/hosts is the pod's)."""
        return subprocess.Popen([*self.exec_prefix(), *argv], **kwargs)

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run argv inside the namespace to completion (pass ``timeout``)."""
        return subprocess.run([*self.exec_prefix(), *argv], check=False, **kwargs)

    def resolve(self, name: str) -> list[str]:
        """The addresses a process in this pod gets for ``name`` (``getent ahostsv4``)."""
        result = self.run(["getent", "ahostsv4", name], capture_output=True, text=True, timeout=10)
        seen: list[str] = []
        for line in result.stdout.splitlines():
            address = line.split()[0]
            if address not in seen:
                seen.append(address)
        return seen

    def __repr__(self) -> str:
        return f"Sandbox({self.name!r}, ip={self.ip}, netns={self.netns})"


class PodNetwork:
    """A private bridge with one network namespace per pod sandbox. See the module docstring.

    Use as a context manager (or call :meth:`create` and :meth:`close`). Record sets published
    with :meth:`publish` (host name -> IPs) are merged into every sandbox's hosts file.
    """

    def __init__(self, *, subnet: str = DEFAULT_SUBNET, tag: str | None = None) -> None:
        self.tag = tag or f"pn{secrets.token_hex(3)}"
        if len(self.tag) > 8:
            raise ValueError(f"tag must be at most 8 characters (interface names), got {self.tag!r}")
        self.bridge = f"{self.tag}-br"
        self.subnet = ipaddress.ip_network(subnet)
        self._hosts = list(self.subnet.hosts())[1:]  # .1 stays free, like a gateway address
        self._next_host = 0
        self._veth_seq = 0
        self._sandboxes: dict[str, Sandbox] = {}
        self._records: dict[str, dict[str, list[str]]] = {}
        self._lock = threading.RLock()
        self.created = False

    # -- lifecycle -------------------------------------------------------------------------
    def create(self) -> PodNetwork:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise PodNetError("pod networks need root and ip (iproute2)")
        sweep_leftovers()
        if _ip("link", "show", self.bridge, check=False).returncode == 0:
            raise PodNetError(f"bridge {self.bridge} already exists: tag {self.tag} is taken")
        self.created = True
        _LIVE_NETWORKS.add(self)
        self._save_state()
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("link", "set", self.bridge, "up")
        return self

    def close(self) -> None:
        """Remove every sandbox (killing what runs in it), the bridge and the state file."""
        with self._lock:
            for sandbox in list(self._sandboxes.values()):
                self.remove_sandbox(sandbox)
            if self.created:
                _ip("link", "del", self.bridge, check=False)
                (STATE_DIR / f"{self.tag}.json").unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    NETNS_ETC.rmdir()  # only when empty: other sessions may use it
                self.created = False
            _LIVE_NETWORKS.discard(self)

    def __enter__(self) -> PodNetwork:
        return self.create()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _save_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        state = {
            "tag": self.tag,
            "pid": os.getpid(),
            "bridge": self.bridge,
            "netns": sorted(s.netns for s in self._sandboxes.values()),
        }
        (STATE_DIR / f"{self.tag}.json").write_text(json.dumps(state), encoding="utf-8")

    # -- sandboxes -------------------------------------------------------------------------
    @property
    def sandboxes(self) -> list[Sandbox]:
        return list(self._sandboxes.values())

    def _allocate_ip(self) -> str:
        in_use = {s.ip for s in self._sandboxes.values()}
        for _ in range(len(self._hosts)):
            candidate = str(self._hosts[self._next_host % len(self._hosts)])
            self._next_host += 1
            if candidate not in in_use:
                return candidate
        raise PodNetError(f"no free address left in {self.subnet}")

    def add_sandbox(self, name: str, *, own_names: Sequence[str] = ()) -> Sandbox:
        """A new namespace ``<tag>-<name>`` on the bridge with the next unused IP. ``own_names``
        resolve to it in its own hosts file only (a pod's hostname)."""
        if not self.created:
            raise PodNetError("create() the network first")
        with self._lock:
            if name in self._sandboxes:
                raise PodNetError(f"sandbox {name!r} already exists")
            netns = f"{self.tag}-{name}"
            self._veth_seq += 1
            veth, peer = f"{self.tag}-v{self._veth_seq}", f"{self.tag}-p{self._veth_seq}"
            ip = self._allocate_ip()
            sandbox = Sandbox(self, name, netns, ip, veth, list(own_names))
            self._sandboxes[name] = sandbox
            self._save_state()
            (NETNS_ETC / netns).mkdir(parents=True, exist_ok=True)
            NETNS_ETC.chmod(0o755)
            (NETNS_ETC / netns).chmod(0o755)
            # No DNS server: unknown names fail at once, never reach the host's resolver.
            _write_in_place(NETNS_ETC / netns / "resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            self._write_hosts(sandbox)
            _ip("netns", "add", netns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", peer, "netns", netns)
            _ip("-n", netns, "link", "set", peer, "name", "eth0")
            _ip("-n", netns, "addr", "add", f"{ip}/{self.subnet.prefixlen}", "dev", "eth0")
            _ip("-n", netns, "link", "set", "eth0", "up")
            _ip("-n", netns, "link", "set", "lo", "up")
            _ip("link", "set", veth, "master", self.bridge)
            _ip("link", "set", veth, "up")
            return sandbox

    def remove_sandbox(self, sandbox: Sandbox) -> None:
        """Kill what still runs in the namespace, delete it (its veth goes with it) and its files."""
        with self._lock:
            _remove_netns(sandbox.netns)
            _ip("link", "del", sandbox.veth, check=False)
            self._sandboxes.pop(sandbox.name, None)
            if self.created:
                self._save_state()

    # -- faults ----------------------------------------------------------------------------
    def partition(self, sandbox: Sandbox) -> None:
        """Cut the sandbox off the bridge: its veth's bridge side goes down (no RST: connections
        hang until they time out). Its own loopback keeps working."""
        _ip("link", "set", sandbox.veth, "down")
        sandbox.partitioned = True

    def heal(self, sandbox: Sandbox) -> None:
        _ip("link", "set", sandbox.veth, "up")
        sandbox.partitioned = False

    # -- names -----------------------------------------------------------------------------
    def publish(self, owner: str, records: Mapping[str, Sequence[str]]) -> None:
        """Set ``owner``'s host names (name -> IPs) and rewrite every hosts file."""
        with self._lock:
            self._records[owner] = {name: list(ips) for name, ips in records.items()}
            for sandbox in self._sandboxes.values():
                self._write_hosts(sandbox)

    def records(self) -> dict[str, list[str]]:
        """Every published name with its IPs (owners merged)."""
        merged: dict[str, list[str]] = {}
        for records in self._records.values():
            for name, ips in records.items():
                merged.setdefault(name, [])
                merged[name] += [ip for ip in ips if ip not in merged[name]]
        return merged

    def _write_hosts(self, sandbox: Sandbox) -> None:
        by_ip: dict[str, list[str]] = {}
        if sandbox.own_names:
            by_ip[sandbox.ip] = list(sandbox.own_names)
        for name, ips in sorted(self.records().items()):
            for ip in ips:
                names = by_ip.setdefault(ip, [])
                if name not in names:
                    names.append(name)
        lines = [
            f"# written by harness/podnet.py (network {self.tag}): pod DNS as /etc/hosts",
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            *(f"{ip}\t{' '.join(names)}" for ip, names in by_ip.items()),
        ]
        _write_in_place(sandbox.hosts_file, "\n".join(lines) + "\n")


def make_bin_dir(valkey_bin_dir: Path, target: Path) -> Path:
    """A bin dir with valkey-server, valkey-cli and the multi-call names valkey-sentinel and
    valkey-check-aof (symlinks to valkey-server: it picks its mode from its argv[0])."""
    target.mkdir(parents=True, exist_ok=True)
    links = {
        "valkey-server": "valkey-server",
        "valkey-cli": "valkey-cli",
        "valkey-sentinel": "valkey-server",
        "valkey-check-aof": "valkey-server",
    }
    for name, source in links.items():
        link = target / name
        if not link.exists():
            link.symlink_to(valkey_bin_dir.resolve() / source)
    return target


def _dns_names(name: str, namespace: str) -> list[str]:
    """``name`` (a Service, or ``<pod>.<service>``) as pod DNS resolves it: fully qualified,
    and the short forms the search path ``<ns>.svc.cluster.local svc.cluster.local`` completes."""
    return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"]


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class NetPod:
    """One pod of a :class:`NetStatefulSet`: its init containers and containers, run in a
    sandbox of its own. See the module docstring for the faults."""

    def __init__(self, statefulset: NetStatefulSet, ordinal: int) -> None:
        self.set = statefulset
        self.ordinal = ordinal
        self.name = f"{statefulset.name}-{ordinal}"
        self.dir = statefulset.root / self.name
        self.sandbox: Sandbox | None = None
        pod_spec = statefulset.pod_spec
        self.labels = {
            **statefulset.template_labels,
            "statefulset.kubernetes.io/pod-name": self.name,
            "apps.kubernetes.io/pod-index": str(ordinal),
        }
        self.volume_dirs: dict[str, Path] = {}
        self.empty_dirs: list[Path] = []
        for template in statefulset.spec.get("volumeClaimTemplates", []):
            claim = f"{template['metadata']['name']}-{statefulset.name}-{ordinal}"
            self.volume_dirs[template["metadata"]["name"]] = statefulset.claims_dir / claim
        for volume in pod_spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                self.volume_dirs[volume["name"]] = statefulset.claims_dir / claim
            elif "emptyDir" in volume:
                path = self.dir / "volumes" / volume["name"]
                self.volume_dirs[volume["name"]] = path
                self.empty_dirs.append(path)

        def runner(container: Mapping[str, Any]) -> PodRunner:
            name = str(container["name"])
            command = None if container.get("command") else statefulset.image_command(container)
            return PodRunner(
                statefulset.objects,
                workdir=self.dir / name,
                bin_dir=statefulset.bin_dir,
                statefulset=statefulset.name,
                container=name,
                ordinal=ordinal,
                volume_dirs=self.volume_dirs,
                command=command,
                require_data_volume=False,
                pod_network=True,
                run_as_pod_user=statefulset.run_as_pod_user,
                extra_env=statefulset.extra_env.get(name),
            )

        self.init_containers = [runner(c) for c in pod_spec.get("initContainers", [])]
        self.containers = {str(c["name"]): runner(c) for c in statefulset.selected_containers()}

    # -- views ---------------------------------------------------------------------------
    @property
    def ip(self) -> str:
        if self.sandbox is None:
            raise PodRunnerError(f"pod {self.name} does not exist (not started)")
        return self.sandbox.ip

    @property
    def exists(self) -> bool:
        return self.sandbox is not None

    def running(self, container: str = "valkey") -> bool:
        """The pod exists and the container's process runs (it may be frozen)."""
        return self.sandbox is not None and self.container(container).running

    def container(self, name: str) -> PodRunner:
        try:
            return self.containers[name]
        except KeyError:
            raise PodRunnerError(f"pod {self.name} runs no container {name!r}: {sorted(self.containers)}") from None

    def client(self, container: str = "valkey", **options: Any) -> valkey.Valkey:
        """A client to the container's first port through the pod's own loopback."""
        return self.container(container).client(**options)

    def logs(self, container: str = "valkey", *, previous: bool = False) -> str:
        return self.container(container).logs(previous=previous)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, *, init_timeout: float = 30) -> None:
        """Create the pod: a fresh sandbox (new IP), names published, emptyDirs emptied, init
        containers run to completion in order, then every container started (not awaited)."""
        if self.sandbox is not None:
            raise PodRunnerError(f"pod {self.name} already exists: stop() or restart() it")
        for path in self.empty_dirs:
            if path.exists():
                shutil.rmtree(path)
        fqdn = f"{self.name}.{self.set.service_name}.{self.set.namespace}.svc.{CLUSTER_DOMAIN}"
        self.sandbox = self.set.network.add_sandbox(self.name, own_names=[fqdn, self.name])
        for runner in [*self.init_containers, *self.containers.values()]:
            runner.sandbox = self.sandbox
        self.set.publish()
        for runner in self.init_containers:
            runner.start()
            try:
                code = runner.wait_exit(timeout=init_timeout)
            except subprocess.TimeoutExpired:
                runner.kill()
                raise PodRunnerError(
                    f"{self.name}: init container {runner.container_name} still ran after {init_timeout}s; "
                    f"log:\n{runner.logs()}"
                ) from None
            if code != 0:
                raise PodRunnerError(
                    f"{self.name}: init container {runner.container_name} exited {code}; log:\n{runner.logs()}"
                )
        for runner in self.containers.values():
            runner.start()

    def wait_ready(self, timeout: float = 30, containers: Sequence[str] | None = None) -> None:
        """Every (named) container with a readiness probe passes it; the others are running."""
        deadline = time.monotonic() + timeout
        for name in containers or list(self.containers):
            runner = self.container(name)
            left = max(deadline - time.monotonic(), 0.1)
            if runner.probes["readiness"] is not None:
                runner.wait_ready(timeout=left)
            elif not runner.running:
                raise PodRunnerError(f"{self.name}/{name} is not running; log:\n{runner.logs()}")

    def kill(self, containers: Sequence[str] | None = None) -> None:
        """SIGKILL the (named) containers now; the sandbox and its IP stay, as after a crash."""
        for name in containers or list(self.containers):
            runner = self.container(name)
            if runner.running:
                runner.kill()

    def stop(self, timeout: float = 10) -> None:
        """Delete the pod: SIGTERM every container (SIGKILL after the grace period, capped at
        ``timeout``), then remove the sandbox and its names."""
        runners = [r for r in self.containers.values() if r.running]
        for runner in runners:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(runner.pid or 0, signal.SIGCONT)
            runner.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for runner in runners:
            runner.stop(timeout=max(deadline - time.monotonic(), 0.1))
        self._drop_sandbox()

    def _drop_sandbox(self) -> None:
        if self.sandbox is not None:
            sandbox, self.sandbox = self.sandbox, None
            self.set.network.remove_sandbox(sandbox)
            self.set.publish()

    def restart(self, *, timeout: float = 10) -> None:
        """Delete and re-create the pod (a new IP, like a re-created pod)."""
        if self.sandbox is not None:
            self.stop(timeout=timeout)
        self.start()

    def restart_container(self, name: str = "valkey") -> None:
        """Start one container again in the same sandbox (the kubelet's container restart)."""
        if self.sandbox is None:
            raise PodRunnerError(f"pod {self.name} does not exist")
        runner = self.container(name)
        if runner.running:
            runner.stop()
        runner.start()

    def _signal_groups(self, sig: int, containers: Sequence[str] | None) -> None:
        for name in containers or list(self.containers):
            runner = self.container(name)
            if runner.running and runner.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(runner.pid, sig)

    def freeze(self, containers: Sequence[str] | None = ("valkey",)) -> None:
        """SIGSTOP the (named) containers' process groups (None: every container)."""
        self._signal_groups(signal.SIGSTOP, containers)

    def thaw(self, containers: Sequence[str] | None = None) -> None:
        self._signal_groups(signal.SIGCONT, containers)

    def partition(self) -> None:
        if self.sandbox is None:
            raise PodRunnerError(f"pod {self.name} does not exist")
        self.set.network.partition(self.sandbox)

    def heal(self) -> None:
        if self.sandbox is None:
            raise PodRunnerError(f"pod {self.name} does not exist")
        self.set.network.heal(self.sandbox)

    def close(self) -> None:
        for runner in [*self.init_containers, *self.containers.values()]:
            runner.close()
        self._drop_sandbox()

    def __repr__(self) -> str:
        return f"NetPod({self.name!r}, ip={self.sandbox.ip if self.sandbox else None})"


class NetStatefulSet:
    """The manifest's StatefulSet as pods ``<sts>-0..N-1`` on a :class:`PodNetwork`.

    ``replicas`` defaults to the rendered ``spec.replicas``. Claims live in ``claims_dir``
    (default ``<root>/claims``): two sets given the same one share claims by name, as a new
    StatefulSet adopts the claims of an old one. ``containers`` names the containers
    to run (default: every container with a command or an entry in ``image_commands``, which maps
    an image name without its tag to the argv of its entry point). ``extra_env`` maps a
    container name to env applied last (host paths, not rewritten). Nothing starts on creation.
    """

    def __init__(
        self,
        objects: list[dict[str, Any]],
        *,
        network: PodNetwork,
        root: Path,
        bin_dir: Path,
        statefulset: str | None = None,
        replicas: int | None = None,
        containers: Sequence[str] | None = None,
        image_commands: Mapping[str, Sequence[str]] | None = None,
        extra_env: Mapping[str, dict[str, str]] | None = None,
        run_as_pod_user: bool = True,
        claims_dir: Path | None = None,
    ) -> None:
        sts = [o for o in objects if o.get("kind") == "StatefulSet"]
        sts = [o for o in sts if statefulset is None or o["metadata"]["name"] == statefulset]
        if len(sts) != 1:
            raise PodRunnerError(f"expected one StatefulSet {statefulset or ''}, found {len(sts)}")
        self.objects = objects
        self.manifest: Mapping[str, Any] = sts[0]
        self.spec: Mapping[str, Any] = self.manifest["spec"]
        self.name = str(self.manifest["metadata"]["name"])
        self.namespace = str(self.manifest["metadata"].get("namespace", "default"))
        self.service_name = str(self.spec["serviceName"])
        self.pod_spec: Mapping[str, Any] = self.spec["template"]["spec"]
        self.template_labels: dict[str, str] = dict(self.spec["template"]["metadata"].get("labels") or {})
        self.network = network
        self.root = root.resolve()
        self.claims_dir = (claims_dir or root / "claims").resolve()
        self.bin_dir = bin_dir
        self.run_as_pod_user = run_as_pod_user
        self.image_commands = {k: list(v) for k, v in (image_commands or {}).items()}
        self.extra_env = {k: dict(v) for k, v in (extra_env or {}).items()}
        self._container_names = list(containers) if containers is not None else None
        count = int(self.spec.get("replicas", 1)) if replicas is None else replicas
        self.services = [
            o
            for o in objects
            if o.get("kind") == "Service" and str(o["metadata"].get("namespace", "default")) == self.namespace
        ]
        self.pods = [NetPod(self, i) for i in range(count)]

    def image_command(self, container: Mapping[str, Any]) -> list[str] | None:
        image = str(container.get("image", "")).rsplit(":", 1)[0]
        return self.image_commands.get(image)

    def selected_containers(self) -> list[Mapping[str, Any]]:
        rendered = list(self.pod_spec["containers"])
        if self._container_names is not None:
            names = [c["name"] for c in rendered]
            unknown = sorted(set(self._container_names) - set(names))
            if unknown:
                raise PodRunnerError(f"no container {unknown} in StatefulSet {self.name}: {names}")
            return [c for c in rendered if c["name"] in self._container_names]
        return [c for c in rendered if c.get("command") or self.image_command(c)]

    def pod(self, name_or_ordinal: str | int) -> NetPod:
        for pod in self.pods:
            if name_or_ordinal in (pod.name, pod.ordinal):
                return pod
        raise PodRunnerError(f"no pod {name_or_ordinal!r} in {[p.name for p in self.pods]}")

    def pod_fqdn(self, pod: NetPod | int) -> str:
        name = pod.name if isinstance(pod, NetPod) else f"{self.name}-{pod}"
        return f"{name}.{self.service_name}.{self.namespace}.svc.{CLUSTER_DOMAIN}"

    def records(self) -> dict[str, list[str]]:
        """The names pod DNS would answer for this StatefulSet's existing pods and its Services."""
        out: dict[str, list[str]] = {}
        live = [p for p in self.pods if p.sandbox is not None]
        for pod in live:
            for name in _dns_names(f"{pod.name}.{self.service_name}", self.namespace):
                out[name] = [pod.ip]
        for service in self.services:
            selector = service["spec"].get("selector") or {}
            ips = [p.ip for p in live if _matches(selector, p.labels)]
            if not ips:
                continue
            for name in _dns_names(str(service["metadata"]["name"]), self.namespace):
                out[name] = ips
        return out

    @property
    def _owner(self) -> str:
        # Two sets of one name may share a network (a migration runs the old and the new one).
        return f"statefulset/{self.namespace}/{self.name}/{id(self)}"

    def publish(self) -> None:
        self.network.publish(self._owner, self.records())

    def start(self, order: Sequence[int] | None = None, *, ready_timeout: float = 30, wait: bool = True) -> None:
        """Start the pods in ``order`` (ordinals; default 0..N-1) as the rendered
        ``podManagementPolicy`` does: ``OrderedReady`` waits for each pod to be ready before the
        next, ``Parallel`` starts them all, then waits. ``wait=False`` waits for none."""
        pods = [self.pods[i] for i in (order if order is not None else range(len(self.pods)))]
        parallel = self.spec.get("podManagementPolicy") == "Parallel"
        for pod in pods:
            pod.start()
            if wait and not parallel:
                pod.wait_ready(timeout=ready_timeout)
        if wait and parallel:
            deadline = time.monotonic() + ready_timeout
            for pod in pods:
                pod.wait_ready(timeout=max(deadline - time.monotonic(), 0.1))

    def stop(self, timeout: float = 10) -> None:
        """Delete every existing pod (highest ordinal first, as the controller scales down)."""
        for pod in reversed(self.pods):
            if pod.exists:
                pod.stop(timeout=timeout)

    def close(self) -> None:
        for pod in self.pods:
            pod.close()
        self.network.publish(self._owner, {})

    def __enter__(self) -> NetStatefulSet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
