"""Lamina's own API: collections, documents, search, ingest jobs, keys and the request log."""
