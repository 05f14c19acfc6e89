"""Backups: Longhorn RecurringJobs for one Valkey, and the labels that put its claims in their group."""

from __future__ import annotations

import re
from typing import Any

import cdk8s
import pytest

from cdk8s_valkey import Sentinel, SentinelOptions, Valkey, ValkeyStatefulSet
from cdk8s_valkey.backups import (
    MAX_JOB_NAME_LENGTH,
    BackupOptions,
    Backups,
    RecurringJobSchedule,
)
from harness.crd_schema import crd_errors, validate_crd_object
from harness.synth import find, new_chart, objects

LONGHORN_API = "longhorn.io/v1beta2"


def new_valkey(chart: cdk8s.Chart, name: str = "valkey") -> ValkeyStatefulSet:
    return ValkeyStatefulSet(chart, name)


def render(namespace: str | None = "apps", name: str = "valkey", **options: Any) -> list[dict[str, Any]]:
    chart = new_chart(namespace)
    valkey = new_valkey(chart, name)
    Backups(chart, "backups", valkey=valkey, options=BackupOptions(**options) if options else None)
    return objects(chart)


def jobs(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == "RecurringJob"]


def job(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return find(objs, "RecurringJob", name)


# -- rendering ------------------------------------------------------------------------


def test_defaults_snapshot(yaml_snapshot: Any) -> None:
    assert cdk8s.Yaml.stringify(*jobs(render())) == yaml_snapshot


def test_defaults() -> None:
    snap, backup = jobs(render())
    assert snap["apiVersion"] == backup["apiVersion"] == LONGHORN_API
    assert snap["metadata"]["name"] == snap["spec"]["name"] == "apps-valkey-snap"
    assert backup["metadata"]["name"] == backup["spec"]["name"] == "apps-valkey-backup"
    assert snap["metadata"]["namespace"] == backup["metadata"]["namespace"] == "longhorn-system"
    assert snap["spec"] == {
        "name": "apps-valkey-snap",
        "task": "snapshot",
        "cron": "0 * * * *",
        "retain": 24,
        "concurrency": 1,
        "groups": ["apps-valkey"],
    }
    assert backup["spec"] == {
        "name": "apps-valkey-backup",
        "task": "backup",
        "cron": "30 2 * * *",
        "retain": 7,
        "concurrency": 1,
        "groups": ["apps-valkey"],
    }
    assert snap["metadata"]["labels"] == {
        "app.kubernetes.io/name": "valkey",
        "app.kubernetes.io/instance": "valkey",
        "app.kubernetes.io/version": "8.1.11",
        "app.kubernetes.io/component": "backup",
        "app.kubernetes.io/managed-by": "cdk8s",
    }


def test_jobs_render_only_fields_longhorn_1_12_knows() -> None:
    known = {"name", "task", "cron", "retain", "concurrency", "groups", "labels", "parameters"}
    for obj in jobs(render()):
        assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
        assert set(obj["spec"]) <= known


@pytest.mark.parametrize("namespace", ["apps", None], ids=["namespaced-chart", "no-namespace-chart"])
def test_jobs_match_the_longhorn_crd(namespace: str | None) -> None:
    options: dict[str, Any] = {} if namespace else {"group": "shared-cache"}
    for obj in jobs(render(namespace, **options)):
        validate_crd_object(obj)
        assert obj["metadata"]["namespace"] == "longhorn-system"


def test_the_schema_check_refuses_what_longhorn_1_12_does_not_know() -> None:
    snap = jobs(render())[0]
    # retentionPolicy exists only on Longhorn's unreleased development line.
    assert crd_errors({**snap, "spec": {**snap["spec"], "retentionPolicy": "count"}}) == [
        "spec: Additional properties are not allowed ('retentionPolicy' was unexpected)"
    ]
    assert crd_errors({**snap, "spec": {**snap["spec"], "task": "snapshots"}})[0].startswith(
        "spec.task: 'snapshots' is not one of"
    )


def test_claim_joins_the_group() -> None:
    chart = new_chart("apps")
    valkey = ValkeyStatefulSet(chart, "valkey")
    backups = Backups(chart, "backups", valkey=valkey)
    claim = find(objects(chart), "PersistentVolumeClaim", "data-valkey-0")
    assert backups.claim_labels == {
        "recurring-job.longhorn.io/source": "enabled",
        "recurring-job-group.longhorn.io/apps-valkey": "enabled",
    }
    assert backups.claim_labels.items() <= claim["metadata"]["labels"].items()
    sts = find(objects(chart), "StatefulSet")
    assert "volumeClaimTemplates" not in sts["spec"], "the labels must be on a claim that GitOps keeps in sync"


def test_every_claim_of_the_sentinel_topology_joins_the_group() -> None:
    chart = new_chart("apps")
    valkey = Valkey(chart, "valkey", sentinel=SentinelOptions(), backups=BackupOptions())
    assert valkey.backups is not None
    names = ("data-valkey-0", "data-valkey-1", "data-valkey-2")
    assert valkey.backups.claim_names == valkey.server.claim_names == names
    objs = objects(chart)
    assert [o["metadata"]["name"] for o in objs if o["kind"] == "PersistentVolumeClaim"] == list(names)
    for name in names:
        labels = find(objs, "PersistentVolumeClaim", name)["metadata"]["labels"]
        assert valkey.backups.claim_labels.items() <= labels.items(), name
    # One group for the three volumes, processed one at a time by default.
    assert {tuple(j["spec"]["groups"]) for j in jobs(objs)} == {("apps-valkey",)}


def test_pods_added_after_the_backups_are_refused() -> None:
    """Pods added after the Backups would leave their claims out of every schedule: refused."""
    chart = new_chart("apps")
    valkey = ValkeyStatefulSet(chart, "valkey")
    Backups(chart, "backups", valkey=valkey)
    with pytest.raises(ValueError) as raised:
        Sentinel(chart, "sentinel", valkey=valkey)
    assert str(raised.value) == (
        "topology: claim_names of 'valkey' was already read for a single pod; set the topology (create the "
        "Sentinel) before the options that render for it"
    )


def test_group_is_unique_per_namespace() -> None:
    names = {o["metadata"]["name"] for ns in ("apps", "jobs") for o in jobs(render(ns))}
    assert names == {"apps-valkey-snap", "apps-valkey-backup", "jobs-valkey-snap", "jobs-valkey-backup"}


def test_schedules() -> None:
    objs = render(
        snapshot=RecurringJobSchedule(cron="*/15 * * * *", retain=8, concurrency=2),
        backup=RecurringJobSchedule(cron="0 3 * * sun", retain=4),
    )
    assert {k: job(objs, "apps-valkey-snap")["spec"][k] for k in ("cron", "retain", "concurrency")} == {
        "cron": "*/15 * * * *",
        "retain": 8,
        "concurrency": 2,
    }
    assert {k: job(objs, "apps-valkey-backup")["spec"][k] for k in ("cron", "retain", "concurrency")} == {
        "cron": "0 3 * * sun",
        "retain": 4,
        "concurrency": 1,
    }


@pytest.mark.parametrize("off", ["snapshot", "backup"])
def test_either_schedule_can_be_turned_off(off: str) -> None:
    chart = new_chart("apps")
    backups = Backups(chart, "backups", valkey=new_valkey(chart), options=BackupOptions(**{off: None}))
    tasks = [o["spec"]["task"] for o in jobs(objects(chart))]
    assert tasks == [t for t in ("snapshot", "backup") if t != off]
    assert (backups.snapshot_job_name is None) is (off == "snapshot")
    assert (backups.backup_job_name is None) is (off == "backup")


def test_longhorn_namespace() -> None:
    for obj in jobs(render(longhorn_namespace="storage")):
        assert obj["metadata"]["namespace"] == "storage"


def test_explicit_group() -> None:
    objs = render(group="cache-eu1")
    assert [o["metadata"]["name"] for o in jobs(objs)] == ["cache-eu1-snap", "cache-eu1-backup"]
    assert all(o["spec"]["groups"] == ["cache-eu1"] for o in jobs(objs))
    claim = find(objs, "PersistentVolumeClaim", "data-valkey-0")
    assert claim["metadata"]["labels"]["recurring-job-group.longhorn.io/cache-eu1"] == "enabled"


def test_longest_default_group_fits_longhorn() -> None:
    namespace, name = "a" * 16, "b" * 16  # <namespace>-<name>: 33 characters, the most allowed
    objs = jobs(render(namespace, name))
    assert max(len(o["metadata"]["name"]) for o in objs) == MAX_JOB_NAME_LENGTH
    for obj in objs:
        validate_crd_object(obj)


def test_wiring_points() -> None:
    chart = new_chart("apps")
    backups = Backups(chart, "backups", valkey=new_valkey(chart))
    assert (backups.group, backups.longhorn_namespace) == ("apps-valkey", "longhorn-system")
    assert (backups.snapshot_job_name, backups.backup_job_name) == ("apps-valkey-snap", "apps-valkey-backup")
    assert backups.claim_names == ("data-valkey-0",)


# -- validation: one exact message per rule --------------------------------------------


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        pytest.param(
            "0 * * *",
            "RecurringJobSchedule.cron: '0 * * *' has 4 fields; use five fields: minute hour day-of-month "
            "month day-of-week, e.g. '0 * * * *'",
            id="four-fields",
        ),
        pytest.param(
            "@daily",
            "RecurringJobSchedule.cron: '@daily' has 1 fields; use five fields: minute hour day-of-month "
            "month day-of-week, e.g. '0 * * * *'",
            id="descriptor",
        ),
        pytest.param(
            "0 * * * * *",
            "RecurringJobSchedule.cron: '0 * * * * *' has 6 fields; use five fields: minute hour day-of-month "
            "month day-of-week, e.g. '0 * * * *'",
            id="with-seconds",
        ),
        pytest.param(
            "60 * * * *",
            "RecurringJobSchedule.cron: '60 * * * *' has minute '60': '60' is out of range; minute goes from 0 to 59",
            id="minute-range",
        ),
        pytest.param(
            "0 24 * * *",
            "RecurringJobSchedule.cron: '0 24 * * *' has hour '24': '24' is out of range; hour goes from 0 to 23",
            id="hour-range",
        ),
        pytest.param(
            "0 0 0 * *",
            "RecurringJobSchedule.cron: '0 0 0 * *' has day of month '0': '0' is out of range; "
            "day of month goes from 1 to 31",
            id="day-of-month-range",
        ),
        pytest.param(
            "0 0 * 13 *",
            "RecurringJobSchedule.cron: '0 0 * 13 *' has month '13': '13' is out of range; "
            "month goes from 1 to 12 (or jan-dec)",
            id="month-range",
        ),
        pytest.param(
            "0 0 * * 7",
            "RecurringJobSchedule.cron: '0 0 * * 7' has day of week '7': '7' is out of range; "
            "day of week goes from 0 to 6 (or sun-sat)",
            id="sunday-as-7",
        ),
        pytest.param(
            "0 0 * * monday",
            "RecurringJobSchedule.cron: '0 0 * * monday' has day of week 'monday': 'monday' is not a number "
            "or a name; day of week goes from 0 to 6 (or sun-sat)",
            id="long-day-name",
        ),
        pytest.param(
            "0 0 * jan-mon *",
            "RecurringJobSchedule.cron: '0 0 * jan-mon *' has month 'jan-mon': 'jan-mon' is not a number "
            "or a name; month goes from 1 to 12 (or jan-dec)",
            id="day-name-in-month",
        ),
        pytest.param(
            "*/0 * * * *",
            "RecurringJobSchedule.cron: '*/0 * * * *' has minute '*/0': '*/0' has a step of 0; "
            "minute goes from 0 to 59",
            id="step-0",
        ),
        pytest.param(
            "30-10 * * * *",
            "RecurringJobSchedule.cron: '30-10 * * * *' has minute '30-10': '30-10' starts after it ends; "
            "minute goes from 0 to 59",
            id="backwards-range",
        ),
        pytest.param(
            "0,,30 * * * *",
            "RecurringJobSchedule.cron: '0,,30 * * * *' has minute '0,,30': '' is not N, N-M, * or a /step "
            "of them; minute goes from 0 to 59",
            id="empty-list-item",
        ),
        pytest.param(
            "H * * * *",
            "RecurringJobSchedule.cron: 'H * * * *' has minute 'H': 'H' is not a number; minute goes from 0 to 59",
            id="jenkins-hash",
        ),
    ],
)
def test_cron_is_checked(cron: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        RecurringJobSchedule(cron=cron, retain=1)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "cron",
    ["0 * * * *", "*/15 * * * *", "5,35 1-5/2 * * *", "0 3 1 JAN,jul ?", "0 3 * * mon-fri", "0 0 1-31/10 * sun"],
)
def test_valid_crons(cron: str) -> None:
    assert RecurringJobSchedule(cron=cron, retain=1).cron == cron


