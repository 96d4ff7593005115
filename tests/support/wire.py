"""Protobuf wire bytes that no generated stub would send."""

from __future__ import annotations

from exness.market.v1 import market_pb2


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def inflating_get_quote(size: int = 3_900_000) -> bytes:
    """A valid GetQuoteRequest carrying `size` zero bytes in a field it does not define (999):
    a few KB once gzip-compressed."""
    filler = b"\x00" * size
    unknown_field = varint(999 << 3 | 2) + varint(size) + filler
    return market_pb2.GetQuoteRequest(symbol="BTCUSD").SerializeToString() + unknown_field
