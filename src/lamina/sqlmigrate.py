"""Schema migrations (Alembic) run in code whenever a database is opened: cheap when current, safe when raced.

Layer-neutral (imports only SQLAlchemy and Alembic): the data registry, the server and the UI each keep
their own chain of revisions (a folder holding ``env.py`` and ``versions/``) and their own version
table, so that all three can live in one database (Postgres) without colliding.

Opening checks the recorded revision against the chain's head and does nothing more when they match.
Otherwise it takes a write lock (SQLite: ``BEGIN IMMEDIATE``; Postgres: a transaction-scoped advisory
lock), checks again (another process may just have done it) and upgrades inside that one transaction,
so a second process opening at the same moment waits and then finds the work done.

A database made before migrations existed (the baseline's tables present, no version table) is stamped
at the baseline revision and then upgraded in place.
"""

from __future__ import annotations

import functools
import logging
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)

BASELINE = "0001"
SQLITE_LOCK_TIMEOUT_S = 60.0


def upgrade(
    engine: sa.Engine,
    script_location: str | Path,
    *,
    version_table: str,
    baseline_tables: Sequence[str] = (),
    baseline: str = BASELINE,
) -> None:
    """Bring ``engine``'s database to the head of the chain in ``script_location``.

    ``baseline_tables`` are the tables of revision ``baseline``: if all are there and no revision is
    recorded, the database predates migrations and is stamped at ``baseline`` rather than rebuilt.
    """
    location = str(script_location)
    target = heads(location)
    with engine.connect() as conn:
        if current(conn, version_table) == target:
            return
    with _locked(engine, version_table) as conn:
        found = current(conn, version_table)
        if found == target:
            return  # another process upgraded it while we waited for the lock
        cfg = _config(location, conn, version_table)
        if not found and baseline_tables:
            inspector = sa.inspect(conn)
            if all(inspector.has_table(name) for name in baseline_tables):
                log.info("stamping a database made before migrations at %s (%s)", baseline, version_table)
                command.stamp(cfg, baseline)
        log.info("upgrading %s from %s to %s", version_table, ",".join(found) or "nothing", ",".join(target))
        command.upgrade(cfg, "head")


@functools.cache
def heads(script_location: str) -> tuple[str, ...]:
    """The head revision(s) of a chain (read once per process)."""
    return tuple(sorted(ScriptDirectory(script_location).get_heads()))


def current(conn: sa.Connection, version_table: str) -> tuple[str, ...]:
    """The revision(s) recorded in ``version_table``; empty when there is none (or no table)."""
    context = MigrationContext.configure(conn, opts={"version_table": version_table})
    return tuple(sorted(context.get_current_heads()))


def missing_table(name: str) -> bool:
    """Inside a migration: is table ``name`` absent? (Baselines create only what is missing.)"""
    from alembic import op

    return not sa.inspect(op.get_bind()).has_table(name)


def run_env() -> None:
    """The body of every chain's ``env.py``: migrate on the connection :func:`upgrade` handed over."""
    from alembic import context

    if context.is_offline_mode():
        raise RuntimeError("lamina's migrations run online only, through lamina.sqlmigrate.upgrade")
    attributes = context.config.attributes
    context.configure(
        connection=attributes["connection"],
        version_table=attributes["version_table"],
        render_as_batch=True,  # SQLite alters tables by copying them; other databases alter in place
    )
    with context.begin_transaction():
        context.run_migrations()


def _config(location: str, conn: sa.Connection, version_table: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", location.replace("%", "%%"))
    cfg.attributes["connection"] = conn
    cfg.attributes["version_table"] = version_table
    return cfg


@contextmanager
def _locked(engine: sa.Engine, version_table: str) -> Iterator[sa.Connection]:
    """A connection in a transaction holding the lock that serialises migrations; commits on exit."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        # A connection of its own whose transaction starts with BEGIN IMMEDIATE: it takes SQLite's
        # write lock up front, so a second migrator waits here instead of failing half-way.
        lock_engine = sa.create_engine(
            url, poolclass=sa.pool.NullPool, connect_args={"timeout": SQLITE_LOCK_TIMEOUT_S}
        )
        sa.event.listen(lock_engine, "connect", _sqlite_manual_transactions)
        sa.event.listen(lock_engine, "begin", _sqlite_begin_immediate)
        try:
            with lock_engine.begin() as conn:
                yield conn
        finally:
            lock_engine.dispose()
        return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            key = zlib.crc32(version_table.encode()) & 0x7FFFFFFF
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        yield conn


def _sqlite_manual_transactions(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # the driver stops issuing BEGIN itself; _sqlite_begin_immediate does


def _sqlite_begin_immediate(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