@pytest.mark.parametrize("retain", [0, 101, -1, True, 2.5])
def test_retain_limits(retain: Any) -> None:
    with pytest.raises(ValueError) as raised:
        RecurringJobSchedule(cron="0 * * * *", retain=retain)
    assert str(raised.value) == (
        f"RecurringJobSchedule.retain: {retain!r} is not allowed; keep from 1 to 100 snapshots or backups "
        "(Longhorn's recurring-job-max-retention setting, 100 by default)"
    )


def test_retain_bounds_are_allowed() -> None:
    assert RecurringJobSchedule(cron="0 * * * *", retain=100).retain == 100
    assert RecurringJobSchedule(cron="0 * * * *", retain=1).retain == 1


def test_concurrency_at_least_one() -> None:
    with pytest.raises(ValueError) as raised:
        RecurringJobSchedule(cron="0 * * * *", retain=1, concurrency=0)
    assert str(raised.value) == (
        "RecurringJobSchedule.concurrency: 0 is not allowed; use a whole number of at least 1 "
        "(volumes processed at once)"
    )


def test_nothing_scheduled_is_refused() -> None:
    with pytest.raises(ValueError) as raised:
        BackupOptions(snapshot=None, backup=None)
    assert str(raised.value) == (
        "BackupOptions: snapshot and backup are both None, so nothing would be scheduled; "
        "set at least one of them, or leave Backups out"
    )


