"""Storage of usage alerts (raised by a trigger, migration 0006, and by
changes of limit), their dispatch into in-app notifications and deliveries, the operators' alert
webhooks, and the delivery outbox the senders work from."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, RowMapping, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.instants import from_micros, to_micros
from ..domain.models import Plan, Subscription
from ..domain.owners import Owner, OwnerKind
from ..domain.periods import window_at
from ..domain.quantities import micro
from ..metering.decide import THRESHOLDS
from ..storage.settling import Settlement, settle_statements
from ..storage.tables import usage_events
from ..storage.tables.end_users import (
    alert_webhooks,
    deliveries,
    end_users,
    notifications,
    push_tokens,
    usage_alerts,
)
from ..storage.transactions import Transactions
from .model import Channel, EndUser, Notification, PushPlatform, UsageAlert
from .push_tokens import tokens_of
from .store import end_user_from_row

_a, _n, _d = usage_alerts, notifications, deliveries
_UNDISPATCHED = _a.c.dispatched_at.is_(None)


@dataclass(frozen=True, slots=True)
class NewDelivery:
    operator_id: int
    channel: Channel
    target: str
    subject: str
    body: str
    # The body is sealed with the secrets box (it holds a code), opened to send.
    sealed: bool = field(default=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Delivery(NewDelivery):
    id: int
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Recipients:
    """Who an alert may reach: the user whose id is the owner's (if any),
    their push tokens, and the operator's webhook URL (if set)."""

    user: EndUser | None
    tokens: list[tuple[str, PushPlatform]]
    webhook_url: str | None


@dataclass(frozen=True, slots=True)
class Dispatch:
    """What an alert becomes: an in-app notification (title, body) and deliveries."""

    notification: tuple[str, str] | None
    deliveries: list[NewDelivery]


def queue_delivery(delivery: NewDelivery, now: datetime) -> Any:
    """The statement queueing a delivery, for another store's transaction."""
    return _d.insert().values(
        operator_id=delivery.operator_id,
        channel=delivery.channel.value,
        target=delivery.target,
        subject=delivery.subject,
        body=delivery.body,
        sealed=delivery.sealed,
        created_at=to_micros(now),
        due_at=to_micros(now),
    )


def changed_limits(old: Plan | None, new: Plan) -> dict[str, int]:
    """The new plan's positive limits (micro-units) that differ from the old
    plan's (None: no limit was in force), by primitive."""
    before = {} if old is None else old.quotas
    return {
        primitive: micro(limit)
        for primitive, limit in new.quotas.items()
        if limit > 0 and before.get(primitive) != limit
    }


async def raise_reached_alerts(
    conn: AsyncConnection,
    operator_id: int,
    subscription: Subscription,
    plan: Plan,
    limits: dict[str, int],
    now: datetime,
) -> None:
    """After a change of `limits` (micro-units, by primitive) in the
    subscription's transaction: raise each threshold its usage of the
    current period has reached, as a write crossing it would have (once per
    period: the trigger's unique key, so a later write raises none again)."""
    if not limits or not subscription.status.enforces_plan:
        return
    window = window_at(plan.period, subscription.cycle_anchor, now)
    e = usage_events
    used_query = (
        select(e.c.primitive, func.sum(e.c.quantity))
        .where(
            e.c.operator_id == operator_id,
            e.c.tenant_id == subscription.tenant_id,
            e.c.primitive.in_(list(limits)),
            e.c.occurred_at >= to_micros(window.start),
            e.c.occurred_at < to_micros(window.end),
            e.c.refunded_at.is_(None),
        )
        .group_by(e.c.primitive)
    )
    used = {primitive: int(total) for primitive, total in await conn.execute(used_query)}
    reached = [
        {
            "operator_id": operator_id,
            "tenant_id": subscription.tenant_id,
            "primitive": primitive,
            "window_start": to_micros(window.start),
            "window_end": to_micros(window.end),
            "threshold": percent,
            "used": used[primitive],
            "quota_limit": limit,
            "created_at": to_micros(now),
        }
        for primitive, limit in limits.items()
        for percent in THRESHOLDS
        if primitive in used and used[primitive] * 100 >= percent * limit
    ]
    if reached:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        await conn.execute(insert(usage_alerts).values(reached).on_conflict_do_nothing())


