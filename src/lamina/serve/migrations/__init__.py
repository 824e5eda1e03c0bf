"""Alembic revisions of the server database's schema, applied by :func:`lamina.sqlmigrate.upgrade` on open."""
