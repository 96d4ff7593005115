"""Errors from the platform as one exception carrying the gRPC code, the stable reason
(google.rpc.ErrorInfo, a value of exness.common.v1.ErrorReason) and the offending fields
(google.rpc.BadRequest), decoded with the client's own generated google.rpc types."""

from __future__ import annotations

from dataclasses import dataclass, field

from grpclib.const import Status as Code
from grpclib.exceptions import GRPCError

from exness_client.contracts.exness.common.v1 import ErrorReason
from exness_client.contracts.google.rpc import BadRequest, ErrorInfo

__all__ = ["TRANSIENT_REASONS", "Code", "ExnessError", "is_transient"]


@dataclass
class ExnessError(Exception):
    code: Code
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        reason = f" {self.reason}" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"

    @property
    def reason_value(self) -> ErrorReason | None:
        """The reason as the generated enum; None when there is none or the contract lacks it."""
        try:
            return ErrorReason[self.reason] if self.reason else None
        except KeyError:
            return None

    @classmethod
    def from_grpc(cls, error: GRPCError) -> ExnessError:
        found = cls(error.status, error.message or "")
        for detail in error.details or ():
            if isinstance(detail, ErrorInfo):
                found.reason = detail.reason
                found.metadata = dict(detail.metadata)
            elif isinstance(detail, BadRequest):
                found.fields = {v.field: v.description for v in detail.field_violations}
        return found


# Reasons that name a passing outage: the edge found no healthy upstream, or a service's
# database, broker, key source or engine is down or rebuilding. A call that is safe to repeat
# is retried on them as on a bare UNAVAILABLE; every other reason is an answer.
TRANSIENT_REASONS = frozenset(
    {
        "SERVICE_UNAVAILABLE",
        "DATABASE_UNAVAILABLE",
        "BROKER_UNAVAILABLE",
        "AUTH_UNAVAILABLE",
        "ENGINE_UNAVAILABLE",
    }
)
_TRANSIENT_CODES = (Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED)
# A server that dies in the middle of a stream reaches a client behind Envoy as a reset stream
# (RST_STREAM: INTERNAL, no reason): a read-only stream reopens on it too.
_TRANSIENT_STREAM_CODES = (*_TRANSIENT_CODES, Code.INTERNAL)


def is_transient(error: ExnessError, *, stream: bool = False) -> bool:
    """True when repeating the call (or reopening the stream) may well succeed."""
    codes = _TRANSIENT_STREAM_CODES if stream else _TRANSIENT_CODES
    return error.code in codes and (not error.reason or error.reason in TRANSIENT_REASONS)
