"""What every UI route needs, made once by ``install`` and kept on the app."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from lamina.serve.state import ServerState
from lamina.ui.assets import Assets
from lamina.ui.csrf import Csrf
from lamina.ui.pages import Pages
from lamina.ui.store import ConversationStore


@dataclass
class UI:
    state: ServerState
    csrf: Csrf
    assets: Assets
    pages: Pages
    store: ConversationStore


def ui_of(request: Request) -> UI:
    ui: UI = request.app.state.lamina_ui
    return ui
