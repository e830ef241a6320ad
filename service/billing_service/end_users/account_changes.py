"""Storage of the changes an end user asks of their account: an email
change (a mailed single-use code) and a deletion after a grace period (a
mixin of UsersStore)."""

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.errors import AlreadyExists
from ..domain.instants import from_micros, to_micros
from ..storage.tables.end_users import (
    email_changes,
    end_users,
    login_attempts,
    notifications,
    password_checks,
    push_tokens,
    user_sessions,
)
from ..storage.transactions import Transactions

_u = end_users


def user_is(operator_id: int, user_id: str) -> Any:
    return and_(_u.c.operator_id == operator_id, _u.c.id == user_id)


class AccountChanges(Transactions):
    # -- email changes --------------------------------------------------------

    async def add_email_change(
        self,
        operator_id: int,
        user_id: str,
        new_email: str,
        token_hash: str,
        now: datetime,
        expires_at: datetime,
        mail: Any,
    ) -> None:
        """Keep a pending email change and queue its mail (`mail`, an insert
        into the delivery outbox), in one transaction."""

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                email_changes.insert().values(
                    token_hash=token_hash,
                    operator_id=operator_id,
                    user_id=user_id,
                    new_email=new_email,
                    created_at=to_micros(now),
                    expires_at=to_micros(expires_at),
                )
            )
            await conn.execute(mail)

        await self._write(work)

    async def apply_email_change(
        self, operator_id: int, user_id: str, token_hash: str, now: datetime
    ) -> str | None:
        """Use a pending change of this user's (once, before it expires):
        the new email, or None when there is no such change."""
        e = email_changes
        claim = (
            update(e)
            .where(
                e.c.token_hash == token_hash,
                e.c.operator_id == operator_id,
                e.c.user_id == user_id,
                e.c.used_at.is_(None),
                e.c.expires_at > to_micros(now),
            )
            .values(used_at=to_micros(now))
            .returning(e.c.new_email)
        )

        async def work(conn: AsyncConnection) -> str | None:
            row = (await conn.execute(claim)).first()
            if row is None:
                return None
            new_email: str = row.new_email
            key = new_email.casefold()
            taken = select(_u.c.id).where(
                _u.c.operator_id == operator_id, _u.c.email_key == key, _u.c.id != user_id
            )
            if (await conn.execute(taken)).first() is not None:
                raise AlreadyExists("end user", new_email)
            await conn.execute(
                update(_u)
                .where(user_is(operator_id, user_id))
                .values(email=new_email, email_key=key, updated_at=to_micros(now))
            )
            return new_email

        return await self._write(work)

    # -- deletion -------------------------------------------------------------

    async def schedule_deletion(
        self, operator_id: int, user_id: str, at: datetime, reason: str | None
    ) -> datetime:
        """Schedule the deletion at `at` unless one is scheduled: answers
        the schedule in force."""

        async def work(conn: AsyncConnection) -> datetime:
            await conn.execute(
                update(_u)
                .where(user_is(operator_id, user_id), _u.c.deletion_scheduled_at.is_(None))
                .values(deletion_scheduled_at=to_micros(at), deletion_reason=reason)
            )
            scheduled = await conn.execute(
                select(_u.c.deletion_scheduled_at).where(user_is(operator_id, user_id))
            )
            return from_micros(scheduled.scalar_one())

        return await self._write(work)

    async def cancel_deletion(self, operator_id: int, user_id: str) -> bool:
        statement = (
            update(_u)
            .where(user_is(operator_id, user_id), _u.c.deletion_scheduled_at.is_not(None))
            .values(deletion_scheduled_at=None, deletion_reason=None)
        )

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(statement)).rowcount > 0

        return await self._write(work)

    async def delete_due_users(self, now: datetime, limit: int) -> int:
        """Delete the accounts whose grace period has ended, with everything
        that names their user: answers how many."""
        due = (
            select(_u.c.operator_id, _u.c.id)
            .where(_u.c.deletion_scheduled_at <= to_micros(now))
            .limit(limit)
        )

        async def work(conn: AsyncConnection) -> int:
            users = (await conn.execute(due)).all()
            for operator_id, user_id in users:
                for table in (
                    user_sessions,
                    login_attempts,
                    password_checks,
                    email_changes,
                    push_tokens,
                    notifications,
                ):
                    await conn.execute(
                        delete(table).where(
                            table.c.operator_id == operator_id, table.c.user_id == user_id
                        )
                    )
                await conn.execute(
                    delete(_u).where(
                        user_is(operator_id, user_id),
                        _u.c.deletion_scheduled_at <= to_micros(now),
                    )
                )
            return len(users)

        return await self._write(work)
