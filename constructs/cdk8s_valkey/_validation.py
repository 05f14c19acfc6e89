"""Synth-time checks shared by the constructs: each raises a ValueError that names the
prop, shows the value received and says what is allowed."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping

import cdk8s
import cdk8s_plus_28 as kplus
from cdk8s_plus_28 import k8s

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_EXACT_TAG = re.compile(r"^v?\d+\.\d+\.\d+([-.][A-Za-z0-9.]+)?$")


# cdk8s.Size, cdk8s.Duration and kplus.Cpu are immutable objects in the jsii Node runtime:
# reading one is a round trip, and the constructs read the same few (often the defaults in
# their signatures) again and again. So each read is cached per object, which the cache
# keeps alive: an identity is never reused while it is cached.
_CACHED_OBJECTS = 256


@functools.lru_cache(maxsize=_CACHED_OBJECTS)
def size_to_bytes(size: cdk8s.Size) -> int:
    """Whole bytes of a cdk8s.Size (its smallest unit is the kibibyte)."""
    return int(size.to_kibibytes(rounding=cdk8s.SizeRoundingBehavior.NONE) * 1024)


@functools.lru_cache(maxsize=_CACHED_OBJECTS)
def duration_millis(duration: cdk8s.Duration) -> int:
    """Whole milliseconds of a cdk8s.Duration."""
    return int(duration.to_milliseconds())


def whole_seconds(duration: cdk8s.Duration) -> int | None:
    """The whole seconds of a duration, or None when it has a fraction of a second (the
    directives and fields these durations render to take seconds)."""
    millis = duration_millis(duration)
    return None if millis % 1000 else millis // 1000


def shown_duration(duration: cdk8s.Duration) -> str:
    """A duration as an error message shows it: ``1500ms``, or ``90s`` when whole."""
    millis = duration_millis(duration)
    return f"{millis}ms" if millis % 1000 else f"{millis // 1000}s"


@functools.lru_cache(maxsize=_CACHED_OBJECTS)
def cpu_amount(cpu: kplus.Cpu) -> str:
    """The Kubernetes quantity of a kplus.Cpu, e.g. ``100m``."""
    return str(cpu.amount)


# The same goes the other way: these immutable values are made once per process and shared.
@functools.lru_cache(maxsize=_CACHED_OBJECTS)
def seconds(count: int) -> cdk8s.Duration:
    """``cdk8s.Duration.seconds(count)``, one object per count."""
    return cdk8s.Duration.seconds(count)


@functools.lru_cache(maxsize=_CACHED_OBJECTS)
def gibibytes(count: int) -> cdk8s.Size:
    """``cdk8s.Size.gibibytes(count)``, one object per count."""
    return cdk8s.Size.gibibytes(count)


@functools.lru_cache(maxsize=_CACHED_OBJECTS)
def k8s_quantity(text: str) -> k8s.Quantity:
    """``k8s.Quantity.from_string(text)``, one object per text."""
    return k8s.Quantity.from_string(text)


@functools.lru_cache(maxsize=_CACHED_OBJECTS)
def port_name(name: str) -> k8s.IntOrString:
    """A named port as ``k8s.IntOrString.from_string(name)``, one object per name."""
    return k8s.IntOrString.from_string(name)


def quantity(size: cdk8s.Size) -> str:
    """The shortest exact Kubernetes quantity for a size: 512Mi, 2Gi, 1536Ki."""
    total = size_to_bytes(size)
    for suffix, unit in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if total % unit == 0:
            return f"{total // unit}{suffix}"
    return str(total)


def check_dns_label(prop: str, value: str, *, max_length: int = 63) -> str:
    """A name that Services accept too: RFC 1035 label, lower case, starts with a letter."""
    if len(value) > max_length or not _DNS1035_LABEL.match(value):
        raise ValueError(
            f"{prop}: {value!r} is not a valid name; use at most {max_length} lower-case "
            "letters, digits and '-', starting with a letter and ending with a letter or digit"
        )
    return value


def check_dns_subdomain(prop: str, value: str) -> str:
    """A Kubernetes object name such as a StorageClass or Secret (RFC 1123 subdomain)."""
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise ValueError(
            f"{prop}: {value!r} is not a valid Kubernetes name; use at most 253 lower-case "
            "letters, digits, '-' and '.', starting and ending with a letter or digit"
        )
    return value


def check_labels(prop: str, labels: dict[str, str]) -> dict[str, str]:
    """Kubernetes label keys and values."""
    for key, value in labels.items():
        if len(key.rsplit("/", 1)[-1]) > 63 or not _LABEL_NAME.match(key):
            raise ValueError(f"{prop}: label key {key!r} is not a valid Kubernetes label name")
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise ValueError(
                f"{prop}: label {key!r} has value {value!r}; use at most 63 letters, digits, "
                "'-', '_' and '.', starting and ending with a letter or digit"
            )
    return dict(labels)


def image_tag(prop: str, image: str) -> str:
    """Check that an image reference is pinned and return its tag (or digest).

    Allowed: ``repo:1.2.3``, ``repo:1.2.3@sha256:<64 hex>``, ``repo@sha256:<64 hex>``.
    Refused: no tag, ``latest``, a moving tag such as ``8.1`` or ``8``.
    """
    allowed = "pin an exact version tag such as 'valkey/valkey:8.1.11', optionally with '@sha256:<digest>'"
    name, _, digest = image.partition("@")
    if digest and not _DIGEST.match(digest):
        raise ValueError(f"{prop}: {image!r} has a malformed digest {digest!r}; {allowed}")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2] if ":" in last else ""
    if not name or (not tag and not digest):
        raise ValueError(f"{prop}: {image!r} has no tag, so every pull may get another version; {allowed}")
    if tag == "latest":
        raise ValueError(f"{prop}: {image!r} uses the moving tag 'latest'; {allowed}")
    if tag and not digest and not _EXACT_TAG.match(tag):
        raise ValueError(f"{prop}: {image!r} uses the moving tag {tag!r}; {allowed}")
    return tag or digest


def check_unique(prop: str, values: Iterable[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{prop}: {value!r} is given twice; each entry must be unique")
        seen.add(value)


def check_instance(prop: str, value: object, expected: type, wanted: str) -> None:
    """A value of the expected class, or an error that says what to pass instead.

    jsii types fail late and obscurely on a wrong type (``'str' object has no attribute
    'to_kibibytes'``): check at the prop instead."""
    if not isinstance(value, expected):
        raise ValueError(f"{prop}: {value!r} is a {type(value).__name__}; pass {wanted}")


def check_size(prop: str, value: object) -> cdk8s.Size:
    check_instance(prop, value, cdk8s.Size, "a cdk8s.Size such as cdk8s.Size.gibibytes(2)")
    assert isinstance(value, cdk8s.Size)
    return value


def check_duration(prop: str, value: object) -> cdk8s.Duration:
    check_instance(prop, value, cdk8s.Duration, "a cdk8s.Duration such as cdk8s.Duration.minutes(5)")
    assert isinstance(value, cdk8s.Duration)
    return value


def check_cpu(prop: str, value: object) -> kplus.Cpu:
    check_instance(prop, value, kplus.Cpu, "a kplus.Cpu (import cdk8s_plus_28 as kplus) such as kplus.Cpu.millis(100)")
    assert isinstance(value, kplus.Cpu)
    return value


def check_annotations(prop: str, annotations: Mapping[str, str]) -> dict[str, str]:
    """Annotation keys follow the label-key rules; values are any string."""
    for key, value in annotations.items():
        if len(key.rsplit("/", 1)[-1]) > 63 or not _LABEL_NAME.match(key):
            raise ValueError(f"{prop}: {key!r} is not a valid annotation key (a Kubernetes label name)")
        if not isinstance(value, str):
            raise ValueError(f"{prop}: {key!r} has value {value!r}; use a string (quote numbers and booleans)")
    return dict(annotations)
