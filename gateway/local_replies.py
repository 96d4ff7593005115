"""Refusals made by Envoy itself (no route, missing or bad token, body too large, rate limited,
upstream down) carry a google.rpc.ErrorInfo with a declared exness.common.v1.ErrorReason, like
the services' errors do: REST clients get it in the JSON google.rpc.Status body, Connect clients
in a Connect error body, gRPC and gRPC-Web clients in grpc-status-details-bin. This module builds the local_reply_config mappers
that attach it, one pair per HTTP status Envoy answers with."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from exness.common.v1 import errors_pb2
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from kit.rpc.errors import ERROR_DOMAIN


@dataclass(frozen=True)
class EdgeRefusal:
    http_status: int
    grpc_code: int
    reason: int  # an exness.common.v1.ErrorReason value
    message: str

    @property
    def reason_name(self) -> str:
        """As ErrorInfo.reason carries it: the value name without its enum prefix."""
        return errors_pb2.ErrorReason.Name(self.reason).removeprefix("ERROR_REASON_")  # type: ignore[arg-type]

    @property
    def code_for_grpc_clients(self) -> int:
        """The grpc-status Envoy gives a gRPC client for this HTTP status (its local replies
        map 404 to UNIMPLEMENTED, as gRPC answers an unknown method)."""
        return int(_ENVOY_GRPC_CODE.get(self.http_status, code_pb2.UNKNOWN))

    def info(self) -> error_details_pb2.ErrorInfo:
        return error_details_pb2.ErrorInfo(reason=self.reason_name, domain=ERROR_DOMAIN)

    def status(self, code: int) -> status_pb2.Status:
        packed = any_pb2.Any()
        packed.Pack(self.info())
        return status_pb2.Status(code=code, message=self.message, details=[packed])


# Envoy's HTTP-to-gRPC mapping of local replies; 429 is RESOURCE_EXHAUSTED because the rate
# limiter is configured with rate_limited_as_resource_exhausted.
_ENVOY_GRPC_CODE: dict[int, int] = {
    400: code_pb2.INTERNAL,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.UNIMPLEMENTED,
    # An oversized message: RESOURCE_EXHAUSTED, as a gRPC server says (Envoy's own mapping of
    # 413 would be UNKNOWN); the mappers below set grpc-status for it.
    413: code_pb2.RESOURCE_EXHAUSTED,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


# The codes of the JSON bodies are those the transcoder maps back to the same HTTP statuses.
REFUSALS = (
    EdgeRefusal(
        400,
        code_pb2.INVALID_ARGUMENT,
        errors_pb2.ERROR_REASON_INVALID_ARGUMENT,
        "the request is malformed",
    ),
    EdgeRefusal(
        401,
        code_pb2.UNAUTHENTICATED,
        errors_pb2.ERROR_REASON_TOKEN_INVALID,
        "this method needs a valid access token (authorization: Bearer ...)",
    ),
    EdgeRefusal(
        403,
        code_pb2.PERMISSION_DENIED,
        errors_pb2.ERROR_REASON_PERMISSION_DENIED,
        "the access token may not call this method",
    ),
    EdgeRefusal(
        404, code_pb2.NOT_FOUND, errors_pb2.ERROR_REASON_ROUTE_NOT_FOUND, "no such API route"
    ),
    EdgeRefusal(
        405,
        code_pb2.UNIMPLEMENTED,
        errors_pb2.ERROR_REASON_METHOD_NOT_ALLOWED,
        "this HTTP method is not allowed here",
    ),
    EdgeRefusal(
        413,
        code_pb2.RESOURCE_EXHAUSTED,
        errors_pb2.ERROR_REASON_REQUEST_TOO_LARGE,
        "the request body is too large",
    ),
    EdgeRefusal(
        429,
        code_pb2.RESOURCE_EXHAUSTED,
        errors_pb2.ERROR_REASON_RATE_LIMITED,
        "too many requests from this client; retry later",
    ),
    EdgeRefusal(
        503,
        code_pb2.UNAVAILABLE,
        errors_pb2.ERROR_REASON_SERVICE_UNAVAILABLE,
        "the service is unavailable; retry with backoff",
    ),
)

# Set by the template's header_mutation: the content type the client sent, before the
# transcoder or the gRPC-Web filter rewrote it.
_CLIENT_CONTENT_TYPE = "x-exness-client-content-type"


def _status_is(code: int) -> dict[str, Any]:
    return {
        "status_code_filter": {
            "comparison": {
                "op": "EQ",
                "value": {"default_value": code, "runtime_key": f"edge.local_reply.{code}"},
            }
        }
    }


_REST_CLIENT = {
    "header_filter": {
        "header": {
            "name": _CLIENT_CONTENT_TYPE,
            "string_match": {"prefix": "was application/grpc"},
            "invert_match": True,
        }
    }
}


# Set by the template's header_mutation from connect-protocol-version, which Connect clients
# send on every request and the Connect bridge removes.
_CONNECT_CLIENT = {"header_filter": {"header": {"name": "x-exness-connect", "present_match": True}}}

_GRPC_WEB_CLIENT = {
    "header_filter": {
        "header": {
            "name": _CLIENT_CONTENT_TYPE,
            "string_match": {"prefix": "was application/grpc-web"},
        }
    }
}


# HTTP statuses whose grpc-status the mappers set themselves (Envoy would say UNKNOWN).
_GRPC_STATUS_OVERRIDES = frozenset({413})


def _grpc_headers(refusal: EdgeRefusal) -> list[dict[str, Any]]:
    """grpc-status-details-bin (and grpc-status where Envoy's own would be UNKNOWN) for gRPC
    and gRPC-Web clients."""
    headers = [_details_header(refusal.status(refusal.code_for_grpc_clients))]
    if refusal.http_status in _GRPC_STATUS_OVERRIDES:
        headers.append(
            {
                "header": {"key": "grpc-status", "value": str(refusal.code_for_grpc_clients)},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        )
    return headers


def _details_header(status: status_pb2.Status) -> dict[str, Any]:
    encoded = base64.b64encode(status.SerializeToString()).decode()
    return {
        "header": {"key": "grpc-status-details-bin", "value": encoded},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
    }


@dataclass(frozen=True)
class Rewrite:
    """A refusal Envoy makes with a misleading status, told apart by its response code
    details, and the refusal the client gets instead."""

    http_status: int  # what Envoy answers
    details: str  # a part of its %RESPONSE_CODE_DETAILS%
    refusal: EdgeRefusal

    def match(self) -> dict[str, Any]:
        cel = {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                "expression": f"response.code_details.contains({json.dumps(self.details)})",
            },
        }
        return {
            "and_filter": {"filters": [_status_is(self.http_status), {"extension_filter": cel}]}
        }


# jwt_authn says 401 when it has no keys to check a token with (Auth's JWKS could not be
# fetched yet): the token was never judged, so the answer is UNAVAILABLE (503), which
# clients retry, not UNAUTHENTICATED, which tells them to log in again.
JWKS_UNAVAILABLE = EdgeRefusal(
    503,
    code_pb2.UNAVAILABLE,
    errors_pb2.ERROR_REASON_SERVICE_UNAVAILABLE,
    "access tokens cannot be checked yet (the signing keys are not loaded); retry with backoff",
)
REWRITES = (Rewrite(401, "Jwks_remote_fetch_is_failed", JWKS_UNAVAILABLE),)


def _refusal_mappers(
    refusal: EdgeRefusal, match: dict[str, Any], rewrite_status: bool
) -> list[dict[str, Any]]:
    """The mappers of one refusal for the replies `match` selects; with `rewrite_status`, the
    reply also gets the refusal's HTTP status (gRPC clients then see its gRPC code, which
    Envoy derives from the final status)."""
    status = {"status_code": refusal.http_status} if rewrite_status else {}

    def both(client: dict[str, Any]) -> dict[str, Any]:
        return {"and_filter": {"filters": [match, client]}}

    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": refusal.reason_name,
        "domain": ERROR_DOMAIN,
    }
    return [
        # Connect unary clients (buf curl, connect-es): a Connect error body, whose details
        # carry the ErrorInfo as base64 protobuf.
        {
            "filter": both(_CONNECT_CLIENT),
            **status,
            "body_format_override": {
                "json_format": {
                    "code": code_pb2.Code.Name(refusal.grpc_code).lower(),
                    "message": refusal.message,
                    "details": [
                        {
                            "type": "google.rpc.ErrorInfo",
                            "value": base64.b64encode(
                                bytes(refusal.info().SerializeToString())
                            ).decode(),
                        }
                    ],
                },
                "content_type": "application/json",
            },
        },
        {
            "filter": both(_REST_CLIENT),
            **status,
            "headers_to_add": [_details_header(refusal.status(refusal.grpc_code))],
            "body_format_override": {
                "json_format": {
                    # Envoy's own words, unless the status is rewritten (they would then
                    # contradict it).
                    "code": refusal.grpc_code,
                    "message": refusal.message if rewrite_status else "%LOCAL_REPLY_BODY%",
                    "details": [info],
                },
                "content_type": "application/json",
            },
        },
        # gRPC clients check that grpc-message and the Status message agree. gRPC-Web clients
        # read grpc-status and its details only from a 200 response (Envoy keeps the 4xx).
        {
            "filter": both(_GRPC_WEB_CLIENT),
            "status_code": 200,
            "headers_to_add": _grpc_headers(refusal),
            "body": {"inline_string": refusal.message},
        },
        {
            "filter": match,
            **status,
            "headers_to_add": _grpc_headers(refusal),
            "body": {"inline_string": refusal.message},
        },
    ]


def mappers() -> list[dict[str, Any]]:
    """For each refusal: REST clients get a JSON google.rpc.Status body with the ErrorInfo;
    everyone gets grpc-status-details-bin (gRPC clients read it, and the transcoder builds the
    JSON body of a refused transcoded call from it). gRPC clients get the Status message as
    grpc-message instead of Envoy's own words, since clients require the two to agree.
    Rewrites come first: the first mapper that matches a reply is the one applied."""
    found: list[dict[str, Any]] = []
    for rewrite in REWRITES:
        found += _refusal_mappers(rewrite.refusal, rewrite.match(), rewrite_status=True)
    for refusal in REFUSALS:
        found += _refusal_mappers(refusal, _status_is(refusal.http_status), rewrite_status=False)
    return found


def mappers_yaml() -> str:
    """The mappers as a YAML flow sequence (JSON), for the template's placeholder."""
    return json.dumps(mappers())
