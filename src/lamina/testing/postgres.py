"""Postgres for tests and benchmarks: the SQLAlchemy URL of a server, and a fresh database on it."""

from __future__ import annotations

import uuid


def psycopg_url(uri: str) -> str:
    """A libpq URI (``postgresql://…``, as pgserver gives it) as a SQLAlchemy URL on psycopg 3."""
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


def new_database(url: str, prefix: str) -> str:
    """Create a database named ``prefix_<random>`` on the server of ``url``; its URL (same options)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base, _, query = url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
