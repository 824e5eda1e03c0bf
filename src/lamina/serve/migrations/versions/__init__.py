"""One revision per file; ``revision`` and ``down_revision`` chain them."""
