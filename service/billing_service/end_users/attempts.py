"""Attempts at an end user's password, counted before the password is
verified (a mixin of UsersStore): sign-ins (login_attempts) by email and by
client address, and signed-in users' password checks (password_checks).

An attempt is inserted as a failure and the window's failures are counted,
its own included, in one transaction serialised per key: on SQLite by the
writer's lock (BEGIN IMMEDIATE), on PostgreSQL by an advisory lock per key
taken first (email, then address: always in that order, so no deadlock), so
that the count sees every attempt before it, in every process. The n-th of
any number of racing attempts counts n: exactly `limit` are let through to
the verification. A success marks its row afterwards."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.instants import from_micros, to_micros
from ..storage.tables.end_users import login_attempts, password_checks
from ..storage.transactions import Transactions

# The first half of the attempts' advisory locks' keys (the second is the
# key's hash); the terms lock has another (metering/postgres/statements.py).
ATTEMPTS_LOCK = 0x61747470  # "attp"


@dataclass(frozen=True, slots=True)
class Attempt:
    """An attempt in flight: its row, and the failures it counts (newest
    first, its own included, at most one more than the limit asked for; by
    client address, empty when that limit is off)."""

    id: int
    failures: list[datetime]
    address_failures: list[datetime]


@dataclass(frozen=True, slots=True)
class SignInTry:
    operator_id: int
    email_key: str
    user_id: str | None
    ip_address: str
    user_agent: str
    client_address: str
    at: datetime


class Attempts(Transactions):
    async def begin_sign_in(
        self, attempt: SignInTry, since: datetime, limit: int, address_limit: int
    ) -> Attempt:
        """Record a sign-in attempt as a failure, then count the email's
        failures since `since` and its last success, and the client
        address's failures since `since` (successes elsewhere do not reset
        them), each up to one more than its limit."""
        a = login_attempts
        insert = (
            a.insert()
            .values(
                operator_id=attempt.operator_id,
                email_key=attempt.email_key,
                user_id=attempt.user_id,
                ip_address=attempt.ip_address,
                user_agent=attempt.user_agent,
                client_address=attempt.client_address,
                success=False,
                created_at=to_micros(attempt.at),
            )
            .returning(a.c.id)
        )
        by_email = (a.c.operator_id == attempt.operator_id, a.c.email_key == attempt.email_key)
        by_address = (
            a.c.operator_id == attempt.operator_id,
            a.c.client_address == attempt.client_address,
        )
        op = attempt.operator_id

        async def work(conn: AsyncConnection) -> Attempt:
            await self._serialise(conn, f"sign-in {op} {attempt.email_key}")
            if address_limit > 0:
                await self._serialise(conn, f"sign-in {op} address {attempt.client_address}")
            mine = int((await conn.execute(insert)).scalar_one())
            failures = await _failures(conn, a, by_email, mine, since, limit, reset=True)
            address_failures = []
            if address_limit > 0:
                address_failures = await _failures(
                    conn, a, by_address, mine, since, address_limit, reset=False
                )
            return Attempt(mine, failures, address_failures)

        return await self._write(work)

    async def begin_password_check(
        self, operator_id: int, user_id: str, now: datetime, since: datetime, limit: int
    ) -> Attempt:
        """Record a check of a signed-in user's password as a failure, then
        count the user's failed checks since `since`. A success resets
        nothing: whoever holds a stolen session and races the real user's
        right answer still gets at most `limit` guesses a window."""
        p = password_checks
        insert = (
            p.insert()
            .values(
                operator_id=operator_id, user_id=user_id, success=False, created_at=to_micros(now)
            )
            .returning(p.c.id)
        )
        by_user = (p.c.operator_id == operator_id, p.c.user_id == user_id)

        async def work(conn: AsyncConnection) -> Attempt:
            await self._serialise(conn, f"password check {operator_id} {user_id}")
            mine = int((await conn.execute(insert)).scalar_one())
            failures = await _failures(conn, p, by_user, mine, since, limit, reset=False)
            return Attempt(mine, failures, [])

        return await self._write(work)

    async def password_check_succeeded(self, check_id: int) -> None:
        statement = update(password_checks).where(password_checks.c.id == check_id)
        await self._write(lambda conn: conn.execute(statement.values(success=True)))

    async def _serialise(self, conn: AsyncConnection, key: str) -> None:
        """Hold `key` until the transaction ends (SQLite's writer holds the
        whole database already)."""
        if self._postgres:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
                {"space": ATTEMPTS_LOCK, "key": key},
            )


def mark_succeeded(attempt_id: int) -> Any:
    """The statement marking a sign-in attempt a success, for the
    transaction that opens its session."""
    return update(login_attempts).where(login_attempts.c.id == attempt_id).values(success=True)


async def _failures(
    conn: AsyncConnection,
    table: Table,
    key: tuple[Any, ...],
    mine: int,
    since: datetime,
    limit: int,
    *,
    reset: bool,
) -> list[datetime]:
    """The failures of `key` since `since` (and, with `reset`, since its last
    success; attempt `mine` always), newest first, at most `limit` + 1."""
    c = table.c
    query = select(c.created_at).where(*key, ~c.success, c.created_at >= to_micros(since))
    if reset:
        last_success = (
            select(func.coalesce(func.max(c.id), 0)).where(*key, c.success).scalar_subquery()
        )
        query = query.where((c.id > last_success) | (c.id == mine))
    query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit + 1)
    return [from_micros(row[0]) for row in (await conn.execute(query)).all()]
