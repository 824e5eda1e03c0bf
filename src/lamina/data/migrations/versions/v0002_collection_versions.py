"""Collection versions: a collection is a set of builds, one of them live.

A row of ``collections`` is one build. A collection's first version is its own row; version N > 1
is the row ``NAME--vN`` whose ``parent`` is the collection, so documents and runs stay keyed by
the build they belong to. ``live`` and ``previous`` (on the collection's row) say which build
answers and which a rollback returns to.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

COLUMNS = (
    "parent",
    "version",
    "store",
    "chunk_tokens",
    "overlap_tokens",
    "state",
    "built_at",
    "live",
    "previous",
)


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, not a batch copy: on SQLite a batch drops and recreates the table,
    # and dropping ``collections`` would cascade to every document row.
    op.add_column("collections", sa.Column("parent", sa.String))
    op.add_column("collections", sa.Column("version", sa.Integer, nullable=False, server_default="1"))
    op.add_column("collections", sa.Column("store", sa.String))
    op.add_column("collections", sa.Column("chunk_tokens", sa.Integer))
    op.add_column("collections", sa.Column("overlap_tokens", sa.Integer))
    op.add_column("collections", sa.Column("state", sa.String, nullable=False, server_default="ready"))
    op.add_column("collections", sa.Column("built_at", sa.String))
    op.add_column("collections", sa.Column("live", sa.Integer, nullable=False, server_default="1"))
    op.add_column("collections", sa.Column("previous", sa.Integer))
    op.create_index("ix_collections_parent", "collections", ["parent"])


def downgrade() -> None:
    op.drop_index("ix_collections_parent", table_name="collections")
    for column in reversed(COLUMNS):
        op.drop_column("collections", column)
