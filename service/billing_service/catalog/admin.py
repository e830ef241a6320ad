"""Operators and their API keys, administered: what AdminService, the CLI
and the bootstrap share.

There is no audit trail yet: every change is logged at INFO with who made
it (the admin key's id, or `cli`/`bootstrap`) and the key ids involved,
never a secret.
"""

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from ..clock import Clock
from ..domain import pagination, validation
from ..domain.errors import FailedPrecondition, InvalidArgument
from ..domain.models import ApiKeyInfo, Operator, Page
from .key_store import NewKeyRow
from .keys import NewKey, mint_key
from .store import Store

log = logging.getLogger(__name__)

SCOPES = ("full", "metering", "read")  # api/scopes.py says what each admits
MAX_OVERLAP = timedelta(days=30)


def key_scopes(field: str, values: Iterable[str]) -> tuple[str, ...]:
    """A key's scopes: known ones, each once; none given means `full`."""
    scopes: list[str] = []
    for value in values:
        if value not in SCOPES:
            shown = value if len(value) <= 40 else value[:40] + "..."
            raise InvalidArgument(field, f"unknown scope '{shown}': use one of {', '.join(SCOPES)}")
        if value not in scopes:
            scopes.append(value)
    return tuple(scopes) or ("full",)


def expiry(field: str, value: datetime | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    validation.instant(field, value, now)
    if value <= now:
        raise InvalidArgument(field, "must be in the future")
    return value


class Admin:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create_operator(self, by: str, name: str) -> Operator:
        operator = await self._store.create_operator(
            validation.name("name", name), self._clock.now()
        )
        log.info("admin %s created operator '%s'", by, operator.name)
        return operator

    async def get_operator(self, name: str) -> Operator:
        return await self._store.operator(validation.name("operator", name))

    async def list_operators(self, page_size: int, page_token: str) -> Page[Operator]:
        return await self._store.operators_page(
            pagination.decode("page_token", page_token),
            validation.page_size("page_size", page_size),
        )

    async def disable_operator(self, by: str, name: str) -> Operator:
        operator = await self._store.disable_operator(
            validation.name("operator", name), self._clock.now()
        )
        log.info("admin %s disabled operator '%s'", by, operator.name)
        return operator

    async def create_key(
        self, by: str, operator_name: str, scopes: Iterable[str], expires_at: datetime | None
    ) -> tuple[ApiKeyInfo, NewKey]:
        now = self._clock.now()
        operator = await self._store.operator(validation.name("operator", operator_name))
        key = mint_key()
        scopes = key_scopes("scopes", scopes)
        row = NewKeyRow(
            key.id, key.hash, key.prefix, scopes, expiry("expire_time", expires_at, now)
        )
        info = await self._store.add_key(operator.id, row, now)
        log.info(
            "admin %s created key %s (%s) for operator '%s'",
            by,
            info.id,
            " ".join(info.scopes),
            operator.name,
        )
        return info, key

    async def operator_name(self, operator_id: int) -> str:
        return await self._store.operator_name(operator_id)

    async def list_keys(self, operator_name: str) -> list[ApiKeyInfo]:
        operator = await self._store.operator(validation.name("operator", operator_name))
        return await self._store.list_keys(operator.id)

    async def revoke_key(self, by: str, key_id: str) -> ApiKeyInfo:
        key = await self._store.revoke_api_key(_key_id(key_id), self._clock.now())
        log.info("admin %s revoked key %s", by, key.id)
        return key

    async def rotate_key(
        self, by: str, key_id: str, overlap: timedelta
    ) -> tuple[ApiKeyInfo, ApiKeyInfo, NewKey]:
        if not timedelta(0) <= overlap <= MAX_OVERLAP:
            raise InvalidArgument("overlap", "must be between 0 and 30 days")
        now = self._clock.now()
        old = await self._store.key(_key_id(key_id))
        if old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= now):
            raise FailedPrecondition(f"key {old.id} is revoked or expired: create a new key")
        key = mint_key()
        row = NewKeyRow(key.id, key.hash, key.prefix, old.scopes, old.expires_at)
        old, new = await self._store.rotate_key(old.id, row, now + overlap, now)
        log.info("admin %s rotated key %s into %s (overlap %s)", by, old.id, new.id, overlap)
        return old, new, key


def _key_id(value: str) -> str:
    if not value:
        raise InvalidArgument("key_id", "is required")
    if len(value) > 32 or not value.isascii() or not value.isprintable():
        raise InvalidArgument("key_id", "is not an id returned by this service")
    return value
