"""Request bytes -> request message, without letting a bad message become a 500.

grpc.aio turns a deserializer's exception into UNKNOWN/INTERNAL and logs a traceback. The
pipeline instead deserializes through `guarded`, which never raises: a message that is too
large for its method, that is not valid protobuf, or whose string fields are not UTF-8 comes
back as an `Undecodable` carrying the INVALID_ARGUMENT / RESOURCE_EXHAUSTED error to answer.
The size is checked on the bytes gRPC hands over, i.e. after any decompression: a small gzip
message that inflates to megabytes is refused before it is parsed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor as _descriptor
from google.protobuf.message import DecodeError

from kit.rpc.errors import ServiceError, invalid_field

FD = _descriptor.FieldDescriptor


@dataclass(frozen=True)
class Undecodable:
    """Stands in for a request that could not be decoded; the pipeline answers `error`."""

    error: ServiceError


def too_large(size: int, limit: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "MESSAGE_TOO_LARGE",
        f"the request message is {size} bytes; this method accepts at most {limit}",
        {"limit_bytes": str(limit)},
    )


def malformed() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "invalid request: the body is not a valid protobuf message of this method",
    )


def guarded(deserializer: Callable[[bytes], Any] | None, max_bytes: int) -> Callable[[bytes], Any]:
    """`deserializer` (a message class's FromString), made total."""
    message_class = getattr(deserializer, "__self__", None)
    descriptor = getattr(message_class, "DESCRIPTOR", None)

    def decode(data: bytes) -> Any:
        if len(data) > max_bytes:
            return Undecodable(too_large(len(data), max_bytes))
        if deserializer is None:
            return data
        try:
            return deserializer(data)
        except (DecodeError, UnicodeDecodeError, ValueError):
            field = _first_non_utf8_string(data, descriptor) if descriptor else None
            if field is not None:
                return Undecodable(invalid_field(field, "is not valid UTF-8 text"))
            return Undecodable(malformed())

    return decode


async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A request stream whose first undecodable message ends the call with its error."""
    async for request in requests:
        if isinstance(request, Undecodable):
            raise request.error
        yield request


def _first_non_utf8_string(data: bytes, descriptor: _descriptor.Descriptor) -> str | None:
    """The dotted name of the first string field whose bytes are not UTF-8 (protobuf's own
    error does not say which field it was)."""
    try:
        return _scan(memoryview(data), descriptor, "")
    except IndexError:  # truncated: not a message we can name a field of
        return None


def _scan(data: memoryview, descriptor: _descriptor.Descriptor, prefix: str) -> str | None:
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, pos = _varint(data, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            chunk, pos = data[pos : pos + length], pos + length
            field = descriptor.fields_by_number.get(number)
            if field is None:
                continue
            name = prefix + field.name
            if field.type == FD.TYPE_STRING:
                try:
                    bytes(chunk).decode("utf-8")
                except UnicodeDecodeError:
                    return name
            elif field.type == FD.TYPE_MESSAGE and field.message_type is not None:
                found = _scan(chunk, field.message_type, name + ".")
                if found is not None:
                    return found
        else:
            return None  # groups or garbage: stop naming
    return None


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise IndexError("varint too long")
