"""The gateway as the commands start it: beside the gRPC server in
`billing-service serve`, and alone in `billing-service gateway`, pointed at a
gRPC server elsewhere as a sidecar would be."""

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from billing_service.api.server import RunningServer
from billing_service.app import App

from .conftest import create_operator_key

pytestmark = pytest.mark.slow

BILLING_SERVICE = str(Path(sys.executable).parent / "billing-service")
SERVING = re.compile(rb"REST gateway serving (http://\S+), calling gRPC at (\S+)")


@pytest.fixture
def backend() -> str:
    return "sqlite"


@asynccontextmanager
async def running(args: list[str], env: dict[str, str]) -> AsyncIterator[tuple[str, str]]:
    """Run the command (its gateway on port 0) until it logs where its gateway
    serves; yield (gateway URL, gRPC target it calls); then SIGTERM it and
    expect a clean exit."""
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    process = await asyncio.create_subprocess_exec(
        BILLING_SERVICE,
        *args,
        env={**clean_env, "BILLING_HTTP_ADDR": "127.0.0.1:0", **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log = b""
    drain = None
    try:
        async with asyncio.timeout(180):
            while (serving := SERVING.search(log)) is None:
                line = await process.stderr.readline()
                assert line, f"{args} exited: {log.decode()}"
                log += line
        # Keep reading the log (access lines) so that the process never blocks on it.
        drain = asyncio.create_task(process.stderr.read())
        yield serving.group(1).decode(), serving.group(2).decode()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if drain is not None:
            await drain


async def test_serve_starts_the_gateway_beside_the_grpc_server(app: App) -> None:
    key = await create_operator_key(app, "acme")
    env = {"BILLING_DATABASE_URL": app.settings.database_url, "BILLING_GRPC_ADDR": "127.0.0.1:0"}
    async with (
        running(["serve"], env) as (url, _),
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http,
    ):
        created = await http.post("/v1/plans", json={"key": "pro", "name": "Pro"})
        assert created.status_code == 200, created.text
        listed = await http.get("/v1/plans")
        assert [plan["key"] for plan in listed.json()["plans"]] == ["pro"]
        assert (await http.get("/v1/plans", headers={"Authorization": ""})).status_code == 401


@pytest.mark.parametrize("given_by", ["flag", "environment"])
async def test_the_gateway_runs_alone_against_a_grpc_server_elsewhere(
    app: App, server: RunningServer, given_by: str
) -> None:
    key = await create_operator_key(app, "acme")
    target = f"127.0.0.1:{server.port}"
    # The gRPC address `serve` would listen on is not the one to call.
    env = {"BILLING_GRPC_ADDR": "127.0.0.1:1"}
    args = ["gateway"]
    if given_by == "flag":
        args += ["--grpc-target", target]
    else:
        env["BILLING_GATEWAY_GRPC_TARGET"] = target
    async with (
        running(args, env) as (url, called),
        httpx.AsyncClient(base_url=url) as http,
    ):
        assert called == target
        response = await http.get("/v1/plans", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.text
        assert response.json() == {"plans": [], "next_page_token": ""}
