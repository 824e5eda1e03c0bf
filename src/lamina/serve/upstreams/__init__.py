"""Engine side of generation: deployments, endpoint routing with breakers, fair admission (no ASGI)."""
