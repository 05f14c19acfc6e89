"""The readiness/liveness probe script against a real valkey-server, and shellcheck of both scripts."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from harness.paths import free_port, require_binary
from harness.servers import client, info_field, running_server, valkey_cli, wait_for_pong, write_config

pytestmark = pytest.mark.real

SCRIPTS = Path(__file__).parents[1] / "constructs/cdk8s_valkey/scripts"
PROBE = SCRIPTS / "probe.sh"

# The loading-window dataset: 500k small keys make a ~33 MB command-form AOF (no RDB
# preamble) that takes about 0.6 s to replay here, while one probe round (ready + alive +
# INFO) takes ~10 ms: some 60 rounds see LOADING. Smaller gets close to a handful of rounds
# on a busy machine; larger only costs time.
KEYS = 1_500_000  # about 100 MB of AOF: a loading window of over a second, even on a busy machine
VALUE_BYTES = 32


def probe(sh: str, env: Mapping[str, str], port: int, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sh, str(PROBE), *args],
        env={**env, "VALKEY_PORT": str(port), **extra},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


@pytest.fixture
def probe_env(valkey_env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in valkey_env.items() if k != "REDISCLI_AUTH" and not k.startswith("VALKEY_")}


@pytest.mark.parametrize("script", ["entrypoint.sh", "probe.sh"])
def test_shellcheck_clean(script: str) -> None:
    shellcheck = require_binary("shellcheck")
    result = subprocess.run(
        [shellcheck, "-s", "sh", str(SCRIPTS / script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("args", [(), ("live",), ("ready", "alive"), ("READY",)])
def test_unknown_mode_exits_64(args: tuple[str, ...], sh: str, probe_env: dict[str, str]) -> None:
    result = probe(sh, probe_env, free_port(), *args)
    assert (result.returncode, result.stdout, result.stderr) == (
        64,
        "",
        "usage: sh probe.sh ready|alive\n",
    )


def test_both_pass_on_running_server(tmp_path: Path, port: int, sh: str, probe_env: dict[str, str]) -> None:
    config = write_config(tmp_path / "valkey.conf", port=port, data_dir=tmp_path)
    with running_server(probe_env, config, port, tmp_path / "server.log") as proc:
        wait_for_pong(proc, port, log=tmp_path / "server.log")
        for mode in ("ready", "alive"):
            result = probe(sh, probe_env, port, mode, VALKEY_PROBE_CONNECT_TIMEOUT="0.5")
            assert (mode, result.returncode, result.stdout, result.stderr) == (mode, 0, "", "")


def test_password_comes_from_rediscli_auth(tmp_path: Path, port: int, sh: str, probe_env: dict[str, str]) -> None:
    config = write_config(tmp_path / "valkey.conf", port=port, data_dir=tmp_path, extra=["requirepass s3cret"])
    with running_server(probe_env, config, port, tmp_path / "server.log") as proc:
        # wait_for_pong cannot authenticate: wait for the NOAUTH answer instead.
        deadline = time.monotonic() + 10
        while "NOAUTH" not in (result := probe(sh, probe_env, port, "ready")).stdout:
            assert proc.poll() is None and time.monotonic() < deadline, result.stdout
            time.sleep(0.02)
        for mode in ("ready", "alive"):
            result = probe(sh, probe_env, port, mode)
            assert (result.returncode, result.stdout) == (
                1,
                f"probe {mode} failed (valkey-cli exit 0): NOAUTH Authentication required.\n",
            )
            assert probe(sh, probe_env, port, mode, REDISCLI_AUTH="s3cret").returncode == 0
        valkey_cli({**probe_env, "REDISCLI_AUTH": "s3cret"}, port, "shutdown", "nosave")
        assert proc.wait(timeout=10) == 0


def test_both_fail_without_server(sh: str, probe_env: dict[str, str]) -> None:
    port = free_port()
    for mode in ("ready", "alive"):
        result = probe(sh, probe_env, port, mode)
        assert (result.returncode, result.stdout) == (
            1,
            f"probe {mode} failed (valkey-cli exit 1): "
            f"Could not connect to Valkey at 127.0.0.1:{port}: Connection refused\n",
        )


def build_command_form_aof(env: Mapping[str, str], data_dir: Path, tmp_path: Path) -> None:
    """Fill `data_dir` with an AOF of KEYS SET commands (no RDB preamble: slow to replay)."""
    port = free_port()
    config = write_config(
        tmp_path / "generate.conf",
        port=port,
        data_dir=data_dir,
        extra=["aof-use-rdb-preamble no"],
    )
    log = tmp_path / "generate.log"
    # enable-debug-command is immutable at runtime: DEBUG POPULATE needs it at start.
    with running_server(env, config, port, log, "--enable-debug-command", "local") as proc:
        wait_for_pong(proc, port, log=log)
        populate = valkey_cli(env, port, "debug", "populate", str(KEYS), "key", str(VALUE_BYTES))
        assert populate.stdout.strip() == "OK", populate
        with client(port) as conn:
            rewrites = int(conn.info("persistence")["aof_rewrites"])
            conn.bgrewriteaof()
            deadline = time.monotonic() + 30
            while True:
                persistence = conn.info("persistence")
                if (
                    persistence["aof_rewrites"] > rewrites
                    and persistence["aof_rewrite_in_progress"] == 0
                    and persistence["aof_rewrite_scheduled"] == 0
                ):
                    break
                assert time.monotonic() < deadline, "AOF rewrite did not finish in 30 s"
                time.sleep(0.05)
            assert persistence["aof_last_bgrewrite_status"] == "ok"


def test_ready_fails_and_alive_passes_while_loading(tmp_path: Path, sh: str, probe_env: dict[str, str]) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    build_command_form_aof(probe_env, data_dir, tmp_path)
    base = next((data_dir / "appendonlydir").glob("*.base.aof"))
    assert base.stat().st_size > 75_000_000

    port = free_port()
    config = write_config(tmp_path / "valkey.conf", port=port, data_dir=data_dir)
    log = tmp_path / "server.log"
    with running_server(probe_env, config, port, log) as proc:
        seen_loading = False
        deadline = time.monotonic() + 30
        while not seen_loading:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server neither loaded nor answered in 30 s"
            ready = probe(sh, probe_env, port, "ready")
            alive = probe(sh, probe_env, port, "alive")
            if ready.returncode == 0:
                pytest.fail("ready passed before any LOADING reply was seen: load too fast?")
            # Loading only ever ends, so loading:1 read after both probes means both ran
            # while the AOF was being replayed.
            loading = info_field(probe_env, port, "persistence", "loading")
            if loading == "1" and "LOADING" in ready.stdout:
                assert ready.returncode == 1
                assert ready.stdout.startswith("probe ready failed (valkey-cli exit 0): LOADING ")
                assert len(ready.stdout.splitlines()) == 1
                assert (alive.returncode, alive.stdout) == (0, "")
                seen_loading = True
            else:
                time.sleep(0.01)

        wait_for_pong(proc, port, timeout=30, log=log)
        assert probe(sh, probe_env, port, "ready").returncode == 0
        assert probe(sh, probe_env, port, "alive").returncode == 0
        with client(port) as conn:
            assert conn.dbsize() == KEYS
        assert re.search(r"DB loaded from append only file: [0-9.]+ seconds", log.read_text())

    # running_server stopped it: now nothing listens on the port.
    for mode in ("ready", "alive"):
        result = probe(sh, probe_env, port, mode)
        assert result.returncode == 1
        assert "Connection refused" in result.stdout
