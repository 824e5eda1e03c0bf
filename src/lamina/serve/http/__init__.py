"""HTTP edge: app factory, uvicorn runner, middleware, OpenAI-shaped errors, auth, dependencies."""
