"""A real PgBouncer in transaction mode in front of the test PostgreSQL, as
production runs it (Debian's `pgbouncer`, installed by `make test-tools`):
started on a free loopback port once per test process, trusting every user
as PostgreSQL itself does here, with a few server connections for many
clients, so that consecutive transactions of one client land on different
server connections."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from .cli_subprocess import free_port
from .conftest import IN_CI, PG_HOST, PG_PORT, PG_USER

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
# Fewer server connections than the clients the tests run, on purpose.
SERVER_CONNECTIONS = 4
START_TIMEOUT_SECONDS = 60.0


def _config(port: int, users: Path, server_host: str, server_port: int) -> str:
    return f"""[databases]
* = host={server_host} port={server_port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
default_pool_size = {SERVER_CONNECTIONS}
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
"""


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def running_pgbouncer(server_host: str, server_port: int, user: str) -> Iterator[int]:
    """PgBouncer in transaction mode on a free loopback port in front of the
    PostgreSQL at `server_host`:`server_port`, trusting `user`; yields its
    port (the benchmark uses it too)."""
    # A directory PgBouncer can read after it drops root (it refuses to run as root).
    home = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    home.chmod(0o755)
    users = home / "users.txt"
    users.write_text(f'"{user}" ""\n')
    port = free_port()
    (home / "pgbouncer.ini").write_text(_config(port, users, server_host, server_port))
    for path in home.iterdir():
        path.chmod(0o644)
    as_user = ["-u", "postgres"] if os.geteuid() == 0 else []
    log = (home / "pgbouncer.log").open("wb")
    process = subprocess.Popen(
        [PGBOUNCER, *as_user, str(home / "pgbouncer.ini")], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                started = (home / "pgbouncer.log").read_text()
                raise RuntimeError(f"pgbouncer did not start: {started}")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(30)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def pgbouncer(postgres_available: bool) -> Iterator[int]:
    """The port of a PgBouncer (pool_mode=transaction) in front of the test
    PostgreSQL."""
    if not postgres_available or not Path(PGBOUNCER).exists():
        if IN_CI:
            pytest.fail("PgBouncer or PostgreSQL is missing (CI=true): run `make test-tools`")
        pytest.skip("PgBouncer or PostgreSQL is missing: `make test-tools` installs PgBouncer")
    with running_pgbouncer(PG_HOST, PG_PORT, PG_USER) as port:
        yield port


def through(pgbouncer_port: int, database_url: str) -> str:
    """The URL of the same database through PgBouncer."""
    return make_url(database_url).set(port=pgbouncer_port).render_as_string(hide_password=False)
