"""Decimal numbers on the wire: plain-notation strings, never floats."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# ASCII digits only ("\d" would take "١" or "０"), and fullmatch: "$" alone also matches before
# a trailing newline.
_DECIMAL_RE = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


def parse_decimal(text: str) -> Decimal:
    """Parses "12.50"-style text; raises ValueError on anything else (exponents, "NaN",
    "1,000", spaces, leading "+", leading zeros)."""
    if not _DECIMAL_RE.fullmatch(text):
        raise ValueError(f"not a plain decimal number: {text[:40]!r}")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex rules this out
        raise ValueError(str(exc)) from exc


def scale_of(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


# quantize() exponents by number of places, built once: this formats every field of every
# quote and trading event.
_EXPONENTS = {places: Decimal(1).scaleb(-places) for places in range(19)}


def format_decimal(value: Decimal, places: int | None = None) -> str:
    """Plain notation, no exponent; quantized to `places` when given. Never "-0" or "-0.00":
    a value that rounds to zero is printed unsigned."""
    if places is not None:
        value = value.quantize(_EXPONENTS.get(places) or Decimal(1).scaleb(-places))
    if value.is_signed() and value.is_zero():
        value = value.copy_abs()
    text = format(value, "f")
    if places is None and "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
