"""Storage of end users' push tokens: one user per token (the latest that
registered it), at most PUSH_TOKENS_PER_USER per user."""

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.instants import to_micros
from ..storage.tables.end_users import push_tokens
from ..storage.transactions import Transactions
from .model import PUSH_TOKENS_PER_USER, PushPlatform


class PushTokensStore(Transactions):
    async def register_token(
        self,
        operator_id: int,
        user_id: str,
        token: str,
        platform: PushPlatform,
        device_id: str | None,
        now: datetime,
    ) -> None:
        t = push_tokens
        values = {
            "user_id": user_id,
            "platform": platform.value,
            "device_id": device_id,
            "registered_at": to_micros(now),
        }
        upsert = (
            self._insert(t)
            .values(operator_id=operator_id, token=token, **values)
            .on_conflict_do_update(index_elements=["operator_id", "token"], set_=values)
        )
        beyond_cap = (
            select(t.c.token)
            .where(t.c.operator_id == operator_id, t.c.user_id == user_id)
            .order_by(t.c.registered_at.desc(), t.c.token)
            .offset(PUSH_TOKENS_PER_USER)
        )

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(upsert)
            evicted = [row.token for row in (await conn.execute(beyond_cap)).all()]
            if evicted:
                await conn.execute(
                    delete(t).where(t.c.operator_id == operator_id, t.c.token.in_(evicted))
                )

        await self._write(work)

    async def unregister_token(self, operator_id: int, user_id: str, token: str) -> None:
        t = push_tokens
        statement = delete(t).where(
            t.c.operator_id == operator_id, t.c.user_id == user_id, t.c.token == token
        )
        await self._write(lambda conn: conn.execute(statement))

    async def tokens(self, operator_id: int, user_id: str) -> list[tuple[str, PushPlatform]]:
        return await self._read(lambda conn: tokens_of(conn, operator_id, user_id))


async def tokens_of(
    conn: AsyncConnection, operator_id: int, user_id: str
) -> list[tuple[str, PushPlatform]]:
    """A user's push tokens, newest first (also read by end_users/alerts.py)."""
    t = push_tokens
    query = (
        select(t.c.token, t.c.platform)
        .where(t.c.operator_id == operator_id, t.c.user_id == user_id)
        .order_by(t.c.registered_at.desc(), t.c.token)
    )
    return [(row.token, PushPlatform(row.platform)) for row in (await conn.execute(query)).all()]
