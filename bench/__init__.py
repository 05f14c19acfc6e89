"""Benchmarks of the cdk8s-valkey project: how fast it synthesizes, and what the Valkey
configuration it renders costs at run time. Run ``.venv/bin/python -m bench [name] [--quick]``;
see bench/README.md for what each one measures.

Benchmarks are not tests: they print figures and never fail on a number. ``tests/test_bench.py``
runs each once in ``--quick`` mode so that they cannot rot.
"""

from __future__ import annotations

# name -> module under bench/, in the order `python -m bench` runs them
BENCHMARKS: dict[str, str] = {
    "synth": "bench.synth",
    "throughput": "bench.throughput",
    "bullmq": "bench.bullmq",
    "restart": "bench.restart",
    "memory": "bench.memory",
    "endpoint": "bench.endpoint",
}
