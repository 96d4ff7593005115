"""Which failures the Python SDK repeats: a passing outage is retried (a call that is safe to
repeat) or reopened (a read-only stream), an answer is raised. Envoy answers "no healthy
upstream" as UNAVAILABLE with the edge's SERVICE_UNAVAILABLE reason; a stream whose MarketData
replica died must reopen on it, not end its reader."""

from __future__ import annotations

import pytest
from exness_client.errors import Code, ExnessError, is_transient


@pytest.mark.parametrize(
    "reason",
    [
        "",
        "SERVICE_UNAVAILABLE",
        "DATABASE_UNAVAILABLE",
        "BROKER_UNAVAILABLE",
        "AUTH_UNAVAILABLE",
        "ENGINE_UNAVAILABLE",
    ],
)
def test_an_outage_is_transient_for_calls_and_streams(reason: str) -> None:
    error = ExnessError(Code.UNAVAILABLE, "down", reason)
    assert is_transient(error)
    assert is_transient(error, stream=True)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (Code.UNAVAILABLE, "WRONG_SHARD"),  # another shard owns the account: retrying won't help
        (Code.FAILED_PRECONDITION, "INSUFFICIENT_MARGIN"),
        (Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        (Code.UNAUTHENTICATED, "SESSION_REVOKED"),
        (Code.RESOURCE_EXHAUSTED, "RATE_LIMITED"),
    ],
)
def test_an_answer_is_not_transient(code: Code, reason: str) -> None:
    error = ExnessError(code, "no", reason)
    assert not is_transient(error)
    assert not is_transient(error, stream=True)


def test_a_reset_stream_reopens_but_an_internal_call_is_not_repeated() -> None:
    reset = ExnessError(Code.INTERNAL, "stream reset")
    assert is_transient(reset, stream=True)
    assert not is_transient(reset)
