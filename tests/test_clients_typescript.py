"""clients/typescript (@customer-billing/client) against a real server: built
from a copy in build/ as a user builds it (`npm ci`, `npm run build`: the
messages generated from protos/, no Python), then its own `node --test`
suite, a same-key retry through a proxy that loses answers, and the README's
quick start run as written. Skipped where node is absent; under CI=true that
fails instead."""

import asyncio
import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from billing.v1 import usage_pb2

from billing_service.api.server import RunningServer
from billing_service.app import App
from tests.client_packages import CLIENTS, ROOT, code_block, server_services
from tests.conftest import create_operator_key
from tests.lossy_proxy import lossy_proxy

PACKAGE = CLIENTS / "typescript"
BUILD = ROOT / "build" / "typescript-client"  # two levels below the root, as the source
IN_CI = os.environ.get("CI", "").lower() == "true"
SOURCES = ("package.json", "package-lock.json", "tsconfig.json", "buf.gen.yaml")
FOLDERS = ("scripts", "src", "test")
CONSUME = "/billing.v1.UsageService/ConsumeQuota"
ARCHIVE = "/billing.v1.PlanService/ArchivePlan"
LIST_PLANS = "/billing.v1.PlanService/ListPlans"  # never answered: the deadline's test
SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # a client, not storage


def _npm() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        message = "node and npm are needed for the TypeScript client"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return npm


def _digest() -> str:
    """What the build reads: the package's sources and the protos."""
    files = [PACKAGE / name for name in SOURCES]
    for folder in (*(PACKAGE / f for f in FOLDERS), ROOT / "protos"):
        files += sorted(p for p in folder.rglob("*") if p.is_file() and "gen" not in p.parts)
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _built() -> Path:
    """The package copied into build/, `npm ci` when its lock file changed,
    then built; once for every test process (a lock, and a digest of what the
    build read)."""
    npm = _npm()
    BUILD.mkdir(parents=True, exist_ok=True)
    with (BUILD.parent / "typescript-client.lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        digest, stamp = _digest(), BUILD / "built-from"
        built = (BUILD / "dist" / "src" / "index.js").exists()
        if built and stamp.exists() and stamp.read_text() == digest:
            return BUILD
        lock = (PACKAGE / "package-lock.json").read_bytes()
        copied_lock = BUILD / "package-lock.json"
        stale = not (BUILD / "node_modules").exists() or (
            not copied_lock.exists() or copied_lock.read_bytes() != lock
        )
        for name in SOURCES:
            shutil.copy2(PACKAGE / name, BUILD / name)
        for folder in FOLDERS:
            shutil.rmtree(BUILD / folder, ignore_errors=True)
            shutil.copytree(PACKAGE / folder, BUILD / folder, ignore=shutil.ignore_patterns("gen"))
        shutil.rmtree(BUILD / "dist", ignore_errors=True)
        stamp.unlink(missing_ok=True)
        if stale:
            subprocess.run(
                [npm, "ci", "--silent", "--no-audit", "--no-fund"],
                cwd=BUILD,
                check=True,
                timeout=600,
            )
        subprocess.run([npm, "run", "--silent", "build"], cwd=BUILD, check=True, timeout=600)
        stamp.write_text(digest)
    return BUILD


async def _node(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "node",
        *args,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@SQLITE
async def test_the_packages_node_tests_pass_against_a_live_server(
    app: App, server: RunningServer
) -> None:
    directory = await asyncio.to_thread(_built)
    key = await create_operator_key(app, "acme")
    target = f"127.0.0.1:{server.port}"
    async with lossy_proxy(target, {CONSUME: 2, ARCHIVE: 1}, frozenset({LIST_PLANS})) as proxy:
        tests = sorted(
            str(p.relative_to(directory)) for p in (directory / "dist" / "test").glob("*.test.js")
        )
        code, stdout, stderr = await _node(
            ["--test", *tests],
            {
                "BILLING_TARGET": target,
                "BILLING_API_KEY": key,
                "BILLING_LOSSY_TARGET": f"127.0.0.1:{proxy.port}",
                "BILLING_SERVICES": ",".join(s.full_name for s in server_services()),
            },
            directory,
        )
    assert code == 0, stdout + stderr
    assert "# fail 0" in stdout and "# skipped 0" in stdout, stdout
    sent = [usage_pb2.ConsumeQuotaRequest.FromString(raw) for raw in proxy.forwarded[CONSUME]]
    assert len(sent) == 3  # two answers lost, the third delivered
    assert len({request.idempotency_key for request in sent}) == 1 and sent[0].idempotency_key
    assert len(proxy.forwarded[ARCHIVE]) == 1  # a write without a key is not repeated
    assert len(proxy.forwarded[LIST_PLANS]) == 1  # a deadline is not retried


@SQLITE
async def test_the_readme_quick_start_runs_as_written(app: App, server: RunningServer) -> None:
    directory = await asyncio.to_thread(_built)
    quick_start = code_block(PACKAGE / "README.md", "Quick start", "js")
    # Inside the package, its own name resolves to it (package.json "exports").
    (directory / "quickstart.mjs").write_text(quick_start)
    key = await create_operator_key(app, "acme")
    code, stdout, stderr = await _node(
        ["quickstart.mjs"],
        {"BILLING_TARGET": f"127.0.0.1:{server.port}", "BILLING_API_KEY": key},
        directory,
    )
    assert code == 0, stderr
    assert stdout.splitlines() == [
        "consumed, used 1",
        "consumed, used 2",
        "quota exceeded: 2/2 seo until 2026-07-01T00:00:00.000Z",
        "starter 2",
    ]
