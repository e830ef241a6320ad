"""examples/node: the Node client (@grpc/grpc-js + @grpc/proto-loader from
npm) against a live server: plan, subscription, consumption until
RESOURCE_EXHAUSTED with the ErrorInfo read from the status details. Skipped
where node is absent; under CI=true that fails instead."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from billing_service.api.server import RunningServer
from billing_service.app import App
from tests.conftest import create_operator_key

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "node"
BUILD = ROOT / "build" / "node-example"
IN_CI = os.environ.get("CI", "").lower() == "true"
FILES = ("package.json", "package-lock.json", "client.js")


def _installed() -> Path:
    """The example in build/, its node_modules installed with `npm ci` when
    its lock file changed (npm's registry is the network it needs)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        message = "node and npm are needed for the Node client example"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    BUILD.mkdir(parents=True, exist_ok=True)
    lock = (EXAMPLE / "package-lock.json").read_bytes()
    stale = not (BUILD / "node_modules").exists() or (
        (BUILD / "package-lock.json").read_bytes() != lock
        if (BUILD / "package-lock.json").exists()
        else True
    )
    for name in FILES:
        shutil.copy2(EXAMPLE / name, BUILD / name)
    if stale:
        subprocess.run(
            [npm, "ci", "--silent", "--no-audit", "--no-fund"],
            cwd=BUILD,
            check=True,
            timeout=300,
        )
    return BUILD


def _third_party_protos() -> Path:
    """google/api and google/rpc's protos, as `make protos-deps` copies them."""
    third_party = ROOT / "build" / "third_party" / "protos"
    if not third_party.exists():
        subprocess.run(
            [sys.executable, "scripts/copy_third_party_protos.py", str(third_party)],
            cwd=ROOT,
            check=True,
        )
    return third_party


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # a client, not storage
async def test_the_node_client_consumes_until_resource_exhausted(
    app: App, server: RunningServer
) -> None:
    directory = await asyncio.to_thread(_installed)
    third_party = await asyncio.to_thread(_third_party_protos)
    key = await create_operator_key(app, "acme")
    env = {
        **os.environ,
        "BILLING_TARGET": f"127.0.0.1:{server.port}",
        "BILLING_API_KEY": key,
        "BILLING_PROTO_PATH": f"{ROOT / 'protos'}:{third_party}",
    }
    process = await asyncio.create_subprocess_exec(
        "node",
        "client.js",
        cwd=directory,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, stderr.decode()
    steps = [json.loads(line) for line in stdout.decode().splitlines()]
    assert [s["step"] for s in steps] == [
        "plan",
        "subscription",
        "consume",
        "consume",
        "consume",
        "exhausted",
    ]
    assert [s["used"] for s in steps if s["step"] == "consume"] == ["1", "2", "3"]
    exhausted = steps[-1]
    assert exhausted["code"] == "RESOURCE_EXHAUSTED"
    assert exhausted["message"] == "Plan quota exceeded for 'seo' (3/3 this period)"
    assert exhausted["reason"] == "RATE_LIMITED"
    assert exhausted["metadata"]["primitive"] == "seo"
    assert (exhausted["metadata"]["used"], exhausted["metadata"]["limit"]) == ("3", "3")
