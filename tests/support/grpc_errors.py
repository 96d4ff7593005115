"""Reading google.rpc.Status details out of a failed grpcio call (the services' own tests talk
grpcio; the Python client distribution has its own decoder over grpclib)."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class Failure:
    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


def failure_of(error: grpc.aio.AioRpcError) -> Failure:
    """The code, message, ErrorInfo reason and metadata, and BadRequest fields of a failed call
    (what clients see)."""
    found = Failure(error.code(), error.details() or "")
    status = rpc_status.from_call(error)
    if status is None:
        return found
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found.reason = info.reason
            found.metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.fields = {v.field: v.description for v in bad.field_violations}
    return found
