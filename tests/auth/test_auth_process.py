"""`exness auth` as an operator runs it: reflection and health through a real grpcurl,
a clear message when the port is taken, and a graceful stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auth.helpers import PASSWORD, fresh_email
from tests.support.infra import free_port
from tests.support.processes import grpcurl_binary, start_exness, wait_healthy


@pytest.fixture(scope="module")
def auth_process(
    session_dir: Path, database_url: str
) -> Iterator[tuple[str, subprocess.Popen[bytes], dict[str, str]]]:
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "EXNESS_AUTH_PORT": str(port),
        "EXNESS_AUTH_JWKS_PORT": str(free_port()),
        "EXNESS_DATA_DIR": str(session_dir / "auth-process"),
    }
    log = session_dir / "auth-process.log"
    process = start_exness(["auth"], env, log)
    address = f"127.0.0.1:{port}"
    wait_healthy(address, process, log, "exness.auth.v1.AuthService")
    yield address, process, env
    if process.poll() is None:
        process.kill()
        process.wait()


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(grpcurl_binary()), "-plaintext", *args], capture_output=True, text=True, timeout=30
    )


def test_grpcurl_lists_auth_health_and_reflection(
    auth_process: tuple[str, subprocess.Popen[bytes], dict[str, str]],
) -> None:
    address, _, _ = auth_process
    listing = grpcurl(address, "list")
    assert listing.returncode == 0, listing.stderr
    services = set(listing.stdout.split())
    assert {"exness.auth.v1.AuthService", "grpc.health.v1.Health"} <= services
    assert any(name.startswith("grpc.reflection.") for name in services)
    methods = grpcurl(address, "list", "exness.auth.v1.AuthService").stdout.split()
    assert {
        f"exness.auth.v1.AuthService.{m}"
        for m in ("Register", "Login", "Refresh", "Logout", "GetMe", "GetJwks")
    } <= set(methods)
    health = grpcurl(
        "-d", '{"service": "exness.auth.v1.AuthService"}', address, "grpc.health.v1.Health/Check"
    )
    assert json.loads(health.stdout) == {"status": "SERVING"}


def test_grpcurl_register_login_get_me(
    auth_process: tuple[str, subprocess.Popen[bytes], dict[str, str]],
) -> None:
    address, _, _ = auth_process
    email = fresh_email("grpcurl")
    body = json.dumps({"email": email, "password": PASSWORD})
    registered = grpcurl("-d", body, address, "exness.auth.v1.AuthService/Register")
    assert registered.returncode == 0, registered.stderr
    # grpcurl 1.8 prints proto field names.
    user_id = json.loads(registered.stdout)["user"]["user_id"]
    login = grpcurl("-d", body, address, "exness.auth.v1.AuthService/Login")
    assert login.returncode == 0, login.stderr
    token = json.loads(login.stdout)["access_token"]
    me = grpcurl(
        "-H", f"authorization: Bearer {token}", address, "exness.auth.v1.AuthService/GetMe"
    )
    assert me.returncode == 0, me.stderr
    user = json.loads(me.stdout)["user"]
    assert (user["user_id"], user["email"]) == (user_id, email)
    bad = grpcurl(
        "-d",
        json.dumps({"email": "nope", "password": PASSWORD}),
        address,
        "exness.auth.v1.AuthService/Register",
    )
    assert bad.returncode != 0
    assert "InvalidArgument" in bad.stderr
    assert "email" in bad.stderr


def test_a_taken_port_is_a_one_line_error(
    auth_process: tuple[str, subprocess.Popen[bytes], dict[str, str]], session_dir: Path
) -> None:
    _, _, env = auth_process
    log = session_dir / "auth-second.log"
    second = start_exness(["auth"], env, log)
    assert second.wait(timeout=30) != 0
    output = log.read_text()
    assert "already taken" in output
    assert "Traceback" not in output


def test_sigterm_stops_gracefully(
    auth_process: tuple[str, subprocess.Popen[bytes], dict[str, str]],
) -> None:
    _, process, _ = auth_process
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def test_missing_database_url_is_a_clear_error(session_dir: Path) -> None:
    log = session_dir / "auth-nodb.log"
    process = start_exness(
        ["auth"],
        {
            "DATABASE_URL": "",
            "EXNESS_AUTH_PORT": str(free_port()),
            "EXNESS_AUTH_JWKS_PORT": str(free_port()),
        },
        log,
    )
    assert process.wait(timeout=30) != 0
    assert "DATABASE_URL" in log.read_text()
    assert "Traceback" not in log.read_text()
