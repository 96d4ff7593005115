"""Reading google.rpc.Status details out of a failed gRPC call."""

from __future__ import annotations

import grpc
from exness_client.errors import ExnessError


def failure_of(error: grpc.aio.AioRpcError) -> ExnessError:
    # The client already unpacks ErrorInfo/BadRequest; tests read the same fields
    # (code, message, reason, fields) so they check what clients actually see.
    return ExnessError.from_rpc(error)
