"""The `billing-service` command."""

import argparse
import asyncio
import importlib.metadata
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from .app import App, CannotListen, CannotOpen, open_app, opening_database
from .clock import SystemClock
from .config import Settings, shown_database
from .domain import validation
from .domain.errors import DomainError
from .grpc_core import apply_defaults as apply_grpc_core_defaults
from .logic.auth import mint_key
from .logs import configure_logging
from .processes import run_jobs_until_signalled, run_loop, run_serve
from .storage import migrate
from .storage.engine import create_engines

_ENVIRONMENT = """environment (see README, Configuration):
  BILLING_DATABASE_URL  the database (default: SQLite in the user's data directory)
  BILLING_LOG_LEVEL     logging level (default INFO)"""
_SERVE_ENVIRONMENT = """environment (see README, Configuration): every BILLING_* setting, mainly
  BILLING_DATABASE_URL, BILLING_GRPC_ADDR, BILLING_HTTP_ADDR, BILLING_WORKERS,
  BILLING_BACKGROUND_JOBS,
  BILLING_MIGRATE_ON_START, BILLING_SHUTDOWN_GRACE_SECONDS, BILLING_AUTH_CACHE_SECONDS"""


def main(argv: list[str] | None = None) -> int:
    # Before anything imports grpc: the settings are read when it loads, and
    # the processes `serve` spawns inherit them.
    apply_grpc_core_defaults()
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    try:
        if args.command == "serve":
            _make_room_for(settings.database_url)
            return run_serve(settings)
        if args.command == "jobs":
            _make_room_for(settings.database_url)
            run_loop(run_jobs_until_signalled(settings))
            return 0
        if args.command == "gateway":
            return _run_gateway(settings, args)
        if args.command == "health":
            return _health(args.target or settings.grpc_addr)
        print(f"database: {shown_database(settings.database_url)}", file=sys.stderr)
        if args.command == "migrate":
            _make_room_for(settings.database_url)
            return asyncio.run(_migrate(settings))
        _require_existing(settings.database_url)
        return asyncio.run(_with_app(settings, _ADMIN[(args.command, args.action)], args))
    except (CannotOpen, CannotListen) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    def command(group: Any, name: str, help_: str, epilog: str = _ENVIRONMENT) -> Any:
        return group.add_parser(
            name,
            help=help_,
            description=help_[0].upper() + help_[1:] + ".",
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    parser = argparse.ArgumentParser(
        prog="billing-service",
        description="The Customer Billing service: plans, subscriptions, metering and quotas "
        "over gRPC, with a REST gateway. Run a command with --help for its own help.",
        epilog=_SERVE_ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command(commands, "serve", "run the gRPC server and the REST gateway", _SERVE_ENVIRONMENT)
    command(
        commands,
        "jobs",
        "run the background jobs alone (Stripe meter events, end users' deliveries and "
        "deletions), for servers started with BILLING_BACKGROUND_JOBS=off",
        _SERVE_ENVIRONMENT,
    )
    command(commands, "migrate", "create the database or bring it to this version's schema")
    gateway = command(
        commands,
        "gateway",
        "run the REST gateway alone, in front of a gRPC server elsewhere",
        "environment: BILLING_HTTP_ADDR, BILLING_GATEWAY_GRPC_TARGET, BILLING_GRPC_ADDR, "
        "BILLING_HTTP_ACCESS_LOG",
    )
    gateway.add_argument(
        "--grpc-target",
        help="HOST:PORT of the gRPC server (default: BILLING_GATEWAY_GRPC_TARGET, else "
        "BILLING_GRPC_ADDR)",
    )
    gateway.add_argument("--http-addr", help="HOST:PORT to serve on (default: BILLING_HTTP_ADDR)")

    health = command(
        commands,
        "health",
        "ask a running server's gRPC health service; exit 0 when SERVING (container probes)",
        "environment: BILLING_GRPC_ADDR",
    )
    health.add_argument("--target", help="HOST:PORT to ask (default: BILLING_GRPC_ADDR)")

    operators = command(commands, "operators", "manage operators").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    command(operators, "create", "create an operator").add_argument(
        "name", help="the operator's name (1 to 200 characters), unique"
    )
    command(operators, "list", "list the operators")

    keys = command(commands, "keys", "manage operators' API keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = command(keys, "create", "mint a key; the key alone is the last line, shown once")
    create.add_argument("--operator", required=True, help="the operator's name")
    listing = command(keys, "list", "list an operator's keys (never the secrets)")
    listing.add_argument("--operator", required=True, help="the operator's name")
    command(keys, "revoke", "revoke a key by its id").add_argument(
        "key_id", help="the key's id, as keys list shows it"
    )
    return parser


def _health(target: str) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    host, _, port = target.rpartition(":")
    if host.strip("[]") in ("", "0.0.0.0", "::"):
        target = f"127.0.0.1:{port}"  # listening everywhere: ask over loopback
    try:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=3
            )
    except grpc.RpcError as error:
        print(f"{target}: {error.code().name}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{target}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def _version() -> str:
    try:
        return importlib.metadata.version("customer-billing")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def _make_room_for(url: str) -> None:
    """Create the SQLite file's directory (serve and migrate create the file)."""
    path = _sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _require_existing(url: str) -> None:
    """Admin commands never create a database: one run from the wrong place
    (or with the wrong URL) would otherwise make a second one, silently."""
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        raise CannotOpen(
            f"no database at {path} (BILLING_DATABASE_URL); `billing-service migrate` creates it"
        )


def _run_gateway(settings: Settings, args: argparse.Namespace) -> int:
    from .gateway.server import serve_gateway_until_signalled

    http_addr = args.http_addr or settings.http_addr
    if not http_addr:
        print("error: no HTTP address (BILLING_HTTP_ADDR or --http-addr)", file=sys.stderr)
        return 2
    grpc_target = args.grpc_target or settings.gateway_grpc_target or settings.grpc_addr
    run_loop(serve_gateway_until_signalled(http_addr, grpc_target, settings.http_access_log))
    return 0


async def _migrate(settings: Settings) -> int:
    writer, reader = create_engines(settings.database_url)
    try:
        async with opening_database():
            await migrate.upgrade(writer)
            print(f"database at revision {await migrate.current_revision(writer)}")
    finally:
        await writer.dispose()
        await reader.dispose()
    return 0


async def _with_app(
    settings: Settings, action: Callable[[App, argparse.Namespace], Awaitable[None]], args: object
) -> int:
    app = await open_app(settings)
    try:
        await action(app, args)  # type: ignore[arg-type]
    except DomainError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    finally:
        await app.close()
    return 0


async def _create_operator(app: App, args: argparse.Namespace) -> None:
    name = validation.name("name", args.name)
    operator = await app.store.create_operator(name, app.clock.now())
    print(f"created operator '{operator.name}' (id {operator.id})")


async def _create_key(app: App, args: argparse.Namespace) -> None:
    operator = await app.store.get_operator(args.operator)
    key = mint_key()
    await app.store.add_api_key(operator.id, key.id, key.hash, key.prefix, app.clock.now())
    print(f"created key {key.id} for operator '{operator.name}'; it is shown only once:")
    print(key.secret)


async def _list_keys(app: App, args: argparse.Namespace) -> None:
    operator = await app.store.get_operator(args.operator)
    for key in await app.store.list_api_keys(operator.id):
        state = f"revoked {key.revoked_at.isoformat()}" if key.revoked_at else "active"
        print(f"{key.id}\t{key.prefix}...\tcreated {key.created_at.isoformat()}\t{state}")


async def _revoke_key(app: App, args: argparse.Namespace) -> None:
    key = await app.store.revoke_api_key(args.key_id, SystemClock().now())
    print(f"key {key.id} revoked at {key.revoked_at.isoformat() if key.revoked_at else '?'}")


async def _list_operators(app: App, _args: argparse.Namespace) -> None:
    for operator in await app.store.list_operators():
        print(f"{operator.id}\t{operator.name}\tcreated {operator.created_at.isoformat()}")


_ADMIN: dict[tuple[str, str], Callable[[App, argparse.Namespace], Awaitable[None]]] = {
    ("operators", "create"): _create_operator,
    ("operators", "list"): _list_operators,
    ("keys", "create"): _create_key,
    ("keys", "list"): _list_keys,
    ("keys", "revoke"): _revoke_key,
}

if __name__ == "__main__":
    sys.exit(main())
