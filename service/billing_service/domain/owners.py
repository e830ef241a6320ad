"""Owners: whom usage, subscriptions and bills belong to, one of the
operator's users or organizations.

Storage keys every owner by one string (the `tenant_id` columns): a user by
its id, unchanged from when every tenant was a user, an organization by
`org/` and its id. Owner ids never contain '/', so the two cannot meet.
"""

import enum
from dataclasses import dataclass

ORGANIZATION_PREFIX = "org/"


class OwnerKind(enum.StrEnum):
    USER = "user"
    ORGANIZATION = "organization"


@dataclass(frozen=True, slots=True)
class Owner:
    kind: OwnerKind
    id: str

    @classmethod
    def user(cls, user_id: str) -> "Owner":
        return cls(OwnerKind.USER, user_id)

    @classmethod
    def organization(cls, organization_id: str) -> "Owner":
        return cls(OwnerKind.ORGANIZATION, organization_id)

    @classmethod
    def from_key(cls, key: str) -> "Owner":
        if key.startswith(ORGANIZATION_PREFIX):
            return cls.organization(key[len(ORGANIZATION_PREFIX) :])
        return cls.user(key)

    @property
    def key(self) -> str:
        if self.kind is OwnerKind.USER:
            return self.id
        return ORGANIZATION_PREFIX + self.id

    def __str__(self) -> str:
        return f"{self.kind} '{self.id}'"
