"""organizations as owners (keys `org/<id>`), projects, usage per project,
events' details (an AI call's breakdown)

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNER_TABLES = ("subscriptions", "usage_events", "usage_counters")


def upgrade() -> None:
    # An organization's key is `org/` and its id: four characters longer than
    # the longest id. (SQLite copies each table to change its declared type.)
    for table in OWNER_TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(
                "tenant_id",
                type_=sa.String(210),
                existing_type=sa.String(200),
                existing_nullable=False,
            )
            if table == "usage_events":
                batch_op.add_column(sa.Column("project_id", sa.String(200), nullable=True))
                batch_op.add_column(sa.Column("detail", sa.Text(), nullable=True))
    op.create_table(
        "projects",
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(210), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("operator_id", "id", name="pk_projects"),
    )
    op.create_index("ix_projects_owner", "projects", ["operator_id", "owner", "id"])


def downgrade() -> None:
    with op.batch_alter_table("usage_events") as batch_op:
        batch_op.drop_column("detail")
        batch_op.drop_column("project_id")
    op.drop_index("ix_projects_owner", "projects")
    op.drop_table("projects")
