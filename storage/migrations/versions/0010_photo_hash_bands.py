"""progress photos' perceptual hash in four indexed 16-bit bands, for the reused-photo check

The check compared a new report's photos with every stored photo hash (8 s and 370 MB for a
10-photo report against 1,000,000 stored hashes); with the bands it reads only the rows that can be
near (see ``storage.repositories.progress.photo_hashes``). Existing rows are filled in here.

Revision ID: 0010
Revises: 0009

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BANDS = ("phash_b0", "phash_b1", "phash_b2", "phash_b3")
BATCH = 5000


def _bands(phash: str | None) -> tuple[int, int, int, int] | None:
    # As storage.models.phash_bands, copied so this migration stays as it is when the model changes.
    if not phash or len(phash) != 16:
        return None
    try:
        value = int(phash, 16)
    except ValueError:
        return None
    return (value >> 48) & 0xFFFF, (value >> 32) & 0xFFFF, (value >> 16) & 0xFFFF, value & 0xFFFF


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("progress_media") as batch:
        for name in BANDS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))
    for name in BANDS:
        op.create_index(f"ix_progress_media_{name}", "progress_media", [name], unique=False)
    bind = op.get_bind()
    table = sa.table("progress_media", sa.column("id", sa.Integer), sa.column("phash", sa.String),
                     *(sa.column(name, sa.Integer) for name in BANDS))  # fmt: skip
    update = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("row_id"))
        .values({name: sa.bindparam(f"v_{name}") for name in BANDS})
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(table.c.id, table.c.phash)
            .where(table.c.id > last, table.c.phash.is_not(None))
            .order_by(table.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        last = rows[-1].id
        params = []
        for row in rows:
            bands = _bands(row.phash)
            if bands is not None:
                params.append({"row_id": row.id, **{f"v_{n}": b for n, b in zip(BANDS, bands, strict=True)}})
        if params:
            bind.execute(update, params)


def downgrade() -> None:
    """Downgrade schema."""
    for name in BANDS:
        op.drop_index(f"ix_progress_media_{name}", table_name="progress_media")
    with op.batch_alter_table("progress_media") as batch:
        for name in BANDS:
            batch.drop_column(name)
