"""The server's own state in one SQL database (SQLite by default): keys, ingest jobs, request log,
stored responses.

Kept apart from the data registry so that the data layer never learns about keys or tenants.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from lamina import sqlmigrate
from lamina.data.registry_schema import open_database

# The schema is made and changed by the Alembic revisions in migrations/ (run by connect); the tables
# below must match their head (tests/test_migrations.py checks it). Its own version table, so that it
# can share a database with the registry's and the UI's.
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "lamina_server_version"
BASELINE_TABLES = ("api_keys", "jobs", "counters", "request_log")

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("key_hash", sa.String, nullable=False, unique=True),
    sa.Column("prefix", sa.String, nullable=False),  # first characters, to recognise a key in lists
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("admin", sa.Boolean, nullable=False, default=False),
    sa.Column("models", sa.Text),  # JSON list of allowed model names; NULL = all
    sa.Column("limits", sa.Text),  # JSON LimitSettings; NULL = none
    sa.Column("groups", sa.Text),  # v0006: JSON list of reader groups; NULL = none
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("revoked_at", sa.String),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("tenant", sa.String, nullable=False, index=True),
    sa.Column("collection", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("items", sa.Text, nullable=False),  # JSON list of per-file records
    sa.Column("report", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("updated_at", sa.String, nullable=False),
    # bumped on every change, so that a watcher on any replica sees the job move
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String),  # the worker running it
    sa.Column("lease_until", sa.Float),  # unix time; past it, any worker may take the job over
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),  # claims so far
    sa.Column("kind", sa.String, nullable=False, server_default="ingest"),  # ingest or reindex
    sa.Column("options", sa.Text, nullable=False, server_default="{}"),  # JSON: what a reindex builds
    sa.Index("ix_jobs_state", "state"),
)

counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String, primary_key=True),  # e.g. budget:key:alice:2026-11
    sa.Column("used", sa.Float, nullable=False, default=0.0),
)

request_log = sa.Table(
    "request_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.String, nullable=False, index=True),
    sa.Column("request_id", sa.String, nullable=False),
    sa.Column("key_name", sa.String),
    sa.Column("tenant", sa.String),
    sa.Column("method", sa.String, nullable=False),
    sa.Column("route", sa.String, nullable=False),
    sa.Column("model", sa.String),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("completion_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("embedding_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("ttft_ms", sa.Float),
    sa.Column("cost_usd", sa.Float, nullable=False, default=0.0),
    sa.Column("cached", sa.Boolean, nullable=False, default=False),
    sa.Column("error_type", sa.String),
    sa.Column("finish_reason", sa.String),
    sa.Column("tool_calls", sa.Integer, nullable=False, default=0),  # how many the model made
    sa.Column("tool_names", sa.String),  # their distinct names, comma-separated; never arguments
)

# the Responses API's stored responses (store=true): what GET answers, and the conversation a
# previous_response_id continues; scoped to the tenant, gone after serve.responses_retention_days
stored_responses = sa.Table(
    "stored_responses",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),  # unix time
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
    sa.Column("response", sa.Text, nullable=False),  # JSON: the response object, as first answered
    sa.Column("conversation", sa.Text, nullable=False),  # JSON: its chat messages, output included
)


def connect(url: str) -> sa.Engine:
    """An engine on the server's database, its tables brought to the current schema first."""
    engine = open_database(url)
    migrate(engine)
    return engine


def migrate(engine: sa.Engine) -> None:
    sqlmigrate.upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE, baseline_tables=BASELINE_TABLES)
