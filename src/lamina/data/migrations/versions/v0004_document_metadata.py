"""Documents carry metadata (filterable), their readers (groups), a digest of what was given with
them (so new metadata re-indexes unchanged bytes), and the source that brought them (its syncs
remove only what it brought).

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("attrs", sa.Text))
    op.add_column("documents", sa.Column("readers", sa.Text))
    op.add_column("documents", sa.Column("given", sa.String))
    op.add_column("documents", sa.Column("origin", sa.String))
    op.create_index("ix_documents_origin", "documents", ["collection", "origin"])


def downgrade() -> None:
    op.drop_index("ix_documents_origin", "documents")
    with op.batch_alter_table("documents") as batch:
        for column in ("origin", "given", "readers", "attrs"):
            batch.drop_column(column)
