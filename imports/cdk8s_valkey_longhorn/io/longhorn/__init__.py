from __future__ import annotations

from pkgutil import extend_path
__path__ = extend_path(__path__, __name__)

import abc
import builtins
import datetime
import enum
import typing

import jsii
import publication
import typing_extensions

from jsii._type_checking import cached_type_hints, check_type


from ._jsii import *

class _LazyImport:
    def __init__(self, module_name: str) -> None:
        self._module_name = module_name
        self._module: typing.Any = None
    def __getattr__(self, name: str) -> typing.Any:
        if self._module is None:
            import importlib
            self._module = importlib.import_module(self._module_name)
        return getattr(self._module, name)

if typing.TYPE_CHECKING:

    import cdk8s as _cdk8s_d3d9af27
    import constructs as _constructs_77d1e7e8
else:

    _cdk8s_d3d9af27 = _LazyImport("cdk8s")
    _constructs_77d1e7e8 = _LazyImport("constructs")


class RecurringJob(
    _cdk8s_d3d9af27.ApiObject,
    metaclass=jsii.JSIIMeta,
    jsii_type="cdk8s_valkey_longhorn_iolonghorn.RecurringJob",
):
    '''RecurringJob is where Longhorn stores recurring job object.

    :schema: RecurringJob
    '''

    def __init__(
        self,
        scope: "_constructs_77d1e7e8.Construct",
        id: builtins.str,
        *,
        metadata: typing.Optional[typing.Union["_cdk8s_d3d9af27.ApiObjectMetadata", typing.Dict[builtins.str, typing.Any]]] = None,
        spec: typing.Optional[typing.Union["RecurringJobSpec", typing.Dict[builtins.str, typing.Any]]] = None,
    ) -> None:
        '''Defines a "RecurringJob" API object.

        :param scope: the scope in which to define this object.
        :param id: a scope-local name for the object.
        :param metadata: 
        :param spec: RecurringJobSpec defines the desired state of the Longhorn recurring job.
        '''
        if __debug__:
            type_hints = cached_type_hints(_typecheckingstub__aa2c4fd763aac4601e2faa6a4372ec4dff27b591cd44490699f5d0c67aed89ac)
            check_type(argname="argument scope", value=scope, expected_type=type_hints["scope"])
            check_type(argname="argument id", value=id, expected_type=type_hints["id"])
        props = RecurringJobProps(metadata=metadata, spec=spec)

        jsii.create(self.__class__, self, [scope, id, props])

    @jsii.member(jsii_name="manifest")
    @builtins.classmethod
    def manifest(
        cls,
        *,
        metadata: typing.Optional[typing.Union["_cdk8s_d3d9af27.ApiObjectMetadata", typing.Dict[builtins.str, typing.Any]]] = None,
        spec: typing.Optional[typing.Union["RecurringJobSpec", typing.Dict[builtins.str, typing.Any]]] = None,
    ) -> typing.Any:
        '''Renders a Kubernetes manifest for "RecurringJob".

        This can be used to inline resource manifests inside other objects (e.g. as templates).

        :param metadata: 
        :param spec: RecurringJobSpec defines the desired state of the Longhorn recurring job.
        '''
        props = RecurringJobProps(metadata=metadata, spec=spec)

        return typing.cast(typing.Any, jsii.sinvoke(cls, "manifest", [props]))

    @jsii.member(jsii_name="toJson")
    def to_json(self) -> typing.Any:
        '''Renders the object to Kubernetes JSON.'''
        return typing.cast(typing.Any, jsii.invoke(self, "toJson", []))

    @jsii.python.classproperty
    @jsii.member(jsii_name="GVK")
    def GVK(cls) -> "_cdk8s_d3d9af27.GroupVersionKind":
        '''Returns the apiVersion and kind for "RecurringJob".'''
        return typing.cast("_cdk8s_d3d9af27.GroupVersionKind", jsii.sget(cls, "GVK"))


