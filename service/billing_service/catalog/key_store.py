"""Operators and their API keys, as the admin API and the bootstrap keep
them: paginated operators, disabling, keys with scopes and an expiry, and
the one lookup every authenticated call's key goes through."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.errors import NotFound
from ..domain.instants import from_micros, to_micros
from ..domain.models import ApiKeyInfo, Operator, Page
from ..storage.tables import api_keys, operators
from ..storage.transactions import Transactions


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What a key found by its hash may do, and until when."""

    operator_id: int
    key_id: str
    scopes: tuple[str, ...]
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewKeyRow:
    """A key to store: only its hash, never its secret."""

    id: str
    hash: str
    prefix: str
    scopes: tuple[str, ...]
    expires_at: datetime | None


class KeysStore(Transactions):
    async def ensure_operator(self, name: str, now: datetime) -> tuple[Operator, bool]:
        """The operator of this name, created when absent (True): replicas
        starting together create one."""

        async def work(conn: AsyncConnection) -> tuple[Operator, bool]:
            created = (
                await conn.execute(
                    self._insert(operators)
                    .values(name=name, created_at=to_micros(now))
                    .on_conflict_do_nothing()
                    .returning(operators.c.id)
                )
            ).first()
            return await _operator_named(conn, name), created is not None

        return await self._write(work)

    async def operator(self, name: str) -> Operator:
        async def work(conn: AsyncConnection) -> Operator:
            return await _operator_named(conn, name)

        return await self._read(work)

    async def operator_name(self, operator_id: int) -> str:
        async def work(conn: AsyncConnection) -> str:
            name = (
                await conn.execute(select(operators.c.name).where(operators.c.id == operator_id))
            ).scalar()
            if name is None:
                raise NotFound("operator", str(operator_id))
            return str(name)

        return await self._read(work)

    async def operators_page(self, after: str | None, limit: int) -> Page[Operator]:
        query = select(operators)
        if after is not None:
            query = query.where(operators.c.name > after)
        query = query.order_by(operators.c.name).limit(limit + 1)

        async def work(conn: AsyncConnection) -> Page[Operator]:
            items = [_operator(r) for r in (await conn.execute(query)).all()]
            if len(items) > limit:
                return Page(items[:limit], items[limit - 1].name)
            return Page(items, None)

        return await self._read(work)

    async def disable_operator(self, name: str, now: datetime) -> Operator:
        async def work(conn: AsyncConnection) -> Operator:
            await conn.execute(
                update(operators)
                .where(operators.c.name == name, operators.c.disabled_at.is_(None))
                .values(disabled_at=to_micros(now))
            )
            return await _operator_named(conn, name)

        return await self._write(work)

    async def add_key(self, operator_id: int, key: NewKeyRow, now: datetime) -> ApiKeyInfo:
        """Store `key`; a key of the same hash already stored is kept as it
        is (the bootstrap's key, inserted by every replica) and answered.
        The conflict has no target: on PostgreSQL, a replica inserting the
        same row at once meets the id's index as well as the hash's."""

        async def work(conn: AsyncConnection) -> ApiKeyInfo:
            await conn.execute(
                self._insert(api_keys)
                .values(
                    id=key.id,
                    operator_id=operator_id,
                    key_hash=key.hash,
                    prefix=key.prefix,
                    created_at=to_micros(now),
                    scopes=" ".join(key.scopes),
                    expires_at=None if key.expires_at is None else to_micros(key.expires_at),
                )
                .on_conflict_do_nothing()
            )
            stored = select(api_keys).where(api_keys.c.key_hash == key.hash)
            row = (await conn.execute(stored)).one()
            return api_key_info(row)

        return await self._write(work)

    async def key(self, key_id: str) -> ApiKeyInfo:
        async def work(conn: AsyncConnection) -> ApiKeyInfo:
            return await _key_of_id(conn, key_id)

        return await self._read(work)

    async def list_keys(self, operator_id: int) -> list[ApiKeyInfo]:
        async def work(conn: AsyncConnection) -> list[ApiKeyInfo]:
            rows = await conn.execute(
                select(api_keys)
                .where(api_keys.c.operator_id == operator_id)
                .order_by(api_keys.c.created_at, api_keys.c.id)
            )
            return [api_key_info(r) for r in rows]

        return await self._read(work)

    async def rotate_key(
        self, key_id: str, new: NewKeyRow, old_ends: datetime, now: datetime
    ) -> tuple[ApiKeyInfo, ApiKeyInfo]:
        """In one transaction: `new` stored beside the key `key_id`, whose
        expiry is brought forward to `old_ends` (never pushed back)."""

        async def work(conn: AsyncConnection) -> tuple[ApiKeyInfo, ApiKeyInfo]:
            old = await _key_of_id(conn, key_id)
            ends = to_micros(old_ends)
            await conn.execute(
                update(api_keys)
                .where(
                    api_keys.c.id == key_id,
                    or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > ends),
                )
                .values(expires_at=ends)
            )
            await conn.execute(
                api_keys.insert().values(
                    id=new.id,
                    operator_id=old.operator_id,
                    key_hash=new.hash,
                    prefix=new.prefix,
                    created_at=to_micros(now),
                    scopes=" ".join(new.scopes),
                    expires_at=None if new.expires_at is None else to_micros(new.expires_at),
                )
            )
            return await _key_of_id(conn, key_id), await _key_of_id(conn, new.id)

        return await self._write(work)

    async def grant_for_hash(self, key_hash: str, now: datetime) -> KeyGrant | None:
        """The grant of a key that authenticates now: not revoked, not
        expired, of an operator not disabled."""
        query = (
            select(api_keys.c.operator_id, api_keys.c.id, api_keys.c.scopes, api_keys.c.expires_at)
            .join(operators, operators.c.id == api_keys.c.operator_id)
            .where(
                api_keys.c.key_hash == key_hash,
                api_keys.c.revoked_at.is_(None),
                or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > to_micros(now)),
                operators.c.disabled_at.is_(None),
            )
        )

        async def work(conn: AsyncConnection) -> KeyGrant | None:
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            return KeyGrant(
                operator_id=row.operator_id,
                key_id=row.id,
                scopes=tuple(row.scopes.split()),
                expires_at=None if row.expires_at is None else from_micros(row.expires_at),
            )

        return await self._read(work)


def api_key_info(row: Row[Any]) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        operator_id=row.operator_id,
        prefix=row.prefix,
        created_at=from_micros(row.created_at),
        revoked_at=None if row.revoked_at is None else from_micros(row.revoked_at),
        scopes=tuple(row.scopes.split()),
        expires_at=None if row.expires_at is None else from_micros(row.expires_at),
    )


def _operator(row: Row[Any]) -> Operator:
    return Operator(
        id=row.id,
        name=row.name,
        created_at=from_micros(row.created_at),
        disabled_at=None if row.disabled_at is None else from_micros(row.disabled_at),
    )


async def _operator_named(conn: AsyncConnection, name: str) -> Operator:
    row = (await conn.execute(select(operators).where(operators.c.name == name))).first()
    if row is None:
        raise NotFound("operator", name)
    return _operator(row)


async def _key_of_id(conn: AsyncConnection, key_id: str) -> ApiKeyInfo:
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    if row is None:
        raise NotFound("api key", key_id)
    return api_key_info(row)
