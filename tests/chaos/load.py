"""Load and checks for the chaos suite: traders placing orders (half through Envoy, half
straight at the engine), a health recorder, and the invariants every fault must leave intact."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import grpc
import psycopg
from exness.auth.v1 import auth_pb2, auth_pb2_grpc
from exness.trading.v1 import trading_pb2 as pb
from exness.trading.v1 import trading_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kit.rpc.probes import http_ok

SYMBOL = "XAUUSD"
# Codes a trader sees while a dependency is down; the trader retries the same client_order_id.
TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.INTERNAL,  # a stream/connection reset mid-call (Envoy's, or a killed peer)
    grpc.StatusCode.UNKNOWN,
}
# Refusals the rules allow while a feed recovers (no quote, or an old one).
REFUSED = {grpc.StatusCode.FAILED_PRECONDITION}

SERVICES = {
    "auth": "exness.auth.v1.AuthService",
    "market": "exness.market.v1.MarketDataService",
    "trading": "exness.trading.v1.TradingService",
}


@dataclass
class Trader:
    user_id: str
    metadata: tuple[tuple[str, str], ...]
    target: str  # host:port the trader calls (the edge or the engine)
    # client_order_id -> (order_id, position_id) as acknowledged
    acked: dict[str, tuple[str, str]] = field(default_factory=dict)
    # client_order_ids sent without an answer (a failure that may or may not have committed)
    unanswered: set[str] = field(default_factory=set)
    refused: int = 0
    # Transient failures seen, by code (a drained engine answers instead of cancelling).
    failures: Counter[str] = field(default_factory=Counter)


async def new_trader(auth_address: str, target: str) -> Trader:
    async with grpc.aio.insecure_channel(auth_address) as channel:
        reply = await auth_pb2_grpc.AuthServiceStub(channel).Register(
            auth_pb2.RegisterRequest(
                email=f"chaos-{uuid.uuid4().hex[:12]}@example.com",
                password="correct horse 42 battery",
            ),
            timeout=30,
        )
    metadata = (("authorization", f"Bearer {reply.tokens.access_token}"),)
    trader = Trader(reply.user.user_id, metadata, target)
    async with grpc.aio.insecure_channel(target) as channel:
        await trading_pb2_grpc.TradingServiceStub(channel).Deposit(
            pb.DepositRequest(amount="100000"), metadata=metadata, timeout=30
        )
    return trader


def order(key: str) -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        symbol=SYMBOL,
        side=pb.ORDER_SIDE_BUY,
        type=pb.ORDER_TYPE_MARKET,
        volume="0.01",
        client_order_id=key,
    )


async def place(trader: Trader, key: str, timeout_s: float = 5.0) -> bool:
    """One PlaceOrder; True when it was answered (acknowledged or refused by the rules)."""
    async with grpc.aio.insecure_channel(trader.target) as channel:
        stub = trading_pb2_grpc.TradingServiceStub(channel)
        try:
            reply = await stub.PlaceOrder(order(key), metadata=trader.metadata, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in REFUSED:
                trader.refused += 1
                trader.unanswered.discard(key)
                return True
            if exc.code() in TRANSIENT:
                trader.failures[exc.code().name] += 1
                trader.unanswered.add(key)
                return False
            raise
    first = trader.acked.setdefault(key, (reply.order.order_id, reply.position.position_id))
    assert first == (reply.order.order_id, reply.position.position_id), (
        f"a retry of {key} answered another order: {first} then {reply.order.order_id}"
    )
    trader.unanswered.discard(key)
    return True


class Load:
    """Traders placing orders in a loop until stopped; every order has a fresh key."""

    def __init__(self, traders: list[Trader]) -> None:
        self.traders = traders
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.answered_at: float | None = None  # last successful answer (monotonic)

    async def _run(self, trader: Trader) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            if await place(trader, f"{uuid.uuid4().hex[:8]}-{n}"):
                self.answered_at = time.monotonic()
            else:
                await asyncio.sleep(0.2)

    def start(self) -> None:
        self._stop.clear()
        self._tasks = [asyncio.create_task(self._run(t)) for t in self.traders]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def settle(self, timeout_s: float = 60.0) -> None:
        """Retries every unanswered order with its own key until it is answered: after
        recovery none may stay unanswered."""
        deadline = time.monotonic() + timeout_s
        for trader in self.traders:
            for key in sorted(trader.unanswered):
                while not await place(trader, key, timeout_s=10):
                    assert time.monotonic() < deadline, f"{key} still unanswered"
                    await asyncio.sleep(0.5)

    def acked(self) -> int:
        return sum(len(t.acked) for t in self.traders)


class HealthRecorder:
    """Polls grpc.health of each service and the edge's /healthz from a thread (so a busy
    event loop does not hide anything); a service that does not answer counts as not serving."""

    def __init__(self, addresses: dict[str, str], edge_url: str) -> None:
        self.addresses = addresses
        self.edge_url = edge_url
        self.samples: list[tuple[float, str, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _serving(self, key: str) -> bool:
        with grpc.insecure_channel(self.addresses[key]) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=SERVICES[key]), timeout=1
                )
            except grpc.RpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def _run(self) -> None:
        while not self._stop.is_set():
            for key in self.addresses:
                self.samples.append((time.monotonic(), key, self._serving(key)))
            self.samples.append((time.monotonic(), "edge", http_ok(f"{self.edge_url}/healthz")))
            time.sleep(0.25)

    def start(self) -> HealthRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def down_since(self, key: str, since: float) -> bool:
        return any(not ok for t, k, ok in self.samples if k == key and t >= since)

    def all_serving_now(self) -> bool:
        latest: dict[str, bool] = {}
        for _, key, ok in self.samples[-4 * (len(self.addresses) + 1) :]:
            latest[key] = ok
        return len(latest) == len(self.addresses) + 1 and all(latest.values())


def check_database(database_url: str, traders: list[Trader]) -> None:
    """Every acknowledged order is stored as answered, ledgers sum to balances, no tick is
    stored twice."""
    with psycopg.connect(database_url) as conn:
        for trader in traders:
            rows = conn.execute(
                "SELECT o.client_order_id, o.order_id::text, coalesce(o.position_id::text, '')"
                " FROM trading_orders o JOIN trading_accounts a USING (account_id)"
                " WHERE a.user_id = %s",
                (trader.user_id,),
            ).fetchall()
            stored = {key: (order_id, position_id) for key, order_id, position_id in rows}
            for key, answer in trader.acked.items():
                assert stored.get(key) == answer, f"acknowledged order {key}: {stored.get(key)}"
        unbalanced = conn.execute(
            "SELECT a.account_id, a.balance, coalesce(sum(l.amount), 0)"
            " FROM trading_accounts a LEFT JOIN trading_ledger l USING (account_id)"
            " GROUP BY a.account_id, a.balance HAVING a.balance <> coalesce(sum(l.amount), 0)"
        ).fetchall()
        assert not unbalanced, f"ledgers that do not sum to their balance: {unbalanced}"
        doubled = conn.execute(
            "SELECT symbol, time, source, count(*) FROM ticks GROUP BY symbol, time, source"
            " HAVING count(*) > 1 LIMIT 5"
        ).fetchall()
        assert not doubled, f"ticks stored twice: {doubled}"


async def wait_until(check: object, timeout_s: float, what: str) -> float:
    """Seconds until `check()` (sync) is truthy; fails after `timeout_s`."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - started < timeout_s, f"{what} not within {timeout_s}s"
        await asyncio.sleep(0.25)
    return time.monotonic() - started
