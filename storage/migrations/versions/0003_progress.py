"""progress: progress reports with evidence media and flags, and proposal completions

Revision ID: 0003
Revises: 0002

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "progress_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("reporter_id", sa.BigInteger(), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("spent_total", sa.BigInteger(), nullable=False),
        sa.Column("over_budget_note", sa.Text(), nullable=True),
        sa.Column("backwards_reason", sa.Text(), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("officer_note", sa.Text(), nullable=True),
        sa.Column("verified_by", sa.BigInteger(), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("percent >= 0 AND percent <= 100", name=op.f("ck_progress_reports_percent_range")),
        sa.CheckConstraint("spent_total >= 0", name=op.f("ck_progress_reports_spent_total_nonnegative")),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["proposals.id"],
            name=op.f("fk_progress_reports_proposal_id_proposals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_progress_reports")),
    )
    with op.batch_alter_table("progress_reports", schema=None) as batch_op:
        batch_op.create_index("ix_progress_reports_proposal_created", ["proposal_id", "created_at"], unique=False)
        batch_op.create_index("ix_progress_reports_status_created", ["status", "created_at"], unique=False)

    op.create_table(
        "progress_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("telegram_file_id", sa.String(length=255), nullable=True),
        sa.Column("telegram_file_unique_id", sa.String(length=64), nullable=True),
        sa.Column("exif_taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exif_lat", sa.Float(), nullable=True),
        sa.Column("exif_lon", sa.Float(), nullable=True),
        sa.Column("phash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], name=op.f("fk_progress_media_media_id_media")),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["progress_reports.id"],
            name=op.f("fk_progress_media_report_id_progress_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_progress_media")),
    )
    with op.batch_alter_table("progress_media", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_progress_media_media_id"), ["media_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_progress_media_report_id"), ["report_id"], unique=False)

    op.create_table(
        "proposal_completions",
        sa.Column("proposal_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("realised_amount", sa.BigInteger(), nullable=False),
        sa.Column("unspent", sa.BigInteger(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_by", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["proposals.id"],
            name=op.f("fk_proposal_completions_proposal_id_proposals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["report_id"], ["progress_reports.id"], name=op.f("fk_proposal_completions_report_id_progress_reports")
        ),
        sa.PrimaryKeyConstraint("proposal_id", name=op.f("pk_proposal_completions")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("proposal_completions")
    with op.batch_alter_table("progress_media", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_progress_media_report_id"))
        batch_op.drop_index(batch_op.f("ix_progress_media_media_id"))

    op.drop_table("progress_media")
    with op.batch_alter_table("progress_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_progress_reports_status_created")
        batch_op.drop_index("ix_progress_reports_proposal_created")

    op.drop_table("progress_reports")
