"""A service that cannot reach Auth for its keys says UNAVAILABLE, never "unknown key": the
token was not judged, so the client must retry rather than log the user out."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from exness.auth.v1 import auth_pb2_grpc

from kit.rpc.auth_keys import auth_service_verifier
from kit.rpc.errors import ServiceError
from kit.settings import Settings
from services.auth.keys import Keyring
from services.auth.main import keys_path
from tests.auth.helpers import register
from tests.auth.test_tokens import unknown_kid
from tests.support.infra import free_port


async def test_a_valid_token_is_unavailable_not_unauthenticated_while_auth_is_unreachable(
    auth_stub: auth_pb2_grpc.AuthServiceStub, auth_settings: Settings, auth_address: str
) -> None:
    token = (await register(auth_stub)).tokens.access_token
    nowhere = dataclasses.replace(auth_settings, auth_addr=f"127.0.0.1:{free_port()}")
    with pytest.raises(ServiceError) as refused:
        await auth_service_verifier(nowhere).verify(token)
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert refused.value.reason == "AUTH_UNAVAILABLE"

    # The same token, once Auth answers, is valid: it was never a bad token.
    reachable = dataclasses.replace(auth_settings, auth_addr=auth_address)
    caller = await auth_service_verifier(reachable).verify(token)
    assert caller.user_id


async def test_a_key_auth_does_not_publish_is_still_unknown(
    auth_stub: auth_pb2_grpc.AuthServiceStub, auth_settings: Settings, auth_address: str
) -> None:
    ring = Keyring.load(keys_path(auth_settings))
    token = unknown_kid(ring, auth_settings, "user-1")
    verifier = auth_service_verifier(dataclasses.replace(auth_settings, auth_addr=auth_address))
    with pytest.raises(ServiceError) as refused:
        await verifier.verify(token)
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