@jsii.data_type(
    jsii_type="cdk8s_valkey_longhorn_iolonghorn.RecurringJobProps",
    jsii_struct_bases=[],
    name_mapping={"metadata": "metadata", "spec": "spec"},
)
class RecurringJobProps:
    def __init__(
        self,
        *,
        metadata: typing.Optional[typing.Union["_cdk8s_d3d9af27.ApiObjectMetadata", typing.Dict[builtins.str, typing.Any]]] = None,
        spec: typing.Optional[typing.Union["RecurringJobSpec", typing.Dict[builtins.str, typing.Any]]] = None,
    ) -> None:
        '''RecurringJob is where Longhorn stores recurring job object.

        :param metadata: 
        :param spec: RecurringJobSpec defines the desired state of the Longhorn recurring job.

        :schema: RecurringJob
        '''
        if isinstance(metadata, dict):
            metadata = _cdk8s_d3d9af27.ApiObjectMetadata(**metadata)
        if isinstance(spec, dict):
            spec = RecurringJobSpec(**spec)
        if __debug__:
            type_hints = cached_type_hints(_typecheckingstub__8a191bd9ffaaaa96bdf8e34929b7f93549b0980e62e79c880bd1edc936cafd10)
            check_type(argname="argument metadata", value=metadata, expected_type=type_hints["metadata"])
            check_type(argname="argument spec", value=spec, expected_type=type_hints["spec"])
        self._values: typing.Dict[builtins.str, typing.Any] = {}
        if metadata is not None:
            self._values["metadata"] = metadata
        if spec is not None:
            self._values["spec"] = spec

    @builtins.property
    def metadata(self) -> typing.Optional["_cdk8s_d3d9af27.ApiObjectMetadata"]:
        '''
        :schema: RecurringJob#metadata
        '''
        result = self._values.get("metadata")
        return typing.cast(typing.Optional["_cdk8s_d3d9af27.ApiObjectMetadata"], result)

    @builtins.property
    def spec(self) -> typing.Optional["RecurringJobSpec"]:
        '''RecurringJobSpec defines the desired state of the Longhorn recurring job.

        :schema: RecurringJob#spec
        '''
        result = self._values.get("spec")
        return typing.cast(typing.Optional["RecurringJobSpec"], result)

    def __eq__(self, rhs: typing.Any) -> builtins.bool:
        return isinstance(rhs, self.__class__) and rhs._values == self._values

    def __ne__(self, rhs: typing.Any) -> builtins.bool:
        return not (rhs == self)

    def __repr__(self) -> str:
        return "RecurringJobProps(%s)" % ", ".join(
            k + "=" + repr(v) for k, v in self._values.items()
        )


