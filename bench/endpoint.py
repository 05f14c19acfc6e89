"""The primary endpoint's cost: redis-benchmark through the rendered HAProxy configuration vs
directly to the same Valkey, as ratios of requests per second and of p99 latency.

One valkey-server 8.1, one Sentinel monitoring it and the real haproxy with the configuration
``PrimaryEndpoint`` renders (``render_config``) for that one node, all on 127.0.0.1. The only
substitutions are local: the node and Sentinel addresses are 127.0.0.1 and free ports instead of
pod names, and the two ``bind`` lines listen on free loopback ports. Each round runs every test
direct and through HAProxy back to back, in alternating order (ABBA), on the same server.

:func:`loopback_endpoint` is also what tests/test_primary_endpoint.py runs the AUTH checks with.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.paths import free_port, valkey_bin_dir
from harness.process import stop

from ._common import Options, Result, command_line, fmt_int, fmt_ratio, machine, median, run, spread
from ._valkey import workdir

CLIENTS = 50
VALUE_BYTES = 256
KEYSPACE = 100_000
PIPELINES = (1, 16)
TESTS = ("SET", "GET")
MASTER_NAME = "bench"


@dataclass
class LoopbackEndpoint:
    """What :func:`loopback_endpoint` started: the ports, and haproxy's log file."""

    valkey_port: int
    sentinel_port: int
    port: int  # HAProxy's client port
    health_port: int
    haproxy_log: Path


