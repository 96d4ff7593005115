"""Reading google.rpc.Status details out of a failed gRPC call."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class RpcFailure:
    code: grpc.StatusCode
    message: str
    reason: str
    fields: dict[str, str]  # field path -> description, from BadRequest


def failure_of(error: grpc.aio.AioRpcError) -> RpcFailure:
    reason = ""
    fields: dict[str, str] = {}
    status = rpc_status.from_call(error)
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                fields.update({v.field: v.description for v in bad.field_violations})
    return RpcFailure(error.code(), error.details() or "", reason, fields)