class AlertsStore(Transactions):
    # -- webhooks -------------------------------------------------------------

    async def set_webhook(self, operator_id: int, url: str, sealed: str, now: datetime) -> None:
        values = {"url": url, "secret": sealed, "updated_at": to_micros(now)}
        statement = (
            self._insert(alert_webhooks)
            .values(operator_id=operator_id, **values)
            .on_conflict_do_update(index_elements=["operator_id"], set_=values)
        )
        await self._write(lambda conn: conn.execute(statement))

    async def remove_webhook(self, operator_id: int) -> None:
        statement = delete(alert_webhooks).where(alert_webhooks.c.operator_id == operator_id)
        await self._write(lambda conn: conn.execute(statement))

    async def webhook_secret(self, operator_id: int) -> str | None:
        """The sealed signing secret of the operator's webhook."""
        query = select(alert_webhooks.c.secret).where(alert_webhooks.c.operator_id == operator_id)

        async def work(conn: AsyncConnection) -> str | None:
            return (await conn.execute(query)).scalar_one_or_none()

        return await self._read(work)

    # -- alerts and notifications -------------------------------------------

    async def alerts(self, operator_id: int, limit: int) -> list[UsageAlert]:
        query = select(_a).where(_a.c.operator_id == operator_id).order_by(_a.c.id.desc())

        async def work(conn: AsyncConnection) -> list[UsageAlert]:
            return [_alert(row) for row in (await conn.execute(query.limit(limit))).all()]

        return await self._read(work)

    async def dispatch(
        self, now: datetime, limit: int, compose: Callable[[UsageAlert, Recipients], Dispatch]
    ) -> int:
        """Turn up to `limit` undispatched alerts into what `compose` says,
        each exactly once: the alerts are marked in the same transaction
        (on PostgreSQL, concurrent dispatchers skip each other's rows)."""
        due = select(_a).where(_UNDISPATCHED).order_by(_a.c.id).limit(limit)
        if self._postgres:
            due = due.with_for_update(skip_locked=True)

        # A read first: an idle worker takes no write lock (SQLite's is one).
        if not await self._read(lambda conn: _any(conn, select(_a.c.id).where(_UNDISPATCHED))):
            return 0

        async def work(conn: AsyncConnection) -> int:
            rows = (await conn.execute(due)).all()
            for row in rows:
                alert = _alert(row)
                dispatch = compose(alert, await _recipients(conn, alert))
                if dispatch.notification is not None:
                    title, body = dispatch.notification
                    await conn.execute(
                        _n.insert().values(
                            operator_id=alert.operator_id,
                            user_id=Owner.from_key(alert.owner_key).id,
                            alert_id=alert.id,
                            title=title,
                            body=body,
                            created_at=to_micros(now),
                        )
                    )
                for delivery in dispatch.deliveries:
                    await conn.execute(queue_delivery(delivery, now))
            if rows:
                await conn.execute(
                    update(_a)
                    .where(_a.c.id.in_([row.id for row in rows]))
                    .values(dispatched_at=to_micros(now))
                )
            return len(rows)

        return await self._write(work)

    async def notifications(
        self, operator_id: int, user_id: str, limit: int, unread_only: bool
    ) -> list[Notification]:
        query = _notifications().where(_n.c.operator_id == operator_id, _n.c.user_id == user_id)
        if unread_only:
            query = query.where(_n.c.read_at.is_(None))
        query = query.order_by(_n.c.id.desc()).limit(limit)

        async def work(conn: AsyncConnection) -> list[Notification]:
            return [_notification(row) for row in (await conn.execute(query)).all()]

        return await self._read(work)

    async def mark_read(
        self, operator_id: int, user_id: str, notification_id: int, now: datetime
    ) -> Notification | None:
        mine = (_n.c.operator_id == operator_id, _n.c.user_id == user_id)

        async def work(conn: AsyncConnection) -> Notification | None:
            await conn.execute(
                update(_n)
                .where(*mine, _n.c.id == notification_id, _n.c.read_at.is_(None))
                .values(read_at=to_micros(now))
            )
            row = (
                await conn.execute(_notifications().where(*mine, _n.c.id == notification_id))
            ).first()
            return None if row is None else _notification(row)

        return await self._write(work)

    # -- the delivery outbox --------------------------------------------------

    async def claim(
        self, now: datetime, lease: timedelta, limit: int, channels: Sequence[Channel]
    ) -> list[Delivery]:
        """Take up to `limit` due deliveries on `channels` for `lease`, oldest first."""
        due = (
            select(_d.c.id)
            .where(
                _d.c.delivered_at.is_(None),
                _d.c.failed_at.is_(None),
                _d.c.due_at <= to_micros(now),
                _d.c.channel.in_([channel.value for channel in channels]),
                _d.c.claimed_until.is_(None) | (_d.c.claimed_until <= to_micros(now)),
            )
            .order_by(_d.c.due_at, _d.c.id)
            .limit(limit)
        )
        if not await self._read(lambda conn: _any(conn, due)):
            return []
        if self._postgres:
            due = due.with_for_update(skip_locked=True)
        claim = (
            update(_d)
            .where(_d.c.id.in_(due.scalar_subquery()))
            .values(claimed_until=to_micros(now + lease), attempts=_d.c.attempts + 1)
            .returning(_d)
        )

        async def work(conn: AsyncConnection) -> list[Delivery]:
            rows = sorted((await conn.execute(claim)).all(), key=lambda row: row.id)
            return [_delivery(row) for row in rows]

        return await self._write(work)

    async def settle(self, outcome: Settlement, now: datetime) -> None:
        """Record what became of claimed deliveries, in one transaction. A
        delivered mail's body is not kept (it may hold a token)."""
        statements = settle_statements(_d, outcome, now, body="")

        async def work(conn: AsyncConnection) -> None:
            for statement in statements:
                await conn.execute(statement)

        if statements:
            await self._write(work)

    async def pending(self, channel: Channel) -> int:
        query = select(func.count()).where(
            _d.c.channel == channel.value, _d.c.delivered_at.is_(None), _d.c.failed_at.is_(None)
        )

        async def work(conn: AsyncConnection) -> int:
            return int((await conn.execute(query)).scalar_one())

        return await self._read(work)

    async def undispatched(self) -> int:
        query = select(func.count()).where(_UNDISPATCHED)

        async def work(conn: AsyncConnection) -> int:
            return int((await conn.execute(query)).scalar_one())

        return await self._read(work)

    async def forget_token(self, operator_id: int, token: str) -> None:
        """A token the push service no longer knows (DeviceNotRegistered)."""
        statement = delete(push_tokens).where(
            push_tokens.c.operator_id == operator_id, push_tokens.c.token == token
        )
        await self._write(lambda conn: conn.execute(statement))

    async def deliveries(self, operator_id: int) -> Sequence[Row[Any]]:
        """Every delivery of the operator, oldest first (for tests and support)."""
        query = select(_d).where(_d.c.operator_id == operator_id).order_by(_d.c.id)
        return await self._read(lambda conn: _all(conn, query))


