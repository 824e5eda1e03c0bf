"""Alembic revisions of the data registry's schema, applied by :func:`lamina.sqlmigrate.upgrade` on open."""
