"""`exness up`'s supervisor: a frozen dependency (PostgreSQL or the broker no longer answering)
is replaced after its limit, and the services that are NOT_SERVING because of it are not
replaced meanwhile (that would only spend their restart budget and, at the third time, stop the
whole platform); once it is back, a service that stays unhealthy is replaced after its own
limit."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from cli.devstack import supervisor
from cli.devstack.supervisor import Supervised, Supervisor

LIMIT_S = 0.3


@pytest.fixture(autouse=True)
def probe_every_round(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "PROBE_INTERVAL_S", 0.0)


class Component:
    def __init__(self, name: str, *, infrastructure: bool = False) -> None:
        self.name = name
        self.up = True
        self.restarted_at: list[float] = []
        self.infrastructure = infrastructure

    def entry(self) -> Supervised:
        return Supervised(
            self.name,
            exited=lambda: None,
            restart=self.restart,
            healthy=lambda: self.up,
            unhealthy_limit_s=LIMIT_S,
            infrastructure=self.infrastructure,
        )

    def restart(self) -> None:
        """As the real ones do: returns once the new process answers."""
        self.restarted_at.append(time.monotonic())
        self.up = True


def run_until(sup: Supervisor, done: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "not within the time"
        sup.check_once()
        time.sleep(0.02)


def settle(sup: Supervisor) -> None:
    """A few rounds: every component is seen healthy."""
    for _ in range(3):
        sup.check_once()


def test_a_frozen_dependency_is_replaced_and_its_dependants_wait() -> None:
    database = Component("PostgreSQL", infrastructure=True)
    engine = Component("Trading")
    sup = Supervisor(say=lambda _: None)
    # The services come first, as `exness up` adds them after the infrastructure.
    sup.add(engine.entry())
    sup.add(database.entry())
    settle(sup)

    frozen_at = time.monotonic()
    database.up = engine.up = False  # the database freezes; the engine says NOT_SERVING
    run_until(sup, lambda: bool(database.restarted_at), LIMIT_S * 10)
    assert database.restarted_at[0] - frozen_at >= LIMIT_S
    assert engine.restarted_at == []  # though it was NOT_SERVING for longer than its limit


def test_a_service_still_unhealthy_after_its_dependency_is_back_is_replaced() -> None:
    broker = Component("broker", infrastructure=True)
    market = Component("MarketData")
    sup = Supervisor(say=lambda _: None)
    sup.add(broker.entry())
    sup.add(market.entry())
    settle(sup)

    broker.up = market.up = False
    time.sleep(LIMIT_S * 0.8)
    sup.check_once()
    back_at = time.monotonic()
    broker.up = True  # back before its limit (thawed); MarketData stays stuck
    run_until(sup, lambda: bool(market.restarted_at), LIMIT_S * 10)
    assert broker.restarted_at == []
    # Its clock started when the broker was back, not when it went NOT_SERVING.
    assert market.restarted_at[0] - back_at >= LIMIT_S
