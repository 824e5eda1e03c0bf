"""Data layer: extract -> transform -> featurize -> load, and retrieval over what was loaded.

Never imports the server, the CLI or the UI.
"""
