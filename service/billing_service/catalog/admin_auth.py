"""The admin credential: the one key that calls billing.v1.AdminService.

It is not an operator's key and is stored nowhere in the database: the
setting BILLING_ADMIN_KEY_HASH holds its SHA-256 (hex), as operator keys'
rows do; a slow password hash buys nothing against 256 random bits.
`billing-service admin-key create` mints one and prints both.
"""

import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from ..domain.errors import Unauthenticated
from .keys import ADMIN_KEY_PREFIX, KEY_PREFIX, _bearer, hash_key

ADMIN_KEY_HASH_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class AdminCaller:
    """Who an admin call is: the admin key's id, a prefix of its hash (not
    secret), for the log."""

    key_id: str


@dataclass(frozen=True, slots=True)
class NewAdminKey:
    secret: str  # shown once, never stored
    hash: str


def mint_admin_key() -> NewAdminKey:
    secret = ADMIN_KEY_PREFIX + secrets.token_urlsafe(32)
    return NewAdminKey(secret=secret, hash=hash_key(secret))


class AdminAuthenticator:
    """Resolves `authorization: Bearer <admin key>` against the configured
    hash. The comparison is of two hashes of fixed length, in constant time
    (hmac.compare_digest): how long a refusal takes says nothing of how
    close the key was. Nothing is cached: admin calls are rare."""

    def __init__(self, key_hash: str) -> None:
        self._hash = key_hash

    def cached(self, _metadata: Iterable[tuple[str, str | bytes]]) -> None:
        return None

    async def authenticate(self, metadata: Iterable[tuple[str, str | bytes]]) -> AdminCaller:
        _raw, secret = _bearer(metadata)
        if not self._hash:
            raise Unauthenticated(
                "the admin API is off: no admin credential is configured (BILLING_ADMIN_KEY_HASH)"
            )
        if secret.startswith(KEY_PREFIX):
            raise Unauthenticated("an operator's API key cannot call AdminService")
        if not hmac.compare_digest(hash_key(secret).encode(), self._hash.encode()):
            raise Unauthenticated("invalid admin credential")
        return AdminCaller(key_id="admin_" + self._hash[:12])
