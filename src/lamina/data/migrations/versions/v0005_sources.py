"""Sources that keep a collection in sync: what each is (its spec, never a secret), when it syncs,
what it last did, and the lease of the worker syncing it now.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("collection", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("every_s", sa.Integer),
        sa.Column("readers", sa.Text),
        sa.Column("metadata", sa.Text),
        sa.Column("created_at", sa.String, nullable=False),
        sa.Column("next_sync_at", sa.Float),
        sa.Column("last_sync_at", sa.String),
        sa.Column("last_status", sa.String),
        sa.Column("last_report", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("lease_owner", sa.String),
        sa.Column("lease_until", sa.Float),
        sa.UniqueConstraint("collection", "name", name="uq_sources_collection_name"),
    )


def downgrade() -> None:
    op.drop_table("sources")
