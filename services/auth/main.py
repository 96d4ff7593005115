"""`exness auth`: the Auth service process."""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from exness.auth.v1 import auth_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from kit.data.db import open_pool
from kit.data.db_watch import DatabaseWatch
from kit.logs import setup_logging
from kit.obs.metrics import serve_metrics
from kit.obs.tracing import setup_tracing
from kit.rpc import server as kit_server
from kit.rpc.identity import StaticKeySource, TokenVerifier
from kit.rpc.interceptors import RequestPipeline
from kit.rpc.revocations import RevokedSessions
from kit.rpc.server import GrpcServer, ServiceSpec
from kit.settings import Settings, require
from services.auth.jwks_http import JwksHttpServer
from services.auth.keys import Keyring, new_key_file
from services.auth.servicer import SERVICE_NAME, AuthServicer
from services.auth.store import AuthStore
from services.auth.throttle import LoginBackoff, LoginThrottle
from services.auth.tokens import AccessTokenIssuer

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="gRPC port (default: $EXNESS_AUTH_PORT or 50051)")
    parser.add_argument(
        "--jwks-port",
        type=int,
        help="HTTP port of the public keys, GET /.well-known/jwks.json "
        "(default: $EXNESS_AUTH_JWKS_PORT or 50050)",
    )
    parser.add_argument(
        "--new-key",
        action="store_true",
        help="add a fresh signing key (key rotation) and exit; restart to sign with it",
    )


def keys_path(settings: Settings) -> Path:
    return (
        Path(settings.signing_keys_path)
        if settings.signing_keys_path
        else settings.data_dir / "keys"
    )


@dataclass
class AuthApp:
    """The Auth service's parts, wired; tests build it in-process the same way."""

    server: GrpcServer
    keyring: Keyring
    # Followed only once started (serve() does): a GetMe with a logged-out token is refused.
    revocations: RevokedSessions


def build(
    settings: Settings,
    pool: AsyncConnectionPool,
    port: int | None = None,
    login_backoff: LoginBackoff | None = None,
) -> AuthApp:
    keyring = Keyring.load(keys_path(settings), publish_delay_s=settings.key_publish_delay_s)
    log.info(
        "signing keys loaded",
        extra={"keys": [key.kid for key in keyring.keys], "signing": keyring.signer.kid},
    )
    issuer = AccessTokenIssuer(
        keyring, settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl_s
    )
    servicer = AuthServicer(
        AuthStore(pool, settings.access_token_ttl_s),
        keyring,
        issuer,
        settings.refresh_token_ttl_s,
        settings.shard_count,
        LoginThrottle(pool, login_backoff or LoginBackoff.from_env()),
    )
    # Auth verifies its own tokens with its own keyring: no network hop to itself.
    verifier = TokenVerifier(
        StaticKeySource(keyring.public_keys()), settings.jwt_issuer, settings.jwt_audience
    )
    revocations = RevokedSessions(pool)
    server = GrpcServer(
        services=[
            ServiceSpec(
                SERVICE_NAME, lambda s: auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, s)
            )
        ],
        interceptors=[RequestPipeline(verifier, revocations=revocations)],
        host=settings.bind_host,
        port=settings.auth_port if port is None else port,
        grace_s=settings.shutdown_grace_s,
    )
    return AuthApp(server, keyring, revocations)


async def serve(settings: Settings, port: int | None, jwks_port: int | None = None) -> None:
    setup_logging("auth", settings.log_level, settings.log_format)
    setup_tracing("auth", settings.data_dir)
    require(settings, "auth", "database_url")
    pool = await open_pool(settings.database_url, name="auth")
    app = build(settings, pool, port)
    # Before the gRPC server: the edge fetches these keys before it takes any traffic.
    jwks = JwksHttpServer(
        app.keyring.jwks_json(),
        settings.bind_host,
        settings.auth_jwks_port if jwks_port is None else jwks_port,
    ).start()
    app.server.on_stop.append(lambda: asyncio.to_thread(jwks.stop))
    serve_metrics(settings.bind_host, settings.auth_metrics_port)
    app.server.on_stop.append(pool.close)
    await app.revocations.start()
    app.server.on_stop.append(app.revocations.stop)
    watch = DatabaseWatch(settings.database_url, app.server.reporter)
    await watch.start()
    app.server.on_stop.append(watch.stop)
    await app.server.serve_until_signalled()


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.new_key:
        path = new_key_file(keys_path(settings))
        print(
            f"new signing key: {path} (restart Auth to publish it; it signs from "
            f"{settings.key_publish_delay_s:g} s after now; keep the old key listed until tokens "
            "it signed have expired)"
        )
        return 0
    kit_server.run(lambda: serve(settings, args.port, args.jwks_port))
    return 0