@jsii.data_type(
    jsii_type="cdk8s_valkey_longhorn_iolonghorn.RecurringJobSpec",
    jsii_struct_bases=[],
    name_mapping={
        "concurrency": "concurrency",
        "cron": "cron",
        "groups": "groups",
        "labels": "labels",
        "name": "name",
        "parameters": "parameters",
        "retain": "retain",
        "task": "task",
    },
)
class RecurringJobSpec:
    def __init__(
        self,
        *,
        concurrency: typing.Optional[jsii.Number] = None,
        cron: typing.Optional[builtins.str] = None,
        groups: typing.Optional[typing.Sequence[builtins.str]] = None,
        labels: typing.Optional[typing.Mapping[builtins.str, builtins.str]] = None,
        name: typing.Optional[builtins.str] = None,
        parameters: typing.Optional[typing.Mapping[builtins.str, builtins.str]] = None,
        retain: typing.Optional[jsii.Number] = None,
        task: typing.Optional["RecurringJobSpecTask"] = None,
    ) -> None:
        '''RecurringJobSpec defines the desired state of the Longhorn recurring job.

        :param concurrency: The concurrency of taking the snapshot/backup.
        :param cron: The cron setting.
        :param groups: The recurring job group.
        :param labels: The label of the snapshot/backup.
        :param name: The recurring job name.
        :param parameters: The parameters of the snapshot/backup. Support parameters: "full-backup-interval", "volume-backup-policy".
        :param retain: The retain count of the snapshot/backup.
        :param task: The recurring job task. Can be "snapshot", "snapshot-force-create", "snapshot-cleanup", "snapshot-delete", "backup", "backup-force-create", "filesystem-trim" or "system-backup".

        :schema: RecurringJobSpec
        '''
        if __debug__:
            type_hints = cached_type_hints(_typecheckingstub__5aa903ed82f27b8b0880c70192a01f021b48998bb92e41c6e74fcad4dc8cb437)
            check_type(argname="argument concurrency", value=concurrency, expected_type=type_hints["concurrency"])
            check_type(argname="argument cron", value=cron, expected_type=type_hints["cron"])
            check_type(argname="argument groups", value=groups, expected_type=type_hints["groups"])
            check_type(argname="argument labels", value=labels, expected_type=type_hints["labels"])
            check_type(argname="argument name", value=name, expected_type=type_hints["name"])
            check_type(argname="argument parameters", value=parameters, expected_type=type_hints["parameters"])
            check_type(argname="argument retain", value=retain, expected_type=type_hints["retain"])
            check_type(argname="argument task", value=task, expected_type=type_hints["task"])
        self._values: typing.Dict[builtins.str, typing.Any] = {}
        if concurrency is not None:
            self._values["concurrency"] = concurrency
        if cron is not None:
            self._values["cron"] = cron
        if groups is not None:
            self._values["groups"] = groups
        if labels is not None:
            self._values["labels"] = labels
        if name is not None:
            self._values["name"] = name
        if parameters is not None:
            self._values["parameters"] = parameters
        if retain is not None:
            self._values["retain"] = retain
        if task is not None:
            self._values["task"] = task

    @builtins.property
    def concurrency(self) -> typing.Optional[jsii.Number]:
        '''The concurrency of taking the snapshot/backup.

        :schema: RecurringJobSpec#concurrency
        '''
        result = self._values.get("concurrency")
        return typing.cast(typing.Optional[jsii.Number], result)

    @builtins.property
    def cron(self) -> typing.Optional[builtins.str]:
        '''The cron setting.

        :schema: RecurringJobSpec#cron
        '''
        result = self._values.get("cron")
        return typing.cast(typing.Optional[builtins.str], result)

    @builtins.property
    def groups(self) -> typing.Optional[typing.List[builtins.str]]:
        '''The recurring job group.

        :schema: RecurringJobSpec#groups
        '''
        result = self._values.get("groups")
        return typing.cast(typing.Optional[typing.List[builtins.str]], result)

    @builtins.property
    def labels(self) -> typing.Optional[typing.Mapping[builtins.str, builtins.str]]:
        '''The label of the snapshot/backup.

        :schema: RecurringJobSpec#labels
        '''
        result = self._values.get("labels")
        return typing.cast(typing.Optional[typing.Mapping[builtins.str, builtins.str]], result)

    @builtins.property
    def name(self) -> typing.Optional[builtins.str]:
        '''The recurring job name.

        :schema: RecurringJobSpec#name
        '''
        result = self._values.get("name")
        return typing.cast(typing.Optional[builtins.str], result)

    @builtins.property
    def parameters(self) -> typing.Optional[typing.Mapping[builtins.str, builtins.str]]:
        '''The parameters of the snapshot/backup.

        Support parameters: "full-backup-interval", "volume-backup-policy".

        :schema: RecurringJobSpec#parameters
        '''
        result = self._values.get("parameters")
        return typing.cast(typing.Optional[typing.Mapping[builtins.str, builtins.str]], result)

    @builtins.property
    def retain(self) -> typing.Optional[jsii.Number]:
        '''The retain count of the snapshot/backup.

        :schema: RecurringJobSpec#retain
        '''
        result = self._values.get("retain")
        return typing.cast(typing.Optional[jsii.Number], result)

    @builtins.property
    def task(self) -> typing.Optional["RecurringJobSpecTask"]:
        '''The recurring job task.

        Can be "snapshot", "snapshot-force-create", "snapshot-cleanup", "snapshot-delete", "backup", "backup-force-create", "filesystem-trim" or "system-backup".

        :schema: RecurringJobSpec#task
        '''
        result = self._values.get("task")
        return typing.cast(typing.Optional["RecurringJobSpecTask"], result)

    def __eq__(self, rhs: typing.Any) -> builtins.bool:
        return isinstance(rhs, self.__class__) and rhs._values == self._values

    def __ne__(self, rhs: typing.Any) -> builtins.bool:
        return not (rhs == self)

    def __repr__(self) -> str:
        return "RecurringJobSpec(%s)" % ", ".join(
            k + "=" + repr(v) for k, v in self._values.items()
        )


