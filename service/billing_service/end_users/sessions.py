"""End users' session tokens: minting, and authenticating a call's bearer
token. Told apart from operators' API keys by their prefix."""

import hashlib
import secrets
from collections.abc import Iterable

from ..catalog.keys import KEY_PREFIX, MAX_AUTHORIZATION, SESSION_PREFIX
from ..clock import Clock
from ..domain.errors import Unauthenticated
from .model import Session
from .store import UsersStore


def mint_session_token() -> str:
    """256 random bits; only the SHA-256 is stored, as for API keys."""
    return SESSION_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionAuthenticator:
    """Resolves `authorization: Bearer <session token>` to its session.
    Nothing is cached: a session revoked or expired is refused on its very
    next call, on every replica, for one indexed read per call."""

    def __init__(self, users: UsersStore, clock: Clock) -> None:
        self._users = users
        self._clock = clock

    def cached(self, metadata: Iterable[tuple[str, str | bytes]]) -> None:
        return None

    async def authenticate(self, metadata: Iterable[tuple[str, str | bytes]]) -> Session:
        token = _bearer(metadata)
        if token.startswith(KEY_PREFIX):
            raise Unauthenticated(
                "an operator API key cannot call end users' RPCs: send the user's session token"
            )
        if not token.startswith(SESSION_PREFIX):
            raise Unauthenticated("invalid, expired or revoked session token")
        session = await self._users.session_by_token_hash(hash_token(token), self._clock.now())
        if session is None:
            raise Unauthenticated("invalid, expired or revoked session token")
        return session


def _bearer(metadata: Iterable[tuple[str, str | bytes]]) -> str:
    for name, value in metadata:
        if name == "authorization":
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            if len(text) > MAX_AUTHORIZATION or scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization must be 'Bearer <session token>'")
            return token.strip()
    raise Unauthenticated(
        "missing authorization metadata: send 'authorization: Bearer <session token>'"
    )
