"""SmokeCheck: a Job that checks the live Valkey against its manifest after each sync."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cdk8s
import cdk8s_plus_28 as kplus
from cdk8s_plus_28 import k8s
from constructs import Construct

from . import _labels, _registry, _scripts
from ._network_policy import allow_ingress
from ._validation import check_instance, quantity, shown_duration, size_to_bytes, whole_seconds
from ._wiring import check_same_namespace
from .sentinel import Sentinel
from .valkey_statefulset import CLI_PASSWORD_ENV, UID, ValkeyStatefulSet

COMPONENT = "smoke-check"
# app.kubernetes.io/name of the Job's pod. Not "valkey": with the Valkey's name and instance
# labels the pod would match the Valkey's selectors, so its Services would send clients to it
# and the Valkey's NetworkPolicy (no egress) would cut it off from the server it checks.
POD_APP_NAME = "valkey-smoke-check"
CONTAINER_NAME = "smoke"
SCRIPT = "smoke.sh"
# Under Sentinel: checks the topology, then runs smoke.sh against the primary (both shipped).
SENTINEL_SCRIPT = "smoke-sentinel.sh"
SCRIPTS_DIR = "/scripts"
DNS_PORT = 53

# Argo CD runs the Job once the synced objects are healthy, deletes it when it passed, and
# deletes the previous one (a failure kept for its log) before the next sync creates it again:
# a hook with a fixed name is otherwise created only once.
ARGOCD_HOOK = {
    "argocd.argoproj.io/hook": "PostSync",
    "argocd.argoproj.io/hook-delete-policy": "HookSucceeded,BeforeHookCreation",
}
# Flux has no hooks and a Job's template is immutable: with this annotation Flux replaces the
# Job (so it runs again) when the manifest changes, instead of failing the apply.
FLUX_FORCE = {"kustomize.toolkit.fluxcd.io/force": "enabled"}

# smoke.sh exit codes that are verdicts: a retried pod would print the same reason again.
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 64
# Retries are for pods lost to the node (eviction, preemption, OOM), not for failed checks.
BACKOFF_LIMIT = 2
# Bound of each valkey-cli call inside the script (connect and reply).
COMMAND_TIMEOUT_SECONDS = 5
# Under Sentinel: how far a replica may be behind the primary's replication offset, as the
# primary's INFO lists it (acknowledged once a second). 1 MiB is a second of a busy queue's
# writes; a replica further behind is resyncing or stalled, and a failover to it loses them.
MAX_REPLICA_LAG_BYTES = 1 << 20
# Under Sentinel, the env var through which valkey-cli gets the Sentinels' password (smoke.sh
# hands it to valkey-cli as REDISCLI_AUTH for the Sentinel calls only).
SENTINEL_PASSWORD_ENV = "SENTINEL_AUTH"
# activeDeadlineSeconds = the wait for PONG plus scheduling, an image pull on a node that lacks
# the image, and the checks themselves (well under a second).
DEADLINE_MARGIN_SECONDS = 120
MIN_WAIT_SECONDS = 5
MAX_WAIT_SECONDS = 3600
# Argo CD must see the Job finish before the TTL controller deletes it, or the sync waits for
# a hook that no longer exists (argoproj/argo-cd#21055).
MIN_TTL_SECONDS = 300
MIN_MEMORY_LIMIT_BYTES = 16 << 20  # sh, valkey-cli and coreutils use a few MiB
# The kernel keeps a cgroup memory limit in whole pages: the limit the entrypoint reads is the
# container's limit rounded down to a 4 KiB page.
PAGE_BYTES = 4096


@dataclass(frozen=True, kw_only=True)
class SmokeCheckOptions:
    """How the smoke-check Job runs. Every field is optional.

    :param wait_timeout: How long the check waits for the Valkey to answer PONG before it fails:
        after a sync the pod may still be starting or loading its AOF. Whole seconds from 5 s to
        1 h. The Job's ``activeDeadlineSeconds`` is this plus 2 minutes. Default: the Valkey's
        ``startup_budget``, the time its startup probe allows.
    :param ttl_after_finished: ``ttlSecondsAfterFinished``: how long a finished Job stays for its
        log before Kubernetes deletes it (Argo CD deletes a passed one at once). Under Flux the
        Job is applied again after that, so the check repeats about once per this period. At
        least 5 minutes. Default: 24 hours, a working day to read a failure.
    :param memory_limit: Memory request and limit of the Job's container. At least 16 MiB.
        Default: 32 MiB; sh and valkey-cli use a few MiB.
    :param cpu_request: CPU request of the Job's container; no CPU limit, as for the Valkey
        container. Default: 10m; the checks take well under a second of CPU.
    """

    wait_timeout: cdk8s.Duration | None = None
    ttl_after_finished: cdk8s.Duration = cdk8s.Duration.hours(24)
    memory_limit: cdk8s.Size = cdk8s.Size.mebibytes(32)
    cpu_request: kplus.Cpu = kplus.Cpu.millis(10)

    def __post_init__(self) -> None:
        if self.wait_timeout is not None:
            check_instance("SmokeCheckOptions.wait_timeout", self.wait_timeout, cdk8s.Duration, _DURATION)
            seconds = whole_seconds(self.wait_timeout)
            if seconds is None or not MIN_WAIT_SECONDS <= seconds <= MAX_WAIT_SECONDS:
                raise ValueError(
                    f"SmokeCheckOptions.wait_timeout: {shown_duration(self.wait_timeout)} is not allowed; use whole "
                    f"seconds from {MIN_WAIT_SECONDS}s to {MAX_WAIT_SECONDS // 3600}h"
                )
        check_instance("SmokeCheckOptions.ttl_after_finished", self.ttl_after_finished, cdk8s.Duration, _DURATION)
        seconds = whole_seconds(self.ttl_after_finished)
        if seconds is None or seconds < MIN_TTL_SECONDS:
            raise ValueError(
                f"SmokeCheckOptions.ttl_after_finished: {shown_duration(self.ttl_after_finished)} is not allowed; use "
                f"whole seconds, at least {MIN_TTL_SECONDS // 60} minutes, so that Argo CD sees the Job "
                "finish before Kubernetes deletes it"
            )
        check_instance("SmokeCheckOptions.memory_limit", self.memory_limit, cdk8s.Size, _SIZE)
        if size_to_bytes(self.memory_limit) < MIN_MEMORY_LIMIT_BYTES:
            raise ValueError(
                f"SmokeCheckOptions.memory_limit: {quantity(self.memory_limit)} is too small to run "
                f"sh and valkey-cli; use at least {MIN_MEMORY_LIMIT_BYTES >> 20}Mi"
            )
        check_instance("SmokeCheckOptions.cpu_request", self.cpu_request, kplus.Cpu, _CPU)


class SmokeCheck(Construct):
    """An opt-in Job that checks the live Valkey against its manifest after each sync.

    Renders, all named from the Valkey's ``name``:

    - ``ConfigMap <name>-smoke``: ``smoke.sh``, the check script (and, with ``sentinel``,
      ``smoke-sentinel.sh``, which the Job runs: it checks the topology, then runs
      ``smoke.sh`` against the primary);
    - ``Job <name>-smoke``: an Argo CD ``PostSync`` hook (deleted when it passes, replaced at
      the next sync when it failed) that Flux replaces when it changes. Its pod runs the
      script with the Valkey's image, hardened, against the client Service: PING (waiting for
      the pod to become ready), ``maxmemory`` equal to the percentage of the container limit
      the entrypoint applies, ``maxmemory-policy noeviction``, ``appendonly yes``,
      ``appendfsync everysec``, a SET/GET/DEL of a scratch key with a 60 s TTL and, when the
      Valkey has ``auth_secret``, AUTH through ``REDISCLI_AUTH`` from the same Secret key (and
      a client without it refused). The first failed check fails the Job, and so the sync,
      with one line ``smoke: FAIL <check>: <reason>`` in the log and the pod's termination
      message;
    - with ``sentinel``, the Job checks the topology instead of the client Service (which has
      no endpoints there): it asks every Sentinel for the primary (one of three may be down),
      waits until every pod answers, every replica is linked to that primary and at most
      1 MiB and ``min_replicas_max_lag`` behind it, and ``SENTINEL CKQUORUM`` passes; then
      checks the guardrails above on every pod (any replica may be promoted) and writes
      through the primary. With ``auth_secret`` the Sentinels are asked with the same Secret
      key (``SENTINEL_AUTH``);
    - when the Valkey has ``network_policy``: ``NetworkPolicy <name>-smoke``, the Valkey port
      (and the Sentinel port, with ``sentinel``) open to the Job's pod (beside the Valkey's own
      policy), and ``NetworkPolicy <name>-smoke-job`` for the Job's pod itself: no ingress,
      egress to those ports of the Valkey's pods and DNS.

    The Job's pod is labelled ``app.kubernetes.io/name: valkey-smoke-check`` (``pod_labels``),
    so that no selector of the Valkey (Services, policies) ever selects it.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        valkey: ValkeyStatefulSet,
        options: SmokeCheckOptions | None = None,
        sentinel: Sentinel | None = None,
    ) -> None:
        """
        :param valkey: The Valkey to check. The SmokeCheck must live in a chart of the Valkey's
            namespace: it reaches the client Service by its short name, and its NetworkPolicies
            select the Valkey's pods there.
        :param options: How the Job runs (:class:`SmokeCheckOptions`). Default: every option's
            default.
        :param sentinel: The Valkey's :class:`Sentinel`, when it runs one: the Job then checks
            the primary, the replicas and the Sentinels, by the pods' host names. Default: none,
            the single Valkey through its client Service.
        """
        # Validate everything before defining any child (and before joining the tree).
        if not isinstance(valkey, ValkeyStatefulSet):
            raise ValueError(f"valkey: {valkey!r} is not a ValkeyStatefulSet; pass the Valkey construct itself")
        if sentinel is not None:
            check_instance("sentinel", sentinel, Sentinel, "the Sentinel of that Valkey, or None")
            if sentinel.valkey is not valkey:
                raise ValueError(
                    f"sentinel: it runs Valkey {sentinel.valkey.name!r}, not {valkey.name!r}; "
                    "pass the Sentinel created with valkey=<this Valkey>"
                )
        if options is None:
            options = SmokeCheckOptions()
        elif not isinstance(options, SmokeCheckOptions):
            raise ValueError(f"options: {options!r} is not a SmokeCheckOptions; pass SmokeCheckOptions(...)")
        check_same_namespace("SmokeCheck", scope, valkey, "where the Job reaches the Service by its name")

        super().__init__(scope, id)

        self.valkey = valkey
        self.sentinel = sentinel
        self.options = options
        self.name = f"{valkey.name}-smoke"
        self.config_map_name = self.name
        self.job_name = self.name
        self.wait_timeout = options.wait_timeout or valkey.startup_budget
        wait_seconds = int(self.wait_timeout.to_seconds())
        self.active_deadline = cdk8s.Duration.seconds(wait_seconds + DEADLINE_MARGIN_SECONDS)
        self.expected_maxmemory_bytes = expected_maxmemory_bytes(valkey)
        self.labels = _labels.common_labels(valkey.name, valkey.version, COMPONENT)
        self._pod_labels = {**self.labels, "app.kubernetes.io/name": POD_APP_NAME}
        scripts = {SCRIPT: _scripts.script(SCRIPT)}
        if sentinel is not None:
            scripts[SENTINEL_SCRIPT] = _scripts.script(SENTINEL_SCRIPT)
        self.command = ["sh", f"{SCRIPTS_DIR}/{SENTINEL_SCRIPT if sentinel is not None else SCRIPT}"]
        # One script: its own digest, as before Sentinel was supported (the same annotation).
        digest = hashlib.sha256("".join(scripts.values()).encode()).hexdigest()
        _registry.register(
            self,
            [
                ("ConfigMap", self.config_map_name),
                ("Job", self.job_name),
                *(
                    [("NetworkPolicy", self.name), ("NetworkPolicy", f"{self.name}-job")]
                    if valkey.network_policy
                    else []
                ),
            ],
        )

        k8s.KubeConfigMap(
            self,
            "Scripts",
            metadata=k8s.ObjectMeta(name=self.config_map_name, labels=dict(self.labels)),
            data=scripts,
        )
        self.job = k8s.KubeJob(
            self,
            "Resource",
            metadata=k8s.ObjectMeta(
                name=self.job_name,
                labels=dict(self.labels),
                annotations={**ARGOCD_HOOK, **FLUX_FORCE},
            ),
            spec=k8s.JobSpec(
                backoff_limit=BACKOFF_LIMIT,
                active_deadline_seconds=int(self.active_deadline.to_seconds()),
                ttl_seconds_after_finished=int(options.ttl_after_finished.to_seconds()),
                pod_failure_policy=k8s.PodFailurePolicy(
                    rules=[
                        # A verdict of the script ends the Job at once, with its reason.
                        k8s.PodFailurePolicyRule(
                            action="FailJob",
                            on_exit_codes=k8s.PodFailurePolicyOnExitCodesRequirement(
                                container_name=CONTAINER_NAME,
                                operator="In",
                                values=[EXIT_CHECK_FAILED, EXIT_USAGE],
                            ),
                            on_pod_conditions=[],
                        ),
                        # A pod evicted or preempted is not the check's fault: retried, uncounted.
                        k8s.PodFailurePolicyRule(
                            action="Ignore",
                            on_pod_conditions=[
                                k8s.PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget", status="True")
                            ],
                        ),
                    ]
                ),
                template=k8s.PodTemplateSpec(
                    metadata=k8s.ObjectMeta(
                        labels=dict(self.pod_labels),
                        # A new script changes the template, so Flux replaces the Job and it runs again.
                        annotations={"checksum/script": digest},
                    ),
                    spec=self._pod_spec(options),
                ),
            ),
        )
        self.network_policy_name: str | None = None
        self.job_network_policy_name: str | None = None
        if valkey.network_policy_name is not None:
            # Beside the Valkey's own policy (policies add up), so that its allowed_clients
            # need not list the Job.
            self.network_policy_name = self.name
            allow_ingress(
                self,
                "NetworkPolicy",
                name=self.network_policy_name,
                labels=self.labels,
                pod_labels=valkey.match_labels,
                peers=[k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels=self.peer_labels))],
                port=self.ports,
            )
            self.job_network_policy_name = f"{self.name}-job"
            self._job_network_policy()

    # -- wiring points -------------------------------------------------------------

    @property
    def pod_labels(self) -> dict[str, str]:
        """The labels of the Job's pod (a copy)."""
        return dict(self._pod_labels)

    @property
    def peer_labels(self) -> dict[str, str]:
        """The labels that select the Job's pod in a NetworkPolicy peer (a copy)."""
        return {key: self._pod_labels[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}

    @property
    def ports(self) -> tuple[int, ...]:
        """The ports of the Valkey's pods the Job connects to: Valkey's, and the Sentinels'."""
        if self.sentinel is None:
            return (self.valkey.port,)
        return (self.valkey.port, self.sentinel.sentinel_port)

    @property
    def env(self) -> list[k8s.EnvVar]:
        """The script's environment as rendered (a new list)."""
        if self.sentinel is None:
            target = [
                k8s.EnvVar(name="VALKEY_HOST", value=self.valkey.service_name),
                k8s.EnvVar(name="VALKEY_PORT", value=str(self.valkey.port)),
            ]
        else:
            sentinel = self.sentinel
            lag_seconds = int(sentinel.min_replicas_max_lag.to_seconds())
            target = [
                k8s.EnvVar(
                    name="VALKEY_SENTINELS",
                    value=" ".join(f"{host}:{sentinel.sentinel_port}" for host in sentinel.sentinel_hosts),
                ),
                k8s.EnvVar(name="VALKEY_MASTER_NAME", value=sentinel.master_name),
                # Every pod, by the name the replicas announce and the Sentinels report.
                k8s.EnvVar(
                    name="VALKEY_NODES", value=" ".join(f"{host}:{self.valkey.port}" for host in sentinel.pod_hosts)
                ),
                k8s.EnvVar(name="SMOKE_MAX_LAG_BYTES", value=str(MAX_REPLICA_LAG_BYTES)),
                # A replica acknowledged later than this no longer counts for min-replicas-to-write.
                k8s.EnvVar(name="SMOKE_MAX_LAG_SECONDS", value=str(lag_seconds)),
            ]
        env = [
            *target,
            k8s.EnvVar(name="SMOKE_EXPECTED_MAXMEMORY_BYTES", value=str(self.expected_maxmemory_bytes)),
            k8s.EnvVar(name="SMOKE_WAIT_SECONDS", value=str(int(self.wait_timeout.to_seconds()))),
            k8s.EnvVar(name="SMOKE_TIMEOUT_SECONDS", value=str(COMMAND_TIMEOUT_SECONDS)),
        ]
        if self.valkey.auth_secret is not None:
            # The same Secret key as the Valkey's password; valkey-cli reads it from the env.
            env.append(self.valkey.auth_secret.env_var(CLI_PASSWORD_ENV))
            if self.sentinel is not None:
                # The Sentinels require the same password as the Valkeys they watch.
                env.append(self.valkey.auth_secret.env_var(SENTINEL_PASSWORD_ENV))
        return env

    # -- rendering -----------------------------------------------------------------

    def _job_network_policy(self) -> None:
        """The Job's own pod: nothing may connect to it, and it may connect only to the Valkey
        pods' ports (:attr:`ports`) and to DNS. DNS on port 53 to any address: the resolver's pods and addresses
        differ per cluster (kube-dns, CoreDNS, NodeLocal DNSCache on a link-local address)."""
        assert self.job_network_policy_name is not None
        dns_ports = [
            k8s.NetworkPolicyPort(port=k8s.IntOrString.from_number(DNS_PORT), protocol=p) for p in ("UDP", "TCP")
        ]
        k8s.KubeNetworkPolicy(
            self,
            "JobNetworkPolicy",
            metadata=k8s.ObjectMeta(name=self.job_network_policy_name, labels=dict(self.labels)),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=self.peer_labels),
                policy_types=["Ingress", "Egress"],
                ingress=[],
                egress=[
                    k8s.NetworkPolicyEgressRule(
                        to=[
                            k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels=self.valkey.match_labels))
                        ],
                        ports=[
                            k8s.NetworkPolicyPort(port=k8s.IntOrString.from_number(port), protocol="TCP")
                            for port in self.ports
                        ],
                    ),
                    k8s.NetworkPolicyEgressRule(ports=dns_ports),
                ],
            ),
        )

    def _pod_spec(self, options: SmokeCheckOptions) -> k8s.PodSpec:
        memory = k8s.Quantity.from_string(quantity(options.memory_limit))
        return k8s.PodSpec(
            restart_policy="Never",  # retries are new pods, counted by backoffLimit
            automount_service_account_token=False,
            enable_service_links=False,
            security_context=k8s.PodSecurityContext(
                run_as_user=UID,
                run_as_group=UID,
                run_as_non_root=True,
                seccomp_profile=k8s.SeccompProfile(type="RuntimeDefault"),
            ),
            containers=[
                k8s.Container(
                    name=CONTAINER_NAME,
                    # The Valkey's image: it has valkey-cli of the server's version, and the node
                    # that ran the Valkey already has it.
                    image=self.valkey.image,
                    image_pull_policy="IfNotPresent",
                    command=list(self.command),
                    env=self.env,
                    resources=k8s.ResourceRequirements(
                        requests={"cpu": k8s.Quantity.from_string(options.cpu_request.amount), "memory": memory},
                        limits={"memory": memory},
                    ),
                    security_context=k8s.SecurityContext(
                        allow_privilege_escalation=False,
                        read_only_root_filesystem=True,
                        run_as_non_root=True,
                        capabilities=k8s.Capabilities(drop=["ALL"]),
                    ),
                    # The script's last line is its verdict: it becomes the pod's termination
                    # message, shown by kubectl describe and in Argo CD's hook status.
                    termination_message_policy="FallbackToLogsOnError",
                    volume_mounts=[k8s.VolumeMount(name="scripts", mount_path=SCRIPTS_DIR, read_only=True)],
                )
            ],
            volumes=[k8s.Volume(name="scripts", config_map=k8s.ConfigMapVolumeSource(name=self.config_map_name))],
        )


def expected_maxmemory_bytes(valkey: ValkeyStatefulSet) -> int:
    """The ``maxmemory`` the entrypoint sets in the running pod: floor(limit * percent / 100) of
    the cgroup limit, which is the container's memory limit in whole pages."""
    limit = size_to_bytes(valkey.memory_limit) // PAGE_BYTES * PAGE_BYTES
    return limit * valkey.maxmemory_percent // 100


_DURATION = "a cdk8s.Duration such as cdk8s.Duration.minutes(5)"
_SIZE = "a cdk8s.Size such as cdk8s.Size.mebibytes(32)"
_CPU = "a kplus.Cpu (import cdk8s_plus_28 as kplus) such as kplus.Cpu.millis(10)"
