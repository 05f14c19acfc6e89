"""Opt-in AUTH (``auth_secret``), rendered and run for real.

The hardened variant (harness/hardened.py: main.py's Valkey with ``auth_secret`` and
``network_policy``, plus the exporter) is synthesized, the kubelet's part is played by
:func:`resolve_secret_refs` (every ``secretKeyRef`` becomes the test password), and the Valkey
container runs through harness/podrunner.py exactly as rendered: ``requirepass.sh``, the
entrypoint, the rendered probes. The real redis_exporter runs with the rendered args and env.

Then: unauthenticated clients are refused, authenticated ones work, the probes pass, the
exporter scrapes ``valkey_up 1``, and a scan of every process's command line on the machine
(continuously, while all of that happens), of valkey-server's environment, of every log, every
file the pod wrote and the synthesized YAML finds no trace of the password.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cdk8s
import kubernetes_validate
import pytest
import valkey
from test_probe_script import build_command_form_aof

from cdk8s_valkey import ExporterSidecar, SecretKeyRef, ValkeyStatefulSet
from harness.exporter import (
    exporter_args_for_test,
    listen_url,
    running_exporter,
    samples,
    scrape_until,
    start_exporter,
    stop_exporter,
)
from harness.hardened import AUTH_SECRET, build_hardened
from harness.paths import REPO, free_port, require_binary
from harness.podrunner import PodRunner
from harness.secrets import CmdlineScanner, leaks, needles, new_password, resolve_secret_refs
from harness.servers import valkey_cli
from harness.synth import container, find, new_chart, objects, to_yaml

pytestmark = pytest.mark.root

SCRIPTS = REPO / "constructs/cdk8s_valkey/scripts"
REQUIREPASS = SCRIPTS / "requirepass.sh"


def container_env(objs: list[dict[str, Any]], name: str) -> dict[str, str]:
    return {var["name"]: var["value"] for var in container(objs, name).get("env", [])}


# -- the hardened pod, running ------------------------------------------------------------


@dataclass
class Pod:
    runner: PodRunner
    password: str
    token: str
    objects: list[dict[str, Any]]
    yaml_text: str
    exporter_args: list[str]
    exporter_env: dict[str, str]
    exporter_log: Path
    scanner: CmdlineScanner
    outputs: list[str] = field(default_factory=list)  # probe and CLI output, scrape bodies

    @property
    def patterns(self) -> list[bytes]:
        return needles(self.password, self.token)

    def cli(self, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {"PATH": self.runner.env["PATH"]}
        if password is not None:
            env["REDISCLI_AUTH"] = password
        result = valkey_cli(env, self.runner.port, *args)
        self.outputs += [result.stdout, result.stderr]
        return result

    def probe(self, kind: str) -> subprocess.CompletedProcess[str]:
        result = self.runner.probe(kind)
        self.outputs += [result.stdout, result.stderr]
        return result


@pytest.fixture(scope="module")
def hardened_objects() -> list[dict[str, Any]]:
    return objects(build_hardened(cdk8s.Testing.app()))


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory, valkey_bin_dir: Path) -> Iterator[Pod]:
    password, token = new_password()
    chart = build_hardened(cdk8s.Testing.app())
    objs = objects(chart)
    resolved = resolve_secret_refs(objs, {(AUTH_SECRET.name, AUTH_SECRET.key): password})
    scanner = CmdlineScanner(needles(password, token))
    scanner.start()
    workdir = tmp_path_factory.mktemp("auth") / "pod"
    exporter_log = workdir.parent / "exporter.log"
    with PodRunner(resolved, workdir=workdir, bin_dir=valkey_bin_dir) as runner:
        runner.start()
        runner.wait_ready(timeout=15)  # the rendered readiness probe, with REDISCLI_AUTH
        args = exporter_args_for_test(container(objs, "exporter")["args"], runner.port, free_port())
        env = container_env(resolved, "exporter")
        # start_exporter passes this process's environment on: the rendered env, set around the start only.
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            exporter = start_exporter(args, log=exporter_log)
        try:
            yield Pod(runner, password, token, objs, to_yaml(chart), args, env, exporter_log, scanner)
        finally:
            stop_exporter(exporter)
            scanner.halt()
            runner.stop()


# -- what is rendered ----------------------------------------------------------------------


def test_rendered_pod_takes_the_password_from_the_secret(hardened_objects: list[dict[str, Any]]) -> None:
    valkey_ctr = container(hardened_objects, "valkey")
    ref = {"secretKeyRef": {"name": "valkey-auth", "key": "password"}}
    assert valkey_ctr["command"] == ["sh", "/scripts/requirepass.sh"]
    assert "args" not in valkey_ctr
    assert valkey_ctr["env"][-2:] == [
        {"name": "VALKEY_PASSWORD", "valueFrom": ref},
        {"name": "REDISCLI_AUTH", "valueFrom": ref},
    ]
    exporter = container(hardened_objects, "exporter")
    assert exporter["env"] == [{"name": "REDIS_PASSWORD", "valueFrom": ref}]
    assert not [a for a in exporter["args"] if "password" in a], "the password is never a flag"
    scripts = find(hardened_objects, "ConfigMap", "valkey-scripts")["data"]
    assert sorted(scripts) == ["auth-lib.sh", "entrypoint.sh", "probe.sh", "requirepass.sh"]
    assert scripts["requirepass.sh"] == REQUIREPASS.read_text()
    assert scripts["auth-lib.sh"] == (SCRIPTS / "auth-lib.sh").read_text()
    conf = find(hardened_objects, "ConfigMap", "valkey-config")["data"]["valkey.conf"]
    directives = dict(line.split(" ", 1) for line in conf.splitlines() if line and not line.startswith("#"))
    assert directives["protected-mode"] == "yes"
    assert "requirepass" not in directives
    assert not any(o["kind"] == "Secret" for o in hardened_objects), "the library never creates the Secret"


def test_hardened_objects_validate_strictly(hardened_objects: list[dict[str, Any]]) -> None:
    for obj in hardened_objects:
        if not obj["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(obj, "1.28", strict=True)


def test_default_has_no_auth() -> None:
    chart = new_chart()
    cache = ValkeyStatefulSet(chart, "valkey")
    ExporterSidecar(chart, "exporter", valkey=cache)
    objs = objects(chart)
    assert cache.auth_secret is None
    assert container(objs, "valkey")["command"] == ["sh", "/scripts/entrypoint.sh"]
    assert all("valueFrom" not in var for var in container(objs, "valkey")["env"])
    assert "env" not in container(objs, "exporter")
    assert sorted(find(objs, "ConfigMap", "valkey-scripts")["data"]) == ["entrypoint.sh", "probe.sh"]


def _checksum(**props: Any) -> str:
    chart = new_chart()
    ValkeyStatefulSet(chart, "valkey", **props)
    return str(find(objects(chart), "StatefulSet")["spec"]["template"]["metadata"]["annotations"]["checksum/config"])


def test_checksum_follows_the_secret_reference() -> None:
    with_auth = _checksum(auth_secret=SecretKeyRef(name="valkey-auth", key="password"))
    assert with_auth == _checksum(auth_secret=SecretKeyRef(name="valkey-auth", key="password"))
    assert len({_checksum(), with_auth}) == 2
    assert _checksum(auth_secret=SecretKeyRef(name="valkey-auth-2", key="password")) != with_auth
    assert _checksum(auth_secret=SecretKeyRef(name="valkey-auth", key="password-2")) != with_auth


def test_wiring_attributes() -> None:
    ref = SecretKeyRef(name="valkey-auth", key="password")
    cache = ValkeyStatefulSet(new_chart(), "valkey", auth_secret=ref)
    assert cache.auth_secret == ref == SecretKeyRef(name="valkey-auth", key="password")
    assert cache.url == "redis://valkey.apps.svc:6379", "the URL never holds a password"
    with pytest.raises(AttributeError):
        ref.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("props", "message"),
    [
        pytest.param(
            {"name": "Valkey_Auth", "key": "password"},
            "SecretKeyRef.name: 'Valkey_Auth' is not a valid Kubernetes name; use at most 253 lower-case "
            "letters, digits, '-' and '.', starting and ending with a letter or digit",
            id="name-invalid",
        ),
        pytest.param(
            {"name": "valkey-auth", "key": "pass word"},
            "SecretKeyRef.key: 'pass word' is not a valid Secret key; use at most 253 letters, digits, "
            "'-', '_' and '.', other than '.' and '..' and not starting with '..'",
            id="key-space",
        ),
        pytest.param(
            {"name": "valkey-auth", "key": ".."},
            "SecretKeyRef.key: '..' is not a valid Secret key; use at most 253 letters, digits, "
            "'-', '_' and '.', other than '.' and '..' and not starting with '..'",
            id="key-dotdot",
        ),
        pytest.param(
            {"name": "valkey-auth", "key": "k" * 254},
            f"SecretKeyRef.key: '{'k' * 254}' is not a valid Secret key; use at most 253 letters, digits, "
            "'-', '_' and '.', other than '.' and '..' and not starting with '..'",
            id="key-too-long",
        ),
    ],
)
def test_secret_key_ref_is_validated(props: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        SecretKeyRef(**props)
    assert str(raised.value) == message


def test_secret_key_ref_accepts_kubernetes_keys() -> None:
    for key in ("password", "REDIS_PASSWORD", "valkey.password", "a-b_c.d", ".hidden"):
        assert SecretKeyRef(name="valkey-auth", key=key).key == key


def test_auth_secret_must_be_a_secret_key_ref() -> None:
    chart = new_chart()
    with pytest.raises(ValueError) as raised:
        ValkeyStatefulSet(chart, "valkey", auth_secret="valkey-auth")  # type: ignore[arg-type]
    assert str(raised.value) == (
        "auth_secret: 'valkey-auth' is not a SecretKeyRef; "
        "pass SecretKeyRef(name=<Secret name>, key=<key in the Secret>)"
    )
    (construct,) = chart.node.children
    assert construct.node.children == [], "validation must run before any child is defined"


def test_extra_config_points_requirepass_to_auth_secret() -> None:
    with pytest.raises(ValueError) as raised:
        ValkeyStatefulSet(new_chart(), "valkey", extra_config={"requirepass": "s3cret"})
    assert str(raised.value) == (
        "extra_config: 'requirepass' is set by ValkeyStatefulSet to keep passwords out of ConfigMaps "
        "(auth_secret takes it from a Secret); remove it from extra_config (any other directive is allowed)"
    )


# -- the running pod -----------------------------------------------------------------------


def test_unauthenticated_and_wrong_password_clients_are_refused(pod: Pod) -> None:
    assert pod.cli("ping").stdout.strip() == "NOAUTH Authentication required."
    assert pod.cli("set", "k", "v").stdout.strip() == "NOAUTH Authentication required."
    with pod.runner.client() as anonymous, pytest.raises(valkey.AuthenticationError):
        anonymous.ping()
    with pytest.raises(valkey.AuthenticationError, match="invalid username-password pair"):
        pod.runner.client(password="not-the-password").ping()
    with pod.runner.client(password=pod.password, decode_responses=True) as conn:
        assert int(conn.info("stats")["acl_access_denied_auth"]) >= 1


def test_authenticated_client_works(pod: Pod) -> None:
    with pod.runner.client(password=pod.password, decode_responses=True) as conn:
        assert conn.set("session:1", "kept") is True
        assert conn.get("session:1") == "kept"
        assert conn.config_get("protected-mode") == {"protected-mode": "yes"}
        # The quoted requirepass line came through exactly: space, quotes, backslash, $, backtick, #.
        assert conn.config_get("requirepass") == {"requirepass": pod.password}
        assert conn.info("server")["process_id"] == pod.runner.pid, "requirepass.sh and the entrypoint exec'd"
    assert pod.cli("get", "session:1", password=pod.password).stdout == "kept\n"


def test_rendered_probes_pass_with_rediscli_auth(pod: Pod) -> None:
    for kind in ("startup", "readiness", "liveness"):
        result = pod.probe(kind)
        assert (kind, result.returncode, result.stdout, result.stderr) == (kind, 0, "", "")


def test_probe_without_the_password_fails(pod: Pod) -> None:
    """REDISCLI_AUTH is what makes the probes pass: without it, even loopback gets NOAUTH."""
    result = subprocess.run(
        ["sh", pod.runner.host_path("/scripts/probe.sh"), "ready"],
        env={"PATH": pod.runner.env["PATH"], "VALKEY_PORT": str(pod.runner.port)},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert (result.returncode, result.stdout) == (
        1,
        "probe ready failed (valkey-cli exit 0): NOAUTH Authentication required.\n",
    )


def test_exporter_scrapes_valkey_up_1(pod: Pod) -> None:
    body = scrape_until(listen_url(pod.exporter_args), lambda b: "valkey_up 1" in b.splitlines())
    pod.outputs.append(body)
    values = samples(body)
    assert values["valkey_up"] == 1
    assert values["valkey_connected_clients"] >= 1
    assert values['valkey_key_size{db="db0",key="bull:emails:wait"}'] == 0


def test_exporter_without_redis_password_reports_valkey_up_0(pod: Pod, tmp_path: Path) -> None:
    """REDIS_PASSWORD is what authenticates the exporter: without it, valkey_up is 0."""
    assert "REDIS_PASSWORD" not in os.environ
    args = exporter_args_for_test(container(pod.objects, "exporter")["args"], pod.runner.port, free_port())
    log = tmp_path / "exporter-no-password.log"
    with running_exporter(args, log=log):
        body = scrape_until(listen_url(args), lambda b: "valkey_up 0" in b.splitlines())
    pod.outputs += [body, log.read_text()]


def test_valkey_server_gets_the_password_on_stdin_only(pod: Pod) -> None:
    pid = pod.runner.pid
    assert pid is not None
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    names = {item.split(b"=", 1)[0] for item in environ.split(b"\0") if item}
    assert {b"VALKEY_PASSWORD", b"REDISCLI_AUTH"}.isdisjoint(names), "requirepass.sh unsets both before exec"
    assert not leaks(environ, pod.patterns)
    # The here-document is a pipe (dash), never a file on a disk.
    assert os.readlink(f"/proc/{pid}/fd/0").startswith("pipe:[")
    # The exporter, by contrast, keeps REDIS_PASSWORD in its environ: readable by its own uid and root only.


def test_no_trace_of_the_password(pod: Pod) -> None:
    """Every command line on the machine (scanned continuously since before the pod started),
    the logs of requirepass.sh, the entrypoint, valkey-server, the probes, valkey-cli and the
    exporter, every file the pod wrote (ConfigMap files, the AOF), the synthesized YAML, dist/."""
    # More activity while the scanner runs: probes until the scanner has caught some of their
    # valkey-cli processes (each lives a few ms), refused and accepted clients, a rewrite, a scrape.
    probe_clis = f"-p {pod.runner.port} -t"
    deadline = time.monotonic() + 20
    while len([c for c in pod.scanner.commands("valkey-cli") if probe_clis in c]) < 3:
        assert time.monotonic() < deadline, "the scanner never caught a probe's valkey-cli"
        for kind in ("readiness", "liveness", "startup"):
            assert pod.probe(kind).returncode == 0
    pod.cli("ping")
    pod.cli("ping", password="wrong")
    pod.cli("ping", password=pod.password)
    with pod.runner.client(password=pod.password) as conn:
        rewrites = conn.info("persistence")["aof_rewrites"]
        conn.bgrewriteaof()  # a new AOF base on the volume: one more file to search
        deadline = time.monotonic() + 10
        while conn.info("persistence")["aof_rewrites"] == rewrites:
            assert time.monotonic() < deadline, "the AOF rewrite did not finish"
            time.sleep(0.05)
    pod.outputs.append(scrape_until(listen_url(pod.exporter_args), lambda b: "valkey_up 1" in b.splitlines()))
    time.sleep(0.2)

    pod.scanner.scan_once()
    assert pod.scanner.hits == [], f"password in a command line: {pod.scanner.hits}"
    assert pod.scanner.rounds > 10
    assert [c for c in pod.scanner.commands("valkey-server") if f":{pod.runner.port}" in c]
    assert [c for c in pod.scanner.commands("prometheus-redis-exporter") if f":{pod.runner.port}" in c]
    print(f"\ncmdline scan: {pod.scanner.rounds} rounds, {len(pod.scanner.seen)} processes, "
          f"{len(pod.scanner.commands('valkey-cli'))} of them valkey-cli (probes, tests)")  # fmt: skip

    logs = {
        "pod (requirepass.sh, entrypoint, valkey-server)": pod.runner.logs(),
        "exporter": pod.exporter_log.read_text(),
        "probes, valkey-cli, scrapes": "\n".join(pod.outputs),
        "synthesized YAML": pod.yaml_text,
        "dist/valkey.k8s.yaml": (REPO / "dist" / "valkey.k8s.yaml").read_text(),
    }
    assert "requirepass: AUTH required" in logs["pod (requirepass.sh, entrypoint, valkey-server)"]
    assert "Ready to accept connections" in logs["pod (requirepass.sh, entrypoint, valkey-server)"]
    for name, text in logs.items():
        assert not leaks(text, pod.patterns), f"password in {name}"
    files = [p for p in pod.runner.workdir.rglob("*") if p.is_file()]
    assert any(".base." in p.name for p in files), "the AOF base (RDB preamble) is among the files"
    for path in files:
        assert not leaks(path.read_bytes(), pod.patterns), f"password in {path}"


# -- passwords that need quoting ----------------------------------------------------------

TRICKY = [
    pytest.param("with space", id="space"),
    pytest.param('double"quote', id="double-quote"),
    pytest.param("single'quote", id="single-quote"),
    pytest.param("back\\slash", id="backslash"),
    pytest.param("trailing-backslash\\", id="trailing-backslash"),
    pytest.param("dollar$HOME${PATH}", id="dollar"),
    pytest.param("`id` $(id)", id="command-substitution"),
    pytest.param("\\x41 \\n \\\\", id="config-escape-sequences"),
    pytest.param("new\nline", id="newline"),
    pytest.param("carriage\rreturn\ttab", id="cr-tab"),
    pytest.param("  leading and trailing  ", id="outer-spaces"),
    pytest.param("#not-a-comment", id="hash"),
    pytest.param("ünïcödé-密码", id="utf-8"),
    pytest.param("x" * 2000, id="2000-chars"),
]


@pytest.mark.parametrize("tricky", TRICKY)
def test_password_survives_quoting(
    tricky: str, hardened_objects: list[dict[str, Any]], tmp_path: Path, valkey_bin_dir: Path
) -> None:
    token = secrets.token_hex(8)
    password = f"{token}{tricky}"
    resolved = resolve_secret_refs(hardened_objects, {(AUTH_SECRET.name, AUTH_SECRET.key): password})
    with PodRunner(resolved, workdir=tmp_path / "pod", bin_dir=valkey_bin_dir) as runner:
        runner.start()
        runner.wait_ready(timeout=15)  # the probe's valkey-cli authenticates with REDISCLI_AUTH
        with runner.client(password=password, decode_responses=True) as conn:
            assert conn.config_get("requirepass") == {"requirepass": password}
        with pytest.raises(valkey.AuthenticationError):
            runner.client(password=password[:-1]).ping()
        assert runner.stop() == 0, "SIGTERM reached valkey-server through both execs"
        assert not leaks(runner.logs(), needles(password, token))


# -- requirepass.sh on its own -------------------------------------------------------------


def test_requirepass_script_is_shellcheck_clean() -> None:
    """requirepass.sh and auth-lib.sh, which it sources (and Sentinel's start too)."""
    result = subprocess.run(
        [require_binary("shellcheck"), "-x", "-s", "sh", "requirepass.sh", "auth-lib.sh"],
        cwd=SCRIPTS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param(
            {},
            "requirepass: VALKEY_PASSWORD is not set: the pod must take it from the Secret (secretKeyRef)\n",
            id="unset",
        ),
        pytest.param(
            {"VALKEY_PASSWORD": "", "REDISCLI_AUTH": ""},
            "requirepass: VALKEY_PASSWORD is empty: put a non-empty password in the Secret key\n",
            id="empty",
        ),
    ],
)
def test_requirepass_refuses_to_run_without_a_password(env: dict[str, str], message: str, sh: str) -> None:
    # `requirepass ""` would mean "no password at all": the script must stop before the entrypoint.
    result = subprocess.run(
        [sh, str(REQUIREPASS)],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert (result.returncode, result.stdout, result.stderr) == (64, "", message)


def test_liveness_tolerates_loading_with_auth(
    hardened_objects: list[dict[str, Any]], tmp_path: Path, valkey_bin_dir: Path, valkey_env: dict[str, str]
) -> None:
    """AUTH is accepted while the AOF loads, so with a password the liveness probe still passes
    on LOADING (and readiness still waits): no restart loop on a large AOF."""
    password, _ = new_password()
    resolved = resolve_secret_refs(hardened_objects, {(AUTH_SECRET.name, AUTH_SECRET.key): password})
    with PodRunner(resolved, workdir=tmp_path / "pod", bin_dir=valkey_bin_dir) as runner:
        runner.data_dir.mkdir(parents=True)
        build_command_form_aof(valkey_env, runner.data_dir, tmp_path)
        runner.start()
        seen_loading = False
        deadline = time.monotonic() + 60
        while True:
            assert runner.running and time.monotonic() < deadline, runner.logs()[-2000:]
            ready = runner.probe("readiness")
            alive = runner.probe("liveness")
            if ready.returncode == 0:
                break
            if "LOADING" in ready.stdout:
                assert (alive.returncode, alive.stdout) == (0, "")
                seen_loading = True
            time.sleep(0.01)
        assert seen_loading, "the AOF loaded before any probe saw LOADING"
        assert runner.probe("liveness").returncode == 0
