"""The registry's tables, and how a Lamina SQL database is opened (SQLite by default, any SQLAlchemy URL).

The server's and the UI's databases open the same way (``open_database``), each with its own chain of
migrations and version table.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lamina import sqlmigrate
from lamina.config import schema_of
from lamina.errors import LaminaError

# The schema is made and changed by the Alembic revisions in migrations/ (run on every open); the
# tables below must match their head (tests/test_migrations.py checks it).
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "lamina_registry_version"
BASELINE_TABLES = ("collections", "documents", "runs")
WAL_SWITCH_TIMEOUT_S = 60.0  # as long as lamina.sqlmigrate waits for a migration's lock

metadata = sa.MetaData()

collections = sa.Table(
    "collections",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("embedding_model", sa.String, nullable=False),
    sa.Column("dim", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String, nullable=False),
    # a row is one build of a collection (see migrations v0002): its own version 1, or NAME--vN
    sa.Column("parent", sa.String, index=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("store", sa.String),
    sa.Column("chunk_tokens", sa.Integer),
    sa.Column("overlap_tokens", sa.Integer),
    sa.Column("state", sa.String, nullable=False, server_default="ready"),
    sa.Column("built_at", sa.String),
    sa.Column("live", sa.Integer, nullable=False, server_default="1"),
    sa.Column("previous", sa.Integer),
)

documents = sa.Table(
    "documents",
    metadata,
    sa.Column(
        "collection", sa.String, sa.ForeignKey("collections.name", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("doc_id", sa.String, nullable=False),
    sa.Column("content_hash", sa.String, nullable=False),
    sa.Column("pipeline", sa.String, nullable=False),
    sa.Column("title", sa.String),
    sa.Column("format", sa.String),
    sa.Column("size_bytes", sa.Integer),
    sa.Column("coverage", sa.Float),  # share of the page's visible text kept (v0003)
    sa.Column("chunks", sa.Integer, nullable=False),
    sa.Column("tokens", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.Column("attrs", sa.Text),  # v0004: metadata (JSON object), readers (JSON list of groups),
    sa.Column("readers", sa.Text),  # a digest of what came with the bytes, the source that brought it
    sa.Column("given", sa.String),
    sa.Column("origin", sa.String),
    sa.Index("ix_documents_origin", "collection", "origin"),
)

sources = sa.Table(  # v0005: see data/source_store.py
    "sources",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("collection", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),  # JSON, no secret (connectors/spec.py)
    sa.Column("every_s", sa.Integer),  # NULL: synced on demand only
    sa.Column("readers", sa.Text),
    sa.Column("metadata", sa.Text),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("next_sync_at", sa.Float),  # POSIX time the next scheduled sync is due
    sa.Column("last_sync_at", sa.String),
    sa.Column("last_status", sa.String),
    sa.Column("last_report", sa.Text),
    sa.Column("last_error", sa.Text),
    sa.Column("lease_owner", sa.String),  # the process syncing it now, until lease_until
    sa.Column("lease_until", sa.Float),
    sa.UniqueConstraint("collection", "name", name="uq_sources_collection_name"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("collection", sa.String, nullable=False, index=True),
    sa.Column("started_at", sa.String, nullable=False),
    sa.Column("finished_at", sa.String),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("stats", sa.Text, nullable=False, default="{}"),
    sa.Column("errors", sa.Text, nullable=False, default="[]"),
)


def open_database(url: str) -> sa.Engine:
    """An engine for ``url`` (tables are the migrations' business); SQLite gets WAL and a busy timeout,
    Postgres the schema its ``search_path`` names (created if missing)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(url, pool_pre_ping=url.startswith("postgresql"))
    except ModuleNotFoundError as exc:
        raise LaminaError(f"database_url needs {exc.name}: pip install 'lamina[postgres]'") from None
    if url.startswith("sqlite"):
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    elif schema := schema_of(url):
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return engine


def migrate(engine: sa.Engine) -> None:
    """Bring the registry's tables to the current schema (a no-op when they are)."""
    sqlmigrate.upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE, baseline_tables=BASELINE_TABLES)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """WAL mode, retried while another connection holds the write lock.

    SQLite answers "database is locked" at once, without waiting for its busy timeout, when a
    connection asks for WAL while another holds the write lock on a database not yet in WAL. That
    happens on a fresh file: WAL is only recorded by the first write, and a migration's
    ``BEGIN IMMEDIATE`` connection (``lamina.sqlmigrate``) may make it in the old mode while a second
    process opens the same file. Once the file is in WAL, asking again is a no-op.
    """
    deadline = time.monotonic() + WAL_SWITCH_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY  # "database is locked"
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.2)
