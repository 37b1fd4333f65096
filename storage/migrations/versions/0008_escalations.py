"""escalations of overdue reviews and verifications; officers' digest frequency

Revision ID: 0008
Revises: 0007

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "escalations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_type", sa.String(length=12), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("scope_level", sa.String(length=16), nullable=False),
        sa.Column("age_days", sa.Integer(), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalations")),
        sa.UniqueConstraint("item_type", "item_id", "since", "scope_level", name="uq_escalations_item_level"),
    )
    op.create_index("ix_escalations_created_at", "escalations", ["created_at"], unique=False)
    with op.batch_alter_table("notification_prefs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(length=12), server_default="harian", nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("notification_prefs", schema=None) as batch_op:
        batch_op.drop_column("digest")
    op.drop_index("ix_escalations_created_at", table_name="escalations")
    op.drop_table("escalations")
