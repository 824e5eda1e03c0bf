"""Baseline: the web UI's tables as the first release made them (conversations and their turns).

They live in the server's database next to its own tables; this chain has its own version table.
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
    if missing_table("ui_conversations"):
        op.create_table(
            "ui_conversations",
            sa.Column("id", sa.String, primary_key=True),
            sa.Column("owner", sa.String, nullable=False),
            sa.Column("title", sa.String, nullable=False),
            sa.Column("created_at", sa.String, nullable=False),
            sa.Column("updated_at", sa.String, nullable=False),
        )
        op.create_index("ix_ui_conversations_owner", "ui_conversations", ["owner"])
    if missing_table("ui_turns"):
        op.create_table(
            "ui_turns",
            sa.Column("id", sa.String, primary_key=True),
            sa.Column("conversation_id", sa.String, nullable=False),
            sa.Column("question", sa.Text, nullable=False),
            sa.Column("answer", sa.Text, nullable=False),
            sa.Column("model", sa.String, nullable=False),
            sa.Column("collection", sa.String),
            sa.Column("status", sa.String, nullable=False),
            sa.Column("citations", sa.Text),
            sa.Column("grounding", sa.Text),
            sa.Column("error", sa.Text),
            sa.Column("created_at", sa.String, nullable=False),
        )
        op.create_index("ix_ui_turns_conversation_id", "ui_turns", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_ui_turns_conversation_id", table_name="ui_turns")
    op.drop_table("ui_turns")
    op.drop_index("ix_ui_conversations_owner", table_name="ui_conversations")
    op.drop_table("ui_conversations")
