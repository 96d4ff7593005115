"""How the generated stubs reach the platform: grpclib channels whose codecs are the betterproto2
messages themselves (no protobuf runtime needed), and whose grpc-status-details-bin is decoded
into the generated google.rpc messages."""

from __future__ import annotations

from typing import Any

from grpclib.client import Channel
from grpclib.const import Status
from grpclib.encoding.base import CodecBase, StatusDetailsCodecBase

from exness_client.contracts.google.rpc import Status as RpcStatus


class MessageCodec(CodecBase):
    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        return bytes(message)

    def decode(self, data: bytes, message_type: Any) -> Any:
        return message_type.parse(data)


class StatusDetailsCodec(StatusDetailsCodecBase):
    """grpc-status-details-bin -> the list of detail messages (ErrorInfo, BadRequest, ...);
    details of types the client does not know are skipped."""

    def encode(self, status: Status, message: str | None, details: Any) -> bytes:
        raise NotImplementedError("a client never sends status details")

    def decode(self, status: Status, message: str | None, data: bytes) -> Any:
        found = []
        for packed in RpcStatus.parse(data).details:
            try:
                found.append(packed.unpack())
            except Exception:  # an unknown detail type is not an error of the call
                continue
        return found


def open_channel(target: str) -> Channel:
    """A channel to `host:port` (plaintext HTTP/2, as Envoy's edge listener speaks it)."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {target!r}")
    return Channel(
        host.strip("[]") or "localhost",
        int(port),
        codec=MessageCodec(),
        status_details_codec=StatusDetailsCodec(),
    )
