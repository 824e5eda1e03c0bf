"""Lamina's collections as MCP tools: ``list_collections``, ``search`` and ``answer``.

The three tools are defined once (:func:`lamina.mcp.tools.build_mcp`) over a small
:class:`~lamina.mcp.tools.CollectionTools` protocol; what answers them is a backend: the server's own
services (``/mcp``, in :mod:`lamina.serve.mcp`), a running server through the Python SDK
(:mod:`lamina.mcp.remote`) or the local workspace (:mod:`lamina.mcp.local`) for ``lamina mcp``.
"""

from lamina.mcp.tools import CollectionToolError, CollectionTools, build_mcp, no_such_collection

__all__ = ["CollectionToolError", "CollectionTools", "build_mcp", "no_such_collection"]
