"""Access and refresh tokens: every forgery and misuse is rejected."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from exness.auth.v1 import auth_pb2, auth_pb2_grpc

from kit.rpc.identity import StaticKeySource, TokenVerifier, parse_jwks
from kit.settings import Settings
from services.auth.keys import KEY_PUBLISH_DELAY_S, Keyring, new_key_file
from tests.auth.helpers import bearer, register
from tests.support.grpc_errors import failure_of


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(settings: Settings, user_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": user_id,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        "shard": 0,
    }
    claims.update(overrides)
    return claims


async def expect_unauthenticated(stub: auth_pb2_grpc.AuthServiceStub, token: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(token))
    failure = failure_of(raised.value)
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED, failure
    assert failure.reason == "TOKEN_INVALID"


Forger = Callable[[Keyring, Settings, str], str]


def signed(keyring: Keyring, claims: dict[str, Any], kid: str | None = None) -> str:
    """Claims signed with Auth's own key (EdDSA), under its kid unless another is given."""
    return jwt.encode(
        claims,
        keyring.signer.private_key,
        algorithm="EdDSA",
        headers={"kid": keyring.signer.kid if kid is None else kid},
    )


def signed_by_another_key(keyring: Keyring, settings: Settings, user_id: str) -> str:
    # Claims and kid are right; only the signature comes from a key Auth never had.
    return jwt.encode(
        claims_for(settings, user_id),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": keyring.signer.kid},
    )


def alg_none(keyring: Keyring, settings: Settings, user_id: str) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": keyring.signer.kid}).encode())
    return f"{header}.{_b64(json.dumps(claims_for(settings, user_id)).encode())}."


def hs256_with_public_key(keyring: Keyring, settings: Settings, user_id: str) -> str:
    public_pem = keyring.signer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": keyring.signer.kid}).encode())
    payload = _b64(json.dumps(claims_for(settings, user_id)).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def expired(keyring: Keyring, settings: Settings, user_id: str) -> str:
    past = int(time.time()) - 3600
    return signed(keyring, claims_for(settings, user_id, iat=past - 300, exp=past))


def wrong_audience(keyring: Keyring, settings: Settings, user_id: str) -> str:
    return signed(keyring, claims_for(settings, user_id, aud="someone-else"))


def wrong_issuer(keyring: Keyring, settings: Settings, user_id: str) -> str:
    return signed(keyring, claims_for(settings, user_id, iss="https://evil.example"))


def unknown_kid(keyring: Keyring, settings: Settings, user_id: str) -> str:
    return signed(keyring, claims_for(settings, user_id), kid="no-such-key")


def missing_jti(keyring: Keyring, settings: Settings, user_id: str) -> str:
    claims = claims_for(settings, user_id)
    del claims["jti"]
    return signed(keyring, claims)


def tampered_payload(keyring: Keyring, settings: Settings, user_id: str) -> str:
    good = signed(keyring, claims_for(settings, user_id))
    header, _, signature = good.split(".")
    other = _b64(json.dumps(claims_for(settings, str(uuid.uuid4()))).encode())
    return f"{header}.{other}.{signature}"


@pytest.mark.parametrize(
    "forge",
    [
        signed_by_another_key,
        alg_none,
        hs256_with_public_key,
        expired,
        wrong_audience,
        wrong_issuer,
        unknown_kid,
        missing_jti,
        tampered_payload,
    ],
)
async def test_forged_or_misused_access_tokens_are_rejected(
    auth_stub: auth_pb2_grpc.AuthServiceStub,
    auth_app: Any,
    auth_settings: Settings,
    forge: Forger,
) -> None:
    user = (await register(auth_stub)).user
    await expect_unauthenticated(auth_stub, forge(auth_app.keyring, auth_settings, user.user_id))


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 5000, "Bearer"])
async def test_garbage_tokens_are_rejected(
    auth_stub: auth_pb2_grpc.AuthServiceStub, garbage: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(garbage))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_access_token_claims(
    auth_stub: auth_pb2_grpc.AuthServiceStub, auth_settings: Settings
) -> None:
    reply = await register(auth_stub)
    header = jwt.get_unverified_header(reply.tokens.access_token)
    claims = jwt.decode(reply.tokens.access_token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA"
    assert header["kid"]
    assert set(claims) >= {"iss", "aud", "sub", "exp", "iat", "jti", "shard"}
    assert claims["sub"] == reply.user.user_id
    assert claims["iss"] == auth_settings.jwt_issuer
    assert claims["aud"] == auth_settings.jwt_audience
    assert 0 < claims["exp"] - claims["iat"] <= auth_settings.access_token_ttl_s


async def test_jwks_verifies_issued_tokens(
    auth_stub: auth_pb2_grpc.AuthServiceStub, auth_settings: Settings
) -> None:
    body = await auth_stub.GetJwks(auth_pb2.GetJwksRequest())
    assert body.content_type == "application/json"
    document = json.loads(body.data)
    assert all(
        k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["alg"] == "EdDSA"
        for k in document["keys"]
    )
    assert all("d" not in k for k in document["keys"]), "private key material published"
    verifier = TokenVerifier(
        StaticKeySource(parse_jwks(body.data)), auth_settings.jwt_issuer, auth_settings.jwt_audience
    )
    reply = await register(auth_stub)
    caller = await verifier.verify(reply.tokens.access_token)
    assert caller.user_id == reply.user.user_id
    exp = jwt.decode(reply.tokens.access_token, options={"verify_signature": False})["exp"]
    assert caller.expires_at == exp


async def test_key_rotation_keeps_old_tokens_valid(tmp_path: Any, auth_settings: Settings) -> None:
    from services.auth.tokens import AccessTokenIssuer

    keys_dir = tmp_path / "keys"
    old_ring = Keyring.load(keys_dir)
    old_token = AccessTokenIssuer(
        old_ring, auth_settings.jwt_issuer, auth_settings.jwt_audience, 300
    ).issue("user-1", 0)
    await asyncio.sleep(1.1)  # key files are ordered by their creation time in the name
    new_key_file(keys_dir)
    # Once the new key has been published for the delay, it signs.
    later = time.time() + KEY_PUBLISH_DELAY_S + 1
    rotated = Keyring.load(keys_dir, clock=lambda: later)
    assert len(rotated.keys) == 2
    assert rotated.signer.kid != old_ring.signer.kid
    new_token = AccessTokenIssuer(
        rotated, auth_settings.jwt_issuer, auth_settings.jwt_audience, 300
    ).issue("user-2", 0)
    assert jwt.get_unverified_header(new_token)["kid"] == rotated.signer.kid
    verifier = TokenVerifier(
        StaticKeySource(parse_jwks(rotated.jwks_json())),
        auth_settings.jwt_issuer,
        auth_settings.jwt_audience,
    )
    assert (await verifier.verify(old_token)).user_id == "user-1"
    assert (await verifier.verify(new_token)).user_id == "user-2"


def test_a_new_key_signs_only_once_published_for_the_delay(tmp_path: Any) -> None:
    """A verifier that fetched the JWKS just before a key was added (Envoy keeps it 300 s and
    does not refetch on an unknown kid) never meets a token signed by that key: it is listed
    at once, and signs only after the publish delay. A first key signs at once."""
    keys_dir = tmp_path / "keys"
    now = time.time()
    first = Keyring.load(keys_dir, clock=lambda: now)
    assert first.signer.kid == first.keys[0].kid  # nothing can have cached a JWKS without it
    os.utime(first_file := next(keys_dir.glob("*.pem")), (now - 3600, now - 3600))
    time.sleep(1.1)  # file names order keys by creation time
    new_file = new_key_file(keys_dir)
    new_kid = Keyring.load(new_file).keys[0].kid

    def ring_at(when: float) -> Keyring:
        return Keyring.load(keys_dir, publish_delay_s=330, clock=lambda: when)

    added = new_file.stat().st_mtime
    just_added = ring_at(added + 1)
    assert [k.kid for k in just_added.keys][-1] == new_kid  # published at once
    assert new_kid in just_added.jwks_json().decode()
    assert just_added.signer.kid == Keyring.load(first_file).keys[0].kid
    assert ring_at(added + 329).signer.kid != new_kid
    assert ring_at(added + 331).signer.kid == new_kid


async def test_refresh_rotates_and_reuse_revokes_the_family(
    auth_stub: auth_pb2_grpc.AuthServiceStub,
) -> None:
    registered = await register(auth_stub)
    first = registered.tokens.refresh_token
    second = await auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token=first))
    assert second.refresh_token != first
    me = await auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(second.access_token))
    assert me.user == registered.user  # the rotated token names the same user and shard
    third = await auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token=second.refresh_token))

    # Replaying a used token: rejected, and the newest token of that login dies with it.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token=first))
    failure = failure_of(raised.value)
    assert (failure.code, failure.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "REFRESH_TOKEN_REUSED",
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token=third.refresh_token))
    assert failure_of(raised.value).reason == "REFRESH_TOKEN_INVALID"


