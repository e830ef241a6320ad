"""A first run without surprises (issue 27): an address in use is one line
naming the setting, and exit status 1."""

import socket
from pathlib import Path

import pytest

from .cli_subprocess import free_port, run_cli, service_env


@pytest.mark.parametrize("setting", ["grpc_addr", "http_addr"])
async def test_an_address_in_use_is_one_line_naming_the_setting(
    tmp_path: Path, setting: str
) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        addresses = {
            "grpc_addr": f"127.0.0.1:{free_port()}",
            "http_addr": f"127.0.0.1:{free_port()}",
        }
        addresses[setting] = busy
        env = service_env(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", **addresses)
        result = await run_cli(env, "serve")
    assert result.returncode == 1, result
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        f"error: cannot listen on {busy} (BILLING_{setting.upper()}): Address already in use"
    ]
    assert "Traceback" not in result.stderr and "GRPC_VERBOSITY" not in result.stderr
