"""Benchmark 2, throughput: the Valkey server exactly as the rendered container starts it (through
harness/podrunner.py: the rendered entrypoint, config file, env) against the same server with
persistence off (`--appendonly no --save ""` appended to the container args), under Debian's
`redis-benchmark` on 127.0.0.1, pipelined (-P 16) and not.

Commands: SET, GET, LPUSH, RPOP (redis-benchmark's own tests, 256-byte values, 100k random keys)
and a BullMQ-shaped mix: one EVALSHA of a Lua script that replays the Valkey commands of one
BullMQ job's life (add, move to active with a lock, complete with removeOnComplete) — see
`BULLMQ_JOB_LUA`. The full mode also runs the rendered config with `--appendfsync no`, which
splits the cost of persistence into writing the AOF and fsyncing it.
"""

from __future__ import annotations

import csv
import io
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from ._common import (
    Options,
    Result,
    command_line,
    fmt_int,
    fmt_ratio,
    machine,
    median,
    run,
)
from ._valkey import cli, command_calls, info, rendered_pod, wait_rewrite_done, workdir

CLIENTS = 50
KEYSPACE = 100_000
VALUE_BYTES = 256
PIPELINES = (1, 16)
COSTLY = 0.85  # a setting costing more than 15 % gets explained

# What BullMQ 5/6 does to Valkey for one job, flattened into one script: addStandardJob (INCR id,
# meta lookups, HSET job hash, LPUSH wait, marker ZADD, XADD event), moveToActive (marker pop,
# RPOPLPUSH wait->active, lock SET PX, HSET processedOn, XADD), moveToFinished (DEL lock, LREM
# active, ZADD completed, HSET returnvalue/finishedOn, XADD) and removeOnComplete {count: 1000}.
# About 20 commands, all writes but the lookups: the real scripts do more checks in Lua.
BULLMQ_JOB_LUA = """
local p = 'bull:bench:'
local ts = ARGV[2]
local id = redis.call('INCR', p .. 'id')
local job = p .. id
redis.call('HGET', p .. 'meta', 'opts.maxLenEvents')
redis.call('HSET', job, 'name', 'email', 'data', ARGV[1], 'opts', '{"attempts":3,"removeOnComplete":1000}',
  'timestamp', ts, 'delay', '0', 'priority', '0')
redis.call('HEXISTS', p .. 'meta', 'paused')
redis.call('LPUSH', p .. 'wait', id)
redis.call('ZADD', p .. 'marker', 0, '0')
redis.call('XADD', p .. 'events', 'MAXLEN', '~', 10000, '*', 'event', 'waiting', 'jobId', id)
redis.call('ZPOPMIN', p .. 'marker')
local j = redis.call('RPOPLPUSH', p .. 'wait', p .. 'active')
redis.call('SET', p .. j .. ':lock', ARGV[3], 'PX', 30000)
redis.call('HSET', p .. j, 'processedOn', ts, 'ats', '1')
redis.call('XADD', p .. 'events', 'MAXLEN', '~', 10000, '*', 'event', 'active', 'jobId', j, 'prev', 'waiting')
redis.call('DEL', p .. j .. ':lock')
redis.call('LREM', p .. 'active', -1, j)
redis.call('ZADD', p .. 'completed', ts, j)
redis.call('HSET', p .. j, 'returnvalue', 'null', 'finishedOn', ts)
redis.call('XADD', p .. 'events', 'MAXLEN', '~', 10000, '*', 'event', 'completed', 'jobId', j, 'returnvalue', 'null')
for _, old in ipairs(redis.call('ZRANGE', p .. 'completed', 0, -1001)) do redis.call('DEL', p .. old) end
redis.call('ZREMRANGEBYRANK', p .. 'completed', 0, -1001)
return j
"""
JOB_DATA = (
    '{"to":"user-__rand_int__@example.com","template":"welcome","locale":"en-GB",'
    '"vars":{"name":"Ada Lovelace","plan":"pro","trialDays":14,"referrer":"newsletter"},'
    '"requestId":"__rand_int__","attempt":1}'
)

CONFIGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rendered": ("rendered (AOF everysec)", ()),
    "off": ("persistence off", ("--appendonly", "no", "--save", "")),
    "nofsync": ("AOF, appendfsync no", ("--appendfsync", "no")),
    "norewrite": ("AOF, no auto rewrite", ("--auto-aof-rewrite-percentage", "0")),
}
# attribution configs, full mode only: each differs from the rendered config in one setting
ATTRIBUTION = ("nofsync", "norewrite")
READ_ONLY = ("GET",)
TESTS = ("SET", "GET", "LPUSH", "RPOP", "BullMQ job (EVALSHA)")


def _requests(test: str, pipeline: int, quick: bool) -> int:
    base = (
        (20_000 if pipeline == 1 else 50_000) if test.startswith("BullMQ") else (100_000 if pipeline == 1 else 400_000)
    )
    return base // 10 if quick else base


def _benchmark(port: int, test: str, pipeline: int, requests: int, sha: str) -> dict[str, float]:
    argv = [
        shutil.which("redis-benchmark") or "redis-benchmark",
        "-h", "127.0.0.1", "-p", str(port),
        "-c", str(CLIENTS), "-n", str(requests), "-P", str(pipeline),
        "-r", str(KEYSPACE), "-d", str(VALUE_BYTES), "--csv",
    ]  # fmt: skip
    if test.startswith("BullMQ"):
        argv += ["EVALSHA", sha, "0", JOB_DATA, "__rand_int__", "lock-token-__rand_int__"]
    else:
        argv += ["-t", test.lower()]
    result = run(argv, timeout=600)
    lines = result.stdout.strip().splitlines()
    if len(lines) < 2:
        raise RuntimeError(f"redis-benchmark printed no result: {result.stdout}\n{result.stderr}")
    # the test name may hold unescaped quotes and commas (custom commands): split numbers from the right
    header = next(csv.reader(io.StringIO(lines[0])))
    values = [v.strip('"') for v in lines[-1].rsplit(",", len(header) - 1)[1:]]
    row = dict(zip(header[1:], values, strict=True))
    return {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"])}


@dataclass
class _Measured:
    samples: dict[tuple[str, str, int], list[dict[str, float]]] = field(default_factory=dict)
    persistence: dict[str, dict[str, str]] = field(default_factory=dict)
    commands_per_job: dict[str, float] = field(default_factory=dict)


def _measure(configs: list[str], rounds: int, quick: bool, tmp: Path) -> _Measured:
    """All configs' servers up at once; rounds of every test, configs interleaved (ABBA)."""
    measured = _Measured()
    with ExitStack() as stack:
        pods = {c: stack.enter_context(rendered_pod(tmp / c, extra_args=CONFIGS[c][1])) for c in configs}
        shas = {c: cli(pod.port, "script", "load", BULLMQ_JOB_LUA).strip() for c, pod in pods.items()}
        for r in range(rounds):
            order = configs if r % 2 == 0 else list(reversed(configs))
            for pipeline in PIPELINES:
                for test in TESTS:
                    for config in order:
                        for other in pods.values():  # no AOF rewrite child left running from a previous run
                            wait_rewrite_done(other.port, timeout=300)
                        port = pods[config].port
                        n = _requests(test, pipeline, quick)
                        bullmq = test.startswith("BullMQ")
                        before = sum(command_calls(port).values()) if bullmq else 0
                        sample = _benchmark(port, test, pipeline, n, shas[config])
                        measured.samples.setdefault((config, test, pipeline), []).append(sample)
                        if bullmq:  # minus the INFO call counted in `before`
                            measured.commands_per_job[config] = (sum(command_calls(port).values()) - before - 1) / n
        for config, pod in pods.items():
            measured.persistence[config] = info(pod.port, "persistence")
            measured.persistence[config]["maxmemory"] = cli(pod.port, "config", "get", "maxmemory").split()[-1]
    return measured


def bench(opts: Options) -> Result:
    started = time.perf_counter()
    mach = machine()
    rounds = 1 if opts.quick else 5
    configs = ["rendered", "off"] if opts.quick else ["rendered", "off", *ATTRIBUTION]
    with workdir("bench-throughput-") as tmp:
        measured = _measure(configs, rounds, opts.quick, tmp)
    samples, persistence = measured.samples, measured.persistence

    extra = [c for c in ATTRIBUTION if c in configs]
    headers = ["command", "pipeline", *[f"{CONFIGS[c][0]} ops/s" for c in configs], "rendered / off"]
    headers += [f"{CONFIGS[c][0]} / off" for c in extra]
    rows: list[list[str]] = []
    ratios: dict[str, float] = {}
    spreads: dict[str, str] = {}
    for pipeline in PIPELINES:
        for test in TESTS:
            runs = {c: [s["rps"] for s in samples[(c, test, pipeline)]] for c in configs}
            rps = {c: median(v) for c, v in runs.items()}
            ratio = rps["rendered"] / rps["off"]
            key = f"{test} -P {pipeline}"
            ratios[key] = ratio
            spreads[key] = "; ".join(f"{c} {fmt_int(min(v))}-{fmt_int(max(v))}" for c, v in runs.items())
            row = [test, f"-P {pipeline}", *[fmt_int(rps[c]) for c in configs], f"**{fmt_ratio(ratio)}**"]
            row += [fmt_ratio(rps[c] / rps["off"]) for c in extra]
            rows.append(row)
    costly = [k for k, v in ratios.items() if v < COSTLY and k.split(" -P")[0] not in READ_ONLY]
    noise = [k for k, v in ratios.items() if v < COSTLY and k.split(" -P")[0] in READ_ONLY]
    commands_per_job = measured.commands_per_job.get("rendered", 0.0)
    notes = [
        f"redis-benchmark {CLIENTS} clients, {KEYSPACE} random keys, {VALUE_BYTES}-byte values; "
        f"median of {rounds} interleaved round(s); ops/s are requests/s (one BullMQ request = one job, "
        f"{commands_per_job:.1f} Valkey commands counted by INFO commandstats).",
        "Rendered: "
        + ", ".join(
            f"{key} {persistence['rendered'].get(key)}"
            for key in ("aof_enabled", "aof_rewrites", "aof_delayed_fsync", "maxmemory")
        )
        + " (no cgroup here: the entrypoint's fallback maxmemory).",
        (
            "Costing more than 15 %: " + ", ".join(f"{k} ({ratios[k]:.2f})" for k in costly) + " — see the README."
            if costly
            else "No command costs more than 15 % with the rendered configuration."
        ),
    ]
    if noise:
        notes.append(
            "Below 0.85 but read-only, so never touching the AOF: "
            + ", ".join(f"{k} ({ratios[k]:.2f}; runs {spreads[k]})" for k in noise)
            + " — the shared machine's noise, not a setting."
        )
    data = {
        "rounds": rounds,
        "samples": {f"{c}|{t}|{p}": v for (c, t, p), v in samples.items()},
        "ratios": ratios,
        "spreads": spreads,
        "commands_per_bullmq_request": commands_per_job,
        "persistence": persistence,
        "clients": CLIENTS,
        "value_bytes": VALUE_BYTES,
    }
    return Result(
        name="throughput",
        title="2. Throughput: rendered configuration vs persistence off (redis-benchmark)",
        command=command_line("throughput", opts),
        machine=mach,
        headers=headers,
        rows=rows,
        notes=notes,
        data=data,
        seconds=time.perf_counter() - started,
    )
