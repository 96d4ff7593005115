"""AuthService: register, login, refresh, logout, me, JWKS."""

from __future__ import annotations

from typing import Any

import grpc
from exness.auth.v1 import auth_pb2, auth_pb2_grpc
from google.api import httpbody_pb2
from google.protobuf import timestamp_pb2

from kit.rpc.errors import ServiceError, not_found, unauthenticated
from kit.rpc.identity import current_caller
from services.auth import credentials
from services.auth.keys import Keyring
from services.auth.store import AuthStore, EmailTaken, RefreshOutcome, UserRow
from services.auth.throttle import LoginThrottle
from services.auth.tokens import AccessTokenIssuer, new_refresh_token, refresh_token_hash

SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        store: AuthStore,
        keyring: Keyring,
        issuer: AccessTokenIssuer,
        refresh_ttl_s: int,
        shard_count: int,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.store = store
        self.throttle = throttle or LoginThrottle(store.pool)
        self.keyring = keyring
        self.issuer = issuer
        self.refresh_ttl_s = refresh_ttl_s
        self.shard_count = shard_count

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RegisterResponse:
        email = credentials.normalise_email(request.email)
        credentials.check_password_policy(request.password)
        password_hash = await credentials.hash_password(request.password)
        try:
            user = await self.store.create_user(email, password_hash, self.shard_count)
        except EmailTaken:
            raise ServiceError(
                grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN", "this email is already registered"
            ) from None
        return auth_pb2.RegisterResponse(
            user=_user_message(user), tokens=auth_pb2.TokenPair(**await self._new_session(user))
        )

    async def Login(
        self, request: auth_pb2.LoginRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LoginResponse:
        email = credentials.normalise_email(request.email)
        # Before anything tells known and unknown emails apart.
        failed_before = await self.throttle.check(email)
        user = await self.store.user_by_email(email)
        # Unknown email and wrong password fail alike, in time too (a dummy hash is verified).
        ok = await credentials.verify_password(
            user.password_hash if user else None, request.password
        )
        if user is None or not ok:
            await self.throttle.failed(email)
            raise unauthenticated("email or password is wrong", reason="INVALID_CREDENTIALS")
        if failed_before:
            await self.throttle.succeeded(email)
        return auth_pb2.LoginResponse(**await self._new_session(user))

    async def Refresh(
        self, request: auth_pb2.RefreshRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RefreshResponse:
        successor = new_refresh_token()
        rotated = await self.store.rotate(
            refresh_token_hash(request.refresh_token),
            refresh_token_hash(successor),
            self.refresh_ttl_s,
        )
        if rotated is RefreshOutcome.REUSED:
            raise unauthenticated(
                "this refresh token was already used; every session of this login is revoked",
                reason="REFRESH_TOKEN_REUSED",
            )
        if rotated is RefreshOutcome.INVALID:
            raise unauthenticated(
                "refresh token is unknown, expired or revoked", reason="REFRESH_TOKEN_INVALID"
            )
        return auth_pb2.RefreshResponse(
            **self._token_fields(
                self.issuer.issue(rotated.user.user_id, rotated.user.shard, rotated.session_id),
                successor,
            )
        )

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LogoutResponse:
        await self.store.revoke_family_of(refresh_token_hash(request.refresh_token))
        return auth_pb2.LogoutResponse()

    async def GetMe(
        self, request: auth_pb2.GetMeRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.GetMeResponse:
        user = await self.store.user_by_id(current_caller().user_id)
        if user is None:
            raise not_found("USER_NOT_FOUND", "the user of this token no longer exists")
        return auth_pb2.GetMeResponse(user=_user_message(user))

    async def GetJwks(
        self, request: auth_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        return httpbody_pb2.HttpBody(content_type="application/json", data=self.keyring.jwks_json())

    async def _new_session(self, user: UserRow) -> dict[str, Any]:
        """Starts a refresh-token family for a fresh login; the fields of a token response."""
        refresh = new_refresh_token()
        session_id = await self.store.start_family(
            user.user_id, refresh_token_hash(refresh), self.refresh_ttl_s
        )
        return self._token_fields(self.issuer.issue(user.user_id, user.shard, session_id), refresh)

    def _token_fields(self, access: str, refresh: str) -> dict[str, Any]:
        """Login, Refresh and Register's TokenPair carry the same four fields."""
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.issuer.ttl_s,
            "token_type": "Bearer",
        }


def _user_message(user: UserRow) -> auth_pb2.User:
    created = timestamp_pb2.Timestamp()
    created.FromDatetime(user.created_at)
    return auth_pb2.User(
        user_id=user.user_id, email=user.email, create_time=created, shard=user.shard
    )
