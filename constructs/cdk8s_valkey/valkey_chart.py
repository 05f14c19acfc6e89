"""ValkeyChart: ADR 0005 in one chart, composing the three constructs from one set of props."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cdk8s
import cdk8s_plus_28 as kplus
from cdk8s_plus_28 import k8s
from constructs import Construct

from .alerts import Alerts
from .exporter_sidecar import ExporterSidecar
from .valkey_statefulset import SecretKeyRef, ValkeyStatefulSet


class ValkeyChart(cdk8s.Chart):
    """A chart holding one Valkey (``ValkeyStatefulSet``), its ``ExporterSidecar`` and its
    ``Alerts``: every object ADR 0005 asks for, in one ``<id>.k8s.yaml``.

    Each prop is passed to the construct that owns it, under the same name; a prop left at
    ``None`` keeps that construct's default, so the defaults live in one place. The exporter's
    own image and resources are prefixed ``exporter_``. The constructs are reachable as
    ``valkey``, ``exporter`` and ``alerts`` for wiring.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        namespace: str | None = None,
        name: str | None = None,
        image: str | None = None,
        memory_limit: cdk8s.Size | None = None,
        maxmemory_ratio: float | None = None,
        maxmemory_fallback: cdk8s.Size | None = None,
        cpu_request: kplus.Cpu | None = None,
        storage_size: cdk8s.Size | None = None,
        storage_class: str | None = None,
        startup_budget: cdk8s.Duration | None = None,
        extra_config: Mapping[str, str] | None = None,
        auth_secret: SecretKeyRef | None = None,
        network_policy: bool | None = None,
        allowed_clients: Sequence[k8s.NetworkPolicyPeer] | None = None,
        exporter_image: str | None = None,
        exporter_memory_limit: cdk8s.Size | None = None,
        exporter_cpu_request: kplus.Cpu | None = None,
        bullmq_queues: Sequence[str] | None = None,
        bullmq_prefix: str | None = None,
        service_monitor_labels: Mapping[str, str] | None = None,
        scrape_interval: cdk8s.Duration | None = None,
        metrics_namespace: str | None = None,
        rule_labels: Mapping[str, str] | None = None,
        runbook_base_url: str | None = None,
        down_for: cdk8s.Duration | None = None,
        client_threshold: int | None = None,
        queue_depth_threshold: int | None = None,
        queue_depth_thresholds: Mapping[str, int] | None = None,
        queue_depth_for: cdk8s.Duration | None = None,
    ) -> None:
        """
        :param namespace: Namespace of every object. Default: none, the namespace ``kubectl``
            or the GitOps tool applies to.
        :param name: ``ValkeyStatefulSet`` ``name``. Default: the chart id.
        :param image: ``ValkeyStatefulSet`` ``image``. Default: that construct's.
        :param memory_limit: ``ValkeyStatefulSet`` ``memory_limit``. Default: that construct's.
        :param maxmemory_ratio: ``ValkeyStatefulSet`` ``maxmemory_ratio``. Default: that construct's.
        :param maxmemory_fallback: ``ValkeyStatefulSet`` ``maxmemory_fallback``. Default: that construct's.
        :param cpu_request: ``ValkeyStatefulSet`` ``cpu_request``. Default: that construct's.
        :param storage_size: ``ValkeyStatefulSet`` ``storage_size``. Default: that construct's.
        :param storage_class: ``ValkeyStatefulSet`` ``storage_class``. Default: that construct's.
        :param startup_budget: ``ValkeyStatefulSet`` ``startup_budget``. Default: that construct's.
        :param extra_config: ``ValkeyStatefulSet`` ``extra_config``. Default: that construct's.
        :param auth_secret: ``ValkeyStatefulSet`` ``auth_secret``. Default: that construct's.
        :param network_policy: ``ValkeyStatefulSet`` ``network_policy``. Default: that construct's.
        :param allowed_clients: ``ValkeyStatefulSet`` ``allowed_clients``. Default: that construct's.
        :param exporter_image: ``ExporterSidecar`` ``image``. Default: that construct's.
        :param exporter_memory_limit: ``ExporterSidecar`` ``memory_limit``. Default: that construct's.
        :param exporter_cpu_request: ``ExporterSidecar`` ``cpu_request``. Default: that construct's.
        :param bullmq_queues: ``ExporterSidecar`` ``bullmq_queues``. Default: that construct's.
        :param bullmq_prefix: ``ExporterSidecar`` ``bullmq_prefix``. Default: that construct's.
        :param service_monitor_labels: ``ExporterSidecar`` ``service_monitor_labels``. Default: that
            construct's.
        :param scrape_interval: ``ExporterSidecar`` ``scrape_interval``. Default: that construct's.
        :param metrics_namespace: ``ExporterSidecar`` ``metrics_namespace``. Default: that construct's.
        :param rule_labels: ``Alerts`` ``rule_labels``. Default: that construct's.
        :param runbook_base_url: ``Alerts`` ``runbook_base_url``. Default: that construct's.
        :param down_for: ``Alerts`` ``down_for``. Default: that construct's.
        :param client_threshold: ``Alerts`` ``client_threshold``. Default: that construct's.
        :param queue_depth_threshold: ``Alerts`` ``queue_depth_threshold``. Default: that construct's.
        :param queue_depth_thresholds: ``Alerts`` ``queue_depth_thresholds``. Default: that construct's.
        :param queue_depth_for: ``Alerts`` ``queue_depth_for``. Default: that construct's.
        """
        super().__init__(scope, id, namespace=namespace)
        self.valkey = ValkeyStatefulSet(
            self,
            "valkey",
            **_given(
                name=name if name is not None else id,
                image=image,
                memory_limit=memory_limit,
                maxmemory_ratio=maxmemory_ratio,
                maxmemory_fallback=maxmemory_fallback,
                cpu_request=cpu_request,
                storage_size=storage_size,
                storage_class=storage_class,
                startup_budget=startup_budget,
                extra_config=extra_config,
                auth_secret=auth_secret,
                network_policy=network_policy,
                allowed_clients=allowed_clients,
            ),
        )
        self.exporter = ExporterSidecar(
            self,
            "exporter",
            valkey=self.valkey,
            **_given(
                image=exporter_image,
                memory_limit=exporter_memory_limit,
                cpu_request=exporter_cpu_request,
                bullmq_queues=bullmq_queues,
                bullmq_prefix=bullmq_prefix,
                service_monitor_labels=service_monitor_labels,
                scrape_interval=scrape_interval,
                metrics_namespace=metrics_namespace,
            ),
        )
        self.alerts = Alerts(
            self,
            "alerts",
            valkey=self.valkey,
            exporter=self.exporter,
            **_given(
                rule_labels=rule_labels,
                runbook_base_url=runbook_base_url,
                down_for=down_for,
                client_threshold=client_threshold,
                queue_depth_threshold=queue_depth_threshold,
                queue_depth_thresholds=queue_depth_thresholds,
                queue_depth_for=queue_depth_for,
            ),
        )


def _given(**props: Any) -> dict[str, Any]:
    """The props the caller set: None means "the construct's default"."""
    return {key: value for key, value in props.items() if value is not None}
