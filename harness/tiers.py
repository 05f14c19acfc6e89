"""The two tiers of the suite, as a pytest plugin (``-p harness.tiers`` in pyproject.toml).

- ``real``: the test runs a real process: valkey-server, an exporter, Prometheus, promtool, Node,
  the cdk8s CLI, mypy, checkov. ``root``: it also needs root (network namespaces, memory cgroups,
  loop devices, ``setpriv``); ``root`` implies ``real``.
- The fast tier is everything else: ``make test-fast`` (``pytest -m "not real"``), pure Python and
  jsii, no root, run on every edit.

A test is marked ``real``/``root`` by the fixtures it uses, or by its module's ``pytestmark``. A
test left unmarked that starts a process fails, naming what it started, so the fast tier cannot
quietly grow slow: the jsii kernel (node running jsii-runtime) is the one process allowed.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from typing import Any

import pytest

# Fixtures that start or locate real binaries, and those that need root.
REAL_FIXTURES = frozenset({"valkey_bin_dir", "valkey_env", "sh", "port"})
ROOT_FIXTURES = frozenset({"pod_network", "pod_bin_dir"})

_unmarked: list[str] = []  # the node id of an unmarked test while it runs, else empty


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "subprocess.Popen" or not _unmarked:
        return
    argv = [str(a) for a in (args[1] or [])] if len(args) > 1 and isinstance(args[1], list | tuple) else [str(args[0])]
    if any("jsii-runtime" in a for a in argv):
        return  # the jsii kernel that cdk8s starts once per session
    raise pytest.fail.Exception(
        f"{_unmarked[0]} starts a process ({' '.join(argv)[:120]}) but is not marked real: add "
        "`pytestmark = pytest.mark.real` to its module (or `root`, if it needs root), or use a fixture that marks it"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real: runs a real process (server, exporter, CLI); not in the fast tier")
    config.addinivalue_line("markers", "root: needs root (network namespaces, cgroups, loop devices); implies real")
    sys.addaudithook(_audit)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & ROOT_FIXTURES or item.get_closest_marker("root") is not None:
            item.add_marker(pytest.mark.root)
            item.add_marker(pytest.mark.real)
        elif fixtures & REAL_FIXTURES:
            item.add_marker(pytest.mark.real)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    unmarked = item.get_closest_marker("real") is None
    if unmarked:
        _unmarked.append(item.nodeid)
    try:
        return (yield)
    finally:
        if unmarked:
            _unmarked.clear()
