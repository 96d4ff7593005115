"""Token verification for services other than Auth: Auth's JWKS, fetched over gRPC."""

from __future__ import annotations

import grpc
from exness.auth.v1 import auth_pb2, auth_pb2_grpc

from kit.rpc.identity import JwksKeySource, TokenVerifier
from kit.rpc.token_cache import CachingTokenVerifier
from kit.settings import Settings


def auth_service_verifier(settings: Settings) -> TokenVerifier:
    """Verifies access tokens with the public keys the Auth service publishes (GetJwks);
    an unknown key id triggers a refetch, so keys rotate without restarts here. Verified
    tokens are remembered until they expire (at most a minute)."""
    channel: grpc.aio.Channel | None = None

    async def fetch() -> bytes:
        nonlocal channel
        if channel is None:
            channel = grpc.aio.insecure_channel(settings.auth_addr)
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        body = await stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=5)
        return bytes(body.data)

    return CachingTokenVerifier(
        TokenVerifier(JwksKeySource(fetch), settings.jwt_issuer, settings.jwt_audience)
    )
