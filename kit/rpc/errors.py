"""Domain errors and their wire form: a canonical gRPC code plus a google.rpc.Status carrying
ErrorInfo (a stable reason from exness.common.v1.ErrorReason) and, for bad input, BadRequest
field violations. Handlers raise ServiceError; the error interceptor turns it into the status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from kit.refusal import Refusal, RefusalKind

ERROR_DOMAIN = "exness.com"


class StartupError(RuntimeError):
    """A service cannot start for a reason the operator can fix (port taken, database down);
    reported as one line, not a stack trace."""


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class ServiceError(Exception):
    code: grpc.StatusCode
    reason: str
    message: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    violations: Sequence[FieldViolation] = ()

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def to_status(self) -> status_pb2.Status:
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=ERROR_DOMAIN, metadata=dict(self.metadata)
        )
        details = [_pack(info)]
        if self.violations:
            bad_request = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in self.violations
                ]
            )
            details.append(_pack(bad_request))
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=details)


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.BadRequest) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def invalid_argument(
    violations: Sequence[FieldViolation], reason: str = "INVALID_ARGUMENT"
) -> ServiceError:
    summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
        f"invalid request: {summary}",
        violations=violations,
    )


def invalid_field(
    field_name: str, description: str, reason: str = "INVALID_ARGUMENT"
) -> ServiceError:
    return invalid_argument([FieldViolation(field_name, description)], reason)


def not_found(reason: str, message: str, **metadata: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.NOT_FOUND, reason, message, metadata)


def failed_precondition(reason: str, message: str, **metadata: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.FAILED_PRECONDITION, reason, message, metadata)


def unauthenticated(message: str, reason: str = "TOKEN_INVALID") -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, reason, message)


def token_expired() -> ServiceError:
    return unauthenticated(
        "the access token expired: reconnect with a fresh one", reason="TOKEN_EXPIRED"
    )


def session_revoked() -> ServiceError:
    return unauthenticated(
        "this session has ended (logged out): log in again", reason="SESSION_REVOKED"
    )


def permission_denied(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", message)


def unavailable(reason: str, message: str, **metadata: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAVAILABLE, reason, message, metadata)


def internal_status(message: str = "internal error") -> status_pb2.Status:
    """What a caller learns of an unexpected failure: nothing but the code and its reason."""
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN)
    return status_pb2.Status(code=code_pb2.INTERNAL, message=message, details=[_pack(info)])


# The one mapping from domain refusals to the wire.
_REFUSAL_CODES = {
    RefusalKind.INVALID_INPUT: grpc.StatusCode.INVALID_ARGUMENT,
    RefusalKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    RefusalKind.PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    RefusalKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


def refusal_error(refusal: Refusal) -> ServiceError:
    """A domain refusal as the ServiceError the error interceptor sends: bad input names its
    field (BadRequest), everything carries its reason (ErrorInfo)."""
    if refusal.kind is RefusalKind.INVALID_INPUT:
        return invalid_field(refusal.field, refusal.message, refusal.reason)
    return ServiceError(
        _REFUSAL_CODES[refusal.kind], refusal.reason, refusal.message, dict(refusal.metadata)
    )
