"""The engine and its companions, started and stopped together: group-commit writer, outbox
relay, quote consumer, StreamAccount fan-out. Used by `exness trading` and by in-process tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from kit.data.kafka import EVENTS_TOPIC, QUOTES_TOPIC
from kit.rpc.health import HealthReporter
from services.trading.admin import TradingAdminServicer, load_halts
from services.trading.committer import Committer
from services.trading.engine import DEFAULT_MAX_PENDING_ORDERS, Engine
from services.trading.relay import OutboxRelay
from services.trading.servicer import TradingServicer
from services.trading.store import load_engine
from services.trading.streams import AccountStreams
from services.trading.tick_feed import consume_quotes
from services.trading.tracing import CommandTraces

log = logging.getLogger(__name__)

EXPIRY_TICK_S = 1.0
COMMIT_PATH = "commit path"
COMMIT_PATH_CHECK_S = 0.5
STOP_TIMEOUT_S = 10.0


class TradingApp:
    def __init__(
        self,
        engine: Engine,
        committer: Committer,
        servicer: TradingServicer,
        relay: OutboxRelay,
        admin: TradingAdminServicer,
        reporter: HealthReporter | None = None,
    ) -> None:
        self.engine = engine
        self.committer = committer
        self.servicer = servicer
        self.relay = relay
        self.admin = admin
        self._tasks: list[asyncio.Task[None]] = []
        self.reporter = reporter or HealthReporter()

    @classmethod
    async def start(
        cls,
        pool: AsyncConnectionPool,
        *,
        shard_id: int,
        max_quote_age_s: float,
        max_pending_orders: int = DEFAULT_MAX_PENDING_ORDERS,
        kafka_bootstrap: str,
        quotes_topic: str = QUOTES_TOPIC,
        events_topic: str = EVENTS_TOPIC,
        reporter: HealthReporter | None = None,
        trading_sessions: bool = True,
        charge_swaps: bool = True,
    ) -> TradingApp:
        """Rebuilds the engine from the database, then starts the background tasks."""
        max_quote_age = timedelta(seconds=max_quote_age_s)

        async def load() -> Engine:
            loaded = await load_engine(
                pool,
                shard_id=shard_id,
                max_quote_age=max_quote_age,
                max_pending_orders=max_pending_orders,
                trading_sessions=trading_sessions,
                charge_swaps=charge_swaps,
            )
            loaded.halted.update(await load_halts(pool))
            return loaded

        engine = await load()

        async def rebuild() -> None:
            engine.adopt(await load())

        streams = AccountStreams()
        reporter = reporter or HealthReporter()
        traces = CommandTraces()
        traces.instrument(engine)
        relay = OutboxRelay(pool, kafka_bootstrap, shard_id, events_topic, reporter)
        committer = Committer(
            engine,
            pool,
            rebuild=rebuild,
            on_committed=[streams.publish, relay.wake],
            traces=traces,
        )
        servicer = TradingServicer(engine, committer, pool, streams)
        admin = TradingAdminServicer(engine, committer, pool, relay)
        app = cls(engine, committer, servicer, relay, admin, reporter)
        app._spawn(committer.run(), "committer")
        app._spawn(app._expire_loop(), "expiry")
        app._spawn(relay.run(), "relay")
        app._spawn(app._report_commit_path(), "commit-path-health")
        app._spawn(
            consume_quotes(engine, kafka_bootstrap, committer.wake, quotes_topic, reporter),
            "quotes",
        )
        log.info(
            "engine ready",
            extra={
                "shard": shard_id,
                **engine.counts(),
                "sequence": engine.last_sequence,
            },
        )
        return app

    def task(self, name: str) -> asyncio.Task[None]:
        """A background task by name (committer, expiry, relay, quotes)."""
        return next(t for t in self._tasks if t.get_name() == f"trading-{name}")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"trading-{name}")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A background task that ends (other than by stop()) leaves the engine unable to do
        its job (a dead committer answers no order again): NOT_SERVING from then on, so the
        edge keeps traffic away and `exness up` replaces the process."""
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("background task died", exc_info=error, extra={"task": task.get_name()})
        self.reporter.down(task.get_name(), f"background task ended: {error!r}")

    async def _report_commit_path(self) -> None:
        """NOT_SERVING while the committer is restoring after a failed write (every call is
        refused ENGINE_UNAVAILABLE meanwhile)."""
        while True:
            if self.committer.accepting:
                self.reporter.up(COMMIT_PATH)
            else:
                self.reporter.down(COMMIT_PATH, "restoring the engine after a failed commit")
            await asyncio.sleep(COMMIT_PATH_CHECK_S)

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_TICK_S)
            self.engine.expire(datetime.now(UTC))
            self.committer.wake()

    async def stop(self) -> None:
        """Commits what is emitted, then stops the background tasks."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.committer.barrier(), timeout=10)
        for task in self._tasks:
            task.cancel()
        # Bounded: a task stuck in a client library's shutdown (e.g. a broker that does not
        # answer) must not keep the process from stopping.
        _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
        for task in stuck:
            log.warning("background task did not stop in time", extra={"task": task.get_name()})
