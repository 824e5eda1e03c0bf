"""The deployment layer: an OpenAI-compatible server over models and collections.

What lives where (arrows point down; nothing here is imported by data, models or rag):

- ``http/``: the ASGI app, uvicorn runner, the one middleware, errors in OpenAI's shape, auth and
  the FastAPI dependencies. The only place that knows Starlette/FastAPI besides the route modules.
- ``openai/``, ``anthropic/`` and ``native/``: the API, one folder per surface as in vLLM's entrypoints:
  ``protocol.py`` (pydantic request and response models), ``serving*.py`` (handlers), ``routes.py``.
- ``services/``: collections, documents, search, jobs, keys and usage as plain calls with narrow
  dependencies; the API routes and the web UI both call them, and ``services/access.py`` is the one
  place that decides which tenant a key may see.
- ``context.py``: the typed record of one request (principal, model, usage, reservation, cleanups)
  that the middleware creates and every layer below fills in.
- generation is ``lamina.engine``'s (deployments, routing and breakers, the fair queue, fallbacks);
  the handlers add what a server adds (keys, budgets, caches, metering into the request context).
- ``cluster.py``: what replicas tell each other about the engine's models (breakers, capacity).
- ``policy/``: keys and tenants, budgets and rate limits with their counter store, prices, caches.
- ``observe/``: Prometheus metrics, OpenTelemetry tracing, the request log, server logs.
- ``jobs/``: ingest jobs run in the server and the uploads they read.
- ``state.py``: the composition root: builds every part above from ``Settings`` once at start-up.
"""
