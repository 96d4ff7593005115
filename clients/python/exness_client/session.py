"""The signed-in session: tokens and when the access token expires, optionally kept in a file
(readable by its owner only) so that CLI invocations share one login."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Refresh this long before the access token expires, so a call never races its expiry (a
# third of its lifetime for tokens that live less than 90 s, which would otherwise be
# refreshed before every call).
REFRESH_MARGIN_S = 30.0


@dataclass
class Session:
    access_token: str
    refresh_token: str
    expires_at: float  # unix time
    email: str = ""
    issued_at: float = 0.0  # unix time; 0 when unknown (a session file from an older SDK)

    @classmethod
    def issued(
        cls, access_token: str, refresh_token: str, expires_in: int, email: str = ""
    ) -> Session:
        now = time.time()
        return cls(access_token, refresh_token, now + expires_in, email, now)

    @property
    def refresh_at(self) -> float:
        margin = REFRESH_MARGIN_S
        if self.issued_at:
            margin = min(margin, (self.expires_at - self.issued_at) / 3)
        return self.expires_at - margin

    def needs_refresh(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.refresh_at


class SessionStore:
    """Where a Session lives between calls: memory only, or a JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._session: Session | None = None
        if path is not None and path.exists():
            try:
                self._session = Session(**json.loads(path.read_text()))
            except (ValueError, TypeError):
                self._session = None  # unreadable: as if signed out

    @property
    def session(self) -> Session | None:
        return self._session

    def save(self, session: Session | None) -> None:
        self._session = session
        if self.path is None:
            return
        if session is None:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(session), out)
        tmp.replace(self.path)
