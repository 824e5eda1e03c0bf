"""Baseline: the server's database as the first release made it (keys, jobs, counters, request log).

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
    if missing_table("api_keys"):
        op.create_table(
            "api_keys",
            sa.Column("name", sa.String, primary_key=True),
            sa.Column("key_hash", sa.String, nullable=False, unique=True),
            sa.Column("prefix", sa.String, nullable=False),
            sa.Column("tenant", sa.String, nullable=False),
            sa.Column("admin", sa.Boolean, nullable=False),
            sa.Column("models", sa.Text),
            sa.Column("limits", sa.Text),
            sa.Column("created_at", sa.String, nullable=False),
            sa.Column("revoked_at", sa.String),
        )
    if missing_table("jobs"):
        op.create_table(
            "jobs",
            sa.Column("id", sa.String, primary_key=True),
            sa.Column("tenant", sa.String, nullable=False),
            sa.Column("collection", sa.String, nullable=False),
            sa.Column("state", sa.String, nullable=False),
            sa.Column("items", sa.Text, nullable=False),
            sa.Column("report", sa.Text),
            sa.Column("error", sa.Text),
            sa.Column("created_at", sa.String, nullable=False),
            sa.Column("updated_at", sa.String, nullable=False),
        )
        op.create_index("ix_jobs_tenant", "jobs", ["tenant"])
    if missing_table("counters"):
        op.create_table(
            "counters",
            sa.Column("name", sa.String, primary_key=True),
            sa.Column("used", sa.Float, nullable=False),
        )
    if missing_table("request_log"):
        op.create_table(
            "request_log",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("time", sa.String, nullable=False),
            sa.Column("request_id", sa.String, nullable=False),
            sa.Column("key_name", sa.String),
            sa.Column("tenant", sa.String),
            sa.Column("method", sa.String, nullable=False),
            sa.Column("route", sa.String, nullable=False),
            sa.Column("model", sa.String),
            sa.Column("status", sa.Integer, nullable=False),
            sa.Column("prompt_tokens", sa.Integer, nullable=False),
            sa.Column("completion_tokens", sa.Integer, nullable=False),
            sa.Column("embedding_tokens", sa.Integer, nullable=False),
            sa.Column("latency_ms", sa.Float, nullable=False),
            sa.Column("ttft_ms", sa.Float),
            sa.Column("cost_usd", sa.Float, nullable=False),
            sa.Column("cached", sa.Boolean, nullable=False),
            sa.Column("error_type", sa.String),
        )
        op.create_index("ix_request_log_time", "request_log", ["time"])


def downgrade() -> None:
    op.drop_index("ix_request_log_time", table_name="request_log")
    op.drop_table("request_log")
    op.drop_table("counters")
    op.drop_index("ix_jobs_tenant", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("api_keys")
