"""The processes under test: the floor server, the billing service, its database."""

import asyncio
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import grpc
from floor_server import PATH as FLOOR_PATH
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

BENCH_DIR = Path(__file__).resolve().parent
FLOOR_SERVER = BENCH_DIR / "floor_server.py"
# The service under test: the console script installed beside this interpreter
# (run the bench with .venv/bin/python), or BENCH_BILLING_CLI, e.g. a wrapper
# that runs another checkout, to compare two revisions.
BILLING_CLI = os.environ.get(
    "BENCH_BILLING_CLI", str(Path(sys.executable).parent / "billing-service")
)
# Where PostgreSQL databases are created (and dropped); override with BENCH_POSTGRES_URL.
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
START_TIMEOUT_S = 60.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerExited(RuntimeError):
    """A server under test is gone: something outside the bench stopped it, or it crashed."""


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the service may run worker processes)."""
    tree, index = [pid], 0
    while index < len(tree):
        for children in Path(f"/proc/{tree[index]}/task").glob("*/children"):
            try:
                tree.extend(int(child) for child in children.read_text().split())
            except OSError:  # the task ended meanwhile
                continue
        index += 1
    return tree


# States in /proc/net/tcp (include/net/tcp_states.h).
_TCP_ESTABLISHED = "01"
_TCP_LISTEN = "0A"


def _proc_file(pid: int | str, name: str) -> str:
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except OSError:  # the process ended meanwhile
        return ""


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def rss_mib(self) -> float:
        """Resident memory of the process and its children, added up."""
        total_kib = 0
        for pid in _process_tree(self.process.pid):
            match = re.search(r"^VmRSS:\s+(\d+) kB", _proc_file(pid, "status"), re.M)
            total_kib += int(match.group(1)) if match else 0
        return total_kib / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time the process and its live children have used so far."""
        ticks = 0
        for pid in _process_tree(self.process.pid):
            stat = _proc_file(pid, "stat")
            if stat:
                # Fields after the parenthesised command name; utime and stime are 14 and 15.
                fields = stat.rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
        return ticks / _CLOCK_TICKS

    def connections(self) -> frozenset[str]:
        """The sockets (inode numbers) of the clients' TCP connections to the port."""
        return self._sockets()[1]

    def connections_by_process(self, ignore: frozenset[str] = frozenset()) -> tuple[int, ...]:
        """Clients' TCP connections to the port but `ignore`d ones, per process
        of the tree that listens on it, most first. With several processes on
        one port (SO_REUSEPORT) the kernel hashes each new connection to one of
        them, and with a few connections the spread is often uneven: 3:1 at
        c=16 leaves one process three quarters of the calls."""
        listening, established = self._sockets()
        counts = []
        for pid in _process_tree(self.process.pid):
            held = set()
            with suppress(OSError):  # the process ended meanwhile
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with suppress(OSError):
                        link = os.readlink(fd)
                        if link.startswith("socket:["):
                            held.add(link[8:-1])
            if held & listening:
                counts.append(len((held & established) - ignore))
        return tuple(sorted(counts, reverse=True))

    def _sockets(self) -> tuple[frozenset[str], frozenset[str]]:
        """Inode numbers of the port's listening sockets and of its connections."""
        listening: set[str] = set()
        established: set[str] = set()
        for table in ("tcp", "tcp6"):
            for line in _proc_file("net", table).splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) != self.port:
                    continue
                state, inode = fields[3], fields[9]
                if state == _TCP_LISTEN:
                    listening.add(inode)
                elif state == _TCP_ESTABLISHED:
                    established.add(inode)
        return frozenset(listening), frozenset(established)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise ServerExited(
                f"{self.name} exited with {self.process.returncode} (log: {self.log})\n"
                "its log ends with:\n" + self.log.read_text()[-3000:]
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _spawn(
    name: str, command: list[str], env: dict[str, str], log: Path, port: int
) -> ServerProcess:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    return ServerProcess(name, process, port, log)


def _wait_until_serving(
    server: ServerProcess, probe_path: str, timeout_s: float = START_TIMEOUT_S
) -> None:
    """Poll until a unary call on `probe_path` (raw bytes in and out) succeeds."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(server.address) as channel:
        call = channel.unary_unary(probe_path)
        while True:
            server.check_alive()
            try:
                call(probe_request(probe_path), timeout=2)
                return
            except grpc.RpcError as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server.name} did not start; see {server.log}") from error
                time.sleep(0.2)


_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def probe_request(path: str) -> bytes:
    if path == _HEALTH_CHECK:
        request: bytes = health_pb2.HealthCheckRequest().SerializeToString()
        return request
    return b""


def start_floor(
    log_dir: Path,
    grpc_experiments: str | None = None,
    postgres: tuple[str, str] | None = None,
    launcher: Sequence[str] = (),
) -> ServerProcess:
    """The floor server on gRPC core's defaults, or with GRPC_EXPERIMENTS as given:
    the service's own settings (grpc_core.py). With `postgres` (a database URL,
    and `read` or `commit`), a database floor: each call awaits that
    statement first (floor_server.py). `launcher`: a command that runs the
    server's (valgrind, say: it then gets longer to start)."""
    env = dict(os.environ)
    env.pop("GRPC_EXPERIMENTS", None)
    name, log = "floor server", log_dir / "floor-server.log"
    if grpc_experiments is not None:
        env["GRPC_EXPERIMENTS"] = grpc_experiments
        name, log = "floor server (the service's settings)", log_dir / "floor-server-2.log"
    if postgres is not None:
        env["BENCH_FLOOR_POSTGRES_URL"], env["BENCH_FLOOR_STATEMENT"] = postgres
        name = f"{name}, + a PostgreSQL {postgres[1]}"
        log = log_dir / f"floor-server-postgres-{postgres[1]}.log"
    port = free_port()
    command = [*launcher, sys.executable, str(FLOOR_SERVER), f"127.0.0.1:{port}"]
    server = _spawn(name, command, env, log, port)
    _wait_until_serving(server, FLOOR_PATH, _start_timeout(launcher))
    return server


