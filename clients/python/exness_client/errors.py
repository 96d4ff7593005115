"""Errors from the platform as one exception carrying the gRPC code, the stable reason
(google.rpc.ErrorInfo) and the offending fields (google.rpc.BadRequest)."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class ExnessError(Exception):
    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        reason = f" {self.reason}" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"

    @classmethod
    def from_rpc(cls, error: grpc.aio.AioRpcError) -> ExnessError:
        found = cls(error.code(), error.details() or "")
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
