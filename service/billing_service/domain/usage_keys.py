"""The key of a usage counter, shared by metering, billing and the catalog."""

from typing import NamedTuple


class UsageKey(NamedTuple):
    """What a usage counter counts: one primitive of one operator's tenant.
    A tuple, hashed and compared in C: the hot path keys several dicts by it."""

    operator_id: int
    tenant_id: str
    primitive: str
