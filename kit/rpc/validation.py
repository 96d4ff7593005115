"""Enforces the constraints declared on request fields with (exness.common.v1.rules).

The rules are read from the message descriptors once per message type, so every service
validates the same way and a rule lives next to the field it guards, in the .proto.

One rule needs no declaration: a Timestamp in a request must lie in TIMESTAMP_RANGE, so no
handler ever meets a date its arithmetic or the database cannot represent.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from exness.common.v1 import validate_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from kit.decimals import parse_decimal, scale_of
from kit.rpc.errors import FieldViolation

FD = _descriptor.FieldDescriptor
TIMESTAMP = "google.protobuf.Timestamp"
# Seconds since the epoch: 1970-01-01T00:00:00Z up to (not including) 9000-01-01T00:00:00Z.
TIMESTAMP_RANGE = (0, 221845392000)


@dataclass(frozen=True)
class _FieldCheck:
    field: _descriptor.FieldDescriptor
    rules: validate_pb2.FieldRules | None
    nested: bool  # a singular message field whose own fields carry rules
    timestamp: bool  # a singular google.protobuf.Timestamp field


def violations(message: Message, prefix: str = "") -> list[FieldViolation]:
    """Every broken rule of `message` (and of its nested messages), named by field path."""
    found: list[FieldViolation] = []
    for check in _checks_for(message.DESCRIPTOR):
        name = prefix + check.field.name
        if check.rules is not None:
            found.extend(_apply(check.field, check.rules, message, name))
        if check.timestamp and message.HasField(check.field.name):
            found.extend(_check_timestamp(getattr(message, check.field.name), name))
        if check.nested and message.HasField(check.field.name):
            found.extend(violations(getattr(message, check.field.name), name + "."))
    return found


@functools.cache
def _checks_for(desc: _descriptor.Descriptor) -> tuple[_FieldCheck, ...]:
    checks = []
    for fd in desc.fields:
        options = fd.GetOptions()
        rules = (
            options.Extensions[validate_pb2.rules]
            if options.HasExtension(validate_pb2.rules)
            else None
        )
        message_type = fd.message_type if not _is_repeated(fd) else None
        timestamp = message_type is not None and message_type.full_name == TIMESTAMP
        nested = message_type is not None and not timestamp and _has_rules(message_type)
        if rules is not None or nested or timestamp:
            checks.append(_FieldCheck(fd, rules, nested, timestamp))
    return tuple(checks)


@functools.cache
def _has_rules(desc: _descriptor.Descriptor) -> bool:
    return bool(_checks_for(desc))


def _is_repeated(fd: _descriptor.FieldDescriptor) -> bool:
    return bool(fd.is_repeated)


@functools.cache
def _regex(pattern: str) -> re.Pattern[str]:
    # ASCII: a declared [0-9]-like "\\d" must not admit other scripts' digits.
    return re.compile(pattern, re.ASCII)


def _check_timestamp(stamp: Timestamp, name: str) -> Iterator[FieldViolation]:
    low, high = TIMESTAMP_RANGE
    if not low <= stamp.seconds < high or not 0 <= stamp.nanos < 1_000_000_000:
        yield FieldViolation(name, "must be between 1970-01-01T00:00:00Z and 9000-01-01T00:00:00Z")


def _apply(
    fd: _descriptor.FieldDescriptor, rules: validate_pb2.FieldRules, message: Message, name: str
) -> Iterator[FieldViolation]:
    value = getattr(message, fd.name)
    if _is_repeated(fd):
        items = list(value)
        if rules.required and not items:
            yield FieldViolation(name, "at least one value is required")
        if rules.max_items and len(items) > rules.max_items:
            yield FieldViolation(name, f"at most {rules.max_items} values are allowed")
        if rules.items_pattern:
            for index, item in enumerate(items):
                if not isinstance(item, str) or not _regex(rules.items_pattern).fullmatch(item):
                    yield FieldViolation(f"{name}[{index}]", "has an invalid format")
        return
    if fd.type == FD.TYPE_STRING:
        yield from _check_string(value, rules, name)
    elif fd.type == FD.TYPE_ENUM:
        assert fd.enum_type is not None
        defined = fd.enum_type.values_by_number
        if rules.enum_defined_only and value not in defined:
            yield FieldViolation(name, f"unknown value {value}")
        elif rules.required and value == 0:
            yield FieldViolation(name, "is required")
    elif fd.type == FD.TYPE_MESSAGE:
        if rules.required and not message.HasField(fd.name):
            yield FieldViolation(name, "is required")
    elif fd.type in (
        FD.TYPE_INT32,
        FD.TYPE_INT64,
        FD.TYPE_UINT32,
        FD.TYPE_UINT64,
        FD.TYPE_SINT32,
        FD.TYPE_SINT64,
    ):
        if rules.required and value == 0:
            yield FieldViolation(name, "is required")
        elif rules.int_range_set and value != 0 and not rules.int_min <= value <= rules.int_max:
            yield FieldViolation(name, f"must be between {rules.int_min} and {rules.int_max}")


def _check_string(
    value: str, rules: validate_pb2.FieldRules, name: str
) -> Iterator[FieldViolation]:
    if value == "":
        if rules.required:
            yield FieldViolation(name, "is required")
        return
    length = len(value)
    if rules.max_len and length > rules.max_len:
        yield FieldViolation(name, f"must be at most {rules.max_len} characters")
        return  # no point matching patterns against megabytes
    if rules.min_len and length < rules.min_len:
        yield FieldViolation(name, f"must be at least {rules.min_len} characters")
    if rules.pattern and not _regex(rules.pattern).fullmatch(value):
        yield FieldViolation(name, "has an invalid format")
    if rules.HasField("decimal"):
        yield from _check_decimal(value, rules.decimal, name)


def _check_decimal(
    text: str, rules: validate_pb2.DecimalRules, name: str
) -> Iterator[FieldViolation]:
    if len(text) > 64:
        yield FieldViolation(name, "is too long for a decimal number")
        return
    try:
        number = parse_decimal(text)
    except ValueError:
        yield FieldViolation(name, 'must be a decimal number such as "12.5"')
        return
    if rules.positive and number <= 0:
        yield FieldViolation(name, "must be greater than zero")
    if rules.non_negative and number < 0:
        yield FieldViolation(name, "must not be negative")
    if rules.max_scale and scale_of(number) > rules.max_scale:
        yield FieldViolation(name, f"must have at most {rules.max_scale} decimal places")
    if rules.max_digits:
        digits = len(number.as_tuple().digits)
        integer_digits = digits - scale_of(number)
        if integer_digits > rules.max_digits - (rules.max_scale or 0):
            yield FieldViolation(name, "is too large")
