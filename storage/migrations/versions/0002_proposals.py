"""proposals: proposals with RAB lines, media, timeline events and code sequences

Revision ID: 0002
Revises: 0001

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "code_sequences",
        sa.Column("prefix", sa.String(length=8), nullable=False),
        sa.Column("fiscal_year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", "fiscal_year", name=op.f("pk_code_sequences")),
    )
    op.create_table(
        "media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("mime", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
        sa.UniqueConstraint("sha256", name=op.f("uq_media_sha256")),
    )
    op.create_table(
        "proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("fiscal_year", sa.Integer(), nullable=False),
        sa.Column("rt_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("category_code", sa.String(length=32), nullable=True),
        sa.Column("title", sa.String(length=120), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("attendees", sa.Integer(), nullable=True),
        sa.Column("total_amount", sa.BigInteger(), nullable=False),
        sa.Column("wizard_step", sa.String(length=32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.BigInteger(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("revision_parts", sa.JSON(), nullable=True),
        sa.Column("revision_note", sa.Text(), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_proposals_program_id_programs")),
        sa.ForeignKeyConstraint(["rt_id"], ["rt.id"], name=op.f("fk_proposals_rt_id_rt")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposals")),
        sa.UniqueConstraint("code", name=op.f("uq_proposals_code")),
    )
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_proposals_program_id"), ["program_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_proposals_rt_id"), ["rt_id"], unique=False)
        batch_op.create_index("ix_proposals_rt_year_status", ["rt_id", "fiscal_year", "status"], unique=False)
        batch_op.create_index("ix_proposals_status_submitted", ["status", "submitted_at"], unique=False)

    op.create_table(
        "proposal_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["proposals.id"], name=op.f("fk_proposal_events_proposal_id_proposals"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposal_events")),
    )
    with op.batch_alter_table("proposal_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_proposal_events_proposal_id"), ["proposal_id"], unique=False)

    op.create_table(
        "proposal_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("telegram_file_id", sa.String(length=255), nullable=True),
        sa.Column("telegram_file_unique_id", sa.String(length=64), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], name=op.f("fk_proposal_media_media_id_media")),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["proposals.id"], name=op.f("fk_proposal_media_proposal_id_proposals"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposal_media")),
        sa.UniqueConstraint("proposal_id", "kind", "media_id", name="uq_proposal_media_proposal_kind_media"),
    )
    with op.batch_alter_table("proposal_media", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_proposal_media_media_id"), ["media_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_proposal_media_proposal_id"), ["proposal_id"], unique=False)

    op.create_table(
        "rab_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("volume", sa.Numeric(precision=12, scale=3), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["proposals.id"], name=op.f("fk_rab_lines_proposal_id_proposals"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rab_lines")),
    )
    with op.batch_alter_table("rab_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rab_lines_proposal_id"), ["proposal_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("rab_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rab_lines_proposal_id"))

    op.drop_table("rab_lines")
    with op.batch_alter_table("proposal_media", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proposal_media_proposal_id"))
        batch_op.drop_index(batch_op.f("ix_proposal_media_media_id"))

    op.drop_table("proposal_media")
    with op.batch_alter_table("proposal_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proposal_events_proposal_id"))

    op.drop_table("proposal_events")
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.drop_index("ix_proposals_status_submitted")
        batch_op.drop_index("ix_proposals_rt_year_status")
        batch_op.drop_index(batch_op.f("ix_proposals_rt_id"))
        batch_op.drop_index(batch_op.f("ix_proposals_program_id"))

    op.drop_table("proposals")
    op.drop_table("media")
    op.drop_table("code_sequences")
