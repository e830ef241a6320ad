"""Idempotency by the whole request, and an AI call refunded as one

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Why (docs/design.md, "Idempotency keys"): a key is one request. Each event
# stored with a key keeps a digest of its whole request, which a retry must
# match; events stored before this revision keep none and are compared as
# before (owner, primitive, quantity, project). The events of one request
# (an AI call's two) carry the id of its first event, so that a refund of
# either voids both.
#
# An AI call's key was stored per meter (`key#ai_tokens`, `key#ai_cost_cents`),
# so that a retry with another split of tokens and cost found only part of
# the call. Its first event now holds the key itself and the cost event, when
# there are both, `key#ai_cost_cents`: every retry looks up `key`. Stored AI
# calls are brought to that scheme here: pairs linked (the same key, stored
# by the same call: the same recorded_at), then the first event renamed
# where the key is free.
_BASE = "substr({k}, 1, length({k}) - {n})"
_SUFFIX = "substr({k}, length({k}) - {m})"
_TOKENS, _COST = "#ai_tokens", "#ai_cost_cents"


def _base(column: str, suffix: str) -> str:
    return _BASE.format(k=column, n=len(suffix))


def _has_suffix(column: str, suffix: str) -> str:
    return f"{_SUFFIX.format(k=column, m=len(suffix) - 1)} = '{suffix}'"


_LINK_COST_TO_TOKENS = f"""
UPDATE usage_events SET call_event_id = (
    SELECT t.id FROM usage_events t
    WHERE t.operator_id = usage_events.operator_id AND t.primitive = 'ai_tokens'
      AND t.idempotency_key = {_base("usage_events.idempotency_key", _COST)} || '{_TOKENS}'
      AND t.recorded_at = usage_events.recorded_at)
WHERE primitive = 'ai_cost_cents' AND idempotency_key IS NOT NULL
  AND {_has_suffix("idempotency_key", _COST)}
"""
_LINK_FIRST_EVENTS = """
UPDATE usage_events SET call_event_id = id
WHERE id IN (SELECT c.call_event_id FROM usage_events c WHERE c.call_event_id IS NOT NULL)
"""


def _rename_first_events(primitive: str, suffix: str, where: str) -> str:
    base = _base("usage_events.idempotency_key", suffix)
    return f"""
UPDATE usage_events SET idempotency_key = {base}
WHERE primitive = '{primitive}' AND idempotency_key IS NOT NULL
  AND {_has_suffix("idempotency_key", suffix)} AND {where}
  AND NOT EXISTS (SELECT 1 FROM usage_events o
                  WHERE o.operator_id = usage_events.operator_id AND o.idempotency_key = {base})
"""


def upgrade() -> None:
    # Not in batch mode: SQLite adds a column in place, where a copy of the
    # table would lose its triggers.
    op.add_column("usage_events", sa.Column("request_digest", sa.String(32), nullable=True))
    op.add_column("usage_events", sa.Column("call_event_id", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_usage_events_call",
        "usage_events",
        ["call_event_id"],
        sqlite_where=sa.text("call_event_id IS NOT NULL"),
        postgresql_where=sa.text("call_event_id IS NOT NULL"),
    )
    op.execute(_LINK_COST_TO_TOKENS)
    op.execute(_LINK_FIRST_EVENTS)
    # Only RecordAiUsage stores a breakdown (detail) with a tokens event; a
    # cost event alone is a call without tokens.
    op.execute(_rename_first_events("ai_tokens", _TOKENS, "detail IS NOT NULL"))
    op.execute(_rename_first_events("ai_cost_cents", _COST, "call_event_id IS NULL"))


def downgrade() -> None:
    op.execute(
        f"UPDATE usage_events SET idempotency_key = idempotency_key || '{_TOKENS}'"
        " WHERE primitive = 'ai_tokens' AND detail IS NOT NULL AND idempotency_key IS NOT NULL"
    )
    op.drop_index("ix_usage_events_call", table_name="usage_events")
    op.drop_column("usage_events", "call_event_id")
    op.drop_column("usage_events", "request_digest")
