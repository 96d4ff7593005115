from __future__ import annotations

import uuid

from exness.auth.v1 import auth_pb2, auth_pb2_grpc

PASSWORD = "correct horse 42 battery"


def fresh_email(prefix: str = "trader") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


async def register(
    stub: auth_pb2_grpc.AuthServiceStub, email: str | None = None, password: str = PASSWORD
) -> auth_pb2.RegisterResponse:
    return await stub.Register(  # type: ignore[no-any-return]
        auth_pb2.RegisterRequest(email=email or fresh_email(), password=password)
    )


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)
