"""The ledger's storage: projects, meters, the daily aggregates of usage
(kept by triggers, migration 0004) and credit grants."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..catalog.meter_model import Aggregation, Meter
from ..domain.errors import IdempotencyKeyReused, NotFound, ProjectOwnerChanged
from ..domain.instants import from_micros, to_micros
from ..domain.models import Page, Project
from ..storage.tables import credit_grants, meters, projects, usage_daily
from ..storage.transactions import Transactions
from .bills import DailyUsage, Grant

MAX_METERS = 1000


class LedgerStore(Transactions):
    # -- projects -----------------------------------------------------------

    async def upsert_project(
        self, operator_id: int, project_id: str, name: str, owner_key: str, now: datetime
    ) -> tuple[Project, bool]:
        where = (projects.c.operator_id == operator_id, projects.c.id == project_id)

        async def work(conn: AsyncConnection) -> tuple[Project, bool]:
            created = (
                await conn.execute(
                    self._insert(projects)
                    .values(
                        operator_id=operator_id,
                        id=project_id,
                        owner=owner_key,
                        name=name,
                        created_at=to_micros(now),
                        updated_at=to_micros(now),
                    )
                    .on_conflict_do_nothing()
                    .returning(projects.c.id)
                )
            ).first() is not None
            row = (await conn.execute(select(projects).where(*where))).one()
            if row.owner != owner_key:
                raise ProjectOwnerChanged(project_id)
            if not created and row.name != name:
                await conn.execute(
                    update(projects).where(*where).values(name=name, updated_at=to_micros(now))
                )
                row = (await conn.execute(select(projects).where(*where))).one()
            return _project(row), created

        return await self._write(work)

    async def get_project(self, operator_id: int, project_id: str) -> Project:
        query = select(projects).where(
            projects.c.operator_id == operator_id, projects.c.id == project_id
        )

        async def work(conn: AsyncConnection) -> Project:
            row = (await conn.execute(query)).first()
            if row is None:
                raise NotFound("project", project_id)
            return _project(row)

        return await self._read(work)

    async def list_projects(
        self, operator_id: int, owner_key: str, after: str | None, limit: int
    ) -> Page[Project]:
        query = select(projects).where(
            projects.c.operator_id == operator_id, projects.c.owner == owner_key
        )
        if after is not None:
            query = query.where(projects.c.id > after)
        query = query.order_by(projects.c.id).limit(limit + 1)

        async def work(conn: AsyncConnection) -> Page[Project]:
            found = [_project(row) for row in (await conn.execute(query)).all()]
            if len(found) > limit:
                return Page(found[:limit], found[limit - 1].id)
            return Page(found, None)

        return await self._read(work)

    async def project_names(self, operator_id: int, ids: Sequence[str]) -> dict[str, str]:
        query = select(projects.c.id, projects.c.name).where(
            projects.c.operator_id == operator_id, projects.c.id.in_(list(ids))
        )

        async def work(conn: AsyncConnection) -> dict[str, str]:
            return {row.id: row.name for row in (await conn.execute(query)).all()}

        return await self._read(work)

    # -- meters -------------------------------------------------------------

    async def upsert_meter(
        self, operator_id: int, meter: Meter, now: datetime
    ) -> tuple[Meter, bool]:
        values = {
            "display_name": meter.display_name,
            "unit": meter.unit,
            "aggregation": meter.aggregation.value,
            "scale": meter.scale,
            "stripe_event_name": meter.stripe_event_name,
            "updated_at": to_micros(now),
        }
        where = (meters.c.operator_id == operator_id, meters.c.key == meter.key)

        async def work(conn: AsyncConnection) -> tuple[Meter, bool]:
            created = (
                await conn.execute(
                    self._insert(meters)
                    .values(
                        operator_id=operator_id,
                        key=meter.key,
                        created_at=to_micros(now),
                        **values,
                    )
                    .on_conflict_do_nothing()
                    .returning(meters.c.key)
                )
            ).first() is not None
            if not created:
                await conn.execute(update(meters).where(*where).values(**values))
            return _meter((await conn.execute(select(meters).where(*where))).one()), created

        return await self._write(work)

    async def declared_meters(self, operator_id: int) -> list[Meter]:
        query = (
            select(meters)
            .where(meters.c.operator_id == operator_id)
            .order_by(meters.c.key)
            .limit(MAX_METERS)
        )

        async def work(conn: AsyncConnection) -> list[Meter]:
            return [_meter(row) for row in (await conn.execute(query)).all()]

        return await self._read(work)

    # -- usage aggregates ---------------------------------------------------

    async def daily_usage(
        self,
        operator_id: int,
        owner_key: str,
        first_day: int | None = None,
        last_day: int | None = None,
        project_id: str | None = None,
    ) -> list[DailyUsage]:
        """The owner's daily aggregates in [first_day, last_day] (every day
        when None), of one project when given."""
        d = usage_daily.c
        query = select(usage_daily).where(d.operator_id == operator_id, d.tenant_id == owner_key)
        if first_day is not None:
            query = query.where(d.day >= first_day)
        if last_day is not None:
            query = query.where(d.day <= last_day)
        if project_id is not None:
            query = query.where(d.project_id == project_id)

        async def work(conn: AsyncConnection) -> list[DailyUsage]:
            return [_daily(row) for row in (await conn.execute(query)).all()]

        return await self._read(work)

    # -- credits ------------------------------------------------------------

    async def grant_credits(
        self,
        operator_id: int,
        owner_key: str,
        amount_cents: int,
        expires_at: datetime | None,
        reason: str,
        idempotency_key: str | None,
        now: datetime,
    ) -> tuple[Grant, bool]:
        values = {
            "tenant_id": owner_key,
            "amount_cents": amount_cents,
            "expires_at": None if expires_at is None else to_micros(expires_at),
            "reason": reason,
        }

        async def work(conn: AsyncConnection) -> tuple[Grant, bool]:
            inserted = (
                await conn.execute(
                    self._insert(credit_grants)
                    .values(
                        operator_id=operator_id,
                        granted_at=to_micros(now),
                        idempotency_key=idempotency_key,
                        **values,
                    )
                    .on_conflict_do_nothing()
                    .returning(credit_grants.c.id)
                )
            ).first()
            if inserted is not None:
                row = await _grant_row(conn, credit_grants.c.id == inserted.id)
                return _grant(row), False
            row = await _grant_row(
                conn,
                credit_grants.c.operator_id == operator_id,
                credit_grants.c.idempotency_key == idempotency_key,
            )
            if any(getattr(row, name) != value for name, value in values.items()):
                raise IdempotencyKeyReused(idempotency_key or "")
            return _grant(row), True

        return await self._write(work)

    async def grants(self, operator_id: int, owner_key: str) -> list[Grant]:
        query = (
            select(credit_grants)
            .where(
                credit_grants.c.operator_id == operator_id, credit_grants.c.tenant_id == owner_key
            )
            .order_by(credit_grants.c.id)
        )

        async def work(conn: AsyncConnection) -> list[Grant]:
            return [_grant(row) for row in (await conn.execute(query)).all()]

        return await self._read(work)


async def _grant_row(conn: AsyncConnection, *where: Any) -> Row[Any]:
    return (await conn.execute(select(credit_grants).where(*where))).one()


def _project(row: Row[Any]) -> Project:
    return Project(
        id=row.id,
        name=row.name,
        owner_key=row.owner,
        created_at=from_micros(row.created_at),
        updated_at=from_micros(row.updated_at),
    )


def _meter(row: Row[Any]) -> Meter:
    return Meter(
        key=row.key,
        display_name=row.display_name,
        unit=row.unit,
        aggregation=Aggregation(row.aggregation),
        scale=row.scale,
        stripe_event_name=row.stripe_event_name,
        created_at=from_micros(row.created_at),
        updated_at=from_micros(row.updated_at),
    )


def _daily(row: Row[Any]) -> DailyUsage:
    return DailyUsage(
        project_id=row.project_id,
        primitive=row.primitive,
        day=row.day,
        total=row.total,
        peak=row.peak,
        last_value=row.last_value,
        last_at=row.last_at,
        last_id=row.last_id,
        events=row.events,
    )


def _grant(row: Row[Any]) -> Grant:
    return Grant(
        id=row.id,
        amount_cents=row.amount_cents,
        granted_at=from_micros(row.granted_at),
        expires_at=None if row.expires_at is None else from_micros(row.expires_at),
        reason=row.reason,
    )