def service_grpc_experiments() -> str:
    """GRPC_EXPERIMENTS as the service under test will run with it."""
    from billing_service.grpc_core import GRPC_EXPERIMENTS

    return os.environ.get("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS)


def billing_env(database_url: str, port: int = 0) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BILLING_DATABASE_URL=database_url,
        BILLING_GRPC_ADDR=f"127.0.0.1:{port}",
        BILLING_HTTP_ADDR="",  # no REST gateway: only gRPC is measured
    )
    return env


def billing_cli(database_url: str, *args: str) -> str:
    """Run `billing-service ARGS` on the database; return its stdout."""
    done = subprocess.run(
        [BILLING_CLI, *args], env=billing_env(database_url), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"billing-service {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def start_billing(database_url: str, log: Path, launcher: Sequence[str] = ()) -> ServerProcess:
    """`billing-service serve` on the database; `launcher` as for start_floor."""
    port = free_port()
    server = _spawn(
        "billing service",
        [*launcher, BILLING_CLI, "serve"],
        billing_env(database_url, port),
        log,
        port,
    )
    _wait_until_serving(server, _HEALTH_CHECK, _start_timeout(launcher))
    with grpc.insecure_channel(server.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError(f"billing service is not SERVING: {reply}")
    return server


def _start_timeout(launcher: Sequence[str]) -> float:
    # Under valgrind (bench/instructions.py) a start takes ten times as long, or more.
    return START_TIMEOUT_S * (10 if launcher else 1)


def postgres_available() -> bool:
    async def probe() -> None:
        engine = create_async_engine(POSTGRES_ADMIN_URL)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(probe())
    except Exception:
        return False
    return True


def _admin(statement: str) -> None:
    async def run() -> None:
        engine = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped on exit; yields its URL."""
    name = f"billing_bench_{secrets.token_hex(4)}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    """A fresh SQLite file in `directory`, removed with its WAL on exit; yields its URL."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"billing-bench-{secrets.token_hex(4)}.db"
    try:
        yield f"sqlite+aiosqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def database(backend: str, scratch: Path) -> Iterator[str]:
    """A fresh database of `backend` ("sqlite", "postgres", or "pgbouncer":
    PostgreSQL behind PgBouncer in transaction mode), migrated."""
    if backend == "pgbouncer":
        with postgres_database() as url, pooled(url) as pooled_url:
            billing_cli(pooled_url, "migrate")
            yield pooled_url
        return
    fresh = sqlite_database(scratch) if backend == "sqlite" else postgres_database()
    with fresh as url:
        billing_cli(url, "migrate")
        yield url


@contextmanager
def pooled(url: str) -> Iterator[str]:
    """`url` through a PgBouncer in transaction mode started for it (the
    suite's, tests/pgbouncer.py), with the service told so."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pgbouncer import running_pgbouncer

    parsed = make_url(url)
    server = (parsed.host or "127.0.0.1", parsed.port or 5432, parsed.username or "postgres")
    with running_pgbouncer(*server) as port:
        through = parsed.set(port=port).update_query_dict({"statement_cache_size": "0"})
        yield through.render_as_string(hide_password=False)
