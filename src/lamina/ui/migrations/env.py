"""Alembic's entry point for this chain; everything is in :func:`lamina.sqlmigrate.run_env`."""

from lamina.sqlmigrate import run_env

run_env()
