"""The REST API's OpenAPI document, generated from proto/ at build time, is served by Envoy at
/openapi.json with a browsable reference at /docs; it lists every REST route the edge serves,
and requests built from it alone work."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from gateway.config import DESCRIPTOR_PATH, EXPOSED_SERVICES
from tests.edge.conftest import PASSWORD


def _served_rest_routes() -> set[tuple[str, str]]:
    """(verb, path template) of every google.api.http binding the transcoder serves."""
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_PATH.read_bytes())
    routes = set()
    for file in files.file:
        for service in file.service:
            if f"{file.package}.{service.name}" not in EXPOSED_SERVICES:
                continue
            for method in service.method:
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                rule = method.options.Extensions[annotations_pb2.http]
                for binding in [rule, *rule.additional_bindings]:
                    verb = binding.WhichOneof("pattern")
                    assert verb is not None
                    routes.add((verb, getattr(binding, verb)))
    return routes


async def _document(api: httpx.AsyncClient) -> dict[str, Any]:
    reply = await api.get("/openapi.json")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    document: dict[str, Any] = reply.json()
    return document


async def test_every_rest_route_is_documented(api: httpx.AsyncClient) -> None:
    document = await _document(api)
    assert document["swagger"] == "2.0"
    documented = {
        (verb, path) for path, operations in document["paths"].items() for verb in operations
    }
    served = _served_rest_routes()
    assert len(served) >= 15
    assert served == documented


async def test_the_reference_page_is_served(api: httpx.AsyncClient) -> None:
    page = await api.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "/openapi.json" in page.text
    for asset in re.findall(r'(?:src|href)="(/docs/[^"]+)"', page.text):
        served = await api.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 10_000, asset  # the real Swagger UI, not a placeholder


def _example(document: dict[str, Any], schema: dict[str, Any], values: dict[str, str]) -> Any:
    """A request body for `schema` from the document, with string fields taken from `values`."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/definitions/")
        return _example(document, document["definitions"][name], values)
    return {prop: values[prop] for prop in schema.get("properties", {}) if prop in values}


async def test_requests_built_from_the_document_work(api: httpx.AsyncClient) -> None:
    document = await _document(api)
    register = document["paths"]["/v1/auth/register"]["post"]
    assert "security" not in register  # ACCESS_PUBLIC in the contract
    (body,) = [p for p in register["parameters"] if p["in"] == "body"]
    email = f"openapi-{uuid.uuid4().hex[:10]}@example.com"
    payload = _example(document, body["schema"], {"email": email, "password": PASSWORD})
    assert set(payload) == {"email", "password"}
    registered = await api.post("/v1/auth/register", json=payload)
    assert registered.status_code == 200, registered.text
    token = registered.json()["tokens"]["accessToken"]

    quote = document["paths"]["/v1/quotes/{symbol}"]["get"]
    (symbol,) = [p for p in quote["parameters"] if p["in"] == "path"]
    reply = await api.get("/v1/quotes/{symbol}".replace("{" + symbol["name"] + "}", "BTCUSD"))
    assert reply.status_code == 200, reply.text
    assert reply.json()["quote"]["symbol"] == "BTCUSD"

    account = document["paths"]["/v1/account"]["get"]
    (requirement,) = account["security"]  # ACCESS_USER in the contract
    (scheme_name,) = requirement
    scheme = document["securityDefinitions"][scheme_name]
    assert (await api.get("/v1/account")).status_code == 401
    authorized = await api.get("/v1/account", headers={scheme["name"]: f"Bearer {token}"})
    assert authorized.status_code == 200, authorized.text
    assert authorized.json()["account"]["currency"] == "USD"
