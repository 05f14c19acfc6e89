"""Validate synthesized custom resources against the openAPIV3Schema of their CRD.

The CRDs are the unmodified prometheus-operator and Longhorn (RecurringJob) files in ``conftest.SHARED_CRDS`` (set
``VALKEY_CRDS_DIR`` to use another directory). What the API server would enforce and plain
``jsonschema`` would not, this module adds to a copy of each schema:

- unknown fields: a structural schema prunes or (``kubectl`` field validation ``Strict``)
  rejects fields it does not declare; JSON Schema allows them. Every object node with
  ``properties`` and without ``additionalProperties`` or ``x-kubernetes-preserve-unknown-fields``
  gets ``additionalProperties: false``, so a misspelt field fails here too;
- Go (RE2) regular expressions in ``pattern``, translated to Python ``re`` syntax (see
  :func:`go_regex_to_python`); a construct we do not translate raises instead of validating
  something else;
- ``x-kubernetes-list-type: set`` (unique items) and ``map`` (unique ``x-kubernetes-list-map-keys``);
- ``format: int32/int64`` ranges; ``nullable``; a minimal ObjectMeta (``metadata`` is just
  ``type: object`` in a CRD because the API server validates it on its own).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from harness.paths import SHARED_CRDS

HOW_TO_GET_CRDS = (
    "the prometheus-operator CRDs (v0.93.0) are not in {dir}: download "
    "monitoring.coreos.com_servicemonitors.yaml and monitoring.coreos.com_prometheusrules.yaml from "
    "https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/v0.93.0/"
    "example/prometheus-operator-crd/, and the recurringjobs.longhorn.io CRD from Longhorn v1.12.1's "
    "deploy/longhorn.yaml as longhorn.io_recurringjobs.yaml, into a directory and set VALKEY_CRDS_DIR to it"
)

# Metadata fields our objects set; Kubernetes validates ObjectMeta itself, this mirrors the
# parts a synth can get wrong (name syntax, string-valued labels and annotations).
_DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": _DNS1123_SUBDOMAIN},
        "namespace": {"type": "string", "maxLength": 63, "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


class UnsupportedGoRegexError(ValueError):
    """A Go regular expression construct that this module does not translate."""


def go_regex_to_python(pattern: str) -> str:
    """Translate a Go RE2 pattern into an equivalent Python ``re`` pattern.

    Go accepts an inline flag group such as ``(?i)`` anywhere; it applies from there to the
    end of the enclosing group. Python only accepts it at the very start of the expression
    (``^(?i)(abort|warn)?$``, from the PrometheusRule CRD, is an ``re.error``). The
    equivalent Python form is the scoped group ``(?i:...)`` closed where the enclosing
    group closes: ``^(?i:(abort|warn)?$)``. ``\\z`` (Go's end of text) becomes ``\\Z``.
    Constructs with no direct Python equivalent (``(?U)``, ``\\Q...\\E``, ``\\p{..}``,
    POSIX classes ``[[:alpha:]]``) raise :class:`UnsupportedGoRegexError`.
    """
    out: list[str] = []
    opened: list[int] = [0]  # per open group (index 0: top level): scoped flag groups opened in it
    inline_flags = re.compile(r"\(\?([imsU-]+)\)")
    i = 0
    in_class = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i + 1 : i + 2]
            if escaped in ("Q", "E", "p", "P", "C"):
                raise UnsupportedGoRegexError(f"\\{escaped} in Go regex {pattern!r} has no Python re equivalent")
            out.append("\\Z" if escaped == "z" and not in_class else pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i):
                raise UnsupportedGoRegexError(f"POSIX class in Go regex {pattern!r} has no Python re equivalent")
            in_class = char != "]"
            out.append(char)
            i += 1
            continue
        if char == "[":
            in_class = True
            out.append(char)
            i += 1
            for literal in ("^", "]"):  # '[^' negates; a ']' first in a class is a literal
                if pattern.startswith(literal, i):
                    out.append(literal)
                    i += 1
            continue
        flags = inline_flags.match(pattern, i)
        if flags:
            if "U" in flags.group(1):
                raise UnsupportedGoRegexError(f"(?U) in Go regex {pattern!r} has no Python re equivalent")
            out.append(f"(?{flags.group(1)}:")
            opened[-1] += 1
            i = flags.end()
            continue
        if char == "(":
            opened.append(0)
        elif char == ")":
            out.append(")" * opened.pop())
        out.append(char)
        i += 1
    out.append(")" * opened.pop())
    return "".join(out)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema object in a schema (each property, items, additionalProperties, anyOf...)."""
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key in ("properties", "patternProperties", "definitions"):
                for child in value.values():
                    yield from _walk(child)
            elif key in ("items", "additionalProperties", "not"):
                yield from _walk(value)
            elif key in ("anyOf", "allOf", "oneOf"):
                for child in value:
                    yield from _walk(child)


def kubernetes_schema(openapi_schema: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """A JSON Schema (draft 4) that enforces what the API server enforces for this CRD schema."""
    schema = copy.deepcopy(openapi_schema)
    for node in _walk(schema):
        if "pattern" in node:
            node["pattern"] = go_regex_to_python(node["pattern"])
        if node.get("nullable") and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        if node.get("x-kubernetes-list-type") == "set":
            node["uniqueItems"] = True
        if (
            strict
            and "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
    if schema.get("properties", {}).get("metadata") == {"type": "object"}:
        schema["properties"]["metadata"] = copy.deepcopy(_OBJECT_META)
    return schema


def _list_map_keys(
    validator: Any, keys: list[str], instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if schema.get("x-kubernetes-list-type") != "map" or not validator.is_type(instance, "array"):
        return
    seen: dict[tuple[Any, ...], int] = {}
    for index, item in enumerate(instance):
        if not isinstance(item, dict):
            continue
        key = tuple(item.get(name) for name in keys)
        if key in seen:
            yield jsonschema.ValidationError(
                f"entries {seen[key]} and {index} have the same map key {dict(zip(keys, key, strict=True))}"
            )
        seen[key] = index


_FORMATS = jsonschema.FormatChecker(formats=())
for _name, (_low, _high) in _INT_RANGES.items():
    _FORMATS.checks(_name)(
        lambda value, low=_low, high=_high: (
            not isinstance(value, int) or isinstance(value, bool) or low <= value <= high
        )
    )

KubernetesValidator = jsonschema.validators.extend(
    jsonschema.Draft4Validator, {"x-kubernetes-list-map-keys": _list_map_keys}
)


def crd_dir() -> Path:
    """The CRD directory; skips the calling test, saying how to get the files, when it is absent."""
    if not SHARED_CRDS.is_dir() or not any(SHARED_CRDS.glob("*.yaml")):
        pytest.skip(HOW_TO_GET_CRDS.format(dir=SHARED_CRDS))
    return SHARED_CRDS


@functools.cache
def _crds(directory: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> openAPIV3Schema of every CRD file in the directory."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                key = (spec["group"], version["name"], spec["names"]["kind"])
                found[key] = version["schema"]["openAPIV3Schema"]
    return found


def crd_kinds() -> set[str]:
    """The kinds that have a CRD in the directory (ServiceMonitor, PrometheusRule)."""
    return {kind for _, _, kind in _crds(crd_dir())}


@functools.cache
def _validator(group: str, version: str, kind: str, strict: bool) -> Any:
    schema = kubernetes_schema(_crds(crd_dir())[(group, version, kind)], strict=strict)
    KubernetesValidator.check_schema(schema)
    return KubernetesValidator(schema, format_checker=_FORMATS)


def crd_errors(obj: dict[str, Any], *, strict: bool = True) -> list[str]:
    """Every schema violation of a custom resource, as 'path: message' lines (empty: valid)."""
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    kind = str(obj.get("kind", ""))
    if (group, version, kind) not in _crds(crd_dir()):
        raise LookupError(f"no CRD for {obj.get('apiVersion')} {kind} in {crd_dir()}")
    validator = _validator(group, version, kind, strict)
    errors = sorted(validator.iter_errors(obj), key=lambda error: list(error.absolute_path))
    return [f"{'.'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}" for error in errors]


def validate_crd_object(obj: dict[str, Any]) -> None:
    """Fail (AssertionError) with every violation when obj does not match its CRD's schema."""
    errors = crd_errors(obj)
    name = obj.get("metadata", {}).get("name")
    assert not errors, f"{obj.get('kind')} {name} does not match its CRD:\n" + "\n".join(errors)
