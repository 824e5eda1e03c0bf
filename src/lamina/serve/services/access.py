"""Who may see which tenant: the one place that decides it, for the API and the web UI alike.

A key sees its own tenant; an admin key sees every tenant and may act for any of them. Objects of a
tenant a key may not see do not exist for it (the services answer 404, never 403); only naming
another tenant explicitly (``?tenant=``) without admin rights is a 403.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lamina.data.filters import FilterError, parse_filter
from lamina.data.store.base import Where
from lamina.serve.errors import APIError, bad_request
from lamina.serve.policy.keys import Principal

__all__ = ["may_see", "require_admin", "tenant_filter", "tenant_for", "visible_tenants", "where_for"]


def where_for(
    principal: Principal,
    *,
    filter: Mapping[str, Any] | None = None,
    source: str | None = None,
    document: str | None = None,
    param: str = "filter",
) -> Where:
    """What a search or an answer of this key may read: the request's conditions, and always the
    key's reader groups (a request can narrow what it sees, never widen it). A filter that cannot
    be read is a 400 naming ``param``."""
    try:
        fields = parse_filter(filter)
    except FilterError as exc:
        raise bad_request(str(exc), param=param) from None
    return Where(source_glob=source, document=document, fields=fields, readers=principal.readers)


def require_admin(principal: Principal) -> None:
    """Refuse (403) a key without admin rights."""
    if not principal.admin:
        raise APIError(403, "this needs an admin key", "permission_error", code="admin_only")


def tenant_filter(principal: Principal) -> str | None:
    """The tenant whose rows (jobs, logged requests) a key may read; ``None``: every tenant (admins)."""
    return None if principal.admin else principal.tenant


def may_see(principal: Principal, tenant: str) -> bool:
    """Whether the key may see objects of ``tenant``."""
    return principal.admin or tenant == principal.tenant


def tenant_for(principal: Principal, requested: str | None) -> str:
    """The tenant a request acts for: the key's own, or (admins only) the one it names."""
    if requested is None or requested == principal.tenant:
        return principal.tenant
    require_admin(principal)
    return requested


def visible_tenants(principal: Principal, known: Callable[[], list[str]]) -> list[str]:
    """Every tenant the key sees: its own, or for admins every one ``known`` lists."""
    return known() if principal.admin else [principal.tenant]
