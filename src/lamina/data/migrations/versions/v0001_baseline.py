"""Baseline: the registry as the first release made it (collections, documents, runs).

Creates only the tables that are missing, so a database from before migrations that lacks some of
them is completed rather than failed.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lamina.sqlmigrate import missing_table

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    if missing_table("collections"):
        op.create_table(
            "collections",
            sa.Column("name", sa.String, primary_key=True),
            sa.Column("embedding_model", sa.String, nullable=False),
            sa.Column("dim", sa.Integer, nullable=False),
            sa.Column("created_at", sa.String, nullable=False),
        )
    if missing_table("runs"):
        op.create_table(
            "runs",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("collection", sa.String, nullable=False),
            sa.Column("started_at", sa.String, nullable=False),
            sa.Column("finished_at", sa.String),
            sa.Column("status", sa.String, nullable=False),
            sa.Column("stats", sa.Text, nullable=False),
            sa.Column("errors", sa.Text, nullable=False),
        )
        op.create_index("ix_runs_collection", "runs", ["collection"])
    if missing_table("documents"):
        op.create_table(
            "documents",
            sa.Column(
                "collection",
                sa.String,
                sa.ForeignKey("collections.name", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("source", sa.String, primary_key=True),
            sa.Column("doc_id", sa.String, nullable=False),
            sa.Column("content_hash", sa.String, nullable=False),
            sa.Column("pipeline", sa.String, nullable=False),
            sa.Column("title", sa.String),
            sa.Column("format", sa.String),
            sa.Column("size_bytes", sa.Integer),
            sa.Column("chunks", sa.Integer, nullable=False),
            sa.Column("tokens", sa.Integer, nullable=False),
            sa.Column("updated_at", sa.String, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("documents")
    op.drop_index("ix_runs_collection", table_name="runs")
    op.drop_table("runs")
    op.drop_table("collections")
