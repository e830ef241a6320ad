"""Sign-in attempts counted before the password is verified, by email and by
client address; password checks of signed-in users throttled the same way;
mailed codes sealed in the delivery outbox

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Email-change mails queued before this revision hold their code in plain
# text: they are given up (the user asks again) and their bodies cleared.
_PLAIN_CODES = (
    "channel = 'email' AND delivered_at IS NULL AND failed_at IS NULL AND body LIKE '%bec\\_%'"
    " ESCAPE '\\'"
)


def upgrade() -> None:
    with op.batch_alter_table("login_attempts") as batch_op:
        batch_op.add_column(sa.Column("client_address", sa.String(64), nullable=True))
    op.create_index(
        "ix_login_attempts_address",
        "login_attempts",
        ["operator_id", "client_address", "created_at"],
    )
    op.create_table(
        "password_checks",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_password_checks"),
    )
    op.create_index(
        "ix_password_checks_user", "password_checks", ["operator_id", "user_id", "created_at"]
    )
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.add_column(
            sa.Column("sealed", sa.Boolean(), nullable=False, server_default=sa.text("false"))
        )
    op.execute(
        "UPDATE deliveries SET body = '', failed_at = created_at,"
        " last_error = 'its code was stored unsealed: request the change again'"
        f" WHERE {_PLAIN_CODES}"
    )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_column("sealed")
    op.drop_index("ix_password_checks_user", "password_checks")
    op.drop_table("password_checks")
    op.drop_index("ix_login_attempts_address", "login_attempts")
    with op.batch_alter_table("login_attempts") as batch_op:
        batch_op.drop_column("client_address")
