"""The connector for a source spec: the one place kinds are chosen."""

from __future__ import annotations

from pathlib import Path

from lamina.config import FetchSettings
from lamina.data.connectors.base import Connector
from lamina.data.connectors.folder import FolderConnector
from lamina.data.connectors.git import GitConnector
from lamina.data.connectors.s3 import S3Connector
from lamina.data.connectors.spec import FolderSpec, GitSpec, S3Spec, SourceSpec, WebDavSpec, WebSpec
from lamina.data.connectors.web import WebConnector
from lamina.data.connectors.webdav import WebDavConnector


def make_connector(
    spec: SourceSpec, *, fetch: FetchSettings, cache_dir: Path, allow_private: bool = False
) -> Connector:
    """``allow_private`` lets web, WebDAV, http(s) git and S3 ``endpoint_url`` sources reach private
    addresses (as ``fetch.allow_private`` does for URLs); ``cache_dir`` holds a git source's mirror."""
    allow = allow_private or fetch.allow_private
    if isinstance(spec, FolderSpec):
        return FolderConnector(spec)
    if isinstance(spec, WebSpec):
        return WebConnector(spec, fetch, allow)
    if isinstance(spec, GitSpec):
        return GitConnector(spec, cache_dir, allow)
    if isinstance(spec, S3Spec):
        return S3Connector(spec, allow, fetch.timeout_s)
    if isinstance(spec, WebDavSpec):
        return WebDavConnector(spec, fetch, allow)
    raise TypeError(f"not a source spec: {type(spec).__name__}")
