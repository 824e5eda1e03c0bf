"""The request log records how a generation ended and the tools it called (names only, never their
arguments, which may hold personal data).

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
    with op.batch_alter_table("request_log") as batch:
        batch.add_column(sa.Column("finish_reason", sa.String))
        batch.add_column(sa.Column("tool_calls", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("tool_names", sa.String))


def downgrade() -> None:
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("tool_names")
        batch.drop_column("tool_calls")
        batch.drop_column("finish_reason")
