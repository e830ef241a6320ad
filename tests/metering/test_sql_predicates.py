"""The conditional statement's condition (sql.writes_at_once), evaluated by
each engine on a grid of values, agrees with the rule's own
(decide.writes_at_once), which the reference model checks in turn."""

import itertools
import sqlite3

import asyncpg
import pytest

from billing_service.metering import sql
from billing_service.metering.decide import (
    admits,
    crossed,
    threshold_marks,
    writes_at_once,
)

from ..conftest import IN_CI, PG_HOST, PG_PORT, PG_USER

GRID = list(
    itertools.product(
        range(0, 13),  # used
        range(1, 5),  # quantity
        [None, 0, 1, 4, 5, 10, 11],  # limit
        [False, True],  # enforce
    )
)
# The largest quota in micro-units (10^12 units) and usage around its marks:
# no product may leave 64 bits.
LIMIT = 10**18
GRID += list(
    itertools.product(
        [0, 8 * 10**17 - 1, 8 * 10**17, LIMIT - 1, LIMIT, 9 * 10**18],
        [1, 10**12],
        [None, LIMIT],
        [False, True],
    )
)


def marks(limit: int | None) -> dict[str, int | None]:
    return dict(zip(("m0", "m1"), threshold_marks(limit), strict=True))


def expected() -> list[bool]:
    return [writes_at_once(limit, used, q, enforce) for used, q, limit, enforce in GRID]


def test_the_rule_writes_at_once_exactly_what_fits_and_crosses_nothing() -> None:
    """writes_at_once in terms of the rule's two parts, on the same grid."""
    for (used, q, limit, enforce), at_once in zip(GRID, expected(), strict=True):
        fits = not enforce or admits(limit, used, q)
        crosses = crossed(limit, used, used + q)
        assert at_once == (fits and not crosses), (used, q, limit, enforce)


def test_sqlite_evaluates_the_condition_as_the_rule_does() -> None:
    condition = sql.writes_at_once(":used", ":quantity", ":limit", ":enforce", (":m0", ":m1"))
    conn = sqlite3.connect(":memory:")
    got = [
        bool(
            conn.execute(
                f"SELECT {condition}",
                {"used": used, "quantity": q, "limit": limit, "enforce": enforce, **marks(limit)},
            ).fetchone()[0]
        )
        for used, q, limit, enforce in GRID
    ]
    assert got == expected()


async def test_postgresql_evaluates_the_condition_as_the_rule_does(
    postgres_available: bool,
) -> None:
    if not postgres_available:
        if IN_CI:
            pytest.fail("PostgreSQL is unreachable (CI=true)")
        pytest.skip("PostgreSQL is unreachable")
    condition = sql.writes_at_once(
        "$1::bigint", "$2::bigint", "$3::bigint", "$4::bool", ("$5::bigint", "$6::bigint")
    )
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        statement = await conn.prepare(f"SELECT {condition}")
        got = [
            bool(await statement.fetchval(*values, *threshold_marks(values[2]))) for values in GRID
        ]
    finally:
        await conn.close()
    assert got == expected()
