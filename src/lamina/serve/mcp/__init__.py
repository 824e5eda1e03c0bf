"""The MCP tools served at ``/mcp``: the server's own ``CollectionTools`` (:mod:`.tools`) behind the
Streamable HTTP endpoint (:mod:`.http`). The tools themselves are defined in :mod:`lamina.mcp`."""

from lamina.serve.mcp.http import PATH, McpEndpoint
from lamina.serve.mcp.tools import ServerTools

__all__ = ["PATH", "McpEndpoint", "ServerTools"]
