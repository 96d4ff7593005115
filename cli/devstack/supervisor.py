"""The supervisor loop of `exness up`: every component it started is one `Supervised` entry.

A component that exits is restarted; one whose health probe keeps failing past its limit
(a service stuck NOT_SERVING, a frozen PostgreSQL or broker that no longer answers) is killed
and restarted too. While an infrastructure component fails its probe, no service is replaced
for being unhealthy: they are NOT_SERVING because of it, and replacing them would only spend
their restart budget. Restarts share one budget per
component: one that keeps failing (RESTART_LIMIT times within RESTART_WINDOW_S) takes the
platform down with a clear message instead of flapping forever. A new component is one entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

RESTART_LIMIT = 3
RESTART_WINDOW_S = 60.0
# A service that answers NOT_SERVING (or nothing) for this long is replaced.
UNHEALTHY_LIMIT_S = 30.0
PROBE_INTERVAL_S = 1.0


@dataclass
class RestartBudget:
    recent: dict[str, list[float]] = field(default_factory=dict)

    def allow(self, name: str) -> bool:
        now = time.monotonic()
        times = [t for t in self.recent.get(name, []) if now - t < RESTART_WINDOW_S]
        if len(times) >= RESTART_LIMIT:
            return False
        self.recent[name] = [*times, now]
        return True


@dataclass
class Supervised:
    """One component: how to tell it exited, how to restart it (killing and reaping whatever
    is left of it first), and optionally how to probe its health."""

    name: str
    exited: Callable[[], int | None]
    restart: Callable[[], object]  # its result, if any, is ignored
    healthy: Callable[[], bool] | None = None
    unhealthy_limit_s: float = UNHEALTHY_LIMIT_S
    log_tail: Callable[[], str] = lambda: ""
    # PostgreSQL or the broker: what the services depend on (see the module docstring).
    infrastructure: bool = False
    # Probe state: the health limit only runs once the component was healthy after a start
    # (start-up itself is bounded by `exness up`'s own wait).
    _healthy_seen: bool = field(default=False, repr=False)
    _unhealthy_since: float | None = field(default=None, repr=False)
    _probed_at: float = field(default=0.0, repr=False)

    def restarted(self) -> None:
        self._healthy_seen = False
        self._unhealthy_since = None

    def pause(self) -> None:
        """Forgets how long it has been unhealthy (it waits for something else)."""
        self._unhealthy_since = None

    def stuck_for(self, now: float) -> float | None:
        """Seconds it has failed its health probe (after having passed it), or None."""
        if self.healthy is None or now - self._probed_at < PROBE_INTERVAL_S:
            return None if self._unhealthy_since is None else now - self._unhealthy_since
        self._probed_at = now
        if self.healthy():
            self._healthy_seen = True
            self._unhealthy_since = None
            return None
        if not self._healthy_seen:
            return None
        if self._unhealthy_since is None:
            self._unhealthy_since = now
        return now - self._unhealthy_since


class GiveUp(Exception):
    """A component keeps failing; the message says which and shows its log."""


@dataclass
class Supervisor:
    entries: list[Supervised] = field(default_factory=list)
    say: Callable[[str], None] = print
    on_restart: Callable[[], None] = lambda: None
    budget: RestartBudget = field(default_factory=RestartBudget)
    restarts: int = 0

    def add(self, entry: Supervised) -> None:
        self.entries.append(entry)

    def check_once(self) -> None:
        """One round over every component; raises GiveUp when one is out of restarts."""
        now = time.monotonic()
        infrastructure_down = False
        for entry in sorted(self.entries, key=lambda e: not e.infrastructure):
            code = entry.exited()
            if code is not None:
                infrastructure_down |= entry.infrastructure
                self._restart(entry, f"exited (code {code})")
                continue
            stuck = entry.stuck_for(now)
            if stuck is None:
                continue
            if entry.infrastructure:
                infrastructure_down = True
            elif infrastructure_down:
                entry.pause()  # its clock starts again once what it needs is back
                continue
            if stuck > entry.unhealthy_limit_s:
                self._restart(entry, f"was not healthy for {stuck:.0f}s")

    def _restart(self, entry: Supervised, why: str) -> None:
        if not self.budget.allow(entry.name):
            raise GiveUp(
                f"{entry.name} {why} again ({RESTART_LIMIT} restarts in {RESTART_WINDOW_S:g}s);"
                f" stopping everything. Its log ends with:\n{entry.log_tail()}"
            )
        self.say(f"{entry.name} {why}; restarting it")
        started = time.monotonic()
        entry.restarted()
        self.restarts += 1
        try:
            entry.restart()
        except Exception as exc:  # seen as exited next round, and retried within the budget
            self.say(f"{entry.name} did not restart: {exc}")
            return
        self.say(f"{entry.name} restarted in {time.monotonic() - started:.1f}s")
        self.on_restart()

    def run(self, interval_s: float = 0.5) -> None:
        """Until a signal (raised into this thread) or GiveUp."""
        while True:
            self.check_once()
            time.sleep(interval_s)