def test_schedule_type_is_checked() -> None:
    with pytest.raises(ValueError) as raised:
        BackupOptions(backup="0 * * * *")  # type: ignore[arg-type]
    assert str(raised.value) == (
        "BackupOptions.backup: '0 * * * *' is not a RecurringJobSchedule; pass "
        "RecurringJobSchedule(cron=..., retain=...), or None for no such job"
    )


def test_longhorn_namespace_is_checked() -> None:
    with pytest.raises(ValueError) as raised:
        BackupOptions(longhorn_namespace="Longhorn")
    assert str(raised.value) == (
        "BackupOptions.longhorn_namespace: 'Longhorn' is not a valid name; use at most 63 lower-case letters, "
        "digits and '-', starting with a letter and ending with a letter or digit"
    )


@pytest.mark.parametrize(
    ("group", "message"),
    [
        pytest.param(
            "a" * 34,
            f"BackupOptions.group: {'a' * 34!r} has 34 characters, which makes job names longer than "
            "Longhorn's 40; use at most 33",
            id="too-long",
        ),
        pytest.param(
            "apps.valkey",
            "BackupOptions.group: 'apps.valkey' is not a valid name; use at most 33 lower-case letters, "
            "digits and '-', starting with a letter and ending with a letter or digit",
            id="dot",
        ),
    ],
)
def test_group_is_checked(group: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        BackupOptions(group=group)
    assert str(raised.value) == message


def test_default_group_too_long() -> None:
    with pytest.raises(ValueError) as raised:
        render("a" * 17, "b" * 16)
    assert str(raised.value) == (
        f"BackupOptions.group: the default {'a' * 17 + '-' + 'b' * 16!r} (<namespace>-<name>) has 34 characters, "
        "which makes job names longer than Longhorn's 40; set BackupOptions.group to at most 33 characters, "
        "unique in the cluster"
    )


def test_default_group_needs_a_namespace() -> None:
    with pytest.raises(ValueError) as raised:
        render(None)
    assert str(raised.value) == (
        "BackupOptions.group: the default is <namespace>-<name>, but the chart of Valkey 'valkey' has no "
        "namespace; give that chart a namespace, or set BackupOptions.group to a name unique in the cluster"
    )


def test_options_type_is_checked() -> None:
    chart = new_chart("apps")
    with pytest.raises(ValueError) as raised:
        Backups(chart, "backups", valkey=new_valkey(chart), options={"group": "x"})  # type: ignore[arg-type]
    assert str(raised.value) == "options: {'group': 'x'} is not a BackupOptions; pass BackupOptions(...) or None"


def test_one_backups_per_valkey() -> None:
    chart = new_chart("apps")
    valkey = new_valkey(chart)
    Backups(chart, "backups", valkey=valkey)
    with pytest.raises(ValueError) as raised:
        Backups(chart, "more", valkey=valkey, options=BackupOptions(group="other"))
    assert str(raised.value) == (
        "valkey: 'valkey' already has Backups (its claim carries recurring-job.longhorn.io/source); "
        "give each Valkey at most one Backups"
    )
    assert chart.node.try_find_child("more") is None, "validation runs before any child is defined"


def test_names_are_dns_labels() -> None:
    for obj in jobs(render()):
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", obj["metadata"]["name"])
