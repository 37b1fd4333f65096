"""index for looking a proposal up by its code (fiscal year + sequence)

Revision ID: 0009
Revises: 0008

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index("ix_proposals_year_seq", "proposals", ["fiscal_year", "seq"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_proposals_year_seq", table_name="proposals")
