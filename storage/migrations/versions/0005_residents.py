"""residents: follows, notice settings, aspirations, musyawarah votes, erased users

Revision ID: 0005
Revises: 0004

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""

    op.create_table(
        "notification_prefs",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("mode", sa.String(length=12), nullable=False),
        sa.Column("quiet_start", sa.Integer(), nullable=False),
        sa.Column("quiet_end", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_prefs_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_prefs")),
    )
    op.create_table(
        "aspirations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("rt_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("media_id", sa.Integer(), nullable=True),
        sa.Column("telegram_file_id", sa.String(length=255), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("share_contact", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.BigInteger(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], name=op.f("fk_aspirations_media_id_media")),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["proposals.id"], name=op.f("fk_aspirations_proposal_id_proposals"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["rt_id"], ["rt.id"], name=op.f("fk_aspirations_rt_id_rt")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_aspirations_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aspirations")),
    )
    with op.batch_alter_table("aspirations", schema=None) as batch_op:
        batch_op.create_index("ix_aspirations_rt_status", ["rt_id", "status"], unique=False)
        batch_op.create_index("ix_aspirations_user_created", ["user_id", "created_at"], unique=False)

    op.create_table(
        "follows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("rt_id", sa.Integer(), nullable=True),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("(rt_id IS NULL) <> (proposal_id IS NULL)", name=op.f("ck_follows_one_target")),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["proposals.id"], name=op.f("fk_follows_proposal_id_proposals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["rt_id"], ["rt.id"], name=op.f("fk_follows_rt_id_rt"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_follows_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follows")),
        sa.UniqueConstraint("user_id", "proposal_id", name="uq_follows_user_proposal"),
        sa.UniqueConstraint("user_id", "rt_id", name="uq_follows_user_rt"),
    )
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.create_index("ix_follows_proposal", ["proposal_id"], unique=False)
        batch_op.create_index("ix_follows_rt", ["rt_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_follows_user_id"), ["user_id"], unique=False)

    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rt_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("question", sa.String(length=300), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("voters", sa.Integer(), nullable=True),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["proposals.id"], name=op.f("fk_votes_proposal_id_proposals"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["rt_id"], ["rt.id"], name=op.f("fk_votes_rt_id_rt")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_votes")),
    )
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_votes_rt_id"), ["rt_id"], unique=False)
        batch_op.create_index("ix_votes_status_closes", ["status", "closes_at"], unique=False)

    op.create_table(
        "vote_answers",
        sa.Column("vote_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("option_ids", sa.JSON(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vote_id"], ["votes.id"], name=op.f("fk_vote_answers_vote_id_votes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("vote_id", "user_id", name=op.f("pk_vote_answers")),
    )
    op.create_table(
        "vote_polls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vote_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("poll_id", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vote_id"], ["votes.id"], name=op.f("fk_vote_polls_vote_id_votes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vote_polls")),
        sa.UniqueConstraint("poll_id", name=op.f("uq_vote_polls_poll_id")),
        sa.UniqueConstraint("vote_id", "user_id", name="uq_vote_polls_vote_user"),
    )
    with op.batch_alter_table("vote_polls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vote_polls_vote_id"), ["vote_id"], unique=False)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("erased_at")

    with op.batch_alter_table("vote_polls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vote_polls_vote_id"))

    op.drop_table("vote_polls")
    op.drop_table("vote_answers")
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.drop_index("ix_votes_status_closes")
        batch_op.drop_index(batch_op.f("ix_votes_rt_id"))

    op.drop_table("votes")
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_follows_user_id"))
        batch_op.drop_index("ix_follows_rt")
        batch_op.drop_index("ix_follows_proposal")

    op.drop_table("follows")
    with op.batch_alter_table("aspirations", schema=None) as batch_op:
        batch_op.drop_index("ix_aspirations_user_created")
        batch_op.drop_index("ix_aspirations_rt_status")

    op.drop_table("aspirations")
    op.drop_table("notification_prefs")
