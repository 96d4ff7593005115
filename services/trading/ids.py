"""Ids of one shard: the shard in the high bits, a counter below, so the ids of shards sharing
one database never collide and an id tells which shard owns it."""

from __future__ import annotations

SHARD_ID_SHIFT = 48


def shard_range(shard_id: int) -> tuple[int, int]:
    """[low, high): every id a shard can hand out."""
    return shard_id << SHARD_ID_SHIFT, (shard_id + 1) << SHARD_ID_SHIFT


class ShardIds:
    """One kind of id (accounts, orders...) of one shard, continuing after `last` (the highest
    id already stored; 0 = none)."""

    __slots__ = ("_next",)

    def __init__(self, shard_id: int, last: int = 0) -> None:
        self._next = max(last, shard_id << SHARD_ID_SHIFT) + 1

    def __call__(self) -> int:
        value = self._next
        self._next += 1
        return value
