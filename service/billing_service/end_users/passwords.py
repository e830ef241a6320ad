"""Password hashing with argon2id (argon2-cffi), off the event loop."""

import asyncio
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    """Hashes with the parameters the settings give; a hash made with other
    parameters still verifies, and `needs_rehash` says to replace it."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` is the one hashed. Without a hash (no such
        user), a hash is verified all the same: an unknown email takes as
        long to refuse as a wrong password."""
        try:
            return (
                await asyncio.to_thread(self._hasher.verify, password_hash or self._decoy, password)
                and password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    @cached_property
    def _decoy(self) -> str:
        return self._hasher.hash("not anyone's password")
