"""The bootstrap operator and key: `billing-service serve` processes on both
backends, started together on one key file, make one operator and one key,
and never log its secret."""

import asyncio
import contextlib
import re
import stat
from pathlib import Path

import grpc
import pytest
from billing.v1 import plan_pb2, plan_pb2_grpc

from billing_service.app import open_app
from billing_service.config import Settings
from billing_service.startup import CannotOpen

from .cli_subprocess import ServeProcess, run_cli, serve, service_env

pytestmark = pytest.mark.slow

KEY_RE = re.compile(r"bsk_[A-Za-z0-9_-]{32,200}")


async def operators_and_keys(database_url: str) -> tuple[list[str], list[str]]:
    app = await open_app(Settings(database_url=database_url, http_addr=""))
    try:
        names = [o.name for o in await app.store.list_operators()]
        keys = []
        for name in names:
            operator = await app.store.get_operator(name)
            keys += [k.id for k in await app.store.list_api_keys(operator.id)]
        return names, keys
    finally:
        await app.close()


async def list_plans(replica: ServeProcess, secret: str) -> None:
    async with grpc.aio.insecure_channel(replica.target) as channel:
        try:
            await plan_pb2_grpc.PlanServiceStub(channel).ListPlans(
                plan_pb2.ListPlansRequest(), metadata=[("authorization", f"Bearer {secret}")]
            )
        except grpc.aio.AioRpcError as error:
            raise AssertionError(f"{error.code()}: {error.details()}\n{replica.log()}") from None


async def test_two_replicas_starting_together_make_one_operator_and_one_key(
    database_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "secret" / "key"
    key_file.parent.mkdir()
    env = service_env(
        database_url,
        bootstrap_operator="acme",
        bootstrap_key_file=str(key_file),
        background_jobs="off",
    )
    async with contextlib.AsyncExitStack() as stack:
        first, second = await asyncio.gather(
            stack.enter_async_context(serve(env, tmp_path)),
            stack.enter_async_context(serve(env, tmp_path)),
        )
        secret = key_file.read_text().strip()
        assert KEY_RE.fullmatch(secret), "the file holds a key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        for replica in (first, second):
            await list_plans(replica, secret)
            assert secret not in replica.log()
            assert "bootstrap: operator 'acme'" in replica.log()
    # A restart finds both and makes nothing.
    async with serve(env, tmp_path) as again:
        await list_plans(again, secret)
        assert "already there" in again.log()

    names, keys = await operators_and_keys(database_url)
    assert names == ["acme"] and len(keys) == 1


async def test_a_mounted_secret_is_the_key_and_is_never_rewritten(
    database_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    secret = "bsk_" + "k" * 40
    key_file.write_text(secret + "\n")
    key_file.chmod(0o400)  # a Kubernetes Secret is mounted read-only
    env = service_env(
        database_url,
        bootstrap_operator="acme",
        bootstrap_key_file=str(key_file),
        background_jobs="off",
    )
    async with serve(env, tmp_path) as replica:
        await list_plans(replica, secret)
        assert secret not in replica.log()
    assert key_file.read_text() == secret + "\n"


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"bootstrap_operator": "acme"}, "BILLING_BOOTSTRAP_KEY_FILE"),
        ({"bootstrap_key_file": "/tmp/x"}, "BILLING_BOOTSTRAP_OPERATOR"),
        ({"bootstrap_operator": "acme", "bootstrap_key_file": "BAD"}, "does not hold a key"),
    ],
)
async def test_a_half_or_bad_bootstrap_stops_the_start_in_one_line(
    database_url: str, tmp_path: Path, settings: dict[str, str], says: str
) -> None:
    if settings.get("bootstrap_key_file") == "BAD":
        bad = tmp_path / "bad"
        bad.write_text("not a key")
        settings = {**settings, "bootstrap_key_file": str(bad)}
    env = service_env(database_url, grpc_addr="127.0.0.1:0", http_addr="", **settings)
    result = await run_cli(env, "serve")
    assert result.returncode == 1, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0], result.stderr
    assert "not a key" not in result.stderr  # the file's content is never shown
    assert CannotOpen.__name__ not in result.stderr
