"""cdk8s constructs for ADR 0005: Valkey on Kubernetes as plain, reviewable YAML."""

# First: `python -m cdk8s_valkey` silences Node's end-of-life banner before jsii starts Node.
from . import _tool_env  # noqa: F401  (isort keeps it first)
from .alerts import AlertOptions, Alerts
from .backups import BackupOptions, Backups, RecurringJobSchedule
from .dashboard import Dashboard, DashboardOptions
from .exporter_sidecar import ExporterOptions, ExporterSidecar
from .pod_model import ContainerModel, PodModel
from .pod_options import PodOptions
from .primary_endpoint import PrimaryEndpoint, PrimaryEndpointOptions
from .sentinel import Sentinel, SentinelOptions
from .sentinel_alerts import SentinelAlertOptions, SentinelAlerts
from .smoke_check import SmokeCheck, SmokeCheckOptions
from .topology import Topology
from .valkey import Valkey, ValkeyProps
from .valkey_chart import ValkeyChart
from .valkey_statefulset import SecretKeyRef, ValkeyStatefulSet

__all__ = [
    "AlertOptions",
    "Alerts",
    "BackupOptions",
    "Backups",
    "ContainerModel",
    "Dashboard",
    "DashboardOptions",
    "ExporterOptions",
    "ExporterSidecar",
    "PodModel",
    "PodOptions",
    "PrimaryEndpoint",
    "PrimaryEndpointOptions",
    "RecurringJobSchedule",
    "SecretKeyRef",
    "Sentinel",
    "SentinelAlertOptions",
    "SentinelAlerts",
    "SentinelOptions",
    "SmokeCheck",
    "SmokeCheckOptions",
    "Topology",
    "Valkey",
    "ValkeyChart",
    "ValkeyProps",
    "ValkeyStatefulSet",
]
__version__ = "0.3.0"
