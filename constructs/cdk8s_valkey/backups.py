"""Backups: Longhorn recurring snapshots and backups of one Valkey's data claims (opt-in)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import cdk8s
from constructs import Construct

from . import _labels, _registry
from ._imports.cdk8s_valkey_longhorn.io import longhorn as _longhorn
from ._validation import check_dns_label
from .valkey_statefulset import ValkeyStatefulSet

COMPONENT = "backup"
DEFAULT_LONGHORN_NAMESPACE = "longhorn-system"

# Longhorn v1.12 (longhorn-manager datastore.NameMaximumLength): a RecurringJob name longer than
# this is cut by Longhorn's mutating webhook, so the object would never match the manifest. The
# name also becomes a CronJob and a container name, so it must be a DNS label: no dots.
MAX_JOB_NAME_LENGTH = 40
SNAPSHOT_SUFFIX = "-snap"
BACKUP_SUFFIX = "-backup"
MAX_GROUP_LENGTH = MAX_JOB_NAME_LENGTH - max(len(SNAPSHOT_SUFFIX), len(BACKUP_SUFFIX))
# Longhorn's `recurring-job-max-retention` setting, 100 by default: its webhook refuses a
# RecurringJob that retains more.
MAX_RETAIN = 100

# The labels through which Longhorn puts a claim's volume in a group (longhorn-manager
# types.LonghornLabelRecurringJobGroup); `source: enabled` makes the claim's labels, not the
# volume's, the ones Longhorn keeps in sync.
SOURCE_LABEL = "recurring-job.longhorn.io/source"
GROUP_LABEL_PREFIX = "recurring-job-group.longhorn.io/"
ENABLED = "enabled"

# Cron fields as Longhorn parses them (robfig/cron ParseStandard): bounds and names.
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: number for number, name in enumerate(_MONTHS, start=1)}),
    ("day of week", 0, 6, {name: number for number, name in enumerate(_DAYS)}),
)
_CRON_RANGE = re.compile(r"^(?P<start>\*|\?|[0-9A-Za-z]+)(?:-(?P<end>[0-9A-Za-z]+))?(?:/(?P<step>[0-9]+))?$")


def _check_group(prop: str, group: str) -> str:
    """A group name that makes valid job names: a DNS label short enough for the suffixes."""
    if len(group) > MAX_GROUP_LENGTH:
        raise ValueError(
            f"{prop}: {group!r} has {len(group)} characters, which makes job names longer than Longhorn's "
            f"{MAX_JOB_NAME_LENGTH}; use at most {MAX_GROUP_LENGTH}"
        )
    return check_dns_label(prop, group, max_length=MAX_GROUP_LENGTH)


def _check_cron(prop: str, cron: str) -> str:
    """A five-field cron expression that Longhorn's parser (robfig/cron ParseStandard) accepts.

    Each field is a comma-separated list of ``*``, ``?``, ``N`` or ``N-M``, each optionally with
    ``/step``; months and days of the week also by name (``jan``, ``mon``, case-insensitive).
    Descriptors such as ``@daily`` are refused: write the five fields.
    """
    allowed = "use five fields: minute hour day-of-month month day-of-week, e.g. '0 * * * *'"
    if not isinstance(cron, str):
        raise ValueError(f"{prop}: {cron!r} is not a cron expression; {allowed}")
    fields = cron.split()
    if len(fields) != len(_CRON_FIELDS):
        raise ValueError(f"{prop}: {cron!r} has {len(fields)} fields; {allowed}")
    for text, (label, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.split(","):
            problem = _cron_range_problem(part, low, high, names)
            if problem:
                raise ValueError(
                    f"{prop}: {cron!r} has {label} {text!r}: {problem}; {label} goes from {low} to {high}"
                    + (f" (or {_names_hint(names)})" if names else "")
                )
    return cron


def _names_hint(names: dict[str, int]) -> str:
    keys = list(names)
    return f"{keys[0]}-{keys[-1]}"


def _cron_range_problem(part: str, low: int, high: int, names: dict[str, int]) -> str | None:
    bounds = _cron_bounds(part, low, high, names)
    if isinstance(bounds, str):
        return bounds
    start, end, step = bounds
    if start < low or end > high:
        return f"{part!r} is out of range"
    if start > end:
        return f"{part!r} starts after it ends"
    if step == 0:
        return f"{part!r} has a step of 0"
    return None


def _cron_bounds(part: str, low: int, high: int, names: dict[str, int]) -> tuple[int, int, int] | str:
    """(start, end, step) of one comma-separated part of a cron field, or what is wrong with it."""
    syntax = f"{part!r} is not N, N-M, * or a /step of them"
    match = _CRON_RANGE.match(part)
    if not match:
        return syntax
    start_text, end_text, step_text = match.group("start", "end", "step")
    step = int(step_text) if step_text is not None else 1
    if start_text in ("*", "?"):
        return syntax if end_text is not None else (low, high, step)
    first = _cron_value(start_text, names)
    last = first if end_text is None else _cron_value(end_text, names)
    if first is None or last is None:
        return f"{part!r} is not a number" + (" or a name" if names else "")
    # "N/step" means N to the maximum, as in robfig/cron.
    return first, high if end_text is None and step_text is not None else last, step


def _cron_value(token: str, names: dict[str, int]) -> int | None:
    if token.isdigit():
        return int(token)
    return names.get(token.lower())


@dataclass(frozen=True, kw_only=True)
class RecurringJobSchedule:
    """When one Longhorn recurring job runs and how many of its snapshots or backups it keeps.

    :param cron: Five-field cron expression (minute, hour, day of month, month, day of week; names
        such as ``mon`` or ``jan`` allowed), in the time zone of the cluster's
        kube-controller-manager, usually UTC. Checked at synth as Longhorn parses it.
    :param retain: How many snapshots (or backups) of the volume this job keeps; Longhorn deletes
        the oldest beyond it. From 1 to 100 (Longhorn's ``recurring-job-max-retention`` default).
    :param concurrency: How many volumes of the group Longhorn processes at once. Default: 1, the
        group holds this Valkey's one volume.
    """

    cron: str
    retain: int
    concurrency: int = 1

    def __post_init__(self) -> None:
        _check_cron("RecurringJobSchedule.cron", self.cron)
        if isinstance(self.retain, bool) or not isinstance(self.retain, int) or not 1 <= self.retain <= MAX_RETAIN:
            raise ValueError(
                f"RecurringJobSchedule.retain: {self.retain!r} is not allowed; keep from 1 to {MAX_RETAIN} "
                "snapshots or backups (Longhorn's recurring-job-max-retention setting, 100 by default)"
            )
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ValueError(
                f"RecurringJobSchedule.concurrency: {self.concurrency!r} is not allowed; use a whole number of "
                "at least 1 (volumes processed at once)"
            )


# Hourly snapshots kept for a day: a local point to roll back to after a bad deploy or a
# FLUSHALL. Snapshots live on the same Longhorn disks as the volume, so they are no backup.
DEFAULT_SNAPSHOT = RecurringJobSchedule(cron="0 * * * *", retain=24)
# A daily backup to the backup target, kept for a week; off the hour so that it never starts
# together with the snapshot job.
DEFAULT_BACKUP = RecurringJobSchedule(cron="30 2 * * *", retain=7)


@dataclass(frozen=True, kw_only=True)
class BackupOptions:
    """Props of :class:`Backups`.

    :param snapshot: Schedule of ``RecurringJob <group>-snap`` (task ``snapshot``): Longhorn
        snapshots of the data volume, kept on the volume's own replicas. ``None`` renders no
        snapshot job. Default: every hour at minute 0, 24 kept.
    :param backup: Schedule of ``RecurringJob <group>-backup`` (task ``backup``): a snapshot copied
        to the Longhorn backup target, which must be configured in Longhorn (Settings, Backup
        Target). ``None`` renders no backup job. Default: every day at 02:30, 7 kept.
    :param longhorn_namespace: Namespace of the RecurringJob objects: Longhorn only reads them in
        its own. Default: ``longhorn-system``, where the Longhorn chart installs.
    :param group: Longhorn recurring-job group of the jobs, which every data claim of the Valkey
        joins through the label ``recurring-job-group.longhorn.io/<group>: enabled``; the jobs are named
        ``<group>-snap`` and ``<group>-backup``. Jobs of every namespace share Longhorn's
        namespace, so it must be unique per Valkey in the cluster. A DNS label of at most 33
        characters (Longhorn job names are at most 40). Default: ``<namespace>-<name>`` of the
        Valkey, e.g. ``apps-valkey``.
    """

    snapshot: RecurringJobSchedule | None = DEFAULT_SNAPSHOT
    backup: RecurringJobSchedule | None = DEFAULT_BACKUP
    longhorn_namespace: str = DEFAULT_LONGHORN_NAMESPACE
    group: str | None = None

    def __post_init__(self) -> None:
        for field_name in ("snapshot", "backup"):
            value = getattr(self, field_name)
            if value is not None and not isinstance(value, RecurringJobSchedule):
                raise ValueError(
                    f"BackupOptions.{field_name}: {value!r} is not a RecurringJobSchedule; pass "
                    "RecurringJobSchedule(cron=..., retain=...), or None for no such job"
                )
        if self.snapshot is None and self.backup is None:
            raise ValueError(
                "BackupOptions: snapshot and backup are both None, so nothing would be scheduled; "
                "set at least one of them, or leave Backups out"
            )
        check_dns_label("BackupOptions.longhorn_namespace", self.longhorn_namespace)
        if self.group is not None:
            _check_group("BackupOptions.group", self.group)


class Backups(Construct):
    """Longhorn recurring snapshots and backups of one Valkey's data claims.

    Renders, in Longhorn's namespace and named from the group (``<namespace>-<name>`` of the
    Valkey by default):

    - ``RecurringJob <group>-snap`` (``longhorn.io/v1beta2``, task ``snapshot``) and
      ``RecurringJob <group>-backup`` (task ``backup``), each in the group ``<group>`` only,
      with its cron, retain count and concurrency; either can be turned off;
    - on every data claim of the Valkey (:attr:`ValkeyStatefulSet.claim_names`: ``data-<name>-0``,
      and with Sentinel one per pod, ``data-<name>-<ordinal>``), the labels
      ``recurring-job.longhorn.io/source: enabled`` and
      ``recurring-job-group.longhorn.io/<group>: enabled``, which put its volume in the group.
      Each claim is a standalone object of the manifests, so GitOps keeps these labels on an
      existing claim too (a claim template's labels would only reach a new claim).

    Snapshots are crash-consistent: Longhorn syncs the filesystem, then snapshots the block device,
    with no hook into Valkey. That is exactly what a crash leaves, which AOF replay handles
    (``docs/operations.md``: the restore drill and runbook). At most one Backups per Valkey.
    Create it after anything that adds pods to the Valkey (:class:`Sentinel`; ``Valkey`` does):
    it reads the Valkey's topology, which then refuses to change.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        valkey: ValkeyStatefulSet,
        options: BackupOptions | None = None,
    ) -> None:
        """
        :param valkey: The Valkey whose data claims are snapshotted and backed up. The Backups may
            live in any chart: its jobs go to Longhorn's namespace, its labels onto the claim.
        :param options: Schedules, namespace and group. Default: ``BackupOptions()``, hourly
            snapshots kept for a day and daily backups kept for a week.
        """
        options = options if options is not None else BackupOptions()
        if not isinstance(options, BackupOptions):
            raise ValueError(f"options: {options!r} is not a BackupOptions; pass BackupOptions(...) or None")
        group = options.group if options.group is not None else _default_group(valkey)
        if valkey.claim.metadata.get_label(SOURCE_LABEL) is not None:
            raise ValueError(
                f"valkey: {valkey.name!r} already has Backups (its claim carries {SOURCE_LABEL}); "
                "give each Valkey at most one Backups"
            )

        super().__init__(scope, id)
        self.valkey = valkey
        self.group = group
        self.longhorn_namespace = options.longhorn_namespace
        self.snapshot = options.snapshot
        self.backup = options.backup
        self.labels = _labels.common_labels(valkey.name, valkey.version, COMPONENT)
        self.snapshot_job_name = f"{group}{SNAPSHOT_SUFFIX}" if options.snapshot is not None else None
        self.backup_job_name = f"{group}{BACKUP_SUFFIX}" if options.backup is not None else None
        _registry.register(
            self,
            [("RecurringJob", n) for n in (self.snapshot_job_name, self.backup_job_name) if n is not None],
            namespace=self.longhorn_namespace,
        )
        if options.snapshot is not None:
            assert self.snapshot_job_name is not None
            self._job("Snapshot", self.snapshot_job_name, _longhorn.RecurringJobSpecTask.SNAPSHOT, options.snapshot)
        if options.backup is not None:
            assert self.backup_job_name is not None
            self._job("Backup", self.backup_job_name, _longhorn.RecurringJobSpecTask.BACKUP, options.backup)
        self.claim_labels = {SOURCE_LABEL: ENABLED, f"{GROUP_LABEL_PREFIX}{group}": ENABLED}
        # The standalone claims' labels apply on every sync; a claim template's only at creation.
        # Reading the claims fixes the topology: pods added later are refused, not left out.
        self.claim_names = valkey.claim_names
        valkey.add_claim_labels(self.claim_labels)

    def _job(self, id: str, name: str, task: _longhorn.RecurringJobSpecTask, schedule: RecurringJobSchedule) -> None:
        _longhorn.RecurringJob(
            self,
            id,
            metadata=cdk8s.ApiObjectMetadata(name=name, namespace=self.longhorn_namespace, labels=dict(self.labels)),
            spec=_longhorn.RecurringJobSpec(
                # spec.name is what Longhorn uses; its webhook copies metadata.name there when
                # empty, which GitOps would then show as drift.
                name=name,
                task=task,
                cron=schedule.cron,
                retain=schedule.retain,
                concurrency=schedule.concurrency,
                groups=[self.group],
            ),
        )


def _default_group(valkey: ValkeyStatefulSet) -> str:
    if valkey.namespace is None:
        raise ValueError(
            f"BackupOptions.group: the default is <namespace>-<name>, but the chart of Valkey {valkey.name!r} has "
            "no namespace; give that chart a namespace, or set BackupOptions.group to a name unique in the cluster"
        )
    group = f"{valkey.namespace}-{valkey.name}"
    if len(group) > MAX_GROUP_LENGTH:
        raise ValueError(
            f"BackupOptions.group: the default {group!r} (<namespace>-<name>) has {len(group)} characters, "
            f"which makes job names longer than Longhorn's {MAX_JOB_NAME_LENGTH}; set BackupOptions.group to at "
            f"most {MAX_GROUP_LENGTH} characters, unique in the cluster"
        )
    return group
