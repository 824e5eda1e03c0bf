"""The web UI: server-rendered pages (Jinja2 + htmx) over the same state as the API.

``install`` adds the UI's routes to the server's app; ``lamina serve`` passes it to the server, so
the deployment layer never imports the interface layer.
"""

from __future__ import annotations

from fastapi import FastAPI

from lamina.serve.state import ServerState


def install(app: FastAPI, state: ServerState) -> None:
    """Add the UI's pages to ``app`` (a placeholder until the UI lands)."""
