"""Account kits and plans: the operator's control plane."""

import secrets
from datetime import datetime

from ..clock import Clock
from ..domain import pagination
from ..domain import validation as v
from ..domain.models import AccountKit, Page, Period, Plan
from .store import Store


class Catalog:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def upsert_kit(
        self,
        operator_id: int,
        kit_id: str,
        name: str,
        primitives: list[str],
        permissions: list[str],
    ) -> tuple[AccountKit, bool]:
        kit_id = v.key("id", kit_id) if kit_id else "kit_" + secrets.token_hex(8)
        return await self._store.upsert_kit(
            operator_id,
            kit_id,
            v.name("name", name),
            v.kit_primitives("primitives", primitives),
            v.permissions("permissions", permissions),
            self._now(),
        )

    async def get_kit(self, operator_id: int, kit_id: str) -> AccountKit:
        return await self._store.get_kit(operator_id, v.key("id", kit_id))

    async def list_kits(
        self, operator_id: int, page_size: int, page_token: str
    ) -> Page[AccountKit]:
        return await self._store.list_kits(
            operator_id,
            pagination.decode("page_token", page_token),
            v.page_size("page_size", page_size),
        )

    async def upsert_plan(
        self,
        operator_id: int,
        key: str,
        name: str,
        account_kit_id: str,
        stripe_price_id: str,
        quotas: dict[str, int],
        period: Period | None,
        prices: dict[str, tuple[str, str]] | None = None,
        currency: str = "",
    ) -> tuple[Plan, bool]:
        return await self._store.upsert_plan(
            operator_id,
            v.key("key", key),
            v.name("name", name),
            v.key("account_kit_id", account_kit_id) if account_kit_id else None,
            v.external_id("stripe_price_id", stripe_price_id),
            v.quotas("quotas", quotas),
            period or Period.MONTH,
            v.prices("prices", prices or {}),
            v.currency("currency", currency),
            self._now(),
        )

    async def get_plan(self, operator_id: int, key: str) -> Plan:
        return await self._store.get_plan(operator_id, v.key("key", key))

    async def list_plans(
        self, operator_id: int, page_size: int, page_token: str, include_archived: bool
    ) -> Page[Plan]:
        return await self._store.list_plans(
            operator_id,
            pagination.decode("page_token", page_token),
            v.page_size("page_size", page_size),
            include_archived,
        )

    async def archive_plan(self, operator_id: int, key: str) -> Plan:
        return await self._store.archive_plan(operator_id, v.key("key", key), self._now())

    def _now(self) -> datetime:
        return self._clock.now()
