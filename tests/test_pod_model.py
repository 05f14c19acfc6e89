"""PodModel: contributions render in a declared order whatever order they arrive in, and every
rule about names and targets raises with a message naming what is wrong. Pure data: no synth."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from cdk8s_valkey import ContainerModel, PodModel


def _model() -> PodModel:
    model = PodModel("cache", reserved_volumes=("data",))
    model.add_container(
        ContainerModel(
            name="valkey",
            image="valkey/valkey:8.1.11",
            command=["sh", "/scripts/entrypoint.sh"],
            env=[{"name": "A", "value": "1"}],
            probes={"readiness": {"exec": {"command": ["sh", "probe.sh", "ready"]}}},
        ),
        order=0,
    )
    return model


CONTRIBUTIONS: dict[str, Callable[[PodModel], None]] = {
    "exporter": lambda m: m.add_container(ContainerModel(name="exporter", image="e:1"), order=100),
    "sidecar": lambda m: m.add_container({"name": "side", "image": "busybox:1"}, order=1000),
    "sentinel-env": lambda m: m.add_env("valkey", {"name": "S", "value": "2"}, order=200),
    "user-env": lambda m: m.add_env("valkey", {"name": "U", "value": "3"}, order=1000),
    "outer-wrap": lambda m: m.wrap_command("valkey", "sh", "role.sh", order=200),
    "inner-wrap": lambda m: m.wrap_command("valkey", "env", order=1000),
    "volume": lambda m: m.add_volume({"name": "sentinel", "configMap": {"name": "s"}}, order=200),
    "probe": lambda m: m.wrap_probe("valkey", "readiness", "sh", "replica-probe.sh", order=200),
}


def _render(order: tuple[str, ...]) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    model = _model()
    for name in order:
        CONTRIBUTIONS[name](model)
    return model.render_containers(), model.render_volumes([{"name": "data"}])


def test_every_order_renders_the_same() -> None:
    orders = list(itertools.permutations(CONTRIBUTIONS))
    first = _render(orders[0])
    for order in orders[1 :: len(orders) // 50]:  # 50 of the 40320 orders, spread evenly
        assert _render(order) == first, order
    containers, volumes = first
    assert [c["name"] for c in containers] == ["valkey", "exporter", "side"]
    valkey = containers[0]
    assert valkey["command"] == ["sh", "role.sh", "env", "sh", "/scripts/entrypoint.sh"]
    assert [v["name"] for v in valkey["env"]] == ["A", "S", "U"]  # type: ignore[union-attr]
    assert valkey["readinessProbe"] == {"exec": {"command": ["sh", "replica-probe.sh", "sh", "probe.sh", "ready"]}}
    assert [v["name"] for v in volumes] == ["data", "sentinel"]


@pytest.mark.parametrize(
    ("contribute", "message"),
    [
        (
            lambda m: m.add_container(ContainerModel(name="valkey", image="x:1"), order=5),
            "container name 'valkey' is already used in the cache pod",
        ),
        (lambda m: m.add_volume({"name": "data"}, order=5), "volume name 'data' is already used in the cache pod"),
        (
            lambda m: m.add_env("valkey", {"name": "A", "value": "2"}, order=5),
            "env 'A': give a new name and exactly one of value and field_path",
        ),
        (
            lambda m: m.add_env("valkey", {"name": "B"}, order=5),
            "env 'B': give a new name and exactly one of value and field_path",
        ),
        (lambda m: m.add_args("nope", "x", order=5), "container 'nope': the cache pod has no such container"),
        (
            lambda m: m.wrap_probe("valkey", "liveness", "x", order=5),
            "kind: container 'valkey' has no liveness exec probe to wrap",
        ),
        (
            lambda m: m.wrap_probe("valkey", "ready", "x", order=5),
            "kind: 'ready' is not a probe; use 'startup', 'readiness' or 'liveness'",
        ),
        (lambda m: m.add_args("valkey", "x", order=1.5), "order: 1.5 is not a whole number"),
    ],
)
def test_rules(contribute: Callable[[PodModel], None], message: str) -> None:
    with pytest.raises(ValueError) as error:
        contribute(_model())
    assert str(error.value) == message


def test_rendered_json_containers_take_no_contributions() -> None:
    model = _model()
    model.add_container({"name": "side", "image": "busybox:1"}, order=1000)
    with pytest.raises(ValueError) as error:
        model.add_env("side", {"name": "X", "value": "1"}, order=5)
    assert str(error.value) == "container 'side' was added as rendered JSON; it takes no contributions"


def test_annotations_and_pre_stop_once() -> None:
    model = _model()
    model.add_annotation("checksum/sentinel", "abc")
    with pytest.raises(ValueError, match="annotation 'checksum/sentinel' is already set on the cache pod"):
        model.add_annotation("checksum/sentinel", "def")
    model.set_pre_stop("valkey", "sh", "handover.sh")
    with pytest.raises(ValueError, match="container 'valkey' of the cache pod already has a preStop hook"):
        model.set_pre_stop("valkey", "true")
    assert model.annotations() == {"checksum/sentinel": "abc"}
    assert model.render_containers()[0]["lifecycle"] == {"preStop": {"exec": {"command": ["sh", "handover.sh"]}}}
