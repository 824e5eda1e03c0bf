"""Sources a collection stays in sync with: a folder, a web site, a git branch, an S3 bucket, a WebDAV
folder. A connector lists what its source holds now and reads each item's bytes (base.py); specs say
what to connect to, without secrets (spec.py); ``make_connector`` picks the kind (factory.py)."""

from lamina.data.connectors.base import Connector, Entry, SourceError
from lamina.data.connectors.factory import make_connector
from lamina.data.connectors.spec import SOURCE_KINDS, SourceSpec, describe, parse_spec

__all__ = [
    "SOURCE_KINDS",
    "Connector",
    "Entry",
    "SourceError",
    "SourceSpec",
    "describe",
    "make_connector",
    "parse_spec",
]
