"""The test harness: what tests/ and bench/ both use to run the real things.

Importable from the repository root (pytest's ``pythonpath``, ``python -m bench``), never by
editing ``sys.path``. One module per concern:

- :mod:`harness.paths`: the repository, the shared CRDs, free loopback ports, required binaries;
- :mod:`harness.wait`: the one bounded ``wait_for``;
- :mod:`harness.process`: the one way to stop a process (``stop``);
- :mod:`harness.servers`: valkey-server on loopback, valkey-cli;
- :mod:`harness.podnet`, :mod:`harness.podrunner`: pods in network namespaces, the rendered pod run locally;
- :mod:`harness.exporter`, :mod:`harness.prometheus`, :mod:`harness.node`: redis_exporter, Prometheus,
  Node (BullMQ) processes;
- :mod:`harness.synth`, :mod:`harness.crd_schema`, :mod:`harness.hardened`, :mod:`harness.grafana`,
  :mod:`harness.review`: synthesized charts and what checks them;
- :mod:`harness.secrets`: a Secret's value into the env that references it, and the password leak detector;
- :mod:`harness.runbook`, ``harness/kubectl_shim.py``: the docs' shell blocks, run as written.
"""
