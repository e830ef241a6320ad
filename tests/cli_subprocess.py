"""The `billing-service` command as real subprocesses, for the CLI and server
tests: one-shot CLI runs with their output, and `billing-service serve` on a
free loopback port with its log kept, ready once its health service answers
SERVING, failing fast if it exits, and always killed when the test ends."""

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# The console script installed beside the interpreter running the tests.
BILLING_SERVICE = str(Path(sys.executable).parent / "billing-service")
# Generous: on a loaded machine (CI shares its two cores) a start or a CLI
# run takes many times what it takes on an idle one.
READY_TIMEOUT_SECONDS = 180.0
CLI_TIMEOUT_SECONDS = 180.0


# Ports handed to servers that bind them later come from below the kernel's
# ephemeral range (32768 and up on Linux), where no outgoing connection and no
# bind to port 0 lands, and from a slice of their own per xdist worker: a port
# found free stays free until its server binds it.
_PORTS_BELOW = 32768
_PORTS_PER_WORKER = 1500
_PORTS_START = 20000


def _worker_ports() -> Iterator[int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    start = _PORTS_START + (int(worker) if worker.isdigit() else 0) * _PORTS_PER_WORKER
    start = min(start, _PORTS_BELOW - _PORTS_PER_WORKER)
    return itertools.cycle(range(start, start + _PORTS_PER_WORKER))


_ports = _worker_ports()


def free_port() -> int:
    """A loopback port nothing listens on, for a server started next."""
    for _ in range(_PORTS_PER_WORKER):
        port = next(_ports)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port in this worker's range")


def service_env(database_url: str, **settings: str) -> dict[str, str]:
    """The test's environment without any BILLING_* of its own, plus the
    database and `settings` (given as lower-case names: grpc_addr=...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env["BILLING_DATABASE_URL"] = database_url
    env["PYTHONUNBUFFERED"] = "1"
    env.update({f"BILLING_{name.upper()}": value for name, value in settings.items()})
    return env


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        lines = self.stdout.splitlines()
        return lines[-1] if lines else ""


async def run_cli(env: Mapping[str, str], *args: str, cwd: Path | None = None) -> CliResult:
    process = await asyncio.create_subprocess_exec(
        BILLING_SERVICE,
        *args,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return CliResult(process.returncode, stdout.decode(), stderr.decode())


async def run_cli_ok(env: Mapping[str, str], *args: str, cwd: Path | None = None) -> CliResult:
    result = await run_cli(env, *args, cwd=cwd)
    assert result.returncode == 0, f"billing-service {' '.join(args)}: {result}"
    return result


@dataclass
class ServeProcess:
    process: asyncio.subprocess.Process
    port: int
    log_path: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send_sigterm(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    async def wait_exit(self, within_seconds: float) -> int:
        return await asyncio.wait_for(self.process.wait(), within_seconds)


async def health_status(target: str, service: str = "", rpc_seconds: float = 2.0) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=rpc_seconds
        )
        status: int = response.status
        return status


async def _wait_until_serving(serving: ServeProcess) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_SECONDS
    while True:
        if serving.process.returncode is not None:
            raise RuntimeError(
                f"billing-service serve exited with {serving.process.returncode}:\n{serving.log()}"
            )
        try:
            if await health_status(serving.target, rpc_seconds=1.0) == (
                health_pb2.HealthCheckResponse.SERVING
            ):
                return
        except grpc.aio.AioRpcError:
            pass
        if loop.time() > deadline:
            raise TimeoutError(f"billing-service serve never became ready:\n{serving.log()}")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def serve(
    env: Mapping[str, str], log_dir: Path, http_port: int | None = None
) -> AsyncIterator[ServeProcess]:
    """`billing-service serve` on a free port of 127.0.0.1, with the REST
    gateway on `http_port` if given; yields once it answers health checks
    with SERVING."""
    port = free_port()
    http_addr = f"127.0.0.1:{http_port}" if http_port else ""
    log_path = log_dir / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            BILLING_SERVICE,
            "serve",
            env={**env, "BILLING_GRPC_ADDR": f"127.0.0.1:{port}", "BILLING_HTTP_ADDR": http_addr},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            # Its own process group: the workers `serve` spawns go with it.
            start_new_session=True,
        )
    serving = ServeProcess(process, port, log_path)
    try:
        await _wait_until_serving(serving)
        yield serving
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
