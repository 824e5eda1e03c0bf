"""Tenants are separate workspaces: each has its own registry and vectors under ``data_dir/tenants/T``.

Isolation is physical, not a filter someone can forget: a tenant's requests open only its own
workspace, so another tenant's collection is simply not there (a 404). The ``default`` tenant is the
data directory itself, so collections made with the CLI are the default tenant's.
"""

from __future__ import annotations

import threading
from pathlib import Path

from lamina.config import Settings
from lamina.data.collection import Workspace
from lamina.data.embed.base import Embedder
from lamina.serve.policy.keys import DEFAULT_TENANT, check_tenant


def tenant_dir(settings: Settings, tenant: str) -> Path:
    return (
        settings.data_dir
        if tenant == DEFAULT_TENANT
        else settings.data_dir / "tenants" / check_tenant(tenant)
    )


class Tenants:
    """One ``Workspace`` per tenant, made on first use, all sharing one embedder (loaded once)."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._root = Workspace(settings, embedder=embedder)
        self._workspaces: dict[str, Workspace] = {DEFAULT_TENANT: self._root}
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        return self._root.embedder

    def workspace(self, tenant: str) -> Workspace:
        with self._lock:
            ws = self._workspaces.get(tenant)
            if ws is None:
                where = {"data_dir": tenant_dir(self.settings, tenant), "tenant": tenant}
                settings = self.settings.model_copy(update=where)
                ws = self._workspaces[tenant] = Workspace(settings, embedders=self._root.embedders)
            return ws

    def known(self) -> list[str]:
        """Every tenant with a workspace on disk (for admins)."""
        root = self.settings.data_dir / "tenants"
        others = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        return [DEFAULT_TENANT, *others]

    def uploads_dir(self, tenant: str, collection: str) -> Path:
        """Where a collection's uploads are kept: ``uploads_dir`` when set (shared by every replica)."""
        if self.settings.uploads_dir is not None:
            return self.settings.uploads_dir / check_tenant(tenant) / collection
        return tenant_dir(self.settings, tenant) / "uploads" / collection

    def close(self) -> None:
        for ws in self._workspaces.values():
            if "registry" in ws.__dict__:
                ws.registry.close()
