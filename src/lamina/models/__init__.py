"""Model layer: local GGUF models on llama.cpp and remote OpenAI-compatible ones, behind one Protocol.

Never imports the server, the CLI or the UI.
"""
