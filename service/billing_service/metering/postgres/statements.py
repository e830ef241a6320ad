"""The PostgreSQL statements of the metering backend."""

from collections.abc import Sequence

from ...storage.postgres import TERMS_LOCK
from .. import sql


def begin_with_terms_lock(operator_ids: Sequence[int]) -> str:
    """BEGIN and the operators' terms locks in one simple query (one round
    trip); ids are integers, so they are written into the text."""
    locks = ", ".join(
        f"pg_advisory_xact_lock_shared({TERMS_LOCK}, {int(operator_id)})"
        for operator_id in sorted(operator_ids)
    )
    return f"BEGIN; SELECT {locks}"


def _counters(lock: bool) -> str:
    """The counters of the keys in $1-$3 (operator, tenant, primitive arrays)
    in key order, locked when `lock`, then one row per operator of $4 with
    its terms version in `used`."""
    return (
        "WITH o AS (SELECT id, terms_version FROM operators WHERE id = ANY($4::int[]))"
        ", c AS (SELECT c.operator_id, c.tenant_id, c.primitive, c.window_start,"
        " c.window_end, c.used FROM usage_counters c"
        " JOIN unnest($1::int[], $2::text[], $3::text[]) AS k(o, t, p)"
        " ON c.operator_id = k.o AND c.tenant_id = k.t AND c.primitive = k.p"
        " ORDER BY c.operator_id, c.tenant_id, c.primitive"
        + (" FOR UPDATE OF c" if lock else "")
        + ") SELECT * FROM c UNION ALL SELECT id, NULL, NULL, 0, 0, terms_version FROM o"
    )


COUNTERS_AND_VERSIONS = {lock: _counters(lock) for lock in (False, True)}
CREATE_COUNTERS = (
    "INSERT INTO usage_counters (operator_id, tenant_id, primitive, window_start, window_end, used)"
    " SELECT o, t, p, 0, 0, 0 FROM unnest($1::int[], $2::text[], $3::text[]) AS k(o, t, p)"
    " ORDER BY o, t, p ON CONFLICT DO NOTHING"
)
INSERT_EVENTS = (
    f"INSERT INTO usage_events (id, {sql.INSERT_CALL_COLUMNS}) "
    "SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[],"
    " $5::bigint[], $6::bigint[], $7::bigint[], $8::text[], $9::bigint[],"
    " $10::bigint[], $11::bigint[], $12::bigint[], $13::text[], $14::text[], $15::text[],"
    " $16::text[], $17::bigint[]) "
    "ON CONFLICT DO NOTHING RETURNING id"
)


def _update_counters(first: int) -> str:
    """The counters' UPDATE, its six array parameters numbered from `first`."""
    p = [f"${first + i}" for i in range(6)]
    return (
        "UPDATE usage_counters c SET window_start = v.s, window_end = v.e, used = v.u "
        f"FROM unnest({p[0]}::int[], {p[1]}::text[], {p[2]}::text[], {p[3]}::bigint[],"
        f" {p[4]}::bigint[], {p[5]}::bigint[]) AS v(o, t, p, s, e, u) "
        "WHERE c.operator_id = v.o AND c.tenant_id = v.t AND c.primitive = v.p"
    )


WRITE_COUNTERS = _update_counters(1)
# One round trip: the events' INSERT, and the counters' UPDATE in a
# data-modifying CTE.
WRITE_EVENTS_AND_COUNTERS = (
    f"WITH e AS ({INSERT_EVENTS}), c AS ({_update_counters(18)}) SELECT id FROM e"
)
# One call written in one autocommit statement, or nothing (router.py,
# CONDITIONAL): $1 the event id, $2-$14 its columns but used_after, $15 the
# terms version the caller's rule comes from, $16 whether the limit ($9) is
# enforced, $17 and $18 the limit's threshold marks. One statement cannot
# take the terms lock and then read: its snapshot is older than the lock. So
# it locks the operator's row FOR SHARE, which READ COMMITTED re-reads at its
# newest version, as it does the counter's row it updates: a terms change
# (which updates that row) has committed before, and the version no longer
# matches, or waits until this statement has committed.
CONDITIONAL_WRITE = f"""
WITH o AS (SELECT 1 FROM operators WHERE id = $2 AND terms_version = $15 FOR SHARE),
u AS (
    UPDATE usage_counters SET used = used + $5
    WHERE operator_id = $2 AND tenant_id = $3 AND primitive = $4
      AND window_start = $10 AND window_end = $11
      AND {sql.writes_at_once("used", "$5", "$9::bigint", "$16::bool", ("$17", "$18"))}
      AND EXISTS (SELECT 1 FROM o)
    RETURNING used
)
INSERT INTO usage_events (id, {sql.INSERT_EVENT_COLUMNS})
SELECT $1, $2, $3, $4, $5, $6, $7, $8, u.used, $9, $10, $11, $12, $13, $14 FROM u
RETURNING used_after
"""
SUM_EVENTS = sql.numbered(sql.SUM_EVENTS, "$", 5)
USED_IN_PERIOD = sql.numbered(sql.USED_IN_PERIOD, "$", 5)
MARK_REFUNDED = sql.numbered(sql.MARK_REFUNDED, "$", 3)
CALL_EVENTS = sql.numbered(sql.CALL_EVENTS, "$", 2)
