"""Every form of PostgreSQL URL users bring, through the real command against
the real PostgreSQL: accepted, or refused in one line naming
BILLING_DATABASE_URL and the rule; a standby refused by `migrate` and the
administration commands; and a read-only answer dropping the connection
that gave it, so that calls find the primary again without a restart."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from billing_service.app import App

from .cli_subprocess import free_port, run_cli, run_cli_ok, service_env
from .conftest import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    Client,
    _create_postgres_database,
    _drop_postgres_database,
    _pg_admin,
)
from .metering.usage_helpers import consume, subscribe, usage_of

pytestmark = pytest.mark.slow

# A password with every character URL syntax gives a meaning to (the test
# server trusts every connection, so any password is let in).
PASSWORD = "p@ss/w:rd#1"
ESCAPED_PASSWORD = "p%40ss%2Fw%3Ard%231"


@pytest.fixture
def backend() -> str:
    return "postgres"


@pytest.fixture
async def database(postgres_available: bool) -> AsyncIterator[str]:
    """The name of a new, empty PostgreSQL database, dropped afterwards."""
    if not postgres_available:
        pytest.skip("PostgreSQL is unreachable")
    name = f"billing_urls_{uuid.uuid4().hex[:12]}"
    await _create_postgres_database(name)
    try:
        yield name
    finally:
        await _drop_postgres_database(name)


async def _migrate_and_write(url: str) -> None:
    env = service_env(url)
    migrated = await run_cli_ok(env, "migrate")
    assert migrated.last_line.startswith("database at revision ")
    await run_cli_ok(env, "operators", "create", "acme")
    listed = await run_cli_ok(env, "operators", "list")
    assert "acme" in listed.stdout
    for output in (migrated.stderr, listed.stderr):
        assert "w:rd" not in output and "%3Ard" not in output


@pytest.mark.parametrize(
    "form",
    [
        "postgresql://{user}@{live}/{db}",
        "postgres://{user}@{live}/{db}",
        "postgresql+asyncpg://{user}@{live}/{db}",
        "postgresql://{user}:" + ESCAPED_PASSWORD + "@{live}/{db}",
        "postgresql://{user}:" + PASSWORD + "@{live}/{db}",
        "postgresql://{user}@{dead},{live}/{db}",
        "postgresql+asyncpg://{user}@{dead},{live}/{db}?target_session_attrs=read-write",
        "postgresql://{user}@/{db}?host={dead}&host={live}",
        "postgresql://{user}@{live}/{db}?sslmode=disable&statement_cache_size=0",
        "postgresql://{user}@{live}/{db}?sslmode=prefer&application_name=billing"
        "&connect_timeout=30&command_timeout=60",
    ],
    ids=[
        "postgresql",
        "postgres",
        "asyncpg",
        "escaped-password",
        "raw-password",
        "comma-hosts",
        "comma-hosts-read-write",
        "host-options",
        "typed-options",
        "more-options",
    ],
)
async def test_every_url_form_migrates_and_writes(database: str, form: str) -> None:
    dead = f"{PG_HOST}:{free_port()}"  # listed first: nothing listens there
    live = f"{PG_HOST}:{PG_PORT}"
    await _migrate_and_write(form.format(user=PG_USER, live=live, dead=dead, db=database))


@pytest.mark.parametrize(
    ("query", "rule"),
    [
        ("statement_cache_size=none", "option statement_cache_size must be an integer ≥ 0"),
        ("sslmode=always", "option sslmode must be one of disable, allow, prefer, require"),
        ("sslrootcert=/nonexistent/root.crt", "option sslrootcert: no file at /nonexistent"),
        ("target_session_attrs=writable", "option target_session_attrs must be one of any"),
        ("pool=5", "unknown option pool; the options are host"),
        ("connect_timeout=-1", "option connect_timeout must be a number of seconds > 0"),
    ],
)
async def test_a_wrong_option_is_refused_in_one_line(query: str, rule: str) -> None:
    url = f"postgresql://{PG_USER}:{ESCAPED_PASSWORD}@{PG_HOST}:{PG_PORT}/x?{query}"
    result = await run_cli(service_env(url), "migrate")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: BILLING_DATABASE_URL: {rule}"), result.stderr
    assert "w:rd" not in result.stderr and "%3Ard" not in result.stderr


async def test_a_wrong_host_list_is_refused_in_one_line() -> None:
    url = f"postgresql://{PG_USER}@h1:5432,h2:port/x"
    result = await run_cli(service_env(url), "migrate")
    assert result.returncode == 2
    assert result.stderr == (
        "error: BILLING_DATABASE_URL: the port of host h2 must be a number from 1 to 65535\n"
    )


async def test_migrate_and_writes_refuse_a_standby_in_one_line(database: str) -> None:
    url = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
    env = service_env(url)
    await run_cli_ok(env, "migrate")
    await _read_only(database, True)
    standby = (
        f"error: the database at postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
        " is a standby; add target_session_attrs=read-write"
    )
    for command in (("migrate",), ("operators", "create", "acme")):
        result = await run_cli(env, *command)
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
        assert len(result.stderr.splitlines()) == 2, result.stderr  # database: ..., error: ...
        assert errors[0].startswith(standby), result.stderr
    assert (await run_cli_ok(env, "operators", "list")).stdout == ""


@pytest.mark.parametrize("write", ["metered", "pooled"])
async def test_a_read_only_answer_drops_the_connection_until_the_primary_is_back(
    app: App, client: Client, database_url: str, write: str
) -> None:
    """A failover's first moments: connections are lost, the service
    reconnects to a server that takes no writes (the database set read-only
    stands in for it), then a primary takes over. Calls see UNAVAILABLE, then
    succeed: a connection that answered read-only was dropped, not kept."""
    await subscribe(client, "t", {"seo": 1000})
    database = database_url.rsplit("/", 1)[1]
    await _read_only(database, True)
    await _terminate_connections(database)
    codes = set()
    for _ in range(3):
        try:
            await _a_write(client, write)
        except grpc.aio.AioRpcError as error:
            codes.add(error.code())
    assert codes == {grpc.StatusCode.UNAVAILABLE}
    await _read_only(database, False)  # a primary took over
    for _ in range(200):  # every pooled connection may be a read-only one
        try:
            await _a_write(client, write)
            break
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            await asyncio.sleep(0.01)
    else:
        pytest.fail("writes never resumed on the primary")
    assert await usage_of(client, "t") == {"seo": 1 if write == "metered" else 0}


async def _a_write(client: Client, write: str) -> None:
    if write == "metered":
        await consume(client, "t", key=f"k-{uuid.uuid4().hex}")
    else:
        await subscribe(client, "t", {"seo": 1000})


async def _read_only(database: str, read_only: bool) -> None:
    admin = await _pg_admin()
    try:
        change = "SET default_transaction_read_only = on" if read_only else "RESET ALL"
        await admin.execute(f'ALTER DATABASE "{database}" {change}')
    finally:
        await admin.close()


async def _terminate_connections(database: str) -> None:
    admin = await _pg_admin()
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await admin.close()
