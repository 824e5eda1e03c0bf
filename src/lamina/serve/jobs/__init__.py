"""Ingest jobs run by the server (a thread per server today), and the uploads they read."""
