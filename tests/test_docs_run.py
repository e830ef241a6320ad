"""Docs that are run: every shell block of README.md and docs/*.md that calls
the service (tests/docs_blocks.py) runs, as written, against a served
instance, so that a command that stops working fails the suite.

A file's blocks run in order in one bash with `set -euo pipefail`, curl
failing on an HTTP error (--fail-with-body), in a directory of their own
that has the repository's examples/. Only what ties the text to a reader's
machine is adapted: `localhost:8080` and `localhost:50051` become the served
instance's ports, `.venv/bin/` the running interpreter's, and `make serve`
(the suite serves the instance) is left out. Stripe is the project's fake
(tests/fake_stripe.py), its keys in STRIPE_SECRET_KEY and
STRIPE_WEBHOOK_SECRET and a price of its own in STRIPE_PRICE, where the guides
read them.
"""

import asyncio
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from .cli_subprocess import READY_TIMEOUT_SECONDS, free_port, serve, service_env
from .docs_blocks import Block, markdown_files, service_blocks
from .fake_stripe import SECRET_KEY, WEBHOOK_SECRET, running_fake

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Generous: a guide makes dozens of calls, each a process, on a loaded machine.
RUN_TIMEOUT_SECONDS = 900.0
DOCS_PRICE = "price_docs_pro"
PRELUDE = """set -euo pipefail
curl() { command curl --fail-with-body --show-error "$@"; }
"""

RUN = [path for path in markdown_files(ROOT) if service_blocks(path)]


def script(blocks: list[Block], http_port: int, grpc_port: int) -> str:
    parts = [PRELUDE]
    for block in blocks:
        text = re.sub(r"^make serve\b.*$", "", block.text, flags=re.MULTILINE)
        text = text.replace("localhost:8080", f"127.0.0.1:{http_port}")
        text = text.replace("localhost:50051", f"127.0.0.1:{grpc_port}")
        text = text.replace(".venv/bin/", f"{BIN}/")
        parts.append(f"echo '### {block}' >&2\n{text}\n")
    return "\n".join(parts)


async def _gateway_answers(port: int, log: Callable[[], str]) -> None:
    """Wait for the gateway, which may come up after the gRPC server's health says SERVING."""
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_SECONDS
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/openapi.json")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert asyncio.get_running_loop().time() < deadline, f"no gateway:\n{log()}"
            await asyncio.sleep(0.2)


def test_the_extractor_finds_blocks_and_honours_the_marker(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```sh\ncurl -s localhost:8080/v1/plans\n```\n"
        "<!-- not run -->\n```bash\nbilling-service serve\n```\n"
        "```sh\nmake test\n```\n"
        '```json\n{"curl": 1}\n```\n'
    )
    assert [(block.line, block.text) for block in service_blocks(page)] == [
        (1, "curl -s localhost:8080/v1/plans")
    ]
    guides = {ROOT / "docs" / name for name in ("end-users.md", "stripe.md", "alerts.md")}
    assert {ROOT / "README.md", *guides} <= set(RUN)


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    log: str

    def __str__(self) -> str:
        return (
            f"a block failed (the last '###' names it)\nstdout:\n{self.stdout[-4000:]}\n"
            f"stderr:\n{self.stderr[-4000:]}\nserver's log:\n{self.log[-4000:]}"
        )


async def run_blocks(blocks: list[Block], database_url: str, tmp_path: Path) -> Run:
    """The blocks in one bash against a served instance of their own."""
    http_port = free_port()
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    with running_fake() as fake:
        fake.put({"id": DOCS_PRICE, "object": "price", "currency": "usd", "unit_amount": 2000})
        env = service_env(
            database_url,
            secrets_key=Fernet.generate_key().decode(),
            stripe_api_base=fake.base_url,
            alert_webhook_allow_networks="127.0.0.0/8",
            auth_cache_seconds="0",
        )
        async with serve(env, tmp_path, http_port=http_port) as served:
            await _gateway_answers(http_port, served.log)
            shell_env = {
                **env,
                "BILLING_GRPC_ADDR": served.target,
                "PATH": f"{BIN}:{env.get('PATH', '')}",
                "STRIPE_SECRET_KEY": SECRET_KEY,
                "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "STRIPE_PRICE": DOCS_PRICE,
            }
            process = await asyncio.create_subprocess_exec(
                "bash",
                "-c",
                script(blocks, http_port, served.port),
                cwd=tmp_path,
                env=shell_env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_SECONDS)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            assert process.returncode is not None
            return Run(process.returncode, out.decode(), err.decode(), served.log())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the commands, not storage
@pytest.mark.parametrize("path", RUN, ids=[str(path.relative_to(ROOT)) for path in RUN])
async def test_the_shell_blocks_run(path: Path, database_url: str, tmp_path: Path) -> None:
    run = await run_blocks(service_blocks(path), database_url, tmp_path)
    assert run.returncode == 0, f"{path.name}: {run}"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_command_that_stops_working_fails_the_run(
    database_url: str, tmp_path: Path
) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```sh\ncurl -s localhost:8080/openapi.json > /dev/null\n```\n"
        "```sh\ncurl -s localhost:8080/v1/plans   # no key: 401\necho after\n```\n"
    )
    run = await run_blocks(service_blocks(page), database_url, tmp_path)
    assert run.returncode != 0
    assert "### page.md:4" in run.stderr and "unauthenticated" in run.stdout
    assert "after" not in run.stdout
