"""Merges the per-service OpenAPI (Swagger 2.0) documents that protoc-gen-swagger (Debian's
golang-grpc-gateway) generates from proto/ into the one document the edge serves at
/openapi.json, and marks which operations need an access token, from each method's declared
access (exness.common.v1.access).

    python -m gateway.openapi DESCRIPTOR_SET OUT.json SERVICE.swagger.json...   (make gen)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

from kit.rpc.access import Access, declared_methods

TITLE = "Exness platform API"
BEARER = "bearer"
_VERBS = ("get", "put", "post", "delete", "patch")


def _operation_access(descriptor_set: Path) -> dict[str, Access]:
    """operationId (the RPC name, unique across our services) -> declared access."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    found: dict[str, Access] = {}
    for path, access in declared_methods(files):
        if path.startswith("/exness."):
            name = path.rsplit("/", 1)[1]
            if name in found and found[name] is not access:
                raise ValueError(f"two RPCs named {name} with different access")
            found[name] = access
    return found


def merge(documents: list[dict[str, Any]], access: dict[str, Access]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "swagger": "2.0",
        "info": {
            "title": TITLE,
            "version": "v1",
            "description": "REST/JSON through the Envoy edge, generated from the protobuf "
            "contracts. Errors are google.rpc.Status JSON bodies whose details carry a "
            "google.rpc.ErrorInfo (reason: an ErrorReason) and, for bad input, a BadRequest.",
        },
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {
            BEARER: {
                "type": "apiKey",
                "name": "Authorization",
                "in": "header",
                "description": "An access token from /v1/auth/login: `Bearer <token>`.",
            }
        },
        "tags": [],
        "paths": {},
        "definitions": {},
    }
    for document in documents:
        merged["tags"] += [t for t in document.get("tags", []) if t not in merged["tags"]]
        for path, operations in document.get("paths", {}).items():
            target = merged["paths"].setdefault(path, {})
            for verb, operation in operations.items():
                if verb in target:
                    raise ValueError(f"{verb.upper()} {path} is bound twice")
                if verb in _VERBS and access.get(operation["operationId"]) is not Access.PUBLIC:
                    operation["security"] = [{BEARER: []}]
                target[verb] = operation
        for name, schema in document.get("definitions", {}).items():
            if merged["definitions"].get(name, schema) != schema:
                raise ValueError(f"two different schemas named {name}")
            merged["definitions"][name] = schema
    merged["tags"].sort(key=lambda tag: tag.get("name", "") if isinstance(tag, dict) else tag)
    return merged


def main(argv: list[str]) -> int:
    descriptor_set, out, *sources = (Path(arg) for arg in argv)
    documents = [json.loads(source.read_text()) for source in sources]
    document = merge(documents, _operation_access(descriptor_set))
    out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
