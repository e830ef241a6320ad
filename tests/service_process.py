"""Run `billing-service serve` as a real process, for tests that need more
than the in-process server (several replicas, signals, real clients)."""

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    process: asyncio.subprocess.Process
    grpc_port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


async def wait_until_serving(target: str, within_seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_seconds
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"billing-service at {target} did not start")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running_service(
    database_url: str, extra_env: dict[str, str] | None = None
) -> AsyncIterator[ServiceProcess]:
    port = free_port()
    env = {
        **os.environ,
        "BILLING_DATABASE_URL": database_url,
        "BILLING_GRPC_ADDR": f"127.0.0.1:{port}",
        "BILLING_HTTP_ADDR": "",
        "BILLING_MIGRATE_ON_START": "false",
        "BILLING_AUTH_CACHE_SECONDS": "0",
        **(extra_env or {}),
    }
    process = await asyncio.create_subprocess_exec(
        str(BIN / "billing-service"),
        "serve",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    service = ServiceProcess(process, port)
    try:
        await wait_until_serving(service.target)
        yield service
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
