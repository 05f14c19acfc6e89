"""The rendered Valkey container, run locally through harness/podrunner.py, plus INFO helpers."""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.paths import valkey_bin_dir

from ._common import MANIFEST, podrunner, run


def rendered_objects(extra_args: Sequence[str] = (), manifest: Path = MANIFEST) -> list[dict[str, Any]]:
    """The manifest's objects; ``extra_args`` are appended to the valkey container's args, which the
    rendered entrypoint passes on to valkey-server after the config file (command-line wins)."""
    objects: list[dict[str, Any]] = copy.deepcopy(podrunner().load_manifest(manifest))
    if extra_args:
        for obj in objects:
            if obj.get("kind") != "StatefulSet":
                continue
            for container in obj["spec"]["template"]["spec"]["containers"]:
                if container["name"] == "valkey":
                    container["args"] = [*container.get("args", []), *extra_args]
    return objects


def rendered_container(manifest: Path = MANIFEST) -> dict[str, Any]:
    """The valkey container of the manifest's StatefulSet."""
    for obj in podrunner().load_manifest(manifest):
        if obj.get("kind") == "StatefulSet":
            for container in obj["spec"]["template"]["spec"]["containers"]:
                if container["name"] == "valkey":
                    return dict(container)
    raise RuntimeError(f"no valkey container in {manifest}")


@contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary directory on the disk-backed /tmp (the pod runner makes it reachable for uid 999)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def rendered_pod(
    directory: Path,
    *,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    memory_cgroup: Any = None,
    ready_timeout: float = 60,
) -> Iterator[Any]:
    """The rendered container started and ready (readiness probe passed); always stopped."""
    runner = podrunner().PodRunner(
        rendered_objects(extra_args),
        workdir=directory,
        bin_dir=valkey_bin_dir(),
        memory_cgroup=memory_cgroup,
        extra_env=dict(extra_env or {}),
    )
    with runner:
        runner.start()
        runner.wait_ready(timeout=ready_timeout)
        try:
            yield runner
        finally:
            if runner.running:
                runner.stop(timeout=60)


def cli(port: int, *args: str, timeout: float = 600) -> str:
    """valkey-cli against 127.0.0.1:port; its stdout."""
    return run(
        [str(valkey_bin_dir() / "valkey-cli"), "-h", "127.0.0.1", "-p", str(port), *args], timeout=timeout
    ).stdout


def info(port: int, section: str) -> dict[str, str]:
    """One INFO section as a dict of strings (works while the server is loading)."""
    out: dict[str, str] = {}
    for line in cli(port, "info", section).splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            out[key] = value
    return out


def command_calls(port: int) -> dict[str, int]:
    """calls per command from INFO commandstats (commands run inside Lua scripts included)."""
    calls: dict[str, int] = {}
    for key, value in info(port, "commandstats").items():
        if key.startswith("cmdstat_"):
            fields = dict(part.split("=", 1) for part in value.split(","))
            calls[key.removeprefix("cmdstat_")] = int(fields["calls"])
    return calls


def wait_rewrite_done(port: int, timeout: float) -> None:
    """Until no AOF rewrite is running or scheduled; raise if the last one failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        persistence = info(port, "persistence")
        if persistence.get("aof_rewrite_in_progress") == "0" and persistence.get("aof_rewrite_scheduled") == "0":
            if persistence.get("aof_last_bgrewrite_status") != "ok":
                raise RuntimeError(f"AOF rewrite failed: {persistence}")
            return
        time.sleep(0.05)
    raise RuntimeError(f"AOF rewrite still running after {timeout}s")
