"""Alembic revisions of the web UI's schema, applied by :func:`lamina.sqlmigrate.upgrade` on open."""
