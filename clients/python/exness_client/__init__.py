"""A typed, async Python SDK for the platform, over stubs and dataclasses generated from the
contracts by betterproto2 (exness_client.contracts) and grpclib.

    async with ExnessClient("localhost:8080") as client:      # Envoy, or a service directly
        await client.login("me@example.com", "secret-pass-1")
        placed = await client.place_order("BTCUSD", "buy", volume="0.01", stop_loss="60000")

Access tokens are refreshed before they expire (and once more on UNAUTHENTICATED, unless the
session was revoked by a logout: then the error is raised and the stored session dropped); calls that
are safe to repeat are retried on UNAVAILABLE with backoff; PlaceOrder is made safe to repeat by
an idempotency key (client_order_id) generated once per logical order and reused on each retry.
"""

from exness_client.client import ExnessClient, Targets
from exness_client.errors import Code, ExnessError
from exness_client.session import Session, SessionStore

__all__ = ["Code", "ExnessClient", "ExnessError", "Session", "SessionStore", "Targets"]
