"""The OpenAI-compatible API: protocol models, handlers (serving), routes."""
