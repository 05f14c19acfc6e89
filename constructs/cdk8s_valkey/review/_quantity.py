"""Kubernetes resource quantities (``10Gi``, ``512Mi``, ``100m``, ``1e3``) as exact numbers."""

from __future__ import annotations

import re
from fractions import Fraction

# k8s.io/apimachinery/pkg/api/resource/quantity.go: binary suffixes, decimal suffixes and
# decimal exponents ("1e3"); "E" alone is exa.
_UNITS: dict[str, Fraction] = {
    "Ki": Fraction(1 << 10),
    "Mi": Fraction(1 << 20),
    "Gi": Fraction(1 << 30),
    "Ti": Fraction(1 << 40),
    "Pi": Fraction(1 << 50),
    "Ei": Fraction(1 << 60),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")


def parse(value: object) -> Fraction | None:
    """The quantity's value, or None when it is absent or not a quantity."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return Fraction(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    number, exponent, suffix = match.groups()
    if exponent is not None:
        return Fraction(number) * Fraction(10) ** int(exponent)
    return Fraction(number) * _UNITS[suffix or ""]


def whole(value: object) -> int | None:
    """The quantity rounded down to a whole number (bytes, for memory and storage)."""
    parsed = parse(value)
    return None if parsed is None else int(parsed)
