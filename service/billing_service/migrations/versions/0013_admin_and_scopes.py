"""Operators can be disabled; API keys carry scopes and may expire

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("operators") as batch_op:
        batch_op.add_column(sa.Column("disabled_at", sa.BigInteger(), nullable=True))
    # Keys minted before scopes existed could call everything: they stay `full`.
    # A key's scopes are kept space-separated, as OAuth's are.
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.add_column(
            sa.Column("scopes", sa.String(64), nullable=False, server_default="full")
        )
        batch_op.add_column(sa.Column("expires_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("scopes")
    with op.batch_alter_table("operators") as batch_op:
        batch_op.drop_column("disabled_at")