def _wait(check: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not within {timeout}s")


def _cli(port: int, *args: str, password: str | None = None) -> str:
    env = {"REDISCLI_AUTH": password} if password else {}
    cli = str(valkey_bin_dir() / "valkey-cli")
    result = subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    return result.stdout.strip()


@contextlib.contextmanager
def loopback_endpoint(
    directory: Path,
    *,
    password: str | None = None,
    sentinel_password: bool = False,
    haproxy_password: str | None = None,
) -> Iterator[LoopbackEndpoint]:
    """A primary endpoint on loopback: valkey-server (``requirepass`` with ``password``), a
    Sentinel (with ``sentinel_password``, its own ``requirepass`` too) and haproxy running the
    rendered configuration (AUTH checks when ``password`` is set) with ``VALKEY_PASSWORD`` =
    ``haproxy_password`` (default: ``password``) in its environment. Passwords go through files
    and the environment, never argv. Every process is stopped on exit."""
    from cdk8s_valkey.primary_endpoint import render_config  # noqa: PLC0415 - jsii loads only here

    haproxy = shutil.which("haproxy")
    if haproxy is None:
        raise RuntimeError("haproxy is not installed: `make system-deps` installs it (Debian package haproxy)")
    bin_dir = valkey_bin_dir()
    vport, sport, hport, mport = free_port(), free_port(), free_port(), free_port()
    quoted = '"' + password.replace("\\", "\\\\").replace('"', '\\"') + '"' if password else ""
    auth = [f"requirepass {quoted}", f"masterauth {quoted}"] if password else []
    (directory / "valkey.conf").write_text(
        "\n".join([f"port {vport}", "bind 127.0.0.1", f"dir {directory}", "save ''", "appendonly no", *auth]) + "\n"
    )
    sentinel_lines = [
        f"port {sport}",
        "bind 127.0.0.1",
        f"dir {directory}",
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {vport} 1",
    ]
    if password:
        sentinel_lines.append(f"sentinel auth-pass {MASTER_NAME} {quoted}")
        if sentinel_password:
            sentinel_lines.append(f"requirepass {quoted}")
    (directory / "sentinel.conf").write_text("\n".join(sentinel_lines) + "\n")
    text = render_config(
        master_name=MASTER_NAME,
        announced_hosts=("127.0.0.1",),
        node_hosts=("127.0.0.1",),
        valkey_port=vport,
        sentinel_port=sport,
        quorum=1,
        auth=password is not None,
        max_connections=2000,
    )
    # The only change: free loopback ports instead of the pod's.
    text = text.replace("    bind :6379\n", f"    bind 127.0.0.1:{hport}\n")
    text = text.replace("    bind :8404\n", f"    bind 127.0.0.1:{mport}\n")
    (directory / "haproxy.cfg").write_text(text)
    log = directory / "haproxy.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen([str(bin_dir / "valkey-server"), str(directory / "valkey.conf")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        _wait(lambda: _cli(vport, "ping", password=password) == "PONG", "valkey-server")
        procs.append(subprocess.Popen([str(bin_dir / "valkey-server"), str(directory / "sentinel.conf"), "--sentinel"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        sentinel_auth = password if sentinel_password else None
        _wait(lambda: _cli(sport, "ping", password=sentinel_auth) == "PONG", "the Sentinel")
        env = {"PATH": "/usr/sbin:/usr/bin:/bin"}
        secret = haproxy_password if haproxy_password is not None else password
        if secret is not None:
            env["VALKEY_PASSWORD"] = secret
        with log.open("wb") as out:
            procs.append(subprocess.Popen([haproxy, "-db", "-f", str(directory / "haproxy.cfg")],
                                          stdout=out, stderr=subprocess.STDOUT, env=env))  # fmt: skip
        yield LoopbackEndpoint(vport, sport, hport, mport, log)
    finally:
        for proc in reversed(procs):
            stop(proc)


def routes(endpoint: LoopbackEndpoint, password: str | None = None) -> bool:
    """A PING through HAProxy answers PONG (it routes to the node)."""
    return _cli(endpoint.port, "ping", password=password) == "PONG"


def _benchmark(port: int, test: str, pipeline: int, requests: int, password: str | None) -> dict[str, float]:
    argv = [
        shutil.which("redis-benchmark") or "redis-benchmark",
        "-h", "127.0.0.1", "-p", str(port),
        "-c", str(CLIENTS), "-n", str(requests), "-P", str(pipeline),
        "-r", str(KEYSPACE), "-d", str(VALUE_BYTES), "-t", test.lower(), "--csv",
    ]  # fmt: skip
    result = run(argv, timeout=600, env={"PATH": "/usr/bin:/bin", **({"REDISCLI_AUTH": password} if password else {})})
    lines = result.stdout.strip().splitlines()
    header = next(csv.reader(io.StringIO(lines[0])))
    row = dict(zip(header, next(csv.reader(io.StringIO(lines[-1]))), strict=True))
    return {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"]), "p99_ms": float(row["p99_latency_ms"])}


def bench(opts: Options) -> Result:
    started = time.perf_counter()
    mach = machine()
    rounds = 1 if opts.quick else 9
    samples: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    with workdir("bench-endpoint-") as tmp, loopback_endpoint(tmp) as endpoint:
        _wait(lambda: routes(endpoint), "HAProxy routing to the node")
        targets = {"direct": endpoint.valkey_port, "haproxy": endpoint.port}
        for r in range(rounds):
            order = ["direct", "haproxy"] if r % 2 == 0 else ["haproxy", "direct"]
            for pipeline in PIPELINES:
                for test in TESTS:
                    n = (20_000 if pipeline == 1 else 100_000) // (10 if opts.quick else 1)
                    for target in order:
                        sample = _benchmark(targets[target], test, pipeline, n, None)
                        samples.setdefault((target, test, pipeline), []).append(sample)
    headers = [
        "command", "pipeline", "direct ops/s", "HAProxy ops/s", "ops/s ratio",
        "direct p99 ms", "HAProxy p99 ms", "p99 ratio",
    ]  # fmt: skip
    rows: list[list[str]] = []
    ratios: dict[str, dict[str, float]] = {}
    for pipeline in PIPELINES:
        for test in TESTS:
            pair = list(zip(samples[("direct", test, pipeline)], samples[("haproxy", test, pipeline)], strict=True))
            # Paired: each round's two runs were back to back, so the machine's load cancels out
            # better in their ratio than in a ratio of medians.
            rps = [h["rps"] / d["rps"] for d, h in pair]
            p99 = [h["p99_ms"] / d["p99_ms"] for d, h in pair]
            ratios[f"{test} -P {pipeline}"] = {"rps": median(rps), "p99": median(p99)}
            rows.append(
                [
                    test,
                    f"-P {pipeline}",
                    fmt_int(median([d["rps"] for d, _ in pair])),
                    fmt_int(median([h["rps"] for _, h in pair])),
                    f"**{fmt_ratio(median(rps))}** ({spread(rps)})",
                    f"{median([d['p99_ms'] for d, _ in pair]):.2f}",
                    f"{median([h['p99_ms'] for _, h in pair]):.2f}",
                    f"**{fmt_ratio(median(p99))}** ({spread(p99)})",
                ]
            )
    notes = [
        f"redis-benchmark {CLIENTS} clients, {KEYSPACE} random keys, {VALUE_BYTES}-byte values; {rounds} "
        "round(s), direct and through HAProxy back to back in alternating order (ABBA) on the same "
        "valkey-server; ratios are HAProxy / direct, the median of each round's ratio (min-max in brackets).",
        "Everything on one machine's loopback: HAProxy's own CPU competes with Valkey and the benchmark, "
        "and the network hop a pod adds in a cluster is not here (it adds the same to both paths).",
    ]
    return Result(
        name="endpoint",
        title="6. Primary endpoint: HAProxy vs a direct connection (redis-benchmark)",
        command=command_line("endpoint", opts),
        machine=mach,
        headers=headers,
        rows=rows,
        notes=notes,
        data={
            "rounds": rounds,
            "samples": {f"{t}|{c}|{p}": v for (t, c, p), v in samples.items()},
            "ratios": ratios,
            "clients": CLIENTS,
            "value_bytes": VALUE_BYTES,
        },
        seconds=time.perf_counter() - started,
    )
