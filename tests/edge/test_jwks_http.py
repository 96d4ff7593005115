"""Auth's public keys over plain HTTP/1.1 on a port of its own, which Envoy fetches them from:
the platform's own Auth, asked directly, as Envoy asks it."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import httpx
import pytest

from tests.edge.conftest import Stack, signing_key


def _jwks_url(stack: Stack) -> str:
    return str(stack.state["auth_jwks"])


def _request(stack: Stack, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request (http.client: exactly what is sent, no client-side conveniences)."""
    url = urlsplit(_jwks_url(stack))
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    try:
        connection.request(method, path)
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        connection.close()


def test_the_jwks_is_served_with_its_content_type_and_cache_lifetime(stack: Stack) -> None:
    reply = httpx.get(_jwks_url(stack), timeout=5, trust_env=False)
    assert reply.status_code == 200
    assert reply.http_version == "HTTP/1.1"
    assert reply.headers["content-type"] == "application/jwk-set+json"
    assert reply.headers["cache-control"] == "public, max-age=300"
    kid, _ = signing_key(stack)
    keys = reply.json()["keys"]
    assert kid in {key["kid"] for key in keys}
    assert all((key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", "EdDSA") for key in keys)
    # The same document the edge publishes (through Auth's gRPC GetJwks).
    published = httpx.get(f"{stack.url}/.well-known/jwks.json", timeout=5, trust_env=False)
    assert published.json() == reply.json()


def test_a_head_request_gets_the_headers_only(stack: Stack) -> None:
    status, headers, body = _request(stack, "HEAD", "/.well-known/jwks.json")
    assert (status, body) == (200, b"")
    assert int(headers["content-length"]) > 0


@pytest.mark.parametrize(
    "path", ["/", "/.well-known/jwks", "/.well-known/openid-configuration", "/metrics", "/x/../"]
)
def test_no_other_path_is_served(stack: Stack, path: str) -> None:
    status, _, body = _request(stack, "GET", path)
    assert status == 404
    assert b"keys" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_only_get_and_head_are_allowed(stack: Stack, method: str) -> None:
    status, headers, body = _request(stack, method, "/.well-known/jwks.json")
    assert status == 405
    assert headers["allow"] == "GET, HEAD"
    assert b"keys" not in body
