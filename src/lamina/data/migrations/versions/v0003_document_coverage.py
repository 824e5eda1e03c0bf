"""Documents record the share of their page's visible text that extraction kept (HTML).

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("coverage", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("coverage")
