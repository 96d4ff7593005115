"""Auth's public keys over plain HTTP/1.1, for verifiers that fetch a JWKS by URL (Envoy's
jwt_authn). A port of its own, so the edge can fetch the keys straight from Auth before its
own listener takes traffic (see docs/edge.md).

One path, GET (and HEAD) /.well-known/jwks.json; anything else is 404, other methods 405. The
body is fixed for the life of the process (the keyring is read at start-up), so the server
runs in a daemon thread off the event loop, like the metrics endpoint.
"""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from kit.rpc.errors import StartupError

log = logging.getLogger(__name__)

JWKS_PATH = "/.well-known/jwks.json"
CONTENT_TYPE = "application/jwk-set+json"
# Verifiers may keep the keys this long. A new key is listed here before it signs anything
# (services/auth/keys.py), and Envoy refetches on its own cache_duration.
MAX_AGE_S = 300


class JwksPortInUseError(StartupError):
    pass


def _handler(body: bytes) -> type[BaseHTTPRequestHandler]:
    class JwksHandler(BaseHTTPRequestHandler):
        # Keep-alive: Envoy reuses its connection for every refetch.
        protocol_version = "HTTP/1.1"
        server_version = "exness-auth-jwks"
        sys_version = ""

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def _refuse_method(self) -> None:
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"", {"allow": "GET, HEAD"})

        do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _refuse_method

        def _answer(self, *, with_body: bool) -> None:
            if urlsplit(self.path).path != JWKS_PATH:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n" if with_body else b"")
                return
            headers = {
                "content-type": CONTENT_TYPE,
                "cache-control": f"public, max-age={MAX_AGE_S}",
            }
            self._send(HTTPStatus.OK, body, headers, with_body=with_body)

        def _send(
            self,
            status: HTTPStatus,
            payload: bytes,
            headers: dict[str, str] | None = None,
            *,
            with_body: bool = True,
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if with_body:
                self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("jwks request: " + format, *args)

    return JwksHandler


class JwksHttpServer:
    """Serves `jwks` (the JSON document) on host:port until stopped."""

    def __init__(self, jwks: bytes, host: str, port: int) -> None:
        try:
            self._server = ThreadingHTTPServer((host, port), _handler(jwks))
        except OSError as exc:
            raise JwksPortInUseError(
                f"cannot serve the JWKS on {host}:{port}: is the port already taken? ({exc})"
            ) from None
        self._host = host
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="jwks-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> JwksHttpServer:
        self._thread.start()
        log.info("serving the JWKS", extra={"address": f"{self._host}:{self.port}"})
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
