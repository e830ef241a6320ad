"""The Alembic migrations, from an empty database, on SQLite and PostgreSQL."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from billing_service.catalog.store import Store
from billing_service.storage.engine import create_engines
from billing_service.storage.migrate import (
    SchemaNotCurrent,
    current_revision,
    head_revision,
    require_current,
    upgrade,
)
from billing_service.storage.tables import metadata

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engines(empty_database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    writer, reader = create_engines(empty_database_url)
    try:
        yield writer, reader
    finally:
        await writer.dispose()
        await reader.dispose()


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_a_new_database_has_no_revision(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    writer, _ = engines

    assert await current_revision(writer) is None
    assert await table_names(writer) == set()


async def test_upgrade_from_empty_reaches_head_with_every_table(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    writer, _ = engines
    head = head_revision()
    assert head is not None

    await upgrade(writer)

    assert await current_revision(writer) == head
    assert await table_names(writer) == set(metadata.tables) | {"alembic_version"}


async def test_the_migrated_schema_matches_the_models(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    writer, _ = engines
    await upgrade(writer)

    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with writer.connect() as conn:
        assert await conn.run_sync(differences) == []


async def test_upgrading_twice_is_harmless_and_keeps_data(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    writer, reader = engines
    await upgrade(writer)
    store = Store(writer, reader)
    operator = await store.create_operator("acme", NOW)

    await upgrade(writer)

    assert await current_revision(writer) == head_revision()
    assert await store.get_operator("acme") == operator


async def test_only_a_current_or_newer_schema_is_served(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    writer, _ = engines
    with pytest.raises(SchemaNotCurrent, match="never migrated"):
        await require_current(writer)

    await upgrade(writer, "0001")
    with pytest.raises(SchemaNotCurrent, match="is at revision 0001"):
        await require_current(writer)

    await upgrade(writer)
    await require_current(writer)

    # A revision this code does not know is a newer release's, applied
    # first in a rolling upgrade: older replicas keep serving.
    async with writer.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    await require_current(writer)


async def test_the_ledger_revision_scales_old_usage_and_aggregates_it(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """Usage stored before revision 0004 (whole units) becomes micro-units,
    and its daily aggregates are built from it; later events keep them."""
    writer, _ = engines
    await upgrade(writer, "0003")
    day = 20_600 * 86_400_000_000  # 2026-05-26
    event = (
        "INSERT INTO usage_events (operator_id, tenant_id, primitive, quantity, occurred_at,"
        " recorded_at, used_after, quota_limit, window_start, window_end, refunded_at)"
        " VALUES (1, 't', 'seo', :q, :at, 0, 0, 10, 0, 1, :refunded)"
    )
    async with writer.begin() as conn:
        await conn.execute(text("INSERT INTO operators (id, name, created_at) VALUES (1, 'a', 0)"))
        for quantity, at, refunded in ((3, day + 5, None), (4, day + 9, None), (9, day + 7, 1)):
            await conn.execute(text(event), {"q": quantity, "at": at, "refunded": refunded})
        await conn.execute(
            text(
                "INSERT INTO usage_counters (operator_id, tenant_id, primitive, window_start,"
                " window_end, used) VALUES (1, 't', 'seo', 0, 1, 7)"
            )
        )
    await upgrade(writer)
    async with writer.begin() as conn:
        quantities = (
            await conn.execute(text("SELECT quantity FROM usage_events ORDER BY id"))
        ).scalars()
        assert list(quantities) == [3_000_000, 4_000_000, 9_000_000]
        used = (await conn.execute(text("SELECT used FROM usage_counters"))).scalar()
        assert used == 7_000_000
        daily = (
            await conn.execute(text("SELECT total, peak, last_value, events FROM usage_daily"))
        ).all()
        assert [tuple(row) for row in daily] == [(7_000_000, 4_000_000, 4_000_000, 2)]
        # A later event is added by the trigger; a refund takes it back.
        await conn.execute(text(event), {"q": 2_000_000, "at": day + 11, "refunded": None})
        await conn.execute(text("UPDATE usage_events SET refunded_at = 5 WHERE id = 2"))
        daily = (
            await conn.execute(text("SELECT total, peak, last_value, events FROM usage_daily"))
        ).all()
        assert [tuple(row) for row in daily] == [(5_000_000, 3_000_000, 2_000_000, 2)]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_the_outboxes_leave_room_for_claims_in_place(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """Revision 0007: a claim (claimed_until, attempts) changes no indexed
    column; with room on the page, PostgreSQL makes it a HOT update."""
    writer, _ = engines
    await upgrade(writer)
    query = text(
        "SELECT relname, reloptions FROM pg_class"
        " WHERE relname IN ('stripe_meter_outbox', 'deliveries')"
    )
    async with writer.connect() as conn:
        rows = (await conn.execute(query)).all()
    options: dict[str, list[str]] = {row.relname: row.reloptions for row in rows}
    expected = ["fillfactor=50", "autovacuum_vacuum_scale_factor=0.02"]
    assert options == {"stripe_meter_outbox": expected, "deliveries": expected}


async def test_the_cursor_revision_keeps_queued_reports_and_queues_no_more(
    engines: tuple[AsyncEngine, AsyncEngine], backend: str
) -> None:
    """Revision 0008: reports queued before it stay queued; later events are
    read by the sender's cursor (stamped on PostgreSQL), not queued; a refund
    queues one cancel either way, and none for a meter not sent to Stripe."""
    writer, _ = engines
    await upgrade(writer, "0007")
    event = (
        "INSERT INTO usage_events (operator_id, tenant_id, primitive, quantity, occurred_at,"
        " recorded_at, used_after, window_start, window_end)"
        " VALUES (1, 't', :primitive, 1000000, 0, 0, 0, 0, 1)"
    )
    async with writer.begin() as conn:
        await conn.execute(text("INSERT INTO operators (id, name, created_at) VALUES (1, 'a', 0)"))
        await conn.execute(
            text(
                "INSERT INTO meters (operator_id, key, display_name, unit, aggregation, scale,"
                " created_at, updated_at, stripe_event_name) VALUES"
                " (1, 'seo', 'SEO', 'call', 'sum', 1, 0, 0, 'seo_calls'),"
                " (1, 'ai', 'AI', 'call', 'sum', 1, 0, 0, NULL)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO stripe_customers (operator_id, tenant_id, customer_id, created_at,"
                " updated_at) VALUES (1, 't', 'cus_1', 0, 0)"
            )
        )
        await conn.execute(text(event), {"primitive": "seo"})  # id 1, queued
    await upgrade(writer)
    async with writer.begin() as conn:
        for primitive in ("seo", "ai"):  # ids 2 and 3
            await conn.execute(text(event), {"primitive": primitive})
        for event_id in (1, 2, 3):
            await conn.execute(
                text("UPDATE usage_events SET refunded_at = 5 WHERE id = :id"), {"id": event_id}
            )
        outbox = await conn.execute(
            text("SELECT event_id, action FROM stripe_meter_outbox ORDER BY event_id, action")
        )
        assert [tuple(row) for row in outbox] == [
            (1, "cancel"),
            (1, "report"),
            (2, "cancel"),
        ]
        stamped = await conn.execute(
            text("SELECT id FROM usage_events WHERE stripe_xact IS NOT NULL ORDER BY id")
        )
        assert list(stamped.scalars()) == ([2] if backend == "postgres" else [])
        cursor = (await conn.execute(text("SELECT xact, event_id FROM stripe_meter_cursor"))).one()
        assert tuple(cursor) == (0, 1)  # SQLite reads only events after it


async def test_the_attempts_revision_keeps_attempts_and_gives_up_plain_codes(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """Revision 0012: sign-in attempts stay (with no client address);
    email-change mails queued with their code in plain text are given up and
    cleared; other mail stays queued, unsealed."""
    writer, _ = engines
    await upgrade(writer, "0011")
    delivery = (
        "INSERT INTO deliveries (id, operator_id, channel, target, subject, body, created_at,"
        " due_at) VALUES (:id, 1, 'email', 'a@example.com', 's', :body, 7, 7)"
    )
    async with writer.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO login_attempts (operator_id, email_key, user_id, ip_address,"
                " user_agent, success, created_at) VALUES (1, 'a@example.com', 'u', '', '',"
                " false, 5)"
            )
        )
        await conn.execute(text(delivery), {"id": 1, "body": "enter this code: bec_abc123"})
        await conn.execute(text(delivery), {"id": 2, "body": "usage reached 80%"})
    await upgrade(writer)
    async with writer.connect() as conn:
        attempts = await conn.execute(
            text("SELECT email_key, success, client_address FROM login_attempts")
        )
        assert [tuple(row) for row in attempts] == [("a@example.com", False, None)]
        kept = await conn.execute(
            text("SELECT id, body, sealed, failed_at FROM deliveries ORDER BY id")
        )
        assert [tuple(row) for row in kept] == [
            (1, "", False, 7),
            (2, "usage reached 80%", False, None),
        ]
        checks = await conn.execute(text("SELECT count(*) FROM password_checks"))
        assert checks.scalar_one() == 0


async def test_the_request_digest_revision_brings_stored_ai_calls_to_one_key(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """Revision 0009: an AI call stored with a key per meter is found by its
    key itself (its first event) and its two events are linked, so that a
    retry finds the whole call and a refund voids it; other events keep
    their keys, and no event has a digest (they are compared as before)."""
    writer, _ = engines
    await upgrade(writer, "0008")
    event = (
        "INSERT INTO usage_events (id, operator_id, tenant_id, primitive, quantity, occurred_at,"
        " recorded_at, idempotency_key, used_after, window_start, window_end, detail)"
        " VALUES (:id, 1, 't', :primitive, 1000000, 0, :recorded, :key, 0, 0, 1, :detail)"
    )
    stored = [
        (1, "ai_tokens", 7, "k1#ai_tokens", "{}"),  # one AI call's two events
        (2, "ai_cost_cents", 7, "k1#ai_cost_cents", None),
        (3, "ai_cost_cents", 8, "k2#ai_cost_cents", None),  # a call without tokens
        (4, "ai_tokens", 9, "x#ai_tokens", None),  # RecordUsage's, not an AI call's
        (5, "seo", 9, "plain", None),
        (6, "ai_tokens", 9, "k3#ai_tokens", "{}"),  # the key k3 is taken by event 7
        (7, "seo", 9, "k3", None),
    ]
    async with writer.begin() as conn:
        await conn.execute(text("INSERT INTO operators (id, name, created_at) VALUES (1, 'a', 0)"))
        for event_id, primitive, recorded, key, detail in stored:
            values = {"primitive": primitive, "recorded": recorded, "key": key, "detail": detail}
            await conn.execute(text(event), {"id": event_id, **values})
    await upgrade(writer)
    async with writer.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id, idempotency_key, call_event_id, request_digest FROM usage_events"
                " ORDER BY id"
            )
        )
        assert [tuple(row) for row in rows] == [
            (1, "k1", 1, None),
            (2, "k1#ai_cost_cents", 1, None),
            (3, "k2", None, None),
            (4, "x#ai_tokens", None, None),
            (5, "plain", None, None),
            (6, "k3#ai_tokens", None, None),
            (7, "k3", None, None),
        ]


async def test_the_cycle_anchor_revision_keeps_subscriptions_and_one_plan_per_price(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """Revision 0010: subscriptions keep their rows, with no anchor yet (their
    periods still step from current_period_end); of plans sharing a Stripe
    price, the smallest key keeps it, as webhooks picked; then a second plan
    with a linked price is refused by the index."""
    writer, _ = engines
    await upgrade(writer, "0009")
    plan = (
        "INSERT INTO plans (operator_id, key, name, stripe_price_id, quotas, period,"
        " archived, created_at, updated_at)"
        " VALUES (:operator, :key, :key, :price, '{}', 'month', false, 0, 0)"
    )
    async with writer.begin() as conn:
        await conn.execute(
            text("INSERT INTO operators (id, name, created_at) VALUES (1, 'a', 0), (2, 'b', 0)")
        )
        for operator, key, price in [
            (1, "pro", "price_1"),
            (1, "basic", "price_1"),
            (1, "team", "price_1"),
            (1, "solo", "price_2"),
            (1, "free", None),
            (1, "trial", None),
            (2, "zzz", "price_1"),
        ]:
            await conn.execute(text(plan), {"operator": operator, "key": key, "price": price})
        await conn.execute(
            text(
                "INSERT INTO subscriptions (operator_id, tenant_id, plan_key, status,"
                " current_period_end, created_at, updated_at)"
                " VALUES (1, 't', 'pro', 'active', 1769851800000000, 0, 0)"
            )
        )
    await upgrade(writer)
    async with writer.begin() as conn:
        prices = await conn.execute(
            text("SELECT operator_id, key, stripe_price_id FROM plans ORDER BY operator_id, key")
        )
        assert [tuple(row) for row in prices] == [
            (1, "basic", "price_1"),
            (1, "free", None),
            (1, "pro", None),
            (1, "solo", "price_2"),
            (1, "team", None),
            (1, "trial", None),
            (2, "zzz", "price_1"),
        ]
        sub = await conn.execute(
            text("SELECT plan_key, current_period_end, billing_cycle_anchor FROM subscriptions")
        )
        assert tuple(sub.one()) == ("pro", 1769851800000000, None)
    with pytest.raises(IntegrityError):
        async with writer.begin() as conn:
            await conn.execute(text(plan), {"operator": 1, "key": "dup", "price": "price_2"})


async def test_the_holds_revision_holds_usage_passed_over_and_cancels_every_refund(
    engines: tuple[AsyncEngine, AsyncEngine], backend: str
) -> None:
    """Revision 0011: usage the cursor passed over for want of a Stripe
    customer (not refunded) is held in the outbox; a refund of usage sent to
    Stripe queues its cancel however old the usage is (the sender decides
    whether Stripe can still cancel it)."""
    writer, _ = engines
    await upgrade(writer, "0010")
    event = (
        "INSERT INTO usage_events (operator_id, tenant_id, primitive, quantity, occurred_at,"
        " recorded_at, used_after, window_start, window_end)"
        " VALUES (1, :tenant, 'seo', 1000000, 0, 0, 0, 0, 1)"
    )
    async with writer.begin() as conn:
        await conn.execute(text("INSERT INTO operators (id, name, created_at) VALUES (1, 'a', 0)"))
        await conn.execute(
            text(
                "INSERT INTO meters (operator_id, key, display_name, unit, aggregation, scale,"
                " created_at, updated_at, stripe_event_name)"
                " VALUES (1, 'seo', 'SEO', 'call', 'sum', 1, 0, 0, 'seo_calls')"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO stripe_customers (operator_id, tenant_id, customer_id, created_at,"
                " updated_at) VALUES (1, 'paid', 'cus_1', 0, 0)"
            )
        )
        for tenant in ("paid", "trial", "trial"):  # ids 1, 2, 3
            await conn.execute(text(event), {"tenant": tenant})
        await conn.execute(text("UPDATE usage_events SET refunded_at = 1 WHERE id = 3"))
    async with writer.begin() as conn:  # the cursor passed all three
        await conn.execute(
            text(
                "UPDATE stripe_meter_cursor SET event_id = 3, xact ="
                " (SELECT COALESCE(MAX(stripe_xact), 0) FROM usage_events)"
            )
        )
    await upgrade(writer)
    async with writer.begin() as conn:
        held = await conn.execute(
            text("SELECT event_id, action FROM stripe_meter_outbox WHERE held_at IS NOT NULL")
        )
        assert [tuple(row) for row in held] == [(2, "report")]
        three_days = 3 * 86_400 * 1_000_000
        await conn.execute(
            text("UPDATE usage_events SET refunded_at = :at WHERE id = 1"), {"at": three_days}
        )
        cancels = await conn.execute(
            text("SELECT event_id FROM stripe_meter_outbox WHERE action = 'cancel'")
        )
        assert list(cancels.scalars()) == [1]


async def test_the_scopes_revision_keeps_every_key_full_and_every_operator_enabled(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """Revision 0013: keys made before it keep working as `full` keys that
    never expire; operators stay enabled."""
    writer, reader = engines
    await upgrade(writer, "0012")
    async with writer.begin() as conn:
        await conn.execute(
            text("INSERT INTO operators (id, name, created_at) VALUES (1, 'acme', 5)")
        )
        await conn.execute(
            text(
                "INSERT INTO api_keys (id, operator_id, key_hash, prefix, created_at)"
                " VALUES ('key_0000000000000001', 1, :hash, 'bsk_abcdef', 6)"
            ),
            {"hash": "a" * 64},
        )
    await upgrade(writer)
    async with writer.connect() as conn:
        keys = await conn.execute(text("SELECT id, scopes, expires_at FROM api_keys"))
        assert [tuple(row) for row in keys] == [("key_0000000000000001", "full", None)]
        disabled = await conn.execute(text("SELECT disabled_at FROM operators"))
        assert disabled.scalar_one() is None
    grant = await Store(writer, reader).grant_for_hash("a" * 64, NOW)
    assert grant is not None and grant.scopes == ("full",) and grant.operator_id == 1
