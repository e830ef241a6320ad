"""The commands that work on the database itself: `migrate`, and the
operators' and their keys' administration (`operators ...`, `keys ...`)."""

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime

from .app import App, open_app, opening_database
from .catalog.admin import Admin
from .clock import SystemClock
from .config import Settings, shown_database
from .domain.errors import DomainError, InvalidArgument
from .startup import CannotOpen
from .storage import migrate as migrations
from .storage.engine import create_engines, make_room_for, require_writable, sqlite_path


def migrate(settings: Settings) -> int:
    print(f"database: {shown_database(settings.database_url)}", file=sys.stderr)
    make_room_for(settings.database_url)
    return asyncio.run(_migrate(settings))


def administer(settings: Settings, args: argparse.Namespace) -> int:
    """`operators ACTION` or `keys ACTION`, on a database that exists."""
    print(f"database: {shown_database(settings.database_url)}", file=sys.stderr)
    _require_existing(settings.database_url)
    return asyncio.run(_with_app(settings, _ACTIONS[(args.command, args.action)], args))


def _require_existing(url: str) -> None:
    """Admin commands never create a database: one run from the wrong place
    (or with the wrong URL) would otherwise make a second one, silently."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise CannotOpen(
            f"no database at {path} (BILLING_DATABASE_URL); `billing-service migrate` creates it"
        )


async def _migrate(settings: Settings) -> int:
    writer, reader = create_engines(settings.database_url)
    try:
        async with opening_database(settings.database_url):
            await require_writable(writer, settings.database_url)
            await migrations.upgrade(writer)
            print(f"database at revision {await migrations.current_revision(writer)}")
    finally:
        await writer.dispose()
        await reader.dispose()
    return 0


async def _with_app(
    settings: Settings, action: Callable[[App, argparse.Namespace], Awaitable[None]], args: object
) -> int:
    app = await open_app(settings)
    try:
        if action not in _READS:
            async with opening_database(settings.database_url):
                await require_writable(app.store.writer, settings.database_url)
        await action(app, args)  # type: ignore[arg-type]
    except DomainError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    finally:
        await app.close()
    return 0


async def _create_operator(app: App, args: argparse.Namespace) -> None:
    operator = await Admin(app.store, app.clock).create_operator("cli", args.name)
    print(f"created operator '{operator.name}' (id {operator.id})")


async def _create_key(app: App, args: argparse.Namespace) -> None:
    admin = Admin(app.store, app.clock)
    expires = _instant("--expires", args.expires)
    info, key = await admin.create_key("cli", args.operator, args.scope or (), expires)
    print(
        f"created key {key.id} ({' '.join(info.scopes)}) for operator '{args.operator}';"
        " it is shown only once:"
    )
    print(key.secret)


def _instant(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(option, f"'{value}' is not an ISO 8601 instant") from None
    if at.tzinfo is None:
        raise InvalidArgument(option, "needs a zone: add Z or +00:00")
    return at


async def _list_keys(app: App, args: argparse.Namespace) -> None:
    operator = await app.store.get_operator(args.operator)
    for key in await app.store.list_api_keys(operator.id):
        state = f"revoked {key.revoked_at.isoformat()}" if key.revoked_at else "active"
        if key.expires_at is not None and not key.revoked_at:
            state += f", expires {key.expires_at.isoformat()}"
        print(
            f"{key.id}\t{key.prefix}...\t{' '.join(key.scopes)}"
            f"\tcreated {key.created_at.isoformat()}\t{state}"
        )


async def _revoke_key(app: App, args: argparse.Namespace) -> None:
    key = await Admin(app.store, SystemClock()).revoke_key("cli", args.key_id)
    print(f"key {key.id} revoked at {key.revoked_at.isoformat() if key.revoked_at else '?'}")


async def _list_operators(app: App, _args: argparse.Namespace) -> None:
    for operator in await app.store.list_operators():
        print(f"{operator.id}\t{operator.name}\tcreated {operator.created_at.isoformat()}")


_ACTIONS: dict[tuple[str, str], Callable[[App, argparse.Namespace], Awaitable[None]]] = {
    ("operators", "create"): _create_operator,
    ("operators", "list"): _list_operators,
    ("keys", "create"): _create_key,
    ("keys", "list"): _list_keys,
    ("keys", "revoke"): _revoke_key,
}
_READS = (_list_operators, _list_keys)