async def _any(conn: AsyncConnection, query: Any) -> bool:
    return (await conn.execute(query.limit(1))).first() is not None


async def _all(conn: AsyncConnection, query: Any) -> Sequence[Row[Any]]:
    return (await conn.execute(query)).all()


async def _recipients(conn: AsyncConnection, alert: UsageAlert) -> Recipients:
    owner = Owner.from_key(alert.owner_key)
    user, tokens = None, []
    if owner.kind is OwnerKind.USER:
        row = (
            await conn.execute(
                select(end_users).where(
                    end_users.c.operator_id == alert.operator_id, end_users.c.id == owner.id
                )
            )
        ).first()
        if row is not None:
            user = end_user_from_row(row)
            tokens = await tokens_of(conn, alert.operator_id, owner.id)
    webhook = await conn.execute(
        select(alert_webhooks.c.url).where(alert_webhooks.c.operator_id == alert.operator_id)
    )
    return Recipients(user, tokens, webhook.scalar_one_or_none())


def _notifications() -> Any:
    return select(_n, _a).join(_a, _a.c.id == _n.c.alert_id)


def _alert(row: Row[Any]) -> UsageAlert:
    """From a row with usage_alerts' columns (keyed by column: a row may
    join another table with the same names)."""
    mapping: RowMapping = row._mapping
    return UsageAlert(
        id=mapping[_a.c.id],
        operator_id=mapping[_a.c.operator_id],
        owner_key=mapping[_a.c.tenant_id],
        primitive=mapping[_a.c.primitive],
        threshold=mapping[_a.c.threshold],
        used=mapping[_a.c.used],
        limit=mapping[_a.c.quota_limit],
        period_start=from_micros(mapping[_a.c.window_start]),
        period_end=from_micros(mapping[_a.c.window_end]),
        created_at=from_micros(mapping[_a.c.created_at]),
    )


def _notification(row: Row[Any]) -> Notification:
    mapping = row._mapping
    read_at = mapping[_n.c.read_at]
    return Notification(
        id=mapping[_n.c.id],
        title=mapping[_n.c.title],
        body=mapping[_n.c.body],
        created_at=from_micros(mapping[_n.c.created_at]),
        read_at=None if read_at is None else from_micros(read_at),
        alert=_alert(row),
    )


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        operator_id=row.operator_id,
        channel=Channel(row.channel),
        target=row.target,
        subject=row.subject,
        body=row.body,
        sealed=row.sealed,
        id=row.id,
        attempts=row.attempts,
        created_at=from_micros(row.created_at),
    )
