"""The `billing-service` command.

Each command imports what it runs in its own handler: `--help`, `--version`
and `health` (the container probe) load neither the settings' validation nor
the service, which would take most of their CPU (docs/design.md).
"""

import argparse
import importlib.metadata
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .addresses import DEFAULT_GRPC_ADDR
from .grpc_core import apply_defaults as apply_grpc_core_defaults
from .startup import CannotListen, CannotOpen

if TYPE_CHECKING:
    from .config import Settings

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
    if args.command == "health":
        # BILLING_GRPC_ADDR alone: reading every setting would cost a probe
        # more CPU than asking the server.
        return _health(args.target or os.environ.get("BILLING_GRPC_ADDR") or DEFAULT_GRPC_ADDR)
    if args.command == "plans":
        # A client of a server, maybe a remote one: no settings of its own.
        from .catalog_command import run

        return run(args)
    if args.command == "admin-key":
        return _admin_key()  # no setting or database: a key and its hash, printed
    settings = _read_settings()
    if settings is None:
        return 2
    from .logs import configure_logging

    configure_logging(settings)
    try:
        return _COMMANDS[args.command](settings, args)
    except (CannotOpen, CannotListen) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _read_settings() -> "Settings | None":
    """The settings; None once each invalid one is told in a line of its own
    (its variable and the rule), not in pydantic's report."""
    from pydantic import ValidationError

    from .config import Settings, invalid_settings

    try:
        return Settings()
    except ValidationError as error:
        for line in invalid_settings(error):
            print(f"error: {line}", file=sys.stderr)
        return None


def _serve(settings: "Settings", _args: argparse.Namespace) -> int:
    from .processes import run_serve
    from .storage.engine import make_room_for

    make_room_for(settings.database_url)
    return run_serve(settings)


def _jobs(settings: "Settings", _args: argparse.Namespace) -> int:
    from .processes import run_jobs_until_signalled, run_loop
    from .storage.engine import make_room_for

    make_room_for(settings.database_url)
    run_loop(run_jobs_until_signalled(settings))
    return 0


def _gateway(settings: "Settings", args: argparse.Namespace) -> int:
    from .gateway.server import serve_gateway_until_signalled
    from .processes import run_loop

    http_addr = args.http_addr or settings.http_addr
    if not http_addr:
        print("error: no HTTP address (BILLING_HTTP_ADDR or --http-addr)", file=sys.stderr)
        return 2
    grpc_target = args.grpc_target or settings.gateway_grpc_target or settings.grpc_addr
    run_loop(serve_gateway_until_signalled(http_addr, grpc_target, settings.http_access_log))
    return 0


def _migrate(settings: "Settings", _args: argparse.Namespace) -> int:
    from .admin import migrate

    return migrate(settings)


def _admin(settings: "Settings", args: argparse.Namespace) -> int:
    from .admin import administer

    return administer(settings, args)


def _admin_key() -> int:
    from .catalog.admin_auth import mint_admin_key

    key = mint_admin_key()
    print("admin key (shown only once; give it to whoever administers):", file=sys.stderr)
    print(key.secret)
    print("set this on the server: BILLING_ADMIN_KEY_HASH=" + key.hash, file=sys.stderr)
    print(key.hash)
    return 0


_COMMANDS: dict[str, Callable[["Settings", argparse.Namespace], int]] = {
    "serve": _serve,
    "jobs": _jobs,
    "gateway": _gateway,
    "migrate": _migrate,
    "operators": _admin,
    "keys": _admin,
}


def _parser() -> argparse.ArgumentParser:
    def command(group: Any, name: str, help_: str, epilog: str = _ENVIRONMENT) -> Any:
        return group.add_parser(
            name,
            help=help_,
            description=help_[0].upper() + help_[1:] + ".",
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            # No abbreviations: `--key SECRET` must not be taken for --key-file.
            allow_abbrev=False,
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
    create.add_argument(
        "--scope",
        action="append",
        choices=("full", "metering", "read"),
        help="what the key may call (repeatable; default full): metering, the metered calls "
        "only; read, every Get and List",
    )
    create.add_argument(
        "--expires", help="when the key stops working, ISO 8601 with a zone (2027-01-01T00:00Z)"
    )
    listing = command(keys, "list", "list an operator's keys (never the secrets)")
    listing.add_argument("--operator", required=True, help="the operator's name")
    command(keys, "revoke", "revoke a key by its id").add_argument(
        "key_id", help="the key's id, as keys list shows it"
    )
    _plans_parser(command, commands)
    admin_key = command(
        commands,
        "admin-key",
        "mint the admin credential AdminService takes: prints the key (shown once), then the "
        "hash to set as BILLING_ADMIN_KEY_HASH",
        "environment: none",
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    command(admin_key, "create", "print a new admin key, then its SHA-256", "environment: none")
    return parser


def _plans_parser(command: Any, commands: Any) -> None:
    plans = command(
        commands, "plans", "pricing as code: kits, meters and plans from a YAML file"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    epilog = "environment: BILLING_API_KEY (the operator's key), BILLING_GRPC_ADDR"
    apply = command(
        plans, "apply", "show how FILE differs from the catalog, then apply the difference", epilog
    )
    apply.add_argument("file", metavar="FILE", help="the catalog file (examples/catalog.yaml)")
    apply.add_argument("--dry-run", action="store_true", help="show the difference only")
    export = command(plans, "export", "write the operator's catalog as a catalog file", epilog)
    export.add_argument("--output", metavar="FILE", help="write to FILE (default: stdout)")
    for action in (apply, export):
        action.add_argument("--target", help="HOST:PORT of the server (default: BILLING_GRPC_ADDR)")
        action.add_argument(
            "--key-file", help="a file holding the operator's key (default: BILLING_API_KEY)"
        )


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


if __name__ == "__main__":
    sys.exit(main())
