"""Subscriptions keep Stripe's billing cycle anchor; a Stripe price names
one plan of its operator

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PRICE_SET = "stripe_price_id IS NOT NULL"
# Where two plans of an operator had the same price, webhooks applied the
# plan of the smallest key: that plan keeps the price, the others lose it
# (their operator links them again to prices of their own).
_CLEAR_DUPLICATE_PRICES = """
UPDATE plans SET stripe_price_id = NULL
WHERE stripe_price_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM plans AS first
    WHERE first.operator_id = plans.operator_id
      AND first.stripe_price_id = plans.stripe_price_id
      AND first.key < plans.key)
"""


def upgrade() -> None:
    # Existing rows keep no anchor: their periods step from
    # current_period_end, as before, until Stripe's next event about them.
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("billing_cycle_anchor", sa.BigInteger(), nullable=True))
    op.execute(_CLEAR_DUPLICATE_PRICES)
    op.create_index(
        "uq_plans_stripe_price",
        "plans",
        ["operator_id", "stripe_price_id"],
        unique=True,
        sqlite_where=sa.text(_PRICE_SET),
        postgresql_where=sa.text(_PRICE_SET),
    )


def downgrade() -> None:
    op.drop_index("uq_plans_stripe_price", table_name="plans")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("billing_cycle_anchor")
