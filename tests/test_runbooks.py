"""Every shell block of README.md and docs/*.md, as the reader pastes it (harness/runbook.py).

Statically, for every ```sh / ```bash block:
- shellcheck passes on it (with the setup blocks in scope before it), and on every script it feeds
  to ``sh`` through a quoted heredoc;
- it sets every variable and helper function it uses (itself or through a setup block in scope);
- every object a ``kubectl`` command names in the namespace of a ``dist/`` file exists in that file
  (pods: the StatefulSet's; objects the same page creates with ``kubectl create -f -``);
- no size is written out (``5Gi``): sizes are read from the claim;
- the commands are the ones that exist here: ``make <target>`` of the Makefile, ``npx cdk8s``,
  ``.venv/bin/python -m cdk8s_valkey <subcommand>``, never a bare ``python`` or ``cdk8s``;
- pausing GitOps is written once (the shared snippet), snapshot names are unique.

For real, against the rendered production container (valkey-server 8.1, ``harness/podrunner.py``),
and for the Sentinel topology's sections against a primary, two replicas and three Sentinels on
loopback (pods valkey-0..2, containers valkey and sentinel): every command line of the runbooks
whose ``kubectl`` calls are all ``exec`` into those pods runs as written through
``harness/kubectl_shim.py``; it must exit 0, and a ``| grep`` must find its
fields; so must every inline `vcli ...` command of the runbooks. The list of lines run and lines
checked statically is printed (``-s``) and written to ``<basetemp>/runbooks/runbook-lines.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdk8s_valkey import runbook, sentinel_alerts
from harness import servers
from harness.paths import REPO, free_port, require_binary
from harness.podrunner import IMAGE_PATH, PodRunner, load_manifest
from harness.runbook import DOC_FILES, SHELLS, Block, ShimPod, blocks, run_block, shell_blocks
from harness.wait import wait_for

BLOCKS = shell_blocks()
DIST = {p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted((REPO / "dist").glob("*.k8s.yaml"))}


def _ids(block: Block) -> str:
    return block.id


# -- shellcheck ---------------------------------------------------------------------------------

_QUOTED_HEREDOC = re.compile(r"(\bsh\b[^\n]*?)<<'(\w+)'\n(.*?)\n\2\n", re.S)


def _shellcheck(text: str, tmp: Path, name: str, *, shell: str) -> str:
    script = tmp / f"{name}.sh"
    script.write_text(text)
    # SC2034: a variable set for the next block (BACKUP=..., then used below it) is not unused.
    result = subprocess.run(
        [require_binary("shellcheck"), f"--shell={shell}", "--exclude=SC2034", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if result.returncode == 0 else result.stdout


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
@pytest.mark.real
def test_block_passes_shellcheck(block: Block, tmp_path: Path) -> None:
    shell = "bash" if block.lang == "bash" else "sh"
    findings = _shellcheck(block.with_setup(), tmp_path, "block", shell=shell)
    assert not findings, f"{block.id}:\n{block.with_setup()}\n{findings}"
    for i, match in enumerate(_QUOTED_HEREDOC.finditer(block.text)):
        flags = "set -eu\n" if re.search(r"\bsh -eu\b", match.group(1)) else ""
        findings = _shellcheck(flags + match.group(3) + "\n", tmp_path, f"heredoc{i}", shell="sh")
        assert not findings, f"{block.id}: the script of its heredoc:\n{match.group(3)}\n{findings}"


def test_every_shell_block_of_the_docs_is_covered() -> None:
    """Each fence of README.md and docs/*.md is a shell block (tested above) or is labelled as
    what it is; an unlabelled fence holding shell commands would escape the tests."""
    for path in DOC_FILES:
        for block in blocks(path):
            if block.lang in ("", "text"):
                first = block.text.lstrip().split(" ", 1)[0]
                assert first not in {"kubectl", "make", "vcli", "scli", "npx", "flux", "argocd", ".venv/bin/python"}, (
                    f"{block.id}: shell commands in a ``` block without a language: label it ```sh"
                )
    assert len(BLOCKS) >= 40, f"only {len(BLOCKS)} shell blocks found: is the extraction broken?"


# -- variables and helper functions -------------------------------------------------------------

_SPECIAL = {"HOME", "PATH", "PWD", "IFS", "REDISCLI_AUTH"}
_ASSIGN = re.compile(r"(?:^|[\s;&|(])(?:export\s+|local\s+|readonly\s+)?([A-Za-z_]\w*)=")
_FOR = re.compile(r"\bfor\s+([A-Za-z_]\w*)\s+in\b")
_READ = re.compile(r"\bread\s+(?:-r\s+)?([A-Za-z_]\w*)")
_FUNC = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*\(\)\s*\{", re.M)
_REF = re.compile(r"\$\{?([A-Za-z_]\w*)")
_COMMENT = re.compile(r"(?:^|(?<=\s))#.*$", re.M)


def _shell_view(text: str) -> str:
    """The text whose variables this shell expands: quoted heredocs and single quotes removed."""
    text = _QUOTED_HEREDOC.sub(lambda m: m.group(1), text)
    text = re.sub(r"<<'(\w+)'\n.*?\n\1\n", "\n", text, flags=re.S)
    text = _COMMENT.sub("", text)
    text = re.sub(r"\$\{\w+:-", "${", text)  # ${POD:-default}: set or not, it has a value
    return re.sub(r"'[^']*'", "''", text)


def _helpers() -> set[str]:
    return {name for b in BLOCKS for name in _FUNC.findall(b.text)}


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
def test_block_sets_the_variables_it_uses(block: Block) -> None:
    text = block.with_setup()
    view = _shell_view(text)
    assigned = set(_ASSIGN.findall(view)) | set(_FOR.findall(view)) | set(_READ.findall(view)) | _SPECIAL
    used = set(_REF.findall(view))
    assert used <= assigned, f"{block.id} uses {sorted(used - assigned)} without setting it:\n{text}"
    defined = set(_FUNC.findall(text))
    called = {h for h in _helpers() if re.search(rf"(?:^|[;&|]\s*|\bdo\s+|\w=\S+\s+){re.escape(h)}\b", view, re.M)}
    assert called <= defined, f"{block.id} calls {sorted(called - defined)} without defining it:\n{text}"


# -- names against dist/ ------------------------------------------------------------------------

# Kinds a block may name that no manifest holds: the cluster's, Longhorn's and the GitOps tools'.
_CLUSTER_KINDS = {
    "pv",
    "persistentvolume",
    "nodes",
    "node",
    "storageclass",
    "volumes.longhorn.io",
    "backups.longhorn.io",
    "snapshots.longhorn.io",
    "backuptargets.longhorn.io",
    "application",
    "endpoints",
}
_KINDS = {
    "statefulset": "StatefulSet",
    "sts": "StatefulSet",
    "pvc": "PersistentVolumeClaim",
    "persistentvolumeclaim": "PersistentVolumeClaim",
    "configmap": "ConfigMap",
    "cm": "ConfigMap",
    "service": "Service",
    "svc": "Service",
    "servicemonitor": "ServiceMonitor",
    "prometheusrule": "PrometheusRule",
    "job": "Job",
    "networkpolicy": "NetworkPolicy",
    "recurringjobs.longhorn.io": "RecurringJob",
    "pod": "Pod",
    "pods": "Pod",
}
_VERB = re.compile(r"\bkubectl\s+(.*?)(?=$|\||;|&&|\)|`)", re.M)


def _expand(text: str, context: str = "") -> str:
    """``text`` with the literal assignments of ``context`` and ``text`` substituted
    (NS=apps, NAME=valkey, POD="$NAME-0")."""
    values: dict[str, str] = {}
    assignments = r"(?:^|\s)([A-Za-z_]\w*)=(\"[^\"$]*(?:\$\{?\w+\}?[^\"$]*)*\"|[\w./-]+)"
    for name, raw in re.findall(assignments, context + text, re.M):
        values[name] = re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), raw.strip('"'))
    return re.sub(r"\"?\$\{?(\w+)\}?\"?", lambda m: values.get(m.group(1), m.group(0)), text)


def _named_objects(command: str) -> Iterator[tuple[str | None, str, str]]:
    """(namespace, kind, name) of each object a kubectl command line names."""
    words = _COMMENT.sub("", command).replace('"', "").split()
    ns = None
    rest: list[str] = []
    i = 0
    while i < len(words):
        if words[i] in ("-n", "--namespace"):
            ns = words[i + 1] if i + 1 < len(words) else None
            i += 2
            continue
        if words[i].startswith("-"):
            # an option and, for those that take one, its value
            if words[i] in ("-c", "-l", "-o", "-p", "--type", "--for", "--timeout", "--sort-by", "--selector"):
                i += 1
            i += 1
            continue
        rest.append(words[i])
        i += 1
    if not rest:
        return
    verb, args = rest[0], rest[1:]
    if verb in ("get", "describe", "delete", "scale", "wait", "label", "patch", "logs", "exec", "top", "annotate"):
        if verb in ("logs", "exec"):
            args = [f"pod/{a}" if "/" not in a else a for a in args[:1]]
        elif verb == "top":
            args = [f"pod/{a}" for a in args[1:2]] if args[:1] == ["pod"] else []
        kind = None
        for arg in args:
            if "$" in arg or "=" in arg:
                continue
            if "/" in arg:
                kind_part, name = arg.split("/", 1)
                yield ns, kind_part.lower(), name
            elif kind is None:
                kind = arg.lower()
            else:
                for k in kind.split(","):
                    yield ns, k, arg


def _dist_objects() -> dict[str, set[tuple[str, str]]]:
    """namespace -> {(Kind, name)} of every dist/ file, pods of the StatefulSets included."""
    found: dict[str, set[tuple[str, str]]] = {}
    for objects in DIST.values():
        for obj in objects:
            ns = obj["metadata"].get("namespace", "")
            found.setdefault(ns, set()).add((obj["kind"], obj["metadata"]["name"]))
            if obj["kind"] == "StatefulSet":
                for i in range(obj["spec"].get("replicas", 1)):
                    found[ns].add(("Pod", f"{obj['metadata']['name']}-{i}"))
    return found


def _created_by_docs() -> set[tuple[str, str]]:
    made = set()
    for block in BLOCKS:
        for body in re.findall(r"kubectl (?:-n \S+ )?create -f - <<'?EOF'?\n(.*?)\nEOF\n", block.text, re.S):
            obj = yaml.safe_load(body)
            made.add((obj["kind"], obj["metadata"]["name"]))
    return made


@pytest.mark.parametrize("block", [b for b in BLOCKS if "kubectl" in b.text], ids=_ids)
def test_objects_named_exist_in_dist(block: Block) -> None:
    dist = _dist_objects()
    created = _created_by_docs()
    text = _expand(block.text, "".join(s.text for s in block.setup))
    text = re.sub(r"<<'?EOF'?\n.*?\nEOF\n", "\n", text, flags=re.S)
    checked = 0
    for command in _VERB.findall(text.replace("\\\n", " ")):
        for ns, kind, name in _named_objects(command):
            if kind in _CLUSTER_KINDS or "$" in name or "<" in name or "{" in name:
                continue
            assert kind in _KINDS, f"{block.id}: kubectl names a {kind!r}: add it to the kinds this test knows"
            if ns not in dist:
                assert ns is not None and ns.startswith(("longhorn", "argocd", "flux")), (
                    f"{block.id}: `kubectl {command}`: namespace {ns} is in no dist/ file ({sorted(dist)})"
                )
                continue
            wanted = (_KINDS[kind], name)
            assert wanted in dist[ns] or wanted in created, (
                f"{block.id}: `kubectl {command}` names {wanted[0]} {ns}/{name}, which no dist/ file has"
            )
            checked += 1
    # A block naming objects in a dist/ namespace had at least one of them checked.
    bare = _COMMENT.sub("", text)
    if re.search(r"-n\s+\"?(apps|\$NS)\b", bare) and re.search(r"\bkubectl .*\b(pvc|statefulset|pod)[ \t]+\w", bare):
        assert checked, f"{block.id}: names objects, none checked: is the parser missing a form?"


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
def test_no_size_is_written_out(block: Block) -> None:
    sizes = re.findall(r"\b\d+(?:Ki|Mi|Gi|Ti)\b", block.text)
    assert not sizes, f"{block.id} writes sizes {sizes}: read them from the claim (kubectl get pvc -o jsonpath=...)"


# -- the commands exist -------------------------------------------------------------------------


def _commands(block: Block) -> list[str]:
    text = re.sub(r"<<'?(\w+)'?\n.*?\n\1\n", "\n", block.text, flags=re.S).replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
@pytest.mark.real
def test_documented_commands_exist_as_written(block: Block) -> None:
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
    for line in _commands(block):
        first = line.split()[0]
        assert first not in ("python", "python3", "cdk8s", "pip"), (
            f"{block.id}: `{line}` fails as written in a fresh shell: use `make ...`, `npx cdk8s` or `.venv/bin/python`"
        )
        if first == "make":
            for target in line.split("#")[0].split()[1:]:
                if "=" not in target and not target.startswith("-"):
                    assert target in targets, f"{block.id}: `{line}`: the Makefile has no target {target}"
        if line.startswith(".venv/bin/python -m cdk8s_valkey"):
            argv = line.split("#")[0].split()[:4]
            result = subprocess.run(
                [str(REPO / ".venv/bin/python"), *argv[1:], "--help"],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, f"{block.id}: `{' '.join(argv)} --help` fails:\n{result.stderr}"


def test_gitops_pause_is_written_once() -> None:
    """Pausing and resuming Argo CD and Flux is one shared snippet; everything else links to it."""
    pausing = [b for b in BLOCKS if re.search(r"syncPolicy|argocd app|flux .*(suspend|resume)", b.text)]
    where = {(b.path.name, b.section) for b in pausing}
    assert where == {("operations.md", "Pause and resume GitOps")} and len(pausing) == 4, [b.id for b in pausing]
    text = "\n".join(p.read_text() for p in DOC_FILES)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    assert not re.search(r"turn off auto-sync|--sync-policy none|flux suspend", prose), (
        "a page describes pausing GitOps in its own words: link to docs/operations.md#pause-and-resume-gitops"
    )


@pytest.mark.real
def test_pre_upgrade_snapshot_name_is_unique(tmp_path: Path) -> None:
    """A second upgrade must not silently keep the first one's rollback point."""
    (block,) = [b for b in BLOCKS if "kind: Snapshot" in b.text]
    assignment = re.search(r"\A.*?^SNAPSHOT=.*?$", block.text, re.M | re.S)
    assert assignment, f"{block.id}: the snapshot's name is not set in SNAPSHOT="
    assert "kubectl create -f -" in block.text and "name: $SNAPSHOT" in block.text, block.text
    names = set()
    for _ in range(2):
        out = subprocess.run(
            ["sh", "-c", assignment.group(0) + '\necho "$SNAPSHOT"'], capture_output=True, text=True, check=False
        )
        names.add(out.stdout.strip())
        time.sleep(1.1)
    assert len(names) == 2, f"the same snapshot name twice: {names}"
    for name in names:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name), name


# -- the Valkey-level steps, for real -----------------------------------------------------------

RUN_DOCS = [REPO / "docs" / "runbooks.md", REPO / "docs" / "operations.md", REPO / "README.md"]
SEEDED_QUEUES = ("emails", "webhooks")
SENTINEL_ALERTS = set(sentinel_alerts.ALERT_NAMES) | {"Migrating to replicas and Sentinel"}
_report: dict[str, list[dict[str, Any]]] = {"ran": [], "static": []}


@pytest.fixture(scope="module")
def valkey_pod(valkey_bin_dir: Path) -> Iterator[PodRunner]:
    """The production container of dist/ (valkey-server 8.1, its entrypoint and config), with a
    few BullMQ-like keys and an AOF rewrite behind it."""
    tmp = Path(tempfile.mkdtemp(prefix="runbooks-"))
    try:
        with PodRunner(load_manifest(), workdir=tmp / "valkey-0", bin_dir=valkey_bin_dir) as pod:
            pod.prepare()
            pod.start()
            pod.wait_ready(timeout=20)
            client = pod.client()
            for q in SEEDED_QUEUES:
                client.rpush(f"bull:{q}:wait", "1", "2")
                client.zadd(f"bull:{q}:completed", {"3": 3})
                client.hset(f"bull:{q}:meta", "paused", "0")
            client.bgrewriteaof()
            deadline = time.monotonic() + 10
            while client.info("persistence")["aof_rewrites"] < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            yield pod
            pod.stop(timeout=15)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_STEP = re.compile(r"\b(kubectl|vcli|scli|roles)\b")
_ASSIGNMENT_ONLY = re.compile(r"^(?:[A-Za-z_]\w*=\S*\s*)+(?:#.*)?$")


_SENTINEL_CLI = """#!/bin/sh
# valkey-cli in the sentinel container: this test's Sentinel listens on {port}, not the pod's
# 26379, so the -p of the runbook's command is replaced.
n=$#
while [ "$n" -gt 0 ]; do
  a=$1; shift; n=$((n - 1))
  if [ "$a" = -p ]; then shift; n=$((n - 1)); else set -- "$@" "$a"; fi
done
exec "{bin}/valkey-cli" -p {port} -e "$@"
"""


@pytest.fixture(scope="module")
def sentinel_topology(valkey_bin_dir: Path) -> Iterator[list[ShimPod]]:
    """The Sentinel topology on loopback, as the runbooks' pods valkey-0..2: a primary
    (valkey-0) and two replicas, and three Sentinels monitoring it as ``valkey`` (quorum 2)."""
    tmp = Path(tempfile.mkdtemp(prefix="runbooks-sentinel-"))
    env = {**os.environ, "PATH": f"{valkey_bin_dir}:{os.environ['PATH']}"}
    ns, name = "apps", "valkey"  # the runbooks' setup: NS=apps NAME=valkey MASTER="$NAME"
    try:
        with contextlib.ExitStack() as stack:
            ports = [free_port() for _ in range(3)]
            pods = []
            for i, port in enumerate(ports):
                data = tmp / f"{name}-{i}"
                data.mkdir()
                extra = [f"replicaof 127.0.0.1 {ports[0]}"] if i else []
                conf = servers.write_config(data / "valkey.conf", port=port, data_dir=data, extra=extra)
                stack.enter_context(servers.running_server(env, conf, port, data / "valkey.log"))
                sentinel_port = free_port()
                sconf = data / "sentinel.conf"
                sconf.write_text(
                    f"port {sentinel_port}\ndir {data}\nsentinel monitor {name} 127.0.0.1 {ports[0]} 2\n"
                    f"sentinel down-after-milliseconds {name} 5000\n"
                )
                stack.enter_context(
                    servers.running_server(env, sconf, sentinel_port, data / "sentinel.log", "--sentinel")
                )
                tools = {"valkey": data / "tools-valkey", "sentinel": data / "tools-sentinel"}
                for tool_dir in tools.values():
                    tool_dir.mkdir()
                (tools["valkey"] / "valkey-cli").write_text(
                    f'#!/bin/sh\nexec "{valkey_bin_dir}/valkey-cli" -p {port} -e "$@"\n'
                )
                (tools["sentinel"] / "valkey-cli").write_text(
                    _SENTINEL_CLI.format(port=sentinel_port, bin=valkey_bin_dir)
                )
                for tool_dir in tools.values():
                    (tool_dir / "valkey-cli").chmod(0o755)
                paths = {c: f"{d}:{valkey_bin_dir}:{IMAGE_PATH}" for c, d in tools.items()}
                pods.append(ShimPod(ns, f"{name}-{i}", ["valkey", "sentinel"], data, paths["valkey"], paths=paths))
            primary = servers.client(ports[0])
            sentinel = servers.client(int(pods[0].data.joinpath("sentinel.conf").read_text().split()[1]))
            wait_for(lambda: primary.info("replication")["connected_slaves"] == 2, 30, "two replicas in sync")
            wait_for(lambda: _ckquorum(sentinel, name).startswith("OK 3"), 30, "three Sentinels agreeing")
            yield pods
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ckquorum(sentinel: Any, name: str) -> str:
    return str(sentinel.execute_command("SENTINEL", "CKQUORUM", name))


def _steps_of(block: Block) -> list[str]:
    """A block's command lines: continuation lines joined, a heredoc kept with its command,
    comment-only lines dropped."""
    steps: list[str] = []
    lines = block.text.replace("\\\n", " ").splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        heredoc = re.search(r"<<-?'?(\w+)'?", line)
        if heredoc:
            while i < len(lines) and lines[i].rstrip("\n") != heredoc.group(1):
                line += lines[i]
                i += 1
            line += lines[i] if i < len(lines) else ""
            i += 1
        steps.append(line)
    return steps


def _runnable_lines(block: Block) -> list[tuple[str, str]]:
    """(what runs before it, the step) for each step of a block that calls kubectl or a helper,
    run after the block's plain assignments above it (Q=emails). A block with a construct over
    several lines (if ... fi) is one step."""
    lines = _steps_of(block)
    if any(subprocess.run(["sh", "-n", "-c", line], capture_output=True, check=False).returncode for line in lines):
        return [("", block.text)]
    steps, before = [], ""
    for line in lines:
        if _ASSIGNMENT_ONLY.match(line.strip()):
            before += line
        elif _STEP.search(line):
            steps.append((before, line))
    return steps


def _pod_shims(pod: PodRunner, valkey_bin_dir: Path) -> list[ShimPod]:
    """The Valkey pod, and the restore runbook's repair pod on the same claim (its image, its
    user): both exec into this test's pod."""
    (sts,) = [o for o in load_manifest() if o["kind"] == "StatefulSet"]
    tools = pod.workdir / "shim-tools"
    tools.mkdir(exist_ok=True)
    # valkey-cli in the pod reaches its own server; -e: an error reply fails the step.
    (tools / "valkey-cli").write_text(f'#!/bin/sh\nexec "{valkey_bin_dir}/valkey-cli" -p {pod.port} -e "$@"\n')
    (tools / "valkey-cli").chmod(0o755)
    if not (tools / "valkey-check-aof").exists():
        (tools / "valkey-check-aof").symlink_to(valkey_bin_dir / "valkey-server")  # as the image has it
    ns, path = sts["metadata"]["namespace"], f"{tools}:{valkey_bin_dir}:{IMAGE_PATH}"
    containers = [c["name"] for c in sts["spec"]["template"]["spec"]["containers"]]
    return [
        ShimPod(ns, f"{sts['metadata']['name']}-0", containers, pod.data_dir, path),
        ShimPod(ns, runbook.values(load_manifest())["repair"], ["repair"], pod.data_dir, path),
    ]


@pytest.mark.parametrize(
    "block", [b for b in shell_blocks(RUN_DOCS) if "kubectl" in b.with_setup() and not b.is_setup], ids=_ids
)
@pytest.mark.root
def test_runbook_lines_run_against_valkey(
    block: Block, valkey_pod: PodRunner, valkey_bin_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    sentinel = block.section in SENTINEL_ALERTS
    # The Sentinel topology's sections run against a real one; the others against the rendered pod.
    shims = request.getfixturevalue("sentinel_topology") if sentinel else _pod_shims(valkey_pod, valkey_bin_dir)
    setup = "".join(s.text for s in block.setup)
    wrap = [] if sentinel else valkey_pod._wrap([])
    # The setup's own kubectl calls (OLD_VOLUME=$(kubectl get ...)) are not the step's.
    setup_calls = len(run_block(setup, shims, tmp_path, wrap=wrap).calls) if setup else 0
    drill = next((m for m in block.markers if m.startswith("drill:")), None)
    for before, line in _runnable_lines(block):
        entry = {"block": block.id, "line": line.strip()[:160], "section": block.section}
        if drill:  # it repairs a copy, not a live server: the drill runs it on real copies
            entry["ran in"] = f"tests/test_restore_drill.py ({drill})"
            _report["ran"].append(entry)
            continue
        run = run_block(setup + before + line, shims, tmp_path, wrap=wrap, timeout=60)
        run.calls = run.calls[setup_calls:]
        if run.refused or not run.ran:
            _report["static"].append(entry)
            continue
        _report["ran"].append(entry)
        # The step's own commands succeeded (a pipeline's status is its last command's: grep).
        failed = [c for c in run.ran if c["exit"] != 0]
        assert not failed, f"{block.id}: `{line.strip()}`: {failed}\n{run.stdout}\n{run.stderr}"
        if re.search(r"\|\s*grep\b(?!\s+-c)", line):
            assert run.stdout.strip(), f"{block.id}: `{line.strip()}`: its grep found nothing in Valkey 8.1's reply"
        if "head -c 9" in line:  # the upgrade's rollback check: which RDB the base file is
            assert run.stdout.splitlines()[-1] == "REDIS0011", run.stdout


def _inline_vcli() -> list[str]:
    """The `vcli ...` commands the runbooks give inline (**Check**: `vcli config get maxmemory`),
    without those holding a placeholder (`<bytes>`)."""
    found = {" ".join(m.split()) for path in RUN_DOCS for m in re.findall(r"`(vcli [^`]+)`", path.read_text())}
    return sorted(c for c in found if "<" not in c)


@pytest.mark.root
def test_inline_vcli_commands_run_against_valkey(valkey_pod: PodRunner, valkey_bin_dir: Path, tmp_path: Path) -> None:
    setup = "".join(b.text for b in blocks(REPO / "docs" / "runbooks.md") if b.is_setup)
    shims = _pod_shims(valkey_pod, valkey_bin_dir)
    commands = _inline_vcli()
    assert "vcli config get maxmemory" in commands and "vcli bgrewriteaof" in commands, commands
    for command in commands:
        run = run_block(setup + command + "\n", shims, tmp_path, wrap=valkey_pod._wrap([]), timeout=60)
        assert run.ran and not run.refused, f"`{command}` did not exec into the pod: {run.calls}"
        failed = [c for c in run.ran if c["exit"] != 0]
        assert not failed, f"`{command}`: {failed}\n{run.stdout}\n{run.stderr}"
        if "| grep" in command:
            assert run.stdout.strip(), f"`{command}`: its grep found nothing in Valkey 8.1's reply"
        if command == "vcli config get maxmemory":
            assert int(run.stdout.split()[1]) > 0, run.stdout  # set by the entrypoint from the limit
        if command == "vcli bgrewriteaof":  # let it finish before the next command
            deadline = time.monotonic() + 20
            while valkey_pod.client().info("persistence")["aof_rewrite_in_progress"]:
                assert time.monotonic() < deadline, "the rewrite did not finish"
                time.sleep(0.05)
        _report["ran"].append({"block": "inline", "line": command, "section": ""})


@pytest.mark.real
def test_the_valkey_level_steps_are_runnable_lines() -> None:
    """The steps this module runs for real stay in the runbooks as lines of their own (a line that
    also calls kubectl get/logs would only be checked statically)."""
    steps = [line for b in shell_blocks(RUN_DOCS) for _, line in _runnable_lines(b)]
    runnable = [line for line in steps if re.match(r"\s*(vcli|kubectl (-n \S+ )?exec)\b", line)]
    for wanted in ("vcli info persistence", "vcli info memory", "vcli client list", "df -h /data", "valkey-check-aof"):
        assert any(wanted in line for line in runnable), f"no runnable runbook line does {wanted!r}"


@pytest.fixture(scope="module", autouse=True)
def _write_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the module: the lines run for real and those checked statically, printed (``-s``)
    and written to ``<basetemp>/runbooks/runbook-lines.json``."""
    yield
    if _report["ran"] or _report["static"]:
        out = tmp_path_factory.getbasetemp() / "runbooks"
        out.mkdir(exist_ok=True)
        (out / "runbook-lines.json").write_text(json.dumps(_report, indent=2) + "\n")
        print(json.dumps({k: len(v) for k, v in _report.items()}))


# -- the restore runbook, generated from the manifest -------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The subcommand as the docs give it, from the repository root."""
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-m", "cdk8s_valkey", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _generated_steps(output: str) -> list[str]:
    return [step.split("\n", 1)[1].rstrip("\n") + "\n" for step in output.split("# -- ")[1:]]


@pytest.mark.real
def test_restore_runbook_in_the_docs_is_the_generated_one() -> None:
    """docs/operations.md's restore blocks are `runbook restore dist/valkey.k8s.yaml`, block by block."""
    result = _cli("runbook", "restore", "dist/valkey.k8s.yaml")
    assert result.returncode == 0, result.stderr
    text = (REPO / "docs" / "operations.md").read_text()
    section = text.split("### Restore a Longhorn backup into the claim", 1)[1].split("\n### ", 1)[0]
    documented = [b.text for b in blocks(REPO / "docs" / "operations.md") if b.lang in SHELLS and b.text in section]
    assert documented == _generated_steps(result.stdout)


@pytest.mark.real
def test_restore_runbook_for_staging(tmp_path: Path) -> None:
    """Another manifest, other names: staging's namespace everywhere, no Longhorn labels (no
    backups there), and the whole output passes shellcheck."""
    result = _cli("runbook", "restore", "dist/valkey-staging.k8s.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("-n apps-staging ") >= 10 and "-n apps " not in result.stdout
    assert "namespace: apps-staging" in result.stdout and "recurring-job" not in result.stdout
    assert not _shellcheck(result.stdout, tmp_path, "staging", shell="sh")
    (claim,) = [o for o in DIST["valkey-staging.k8s.yaml"] if o["kind"] == "PersistentVolumeClaim"]
    assert f"claimName: {claim['metadata']['name']}" in result.stdout


@pytest.mark.real
def test_restore_runbook_refuses_an_unknown_valkey() -> None:
    result = _cli("runbook", "restore", "dist/valkey.k8s.yaml", "--name", "sessions")
    assert result.returncode == 64
    assert "the manifest has 0 StatefulSet named 'sessions', not one (there: ['valkey'])" in result.stderr
