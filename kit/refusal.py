"""How domain code says no without knowing the wire.

The trading engine (and any other pure core) raises Refusal: a kind, a stable reason from
exness.common.v1.ErrorReason, a message and, for bad input, the request field at fault. The
gRPC status each kind becomes is decided in one place, kit.rpc.errors.refusal_error.
"""

from __future__ import annotations

import enum


class RefusalKind(enum.Enum):
    INVALID_INPUT = enum.auto()  # the request itself is wrong; `field` names what
    NOT_FOUND = enum.auto()  # what the request names does not exist (for this caller)
    PRECONDITION = enum.auto()  # the request is fine, the state does not allow it now
    UNAVAILABLE = enum.auto()  # cannot be served yet (e.g. no quote); retry later


class Refusal(Exception):
    """A command refused; a refused command changes nothing."""

    def __init__(
        self, kind: RefusalKind, reason: str, message: str, *, field: str = "", **metadata: str
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.reason = reason
        self.message = message
        self.field = field
        self.metadata = metadata


def invalid_field(field: str, description: str, reason: str = "INVALID_ARGUMENT") -> Refusal:
    return Refusal(RefusalKind.INVALID_INPUT, reason, description, field=field)


def not_found(reason: str, message: str, **metadata: str) -> Refusal:
    return Refusal(RefusalKind.NOT_FOUND, reason, message, **metadata)


def precondition_failed(reason: str, message: str, **metadata: str) -> Refusal:
    return Refusal(RefusalKind.PRECONDITION, reason, message, **metadata)


def unavailable(reason: str, message: str, **metadata: str) -> Refusal:
    return Refusal(RefusalKind.UNAVAILABLE, reason, message, **metadata)
