"""The `billing-service` command, run as real subprocesses on a SQLite file
(and PostgreSQL for `migrate`), checked against a real server on the same
database."""

import asyncio
import re
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from billing.v1 import plan_pb2

from billing_service.api.server import start_server
from billing_service.app import open_app
from billing_service.config import Settings
from billing_service.storage import migrate

from .cli_subprocess import BILLING_SERVICE, run_cli, run_cli_ok, service_env
from .conftest import Client, make_client
from .rpc_errors import refused

pytestmark = pytest.mark.slow

KEY_RE = re.compile(r"bsk_[A-Za-z0-9_-]{43}")
KEY_ID_RE = re.compile(r"key_[0-9a-f]{16}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def env(sqlite_url: str) -> dict[str, str]:
    """The CLI's environment, on a database `migrate` created (admin commands
    create none)."""
    env = service_env(sqlite_url)
    subprocess.run([BILLING_SERVICE, "migrate"], env=env, check=True, capture_output=True)
    return env


@pytest.fixture
async def channel_on_same_db(sqlite_url: str) -> AsyncIterator[grpc.aio.Channel]:
    """An in-process server on the CLI's database, trusting no cached key."""
    settings = Settings(database_url=sqlite_url, auth_cache_seconds=0, http_addr="")
    app = await open_app(settings)
    running = await start_server(app, "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield channel
    finally:
        await running.server.stop(None)
        await app.close()


async def create_key(env: dict[str, str], operator: str) -> tuple[str, str]:
    """(key id, secret) of a new key minted by `keys create`."""
    result = await run_cli_ok(env, "keys", "create", "--operator", operator)
    secret = result.last_line
    assert KEY_RE.fullmatch(secret), result
    key_ids = KEY_ID_RE.findall(result.stdout)
    assert len(set(key_ids)) == 1, result
    return key_ids[0], secret


async def list_plans(client: Client) -> list[str]:
    response = await client.plans.ListPlans(plan_pb2.ListPlansRequest(), metadata=client.auth)
    return [p.key for p in response.plans]


async def test_help_lists_the_commands(env: dict[str, str]) -> None:
    result = await run_cli_ok(env, "--help")

    for command in ("serve", "migrate", "operators", "keys"):
        assert command in result.stdout


async def test_a_missing_or_unknown_command_is_a_usage_error(env: dict[str, str]) -> None:
    for args in ((), ("frobnicate",), ("keys", "create")):
        result = await run_cli(env, *args)
        assert result.returncode == 2, (args, result)
        assert "usage:" in result.stderr


async def test_operators_create_then_duplicate_fails(env: dict[str, str]) -> None:
    created = await run_cli_ok(env, "operators", "create", "acme")
    assert "acme" in created.stdout

    duplicate = await run_cli(env, "operators", "create", "acme")

    assert duplicate.returncode != 0
    assert "error: operator 'acme' already exists" in duplicate.stderr
    assert "Traceback" not in duplicate.stderr


async def test_operator_names_follow_the_name_rule(env: dict[str, str]) -> None:
    results = await asyncio.gather(
        run_cli(env, "operators", "create", "   "),
        run_cli(env, "operators", "create", "x" * 201),
    )

    for result in results:
        assert result.returncode != 0, result
        assert result.stderr.strip().splitlines()[-1].startswith("error: name: "), result


async def test_a_created_key_works_until_revoked(
    env: dict[str, str], channel_on_same_db: grpc.aio.Channel
) -> None:
    await run_cli_ok(env, "operators", "create", "acme")
    key_id, secret = await create_key(env, "acme")
    client = make_client(channel_on_same_db, secret)
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro"), metadata=client.auth
    )
    assert await list_plans(client) == ["pro"]

    revoked = await run_cli_ok(env, "keys", "revoke", key_id)

    assert key_id in revoked.stdout
    failure = await refused(
        client.plans.ListPlans(plan_pb2.ListPlansRequest(), metadata=client.auth)
    )
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    assert failure.reason == "UNAUTHENTICATED"


async def test_keys_list_shows_ids_and_states_but_never_secrets(env: dict[str, str]) -> None:
    await run_cli_ok(env, "operators", "create", "acme")
    await run_cli_ok(env, "operators", "create", "globex")
    kept_id, kept_secret = await create_key(env, "acme")
    revoked_id, revoked_secret = await create_key(env, "acme")
    await run_cli_ok(env, "keys", "revoke", revoked_id)

    listing = await run_cli_ok(env, "keys", "list", "--operator", "acme")

    lines = listing.stdout.splitlines()
    assert len(lines) == 2, listing
    states = {KEY_ID_RE.findall(line)[0]: line for line in lines}
    assert set(states) == {kept_id, revoked_id}
    assert "active" in states[kept_id]
    assert "revoked" in states[revoked_id]
    for secret in (kept_secret, revoked_secret):
        # Only the short prefix that identifies a key may be shown.
        assert secret not in listing.stdout + listing.stderr
        assert secret[:16] not in listing.stdout + listing.stderr
    # Another operator's keys are not listed.
    assert (await run_cli_ok(env, "keys", "list", "--operator", "globex")).stdout == ""


async def test_key_commands_on_unknown_things_fail_cleanly(env: dict[str, str]) -> None:
    await run_cli_ok(env, "migrate")
    commands: list[tuple[str, ...]] = [
        ("keys", "create", "--operator", "nobody"),
        ("keys", "list", "--operator", "nobody"),
        ("keys", "revoke", "key_0000000000000000"),
    ]
    results = await asyncio.gather(*(run_cli(env, *args) for args in commands))

    for args, result in zip(commands, results, strict=True):
        assert result.returncode != 0, (args, result)
        assert "not found" in result.stderr, (args, result)
        assert "Traceback" not in result.stderr, (args, result)
        assert not KEY_RE.search(result.stdout), (args, result)


async def test_migrate_brings_a_new_database_to_head_twice_harmlessly(
    empty_database_url: str,
) -> None:
    env = service_env(empty_database_url)
    expected = f"database at revision {migrate.head_revision()}"

    first = await run_cli_ok(env, "migrate")
    second = await run_cli_ok(env, "migrate")

    assert first.last_line == expected
    assert second.last_line == expected
    # The migrated database is usable by the admin commands.
    await run_cli_ok(env, "operators", "create", "acme")
    await create_key(env, "acme")


async def test_commands_log_what_migrations_do_not_which_dialect_they_found(
    sqlite_url: str,
) -> None:
    env = service_env(sqlite_url)
    migrated = await run_cli_ok(env, "migrate")
    created = await run_cli_ok(env, "operators", "create", "acme")

    assert "Running upgrade" in migrated.stderr
    for result in (migrated, created):
        assert "Context impl" not in result.stderr, result
        assert "Will assume" not in result.stderr, result
        assert "setup plugin" not in result.stderr, result


async def test_commands_on_a_database_never_migrated_say_to_migrate(
    empty_database_url: str,
) -> None:
    # Migrations are explicit on PostgreSQL, and here on SQLite too.
    env = service_env(empty_database_url, migrate_on_start="false", grpc_addr="127.0.0.1:0")
    commands: list[tuple[str, ...]] = [
        ("operators", "create", "acme"),
        ("keys", "list", "--operator", "acme"),
        ("serve",),  # refuses to start rather than fail every call
    ]
    results = await asyncio.gather(*(run_cli(env, *args) for args in commands))

    for args, result in zip(commands, results, strict=True):
        assert result.returncode == 1, (args, result)
        # On SQLite an admin command finds no file at all; serve creates it empty.
        assert "billing-service migrate" in result.stderr, (args, result)
        assert "Traceback" not in result.stderr, (args, result)
    # Once migrated, the same command works.
    await run_cli_ok(env, "migrate")
    await run_cli_ok(env, "operators", "create", "acme")


async def test_commands_on_an_unreachable_database_fail_cleanly() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # a port that nothing listens on
        port = sock.getsockname()[1]
        env = service_env(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/billing")
        for args in (("migrate",), ("keys", "list", "--operator", "acme")):
            result = await run_cli(env, *args)

            assert result.returncode == 1, (args, result)
            assert "error: cannot open the database:" in result.stderr, (args, result)
            assert "Traceback" not in result.stderr, (args, result)


def test_the_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    documented = set(re.findall(r"^\| `(BILLING_[A-Z0-9_]+)` \|", readme, re.M))
    assert documented == {f"BILLING_{name.upper()}" for name in Settings.model_fields}
