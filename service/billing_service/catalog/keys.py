"""Operators' API keys: minting, and authenticating a request's bearer key."""

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..domain.errors import Unauthenticated
from .key_store import KeyGrant
from .store import Store

KEY_PREFIX = "bsk_"
# The admin credential (catalog/admin_auth.py): never an operator's key.
ADMIN_KEY_PREFIX = "bak_"
# An end user's session token (end_users/sessions.py): never an operator's key.
SESSION_PREFIX = "bus_"
_MAX_CACHED_KEYS = 10_000
# An authorization value longer than this cannot hold one of our keys.
MAX_AUTHORIZATION = 512


@dataclass(frozen=True, slots=True)
class NewKey:
    id: str
    secret: str  # shown once, never stored
    hash: str
    prefix: str


def mint_key() -> NewKey:
    """A new key: 256 random bits. Only its SHA-256 is stored; a slow password
    hash buys nothing against a secret of this entropy, and a deterministic
    hash lets every request find its key in one indexed lookup."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(
        id="key_" + secrets.token_hex(8),
        secret=secret,
        hash=hash_key(secret),
        prefix=secret[:10],
    )


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Authenticator:
    """Resolves `authorization: Bearer <key>` to the key's grant: its
    operator, scopes and expiry (the guard checks the scopes).

    Keys found are cached for `cache_seconds`: the longest a revoked key keeps
    working on a replica that has just seen it. The cache is keyed by the raw
    header value, so that a hit (nearly every call) costs one dict lookup:
    no parsing, no hashing. Refused keys are not cached (anyone can send any
    number of them; each costs one indexed read), and a value too long to be a
    key is refused before any lookup.

    A key is looked up once at a time: when its entry expires under load,
    every call in flight with that key waits for the same query rather than
    sending its own (a burst of identical queries every `cache_seconds`).
    Those calls get the answer of a query that started at most one lookup
    earlier than their own would have.

    An entry never outlives its key's expire time: an expired key is
    refused at once, on every replica.
    """

    def __init__(
        self,
        store: Store,
        cache_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._store = store
        self._ttl = cache_seconds
        self._monotonic = monotonic  # injected, so tests can move it
        self._now = now  # the wall clock keys expire by
        # raw authorization value -> (grant, expiry), for keys found
        self._cache: dict[str | bytes, tuple[KeyGrant, float]] = {}
        # raw authorization value -> the lookup in flight
        self._lookups: dict[str | bytes, asyncio.Task[KeyGrant | None]] = {}

    def cached(self, metadata: Iterable[tuple[str, str | bytes]]) -> KeyGrant | None:
        """The grant of a key answered recently; None when it must be looked up."""
        for name, value in metadata:
            if name == "authorization":
                hit = self._cache.get(value)
                if hit is not None and hit[1] > self._monotonic():
                    return hit[0]
                return None
        return None

    async def authenticate(self, metadata: Iterable[tuple[str, str | bytes]]) -> KeyGrant:
        raw, secret = _bearer(metadata)
        if secret.startswith(SESSION_PREFIX):
            raise Unauthenticated(
                "an end user's session token cannot call operator RPCs: send an operator API key"
            )
        if secret.startswith(ADMIN_KEY_PREFIX):
            raise Unauthenticated(
                "the admin credential only calls billing.v1.AdminService: send an operator API key"
            )
        cached = self._cache.get(raw)
        grant: KeyGrant | None
        if cached is not None and cached[1] > self._monotonic():
            grant = cached[0]
        else:
            lookup = self._lookups.get(raw)
            if lookup is None:
                lookup = asyncio.create_task(self._look_up(raw, secret))
                self._lookups[raw] = lookup
                lookup.add_done_callback(lambda done: self._looked_up(raw, done))
            # Shielded: a caller that gives up (its deadline passed) leaves
            # the lookup to the others waiting for it.
            grant = await asyncio.shield(lookup)
        if grant is None:
            raise Unauthenticated("invalid, revoked or expired API key")
        return grant

    async def _look_up(self, raw: str | bytes, secret: str) -> KeyGrant | None:
        started, now = self._monotonic(), self._now()
        grant = await self._store.grant_for_hash(hash_key(secret), now)
        if self._ttl > 0 and grant is not None:
            if len(self._cache) >= _MAX_CACHED_KEYS:
                self._cache.clear()
            until = started + self._ttl
            if grant.expires_at is not None:
                until = min(until, started + (grant.expires_at - now).total_seconds())
            self._cache[raw] = (grant, until)
        return grant

    def _looked_up(self, raw: str | bytes, lookup: "asyncio.Task[KeyGrant | None]") -> None:
        if self._lookups.get(raw) is lookup:
            del self._lookups[raw]
        if not lookup.cancelled():
            lookup.exception()  # retrieved: every waiter may have given up


def _bearer(metadata: Iterable[tuple[str, str | bytes]]) -> tuple[str | bytes, str]:
    """The raw authorization value and the key it carries."""
    for name, value in metadata:
        if name == "authorization":
            if len(value) > MAX_AUTHORIZATION:
                raise Unauthenticated("authorization is too long to hold an API key")
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, secret = text.strip().partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise Unauthenticated("authorization must be 'Bearer <key>'")
            return value, secret.strip()
    raise Unauthenticated("missing authorization metadata: send 'authorization: Bearer <key>'")
