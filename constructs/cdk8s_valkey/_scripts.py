"""The shell scripts shipped in the package, read as package data so that they work
from a wheel as well as from a checkout."""

from __future__ import annotations

from importlib import resources

ENTRYPOINT = "entrypoint.sh"
PROBE = "probe.sh"


def script(name: str) -> str:
    """Text of ``scripts/<name>`` inside the package."""
    return resources.files(__package__).joinpath("scripts", name).read_text(encoding="utf-8")
