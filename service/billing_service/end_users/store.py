"""Storage of end users: accounts with their preferences, sessions, sign-in
attempts, email changes, scheduled deletions and push tokens."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.errors import AlreadyExists
from ..domain.instants import from_micros, to_micros
from ..storage.tables.end_users import (
    end_users,
    login_attempts,
    user_sessions,
)
from .account_changes import AccountChanges, user_is
from .attempts import Attempts, mark_succeeded
from .model import (
    EndUser,
    LoginAttempt,
    Preferences,
    ProfileVisibility,
    Session,
    Theme,
)

_u, _s = end_users, user_sessions
# Preferences field -> column.
_PREFERENCE_COLUMNS = {
    "in_app": "notify_in_app",
    "push": "notify_push",
    "email": "notify_email",
    "profile_visibility": "profile_visibility",
    "show_email": "show_email",
    "show_location": "show_location",
    "theme": "theme",
    "timezone": "timezone",
    "locale": "locale",
}


class UsersStore(AccountChanges, Attempts):
    """Accounts with their preferences and sessions; email changes and
    deletions come from AccountChanges, sign-in attempts and password checks
    from Attempts."""

    # -- accounts -----------------------------------------------------------

    async def create_user(
        self,
        operator_id: int,
        user_id: str,
        email: str,
        email_key: str,
        password_hash: str,
        now: datetime,
    ) -> EndUser:
        defaults = Preferences()
        values = {
            _PREFERENCE_COLUMNS[name]: getattr(defaults, name) for name in _PREFERENCE_COLUMNS
        }

        async def work(conn: AsyncConnection) -> EndUser:
            taken = await conn.execute(
                select(_u.c.id).where(
                    _u.c.operator_id == operator_id,
                    (_u.c.id == user_id) | (_u.c.email_key == email_key),
                )
            )
            if taken.first() is not None:
                raise AlreadyExists("end user", email)
            inserted = await conn.execute(
                self._insert(_u)
                .values(
                    operator_id=operator_id,
                    id=user_id,
                    email=email,
                    email_key=email_key,
                    password_hash=password_hash,
                    created_at=to_micros(now),
                    updated_at=to_micros(now),
                    **values,
                )
                .on_conflict_do_nothing()
                .returning(_u)
            )
            row = inserted.first()
            if row is None:  # a concurrent create took the id or the email
                raise AlreadyExists("end user", email)
            return end_user_from_row(row)

        return await self._write(work)

    async def user_by_email(self, operator_id: int, email_key: str) -> tuple[EndUser, str] | None:
        query = select(_u).where(_u.c.operator_id == operator_id, _u.c.email_key == email_key)
        return await self._read(lambda conn: _with_hash(conn, query))

    async def user(self, operator_id: int, user_id: str) -> tuple[EndUser, str] | None:
        query = select(_u).where(user_is(operator_id, user_id))
        return await self._read(lambda conn: _with_hash(conn, query))

    async def update_preferences(
        self, operator_id: int, user_id: str, changes: Mapping[str, Any], now: datetime
    ) -> EndUser:
        values = {_PREFERENCE_COLUMNS[name]: value for name, value in changes.items()}
        statement = (
            update(_u)
            .where(user_is(operator_id, user_id))
            .values(updated_at=to_micros(now), **values)
            .returning(_u)
        )

        async def work(conn: AsyncConnection) -> EndUser:
            return end_user_from_row((await conn.execute(statement)).one())

        return await self._write(work)

    # -- sign-in and sessions -------------------------------------------------

    async def open_session(
        self, session: Session, token_hash: str, attempt_id: int, new_password_hash: str | None
    ) -> None:
        """Mark a sign-in attempt a success and open its session, in one
        transaction (and keep the password's new hash, when its parameters
        changed)."""

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                _s.insert().values(
                    id=session.id,
                    operator_id=session.operator_id,
                    user_id=session.user_id,
                    token_hash=token_hash,
                    ip_address=session.ip_address,
                    user_agent=session.user_agent,
                    created_at=to_micros(session.created_at),
                    expires_at=to_micros(session.expires_at),
                )
            )
            await conn.execute(mark_succeeded(attempt_id))
            if new_password_hash is not None:
                await conn.execute(
                    update(_u)
                    .where(user_is(session.operator_id, session.user_id))
                    .values(password_hash=new_password_hash)
                )

        await self._write(work)

    async def session_by_token_hash(self, token_hash: str, now: datetime) -> Session | None:
        query = select(_s).where(
            _s.c.token_hash == token_hash,
            _s.c.revoked_at.is_(None),
            _s.c.expires_at > to_micros(now),
        )

        async def work(conn: AsyncConnection) -> Session | None:
            row = (await conn.execute(query)).first()
            return None if row is None else _session(row)

        return await self._read(work)

    async def sessions(self, operator_id: int, user_id: str, now: datetime) -> list[Session]:
        query = (
            select(_s)
            .where(*_live_sessions(operator_id, user_id, now))
            .order_by(_s.c.created_at.desc(), _s.c.id)
        )

        async def work(conn: AsyncConnection) -> list[Session]:
            return [_session(row) for row in (await conn.execute(query)).all()]

        return await self._read(work)

    async def revoke_sessions(
        self,
        operator_id: int,
        user_id: str,
        now: datetime,
        *,
        only: str | None = None,
        keep: str | None = None,
    ) -> int:
        """Revoke the user's live sessions (`only` one of them, or all but
        `keep`); answers how many."""
        statement = update(_s).where(*_live_sessions(operator_id, user_id, now))
        if only is not None:
            statement = statement.where(_s.c.id == only)
        if keep is not None:
            statement = statement.where(_s.c.id != keep)
        statement = statement.values(revoked_at=to_micros(now))

        async def work(conn: AsyncConnection) -> int:
            return (await conn.execute(statement)).rowcount

        return await self._write(work)

    async def change_password(
        self, operator_id: int, user_id: str, password_hash: str, keep_session: str, now: datetime
    ) -> int:
        """Set the password and revoke every other session, in one
        transaction; answers how many sessions were revoked."""

        async def work(conn: AsyncConnection) -> int:
            await conn.execute(
                update(_u)
                .where(user_is(operator_id, user_id))
                .values(password_hash=password_hash, updated_at=to_micros(now))
            )
            revoked = await conn.execute(
                update(_s)
                .where(*_live_sessions(operator_id, user_id, now), _s.c.id != keep_session)
                .values(revoked_at=to_micros(now))
            )
            return revoked.rowcount

        return await self._write(work)

    async def login_history(self, operator_id: int, user_id: str, limit: int) -> list[LoginAttempt]:
        a = login_attempts
        query = (
            select(a)
            .where(a.c.operator_id == operator_id, a.c.user_id == user_id)
            .order_by(a.c.created_at.desc(), a.c.id.desc())
            .limit(limit)
        )

        async def work(conn: AsyncConnection) -> list[LoginAttempt]:
            return [
                LoginAttempt(from_micros(r.created_at), r.ip_address, r.user_agent, r.success)
                for r in (await conn.execute(query)).all()
            ]

        return await self._read(work)


def _live_sessions(operator_id: int, user_id: str, now: datetime) -> tuple[Any, ...]:
    return (
        _s.c.operator_id == operator_id,
        _s.c.user_id == user_id,
        _s.c.revoked_at.is_(None),
        _s.c.expires_at > to_micros(now),
    )


async def _with_hash(conn: AsyncConnection, query: Any) -> tuple[EndUser, str] | None:
    row = (await conn.execute(query)).first()
    return None if row is None else (end_user_from_row(row), row.password_hash)


def end_user_from_row(row: Row[Any]) -> EndUser:
    """An EndUser from a row of end_users (also read by end_users/alerts.py)."""
    return EndUser(
        operator_id=row.operator_id,
        id=row.id,
        email=row.email,
        created_at=from_micros(row.created_at),
        preferences=Preferences(
            in_app=row.notify_in_app,
            push=row.notify_push,
            email=row.notify_email,
            profile_visibility=ProfileVisibility(row.profile_visibility),
            show_email=row.show_email,
            show_location=row.show_location,
            theme=Theme(row.theme),
            timezone=row.timezone,
            locale=row.locale,
        ),
        deletion_scheduled_at=(
            None if row.deletion_scheduled_at is None else from_micros(row.deletion_scheduled_at)
        ),
    )


def _session(row: Row[Any]) -> Session:
    return Session(
        id=row.id,
        operator_id=row.operator_id,
        user_id=row.user_id,
        ip_address=row.ip_address,
        user_agent=row.user_agent,
        created_at=from_micros(row.created_at),
        expires_at=from_micros(row.expires_at),
    )