async def test_other_logins_survive_a_family_revocation(
    auth_stub: auth_pb2_grpc.AuthServiceStub,
) -> None:
    from tests.auth.helpers import PASSWORD, fresh_email

    email = fresh_email()
    stolen = (await register(auth_stub, email)).tokens.refresh_token
    other_device = await auth_stub.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
    await auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token=stolen))
    with pytest.raises(grpc.aio.AioRpcError):
        await auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token=stolen))
    still_fine = await auth_stub.Refresh(
        auth_pb2.RefreshRequest(refresh_token=other_device.refresh_token)
    )
    assert still_fine.access_token


async def test_logout_revokes_and_is_idempotent(auth_stub: auth_pb2_grpc.AuthServiceStub) -> None:
    token = (await register(auth_stub)).tokens.refresh_token
    await auth_stub.Logout(auth_pb2.LogoutRequest(refresh_token=token))
    await auth_stub.Logout(auth_pb2.LogoutRequest(refresh_token=token))
    await auth_stub.Logout(auth_pb2.LogoutRequest(refresh_token="never-issued"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token=token))
    failure = failure_of(raised.value)
    assert (failure.code, failure.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "REFRESH_TOKEN_INVALID",
    )


async def test_unknown_refresh_token_is_rejected(auth_stub: auth_pb2_grpc.AuthServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token="x" * 43))
    assert failure_of(raised.value).reason == "REFRESH_TOKEN_INVALID"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token="x" * 10_000))
    assert failure_of(raised.value).code == grpc.StatusCode.INVALID_ARGUMENT


async def test_refresh_tokens_are_stored_hashed(
    auth_stub: auth_pb2_grpc.AuthServiceStub, db_pool: Any
) -> None:
    token = (await register(auth_stub)).tokens.refresh_token
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM refresh_tokens WHERE position(%s in encode(token_hash, 'escape')) > 0",
            (token,),
        )
        assert (await cur.fetchone()) == (0,)
