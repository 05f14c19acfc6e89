"""A stand-in for ``kubectl`` on the PATH of the runbook tests: ``kubectl exec`` into a pod the
test runs locally, anything else refused.

The documented block runs as written (``kubectl -n apps exec -i valkey-aof-repair -- sh -eu <<'EOF'``
...); this shim turns its ``exec`` into the same command run on this machine:

- the namespace, pod and container must be ones the test declared (``KUBECTL_SHIM_PODS``: a JSON
  map ``{"<ns>/<pod>": {"containers": [...], "data": "<dir>", "path": "<PATH>"}}``), so a wrong
  name in a runbook fails here as it would on the cluster;
- the pod's ``/data`` mount is the test's data directory: ``/data`` in the arguments, and in the
  script read from stdin with ``-i``, is rewritten to it (stdin is passed only with ``-i``, as
  kubectl does);
- the command runs with the container's PATH (``valkey-cli`` there talks to the test's server) and
  under ``KUBECTL_SHIM_WRAP``, a JSON argv prefix that runs it as the pod's user.

Every other subcommand (``get``, ``logs``, ``patch``, ...) exits 97: those steps are checked
statically. Each call is appended to ``KUBECTL_SHIM_LOG`` (JSON lines) for the test to read.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

REFUSED = 97
_DATA = re.compile(r"(?<![\w./-])/data(?=/|\s|$|['\"])")


def _log(entry: dict[str, object]) -> None:
    path = os.environ.get("KUBECTL_SHIM_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def _refuse(argv: list[str], why: str) -> int:
    _log({"argv": argv, "ran": False, "why": why})
    print(f"kubectl (test shim): not run here: {why}: kubectl {' '.join(argv)}", file=sys.stderr)
    return REFUSED


def main(argv: list[str]) -> int:
    namespace = "default"
    container: str | None = None
    stdin = False
    args = list(argv)
    rest: list[str] = []
    command: list[str] = []
    while args:
        arg = args.pop(0)
        if arg == "--":
            command = args
            break
        if arg in ("-n", "--namespace"):
            namespace = args.pop(0)
        elif arg.startswith("--namespace="):
            namespace = arg.split("=", 1)[1]
        elif arg in ("-c", "--container"):
            container = args.pop(0)
        elif arg in ("-i", "--stdin", "-it", "-ti"):
            stdin = True
        elif arg in ("-t", "--tty", "-q", "--quiet"):
            pass
        else:
            rest.append(arg)
    if not rest or rest[0] != "exec":
        return _refuse(argv, f"only `kubectl exec` runs in the test, not `{rest[0] if rest else ''}`")
    if len(rest) != 2 or not command:
        return _refuse(argv, "expected `kubectl exec [-n NS] [-i] POD [-c CONTAINER] -- COMMAND...`")
    pods = json.loads(os.environ["KUBECTL_SHIM_PODS"])
    pod = pods.get(f"{namespace}/{rest[1]}")
    if pod is None:
        return _refuse(argv, f"no pod {namespace}/{rest[1]} in this test (declared: {sorted(pods)})")
    container = container or pod["containers"][0]
    if container not in pod["containers"]:
        return _refuse(argv, f"pod {rest[1]} has no container {container} in this test")

    data = pod["data"]
    run = [_DATA.sub(data, part) for part in command]
    script = _DATA.sub(data, sys.stdin.read()) if stdin else None
    wrap = json.loads(os.environ.get("KUBECTL_SHIM_WRAP", "[]"))
    env = {"PATH": pod.get("paths", {}).get(container, pod["path"]), "HOME": "/", "LANG": "C.UTF-8"}
    io: dict[str, object] = {"input": script} if script is not None else {"stdin": subprocess.DEVNULL}
    result = subprocess.run([*wrap, *run], env=env, text=True, check=False, **io)  # type: ignore[call-overload]
    _log({"argv": argv, "ran": True, "pod": rest[1], "container": container, "exit": result.returncode})
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
