"""Is a port free, is something listening, does a Kafka broker or PostgreSQL answer, is a gRPC
service SERVING, does a URL answer 200: the checks that start-up code (embedded infrastructure,
`exness up`, the CLI) and the tests share."""

from __future__ import annotations

import http.client
import socket
import struct
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def port_is_free(host: str, port: int) -> bool:
    """True when a server could bind `host:port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def is_listening(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on `host:port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout_s)
        return probe.connect_ex((host, port)) == 0


def kafka_answers(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """True when a Kafka-protocol broker answers an ApiVersions request in time. Accepting the
    connection is not enough: the kernel accepts for a process that is frozen."""
    client_id = b"exness-probe"
    header = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id  # ApiVersions v0
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.settimeout(timeout_s)
            conn.sendall(struct.pack(">i", len(header)) + header)
            size = struct.unpack(">i", _read_exactly(conn, 4))[0]
            reply = _read_exactly(conn, size)
    except (OSError, struct.error):
        return False
    return bool(struct.unpack(">i", reply[:4])[0] == 7)  # our correlation id


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def postgres_answers(url: str, timeout_s: int = 2) -> bool:
    """True when PostgreSQL at `url` accepts a session and answers a query in time."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=timeout_s, autocommit=True) as conn:
            conn.execute(f"SET statement_timeout = {timeout_s * 1000}")
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def grpc_serving(address: str, service: str, timeout_s: float = 1.0) -> bool:
    """True when `address` answers grpc.health.v1 Check(service) with SERVING."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """True when GET `url` answers 200 (e.g. the edge's /healthz)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        # Refused, timed out, non-2xx (HTTPError) or a half-started server's broken reply.
        return False
