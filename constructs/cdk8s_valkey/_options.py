"""What the option dataclasses of the constructs share."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

REMOVED_IN = "0.3.0"


def with_legacy_props(construct: str, options: T, legacy: Mapping[str, Any]) -> T:
    """``options`` with the props given the 0.1 way (flat keywords) applied on top.

    Flat keywords still work for one minor release, with a DeprecationWarning. A keyword that
    is not a field of the options raises, so a typo is never swallowed."""
    if not legacy:
        return options
    names = {field.name for field in dataclasses.fields(options)}  # type: ignore[arg-type]
    unknown = sorted(set(legacy) - names)
    if unknown:
        raise TypeError(
            f"{construct}: unexpected keyword argument(s) {unknown}; the props are the fields of "
            f"{type(options).__name__}: {sorted(names)}"
        )
    warnings.warn(
        f"{construct}: passing {sorted(legacy)} as keywords is deprecated and stops working in "
        f"{REMOVED_IN}; pass options={type(options).__name__}({', '.join(f'{k}=...' for k in sorted(legacy))})",
        DeprecationWarning,
        stacklevel=3,
    )
    return dataclasses.replace(options, **legacy)  # type: ignore[type-var]
