"""The one way Lamina generates, below every API and the library alike.

``engine.py`` answers a ``GenerationRequest`` from a model or its fallbacks; ``deployment.py``
routes it to the model's endpoints (breakers, retries before the first byte, a fair queue) and
reads the answers into ``events.py``'s pieces and results; ``sync.py`` and ``model.py`` serve code
that is not async. Nothing here knows HTTP frameworks: the server's endpoints are thin layers above.
"""
