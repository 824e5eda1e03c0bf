"""Interface layer: the ``lamina`` command (Typer + Rich)."""
