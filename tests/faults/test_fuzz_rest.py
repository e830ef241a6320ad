"""schemathesis over the gateway's /openapi.json, against a live
`billing-service serve` with its REST gateway, with every check: no 5xx, every
request the document allows is accepted and every one it forbids refused,
answers match their schemas, undocumented methods get 405. A few examples an
operation in `make test`; more under `make soak`."""

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ..cli_subprocess import free_port, run_cli_ok, serve, service_env
from .harness import SOAK

EXAMPLES = 200 if SOAK else 8


# A fixed number of examples, not a time budget: on a loaded machine they
# take several times as long as on an idle one.
@pytest.mark.timeout(900)
async def test_schemathesis_finds_no_server_error(database_url: str, tmp_path: Path) -> None:
    env = service_env(database_url)
    await run_cli_ok(env, "migrate")
    await run_cli_ok(env, "operators", "create", "acme")
    key = (await run_cli_ok(env, "keys", "create", "--operator", "acme")).last_line
    http_port = free_port()
    async with serve(env, tmp_path, http_port) as served:
        await _http_ready(http_port)
        command = [
            str(Path(sys.executable).parent / "st"),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"http://127.0.0.1:{http_port}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--no-color",
        ]
        result = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=900
        )
        log = served.log()
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Traceback" not in log, log[-4000:]


async def _http_ready(port: int) -> None:
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        await asyncio.sleep(0.1)
    raise TimeoutError("the gateway never listened")