@jsii.enum(jsii_type="cdk8s_valkey_longhorn_iolonghorn.RecurringJobSpecTask")
class RecurringJobSpecTask(enum.Enum):
    '''The recurring job task.

    Can be "snapshot", "snapshot-force-create", "snapshot-cleanup", "snapshot-delete", "backup", "backup-force-create", "filesystem-trim" or "system-backup".

    :schema: RecurringJobSpecTask
    '''

    SNAPSHOT = "SNAPSHOT"
    '''snapshot.'''
    SNAPSHOT_HYPHEN_FORCE_HYPHEN_CREATE = "SNAPSHOT_HYPHEN_FORCE_HYPHEN_CREATE"
    '''snapshot-force-create.'''
    SNAPSHOT_HYPHEN_CLEANUP = "SNAPSHOT_HYPHEN_CLEANUP"
    '''snapshot-cleanup.'''
    SNAPSHOT_HYPHEN_DELETE = "SNAPSHOT_HYPHEN_DELETE"
    '''snapshot-delete.'''
    BACKUP = "BACKUP"
    '''backup.'''
    BACKUP_HYPHEN_FORCE_HYPHEN_CREATE = "BACKUP_HYPHEN_FORCE_HYPHEN_CREATE"
    '''backup-force-create.'''
    FILESYSTEM_HYPHEN_TRIM = "FILESYSTEM_HYPHEN_TRIM"
    '''filesystem-trim.'''
    SYSTEM_HYPHEN_BACKUP = "SYSTEM_HYPHEN_BACKUP"
    '''system-backup.'''


__all__ = [
    "RecurringJob",
    "RecurringJobProps",
    "RecurringJobSpec",
    "RecurringJobSpecTask",
]

publication.publish()

def _typecheckingstub__aa2c4fd763aac4601e2faa6a4372ec4dff27b591cd44490699f5d0c67aed89ac(
    scope: _constructs_77d1e7e8.Construct,
    id: builtins.str,
    *,
    metadata: typing.Optional[typing.Union[_cdk8s_d3d9af27.ApiObjectMetadata, typing.Dict[builtins.str, typing.Any]]] = None,
    spec: typing.Optional[typing.Union[RecurringJobSpec, typing.Dict[builtins.str, typing.Any]]] = None,
) -> None:
    """Type checking stubs"""
    pass

def _typecheckingstub__8a191bd9ffaaaa96bdf8e34929b7f93549b0980e62e79c880bd1edc936cafd10(
    *,
    metadata: typing.Optional[typing.Union[_cdk8s_d3d9af27.ApiObjectMetadata, typing.Dict[builtins.str, typing.Any]]] = None,
    spec: typing.Optional[typing.Union[RecurringJobSpec, typing.Dict[builtins.str, typing.Any]]] = None,
) -> None:
    """Type checking stubs"""
    pass

def _typecheckingstub__5aa903ed82f27b8b0880c70192a01f021b48998bb92e41c6e74fcad4dc8cb437(
    *,
    concurrency: typing.Optional[jsii.Number] = None,
    cron: typing.Optional[builtins.str] = None,
    groups: typing.Optional[typing.Sequence[builtins.str]] = None,
    labels: typing.Optional[typing.Mapping[builtins.str, builtins.str]] = None,
    name: typing.Optional[builtins.str] = None,
    parameters: typing.Optional[typing.Mapping[builtins.str, builtins.str]] = None,
    retain: typing.Optional[jsii.Number] = None,
    task: typing.Optional[RecurringJobSpecTask] = None,
) -> None:
    """Type checking stubs"""
    pass
