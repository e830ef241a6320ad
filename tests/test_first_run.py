"""A first run without surprises: an address in use is one line
naming the setting, and exit status 1."""

import socket
from pathlib import Path

import pytest

from .cli_subprocess import free_port, run_cli, run_cli_ok, serve, service_env


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


async def test_the_default_database_is_the_same_from_any_directory(tmp_path: Path) -> None:
    """SQLite in the user's data directory: an admin command run elsewhere
    uses the server's database, says which, and creates none of its own."""
    env = {k: v for k, v in service_env("").items() if k != "BILLING_DATABASE_URL"}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    refused = await run_cli(env, "operators", "list", cwd=here)
    assert refused.returncode == 1 and "billing-service migrate" in refused.stderr, refused
    await run_cli_ok(env, "migrate", cwd=here)
    await run_cli_ok(env, "operators", "create", "acme", cwd=there)
    listed = await run_cli_ok(env, "operators", "list", cwd=here)
    assert "acme" in listed.stdout
    database = tmp_path / "data" / "billing-service" / "billing.db"
    assert f"database: sqlite+aiosqlite:///{database}" in listed.stderr
    assert not list(here.iterdir()) and not list(there.iterdir())


async def test_a_postgresql_password_is_never_printed(tmp_path: Path) -> None:
    env = service_env("postgresql+asyncpg://billing:s3cret-pw@127.0.0.1:1/billing")
    result = await run_cli(env, "operators", "list")
    assert result.returncode == 1
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert "database: postgresql+asyncpg://billing:***@127.0.0.1:1/billing" in result.stderr


async def test_help_says_what_each_command_reads(tmp_path: Path) -> None:
    env = service_env(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    assert (await run_cli_ok(env, "--version")).stdout.startswith("billing-service ")
    for args in (("--help",), ("serve", "--help"), ("keys", "create", "--help")):
        shown = (await run_cli_ok(env, *args)).stdout
        assert "BILLING_DATABASE_URL" in shown, args


async def test_health_says_serving_and_fails_where_nothing_serves(tmp_path: Path) -> None:
    env = service_env(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    async with serve(env, tmp_path) as served:
        answered = await run_cli_ok(env, "health", "--target", served.target)
    assert answered.stdout.strip() == f"{served.target}: SERVING"
    nothing = await run_cli(env, "health", "--target", f"127.0.0.1:{free_port()}")
    assert nothing.returncode == 1


# What `--help`, `--version` and `health` (the container probe, under a
# HEALTHCHECK timeout on a busy node) must not load: the service, its
# settings' validation, the database and HTTP stacks (docs/design.md, "The
# command"). Measured by what is imported, which no load on the machine changes.
NOT_FOR_LIGHT_COMMANDS = (
    "billing_service.app",
    "billing_service.config",
    "pydantic_settings",
    "sqlalchemy",
    "alembic",
    "stripe",
    "starlette",
    "uvicorn",
)


@pytest.mark.parametrize(
    "args", [("--help",), ("--version",), ("serve", "--help"), ("health", "--target")]
)
async def test_help_version_and_health_load_none_of_the_service(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    if args[-1] == "--target":
        args = (*args, f"127.0.0.1:{free_port()}")
    env = service_env(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", workers="abc")
    env["PYTHONPROFILEIMPORTTIME"] = "1"  # each import, on stderr
    result = await run_cli(env, *args)
    imported = {
        line.rpartition("|")[2].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "billing_service.cli" in imported, result.stderr[-2000:]
    loaded = sorted(
        name
        for name in imported
        if any(name == heavy or name.startswith(f"{heavy}.") for heavy in NOT_FOR_LIGHT_COMMANDS)
    )
    assert loaded == [], args
    # Nor do they read the other settings (BILLING_WORKERS=abc is not theirs).
    assert "BILLING_WORKERS" not in result.stderr
    assert result.returncode == (1 if args[0] == "health" else 0), result


async def _database_error(url: str, command: tuple[str, ...]) -> str:
    """The one `error:` line a command prints when it cannot open `url`."""
    env = service_env(url, grpc_addr=f"127.0.0.1:{free_port()}", http_addr="")
    result = await run_cli(env, *command)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr and "s3cret-pw" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: cannot open the database: "), error
    return error


@pytest.mark.parametrize("command", [("migrate",), ("operators", "list"), ("serve",)])
async def test_an_unreachable_postgresql_is_one_line_saying_what_to_do(
    command: tuple[str, ...],
) -> None:
    port = free_port()  # nothing listens there
    error = await _database_error(
        f"postgresql://postgres:s3cret-pw@127.0.0.1:{port}/billing", command
    )
    assert error.endswith(
        f"; start PostgreSQL at 127.0.0.1:{port}, or correct the host and port in"
        " BILLING_DATABASE_URL"
    ), error


@pytest.mark.parametrize("command", [("migrate",), ("serve",)])
async def test_a_sqlite_file_that_cannot_be_made_is_one_line_saying_what_to_do(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    (tmp_path / "not-a-directory").write_text("")
    url = f"sqlite+aiosqlite:///{tmp_path / 'not-a-directory' / 'billing.db'}"
    error = await _database_error(url, command)
    assert error.endswith(
        f"; check that {tmp_path / 'not-a-directory'} is a directory this user may write in,"
        " or correct the path in BILLING_DATABASE_URL"
    ), error
